//! Block store tests: crash safety under SIGKILL (a child process re-executing this test binary
//! is killed many times while it commits blocks), reopening, another chain's store, corrupt
//! files, deletion of rejected blocks, and side branches with the tie rule across restarts.

use ed25519_zebra::SigningKey;
use gossipchain::chain::tree::TreeLimits;
use gossipchain::chain::{
    Address, Block, BlockHash, BlockKey, ChainParams, ChainState, Header, Outcome, Transfer,
};
use gossipchain::store::{Store, StoreError};
use gossipchain::testkit::{self, NOW, block_on, key};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;

/// The database file inside a store directory.
const DB_FILE: &str = "blocks.redb";
/// Names the store directory of the crash child; the child does nothing without it.
const CHILD_DIR_ENV: &str = "GOSSIPCHAIN_CRASH_CHILD_DIR";
/// Seeds the crash child's choices, so every run builds other blocks.
const CHILD_SEED_ENV: &str = "GOSSIPCHAIN_CRASH_CHILD_SEED";
/// Most blocks one crash child commits before it exits by itself.
const CHILD_MAX_BLOCKS: u64 = 3_000;
/// Accounts that mine and send transfers.
const USERS: usize = 5;

/// SplitMix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_be_bytes());
        }
        out
    }
}

/// Builds a varied but valid stream of blocks: most extend the tip with a few signed transfers
/// between [`USERS`] accounts (and sometimes to fresh addresses), some fork off the tip's parent
/// (a side branch of equal work), and some extend the last side branch, which reorganises the
/// chain when that branch gets ahead.
struct Builder {
    rng: Rng,
    keys: Vec<SigningKey>,
    /// Miners of side-branch blocks, distinct from `keys` so a fork never equals a main block.
    fork_miners: Vec<Address>,
    /// The last side-branch block built.
    side: Option<BlockHash>,
}

impl Builder {
    fn new(seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            keys: (0..USERS as u64).map(key).collect(),
            fork_miners: (100..104).map(|s| Address::of(&key(s))).collect(),
            side: None,
        }
    }

    fn user(&mut self) -> usize {
        self.rng.below(USERS as u64) as usize
    }

    fn fork_miner(&mut self) -> Address {
        self.fork_miners[self.rng.below(self.fork_miners.len() as u64) as usize]
    }

    /// Transfers valid on the ledger of `chain`'s tip, in order.
    fn transfers(&mut self, chain: &ChainState, count: u64) -> Vec<Transfer> {
        let mut state: HashMap<usize, (u64, u64)> = HashMap::new();
        let mut out = Vec::new();
        for _ in 0..count {
            let from = self.user();
            let (balance, nonce) = *state.entry(from).or_insert_with(|| {
                let a = chain.ledger().account(&Address::of(&self.keys[from]));
                (a.balance, a.nonce)
            });
            let fee = self.rng.below(4);
            if balance <= fee {
                continue;
            }
            let amount = 1 + self
                .rng
                .below((balance - fee) / 2 + 1)
                .min(balance - fee - 1);
            let to = if self.rng.below(6) == 0 {
                Address(self.rng.bytes32())
            } else {
                let mut to = self.user();
                if to == from {
                    to = (to + 1) % USERS;
                }
                Address::of(&self.keys[to])
            };
            let t = Transfer::sign(&self.keys[from], &chain.chain_id(), to, amount, fee, nonce);
            state.insert(from, (balance - amount - fee, nonce + 1));
            out.push(t);
        }
        out
    }

    /// The next block for `chain`.
    fn next(&mut self, chain: &ChainState) -> Block {
        let tip = chain.tip();
        let roll = self.rng.below(10);
        let mut block = match self.side {
            Some(side) if roll < 2 && chain.contains(&side) && !chain.is_active(&side) => {
                let miner = self.fork_miner();
                block_on(chain, side, &[], miner)
            }
            _ if roll < 3 && chain.height() >= 2 => {
                let parent = chain.block(&tip).expect("tip").header.prev_hash;
                let miner = self.fork_miner();
                block_on(chain, parent, &[], miner)
            }
            _ => {
                let count = self.rng.below(4);
                let transfers = self.transfers(chain, count);
                let user = self.user();
                let miner = Address::of(&self.keys[user]);
                block_on(chain, tip, &transfers, miner)
            }
        };
        // Jitter the timestamp so blocks built again after a restart differ from lost ones.
        block.header.timestamp += self.rng.below(500);
        testkit::seal(&mut block);
        if block.header.prev_hash != tip {
            self.side = Some(block.compute_hash());
        }
        block
    }
}

/// Processes `block` into `chain` and commits what changed, as a node does.
fn process_and_commit(store: &Store, chain: &mut ChainState, block: Block) -> BlockHash {
    let hash = block.compute_hash();
    let processed = chain
        .process_block(Arc::new(block), NOW)
        .expect("the builder makes valid blocks");
    // What the tree dropped (as a node hands it to the store).
    let rejected = chain.take_dropped();
    store
        .commit(&processed.accepted, &rejected, chain.tip_key())
        .expect("commit");
    hash
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

fn bodies_path(dir: &Path) -> PathBuf {
    db_path(dir).with_extension("bodies")
}

fn open(dir: &Path, params: &ChainParams) -> Store {
    match Store::open(&db_path(dir), params) {
        Ok(store) => store,
        Err(e) => panic!("opening the store failed: {e}"),
    }
}

fn open_err(path: &Path, params: &ChainParams) -> StoreError {
    match Store::open(path, params) {
        Ok(_) => panic!("opening {} succeeded", path.display()),
        Err(e) => e,
    }
}

fn load(store: &Store) -> ChainState {
    match store.load_chain(TreeLimits::default()) {
        Ok(chain) => chain,
        Err(e) => panic!("loading the chain failed: {e}"),
    }
}

/// Loads the chain and checks it against everything the store holds: every stored block is in
/// the tree and nothing is orphaned, the recorded tip is the tip and has the most work, the best
/// chain links height by height, its ledger equals a replay from genesis, and the supply is the
/// reward times the height (fees only move coins to miners).
fn load_and_check(store: &Store, params: &ChainParams) -> ChainState {
    // The stored ledger, undo records and txid index equal a replay of the stored best chain.
    let verified = match store.verify() {
        Ok(v) => v,
        Err(e) => panic!("the store does not verify: {e}"),
    };
    let chain = load(store);
    assert_eq!(verified.height, chain.height());
    assert_eq!(verified.accounts, chain.ledger().len());
    assert_eq!(&store.ledger().expect("ledger"), chain.ledger());
    let stored = store.blocks().expect("blocks");
    assert_eq!(store.block_count().expect("count"), stored.len() as u64);
    assert_eq!(chain.orphan_count(), 0, "a stored block lacks its parent");
    assert_eq!(
        chain.block_count(),
        stored.len() + 1,
        "genesis plus the stored"
    );
    for (hash, block) in &stored {
        assert_eq!(chain.block(hash).as_deref(), Some(block));
    }
    match store.tip().expect("tip") {
        Some(tip) => assert_eq!(chain.tip(), tip, "the recorded tip is the tip"),
        None => assert_eq!(chain.height(), 0),
    }
    let tip_work = chain.tip_chainwork();
    for (hash, _) in &stored {
        assert!(chain.work(hash).expect("work") <= tip_work);
    }
    assert_eq!(chain.hash_at(0), Some(chain.chain_id()));
    for h in 1..=chain.height() {
        let block = chain.block_at(h).expect("active block");
        assert_eq!(block.header.height, h);
        assert_eq!(
            block.header.prev_hash,
            chain.hash_at(h - 1).expect("parent")
        );
        assert_eq!(block.compute_hash(), chain.hash_at(h).expect("hash"));
    }
    let mut replay = ChainState::new(params.clone());
    for h in 1..=chain.height() {
        let r = replay
            .load_trusted(chain.block_at(h).expect("active block").clone())
            .expect("replay");
        assert_eq!(r.outcome, Outcome::Accepted);
    }
    assert_eq!(replay.tip(), chain.tip());
    assert_eq!(replay.ledger(), chain.ledger());
    assert_eq!(
        chain.ledger().total_supply(),
        params.block_reward * chain.height()
    );
    chain
}

/// The crash child: does nothing unless [`CHILD_DIR_ENV`] is set. Opens the store, loads the
/// chain, then commits blocks one by one and reports each on stdout only after `commit`
/// returned.
#[test]
#[ignore = "child process of crash_kill_restart_keeps_every_committed_block"]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let seed = std::env::var(CHILD_SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let params = testkit::params();
    let store = open(Path::new(&dir), &params);
    let mut chain = load(&store);
    let mut builder = Builder::new(seed);
    // Written straight to the stdout handle: libtest's output capture does not see it.
    let mut out = std::io::stdout().lock();
    for _ in 0..CHILD_MAX_BLOCKS {
        let block = builder.next(&chain);
        let height = block.header.height;
        let hash = process_and_commit(&store, &mut chain, block);
        writeln!(out, "committed {height} {hash} {}", chain.tip())
            .and_then(|()| out.flush())
            .expect("report to the parent");
    }
}

/// Kills and reaps its child when dropped, so no child outlives a failed assertion.
struct ChildGuard(Child);

impl ChildGuard {
    /// SIGKILL (on Unix, `Child::kill`), then wait.
    fn kill_and_reap(&mut self) -> ExitStatus {
        // Fails only if the child already exited, which `wait` then reports.
        let _ = self.0.kill();
        self.0.wait().expect("reap the child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A report of the child: (height, block hash, tip after the commit).
fn parse_report(line: &str) -> Option<(u64, BlockHash, BlockHash)> {
    // libtest may print its own text on the same line; the report starts at "committed ".
    let rest = &line[line.find("committed ")? + "committed ".len()..];
    let mut words = rest.split_whitespace();
    let height = words.next()?.parse().ok()?;
    let hash = words.next()?.parse().ok()?;
    let tip = words.next()?.parse().ok()?;
    Some((height, hash, tip))
}

#[test]
fn crash_kill_restart_keeps_every_committed_block() {
    const RUNS: usize = 40;
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = Rng(0x5eed_c4a5);
    // Every block reported committed, with its height.
    let mut reported: HashMap<BlockHash, u64> = HashMap::new();
    let mut last_tip: Option<BlockHash> = None;
    let mut killed = 0;
    let mut killed_before_any_report = 0;
    let mut max_height = 0;
    let mut side_blocks = 0;
    for run in 0..RUNS {
        // Mostly a random number of reports, then kill (the child is then usually inside the
        // next commit); sometimes kill at once, during start-up, recovery or the first commit.
        let kill_after = match rng.below(8) {
            0 => 0,
            1 => 1,
            _ => 2 + rng.below(100),
        };
        let mut child = ChildGuard(
            Command::new(&exe)
                .args([
                    "--exact",
                    "crash_child",
                    "--nocapture",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR_ENV, dir.path())
                .env(CHILD_SEED_ENV, rng.next_u64().to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn the crash child"),
        );
        let mut stdout = BufReader::new(child.0.stdout.take().expect("piped stdout"));
        let mut reports = Vec::new();
        let mut exited = false;
        while (reports.len() as u64) < kill_after {
            let mut line = String::new();
            if stdout.read_line(&mut line).expect("read the child") == 0 {
                exited = true;
                break;
            }
            reports.extend(parse_report(&line));
        }
        let status = child.kill_and_reap();
        if exited {
            assert!(status.success(), "run {run}: the child failed: {status}");
        } else {
            killed += 1;
            if reports.is_empty() {
                killed_before_any_report += 1;
            }
        }
        // Whatever the child wrote before it died was written after its commit returned.
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).expect("drain the child");
        reports.extend(rest.lines().filter_map(parse_report));
        for &(height, hash, tip) in &reports {
            reported.insert(hash, height);
            last_tip = Some(tip);
        }

        let store = open(dir.path(), &params);
        let chain = load_and_check(&store, &params);
        for (hash, &height) in &reported {
            let block = chain
                .block(hash)
                .unwrap_or_else(|| panic!("run {run}: committed block {hash} is missing"));
            assert_eq!(block.header.height, height);
        }
        if let Some(tip) = last_tip {
            // At most the commit in flight when killed came after the last report, and blocks
            // only ever add work.
            let work = chain.work(&tip).expect("reported tip");
            assert!(
                chain.tip_chainwork() >= work,
                "run {run}: the tip lost work"
            );
        }
        max_height = chain.height();
        side_blocks = chain.block_count() - 1 - max_height as usize;
    }
    assert!(killed >= 25, "only {killed} of {RUNS} runs were killed");
    assert!(max_height > 200, "the chain grew to {max_height} only");
    assert!(side_blocks > 0, "no side branch was stored");
    eprintln!(
        "crash test: {RUNS} runs, {killed} kills ({killed_before_any_report} before any report), \
         {} blocks reported, final height {max_height}, {side_blocks} side-branch blocks",
        reported.len()
    );

    // Finally the stored best chain passes full validation, signatures included.
    let store = open(dir.path(), &params);
    let chain = load(&store);
    let mut full = ChainState::new(params.clone());
    for h in 1..=chain.height() {
        full.process_block(chain.block_at(h).expect("active").clone(), NOW)
            .expect("stored blocks are fully valid");
    }
    assert_eq!(full.ledger(), chain.ledger());
}

/// A store with `n` builder blocks (transfers, forks, reorganisations) in the fresh `dir`,
/// and the chain that made them (in memory only: it holds no handle on the store).
fn build_store(dir: &Path, params: &ChainParams, n: usize, seed: u64) -> ChainState {
    let store = open(dir, params);
    assert_eq!(store.tip().expect("tip"), None, "a fresh store");
    let mut chain = ChainState::new(params.clone());
    let mut builder = Builder::new(seed);
    for _ in 0..n {
        let block = builder.next(&chain);
        process_and_commit(&store, &mut chain, block);
    }
    chain
}

#[test]
fn a_fresh_store_loads_genesis_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let store = open(dir.path(), &params);
    assert_eq!(store.tip().expect("tip"), None);
    assert_eq!(store.block_count().expect("count"), 0);
    let chain = load_and_check(&store, &params);
    assert_eq!(chain.height(), 0);
    assert_eq!(chain.tip(), params.chain_id());
}

#[test]
fn a_reopened_store_has_the_same_tip_height_ledger_and_blocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let before = build_store(dir.path(), &params, 300, 7);
    let stored_before = open(dir.path(), &params).blocks().expect("blocks");
    assert!(before.height() > 150);
    assert!(
        before.block_count() > before.height() as usize + 1,
        "no fork"
    );
    assert!(
        before.ledger().len() > USERS,
        "transfers reached fresh addresses"
    );

    let store = open(dir.path(), &params);
    let after = load_and_check(&store, &params);
    assert_eq!(after.tip(), before.tip());
    assert_eq!(after.height(), before.height());
    assert_eq!(after.tip_work(), before.tip_work());
    assert_eq!(after.ledger(), before.ledger());
    assert_eq!(after.block_count(), before.block_count());
    assert_eq!(store.blocks().expect("blocks"), stored_before);
    for (hash, block) in &stored_before {
        assert_eq!(before.block(hash).as_deref(), Some(block));
        assert_eq!(after.is_active(hash), before.is_active(hash));
    }
}

#[test]
fn another_chains_store_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let chain = build_store(dir.path(), &params, 5, 1);
    let other = ChainParams::with_bits(9);
    let path = db_path(dir.path());
    let err = open_err(&path, &other);
    match &err {
        StoreError::WrongChain {
            path: p,
            expected,
            found,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*expected, other.chain_id());
            assert_eq!(found, &params.chain_id().to_hex());
        }
        e => panic!("expected WrongChain, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(&params.chain_id().to_hex()), "{msg}");
    assert!(msg.contains(&other.chain_id().to_hex()), "{msg}");
    assert!(msg.contains("another data directory"), "{msg}");

    // The refused open changed nothing.
    let store = open(dir.path(), &params);
    assert_eq!(load_and_check(&store, &params).tip(), chain.tip());
}

#[test]
fn a_file_of_garbage_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let mut rng = Rng(3);
    let path = db_path(dir.path());
    let garbage: Vec<u8> = (0..64 * 1024).map(|_| rng.next_u64() as u8).collect();
    for contents in [
        &b"this is not a database\n"[..],
        &garbage[..],
        &garbage[..4096],
    ] {
        std::fs::write(&path, contents).expect("write");
        let err = open_err(&path, &params);
        assert!(matches!(err, StoreError::Db { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("block store {}: ", path.display())),
            "{msg}"
        );
        // The file is left as it was, for inspection.
        assert_eq!(std::fs::read(&path).expect("read"), contents);
    }
}

/// Every offset where `needle` occurs in `haystack`.
fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn a_damaged_stored_block_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let chain = build_store(dir.path(), &params, 40, 11);
    // Best-chain bodies live in the body file beside the database.
    let path = bodies_path(dir.path());
    let pristine = std::fs::read(&path).expect("read");
    let victim = chain.block_at(20).expect("block").encode();

    // A byte of the header (the timestamp): the block no longer hashes to its key.
    let mut bytes = pristine.clone();
    let at = find_all(&bytes, &victim);
    assert!(!at.is_empty(), "the block is stored verbatim");
    for &i in &at {
        bytes[i + 80] ^= 0x40;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = open(dir.path(), &params)
        .verify()
        .expect_err("a damaged block is an error");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("is corrupt"), "{msg}");
    assert!(
        msg.contains(&chain.hash_at(20).expect("hash").to_hex()),
        "{msg}"
    );

    // A byte of the coinbase: the header still matches, the transactions do not.
    let mut bytes = pristine.clone();
    for &i in &at {
        bytes[i + 96 + 4 + 10] ^= 0x01;
    }
    std::fs::write(&path, &bytes).expect("write");
    let err = open(dir.path(), &params)
        .verify()
        .expect_err("a damaged block is an error");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("is invalid"), "{err}");

    // Restored, the store loads again.
    std::fs::write(&path, &pristine).expect("write");
    let store = open(dir.path(), &params);
    assert_eq!(load_and_check(&store, &params).tip(), chain.tip());
}

#[test]
fn overwritten_bytes_anywhere_never_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let chain = build_store(dir.path(), &params, 200, 5);
    let path = db_path(dir.path());
    let pristine = std::fs::read(&path).expect("read");
    let mut rng = Rng(99);
    let (mut harmless, mut db, mut corrupt, mut caught) = (0, 0, 0, 0);
    for _ in 0..250 {
        let mut bytes = pristine.clone();
        let len = 1 + rng.below(256) as usize;
        let at = rng.below((bytes.len() - len) as u64) as usize;
        for b in &mut bytes[at..at + len] {
            *b = rng.next_u64() as u8;
        }
        std::fs::write(&path, &bytes).expect("write");
        // A restart reads no block and replays nothing, so damage inside a record that still
        // decodes is found by `verify`, which the node's data is checked with.
        let result = std::panic::catch_unwind(|| {
            let store = Store::open(&path, &params)?;
            let loaded = store.load_chain(TreeLimits::default())?;
            store.verify()?;
            Ok::<_, StoreError>((loaded.tip(), loaded.ledger().clone()))
        });
        match result {
            Err(_) => panic!("overwriting {len} bytes at {at} made the store panic"),
            // Unused or stale pages: the chain is intact.
            Ok(Ok((tip, ledger))) => {
                assert_eq!(tip, chain.tip(), "{len} bytes at {at}");
                assert_eq!(&ledger, chain.ledger(), "{len} bytes at {at}");
                harmless += 1;
            }
            Ok(Err(StoreError::Db { .. })) => db += 1,
            Ok(Err(e @ StoreError::Corrupt { .. })) => {
                corrupt += 1;
                if e.to_string().contains("redb panicked") {
                    caught += 1;
                }
            }
            // The chain id or schema record itself was hit: indistinguishable from another
            // chain's store or a newer one.
            Ok(Err(StoreError::WrongChain { .. } | StoreError::TooNew { .. })) => db += 1,
        }
    }
    eprintln!(
        "random overwrites: {harmless} harmless, {db} Db/WrongChain errors, {corrupt} Corrupt \
         errors ({caught} of them panics inside redb turned into errors)"
    );
    // The body file holds only best-chain bodies: any overwrite there is found by `verify`,
    // and reading the damaged block says so, without a panic.
    std::fs::write(&path, &pristine).expect("write");
    let file = bodies_path(dir.path());
    let filed = std::fs::read(&file).expect("read");
    for _ in 0..40 {
        let mut bytes = filed.clone();
        let len = 1 + rng.below(64) as usize;
        let at = rng.below((bytes.len() - len) as u64) as usize;
        for b in &mut bytes[at..at + len] {
            *b = !*b;
        }
        std::fs::write(&file, &bytes).expect("write");
        let result = std::panic::catch_unwind(|| {
            let store = Store::open(&path, &params)?;
            let loaded = store.load_chain(TreeLimits::default())?;
            let pages = loaded.wires_from(1, loaded.height(), usize::MAX).len();
            store.verify().map(|_| pages)
        });
        match result {
            Err(_) => panic!("overwriting {len} body file bytes at {at} made the store panic"),
            Ok(Ok(_)) => panic!("overwriting {len} body file bytes at {at} went unnoticed"),
            Ok(Err(e)) => assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}"),
        }
    }
    std::fs::write(&file, &filed).expect("write");
}

#[test]
fn commit_deletes_rejected_blocks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let store = open(dir.path(), &params);
    let mut chain = load(&store);
    let miner = Address::of(&key(1));
    for _ in 0..3 {
        let block = testkit::next_block(&chain, &[], miner);
        process_and_commit(&store, &mut chain, block);
    }
    let tip = chain.tip();
    let fork = chain.hash_at(1).expect("fork point");
    let side = block_on(&chain, fork, &[], Address::of(&key(2)));
    let side_hash = process_and_commit(&store, &mut chain, side);
    assert_eq!(chain.tip(), tip);
    assert_eq!(store.block_count().expect("count"), 4);

    // Deleting one stored block, and ones never stored (a no-op: another hash, or the stored
    // block's hash at another height), keeps the index consistent.
    let never = [
        BlockKey::new(2, BlockHash([7; 32])),
        BlockKey::new(3, side_hash),
    ];
    store.commit(&[], &never, chain.tip_key()).expect("commit");
    assert_eq!(store.block_count().expect("count"), 4);
    store
        .commit(&[], &[BlockKey::new(2, side_hash)], chain.tip_key())
        .expect("commit");
    assert_eq!(store.block_count().expect("count"), 3);
    let stored = store.blocks().expect("blocks");
    assert!(stored.iter().all(|(h, _)| *h != side_hash));
    let reloaded = load_and_check(&store, &params);
    assert!(!reloaded.contains(&side_hash));
    assert_eq!(reloaded.tip(), tip);
}

#[test]
fn a_stored_side_branch_found_invalid_by_a_reorganisation_is_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let store = open(dir.path(), &params);
    let mut chain = load(&store);
    let (alice, bob) = (key(1), key(2));
    let miner = Address::of(&alice);
    for _ in 0..3 {
        let block = testkit::next_block(&chain, &[], miner);
        process_and_commit(&store, &mut chain, block);
    }
    let tip = chain.tip();
    // A side branch from height 1, where alice has 50, spending 60: signatures valid, ledger not.
    // Side blocks are not checked against the ledger, so s2 is stored.
    let fork = chain.hash_at(1).expect("fork point");
    let over = Transfer::sign(&alice, &chain.chain_id(), Address::of(&bob), 60, 0, 0);
    let s2 = block_on(&chain, fork, &[over], Address::of(&bob));
    let s2_hash = process_and_commit(&store, &mut chain, s2);
    assert_eq!(store.block_count().expect("count"), 4);
    let s3 = block_on(&chain, s2_hash, &[], Address::of(&bob));
    let s3_hash = s3.compute_hash();
    // Built on a scratch copy of the chain that holds s3.
    let mut scratch = load(&store);
    scratch
        .process_block(Arc::new(s3.clone()), NOW)
        .expect("s3");
    let s4 = block_on(&scratch, s3_hash, &[], Address::of(&bob));
    let s4_hash = s4.compute_hash();

    // s4 first waits as an orphan; s3 (equal work, valid) connects it; the branch then has more
    // work, and the reorganisation finds s2 invalid and drops s2, s3 and s4.
    let r = chain.process_block(Arc::new(s4), NOW).expect("orphan");
    assert!(matches!(r.outcome, Outcome::Orphan { .. }));
    let processed = chain
        .process_block(Arc::new(s3), NOW)
        .expect("s3 itself is accepted");
    assert_eq!(chain.tip(), tip);
    let rejected = chain.take_dropped();
    assert!(rejected.iter().any(|k| k.hash == s2_hash), "{rejected:?}");
    assert!(processed.accepted.is_empty(), "s3 was dropped again");
    store
        .commit(&processed.accepted, &rejected, chain.tip_key())
        .expect("commit");

    assert_eq!(store.block_count().expect("count"), 3);
    let reloaded = load_and_check(&store, &params);
    for h in [s2_hash, s3_hash, s4_hash] {
        assert!(!reloaded.contains(&h));
    }
    assert_eq!(reloaded.tip(), tip);
    assert_eq!(reloaded.ledger(), chain.ledger());
}

#[test]
fn side_branches_and_the_tie_rule_survive_a_restart() {
    let params = testkit::params();
    // Main: G-1-2a; side 1-2b-3b takes over; then 3a makes a equal in work to b. b stays best
    // (seen first). Miners are searched so that 3a sorts before 3b in the height index, so a
    // reload in plain height order would pick a.
    for attempt in 0..64u64 {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path(), &params);
        let mut chain = ChainState::new(params.clone());
        let (ma, mb) = (
            Address::of(&key(1000 + attempt)),
            Address::of(&key(20 + attempt)),
        );
        let b1 = testkit::next_block(&chain, &[], ma);
        let h1 = process_and_commit(&store, &mut chain, b1);
        let a2 = block_on(&chain, h1, &[], ma);
        let a2h = process_and_commit(&store, &mut chain, a2);
        let b2 = block_on(&chain, h1, &[], mb);
        let b2h = process_and_commit(&store, &mut chain, b2);
        assert_eq!(chain.tip(), a2h);
        let b3 = block_on(&chain, b2h, &[], mb);
        let b3h = process_and_commit(&store, &mut chain, b3);
        assert_eq!(chain.tip(), b3h, "more work wins");
        let a3 = block_on(&chain, a2h, &[], ma);
        let a3h = process_and_commit(&store, &mut chain, a3);
        assert_eq!(chain.tip(), b3h, "equal work: the first seen stays");
        if a3h >= b3h {
            continue;
        }
        drop(store);
        let store = open(dir.path(), &params);
        let reloaded = load_and_check(&store, &params);
        assert_eq!(reloaded.tip(), b3h);
        assert_eq!(reloaded.ledger(), chain.ledger());
        assert_eq!(reloaded.work(&a3h), reloaded.work(&b3h));
        for h in [a2h, a3h] {
            assert!(reloaded.contains(&h) && !reloaded.is_active(&h));
        }
        for h in [b2h, b3h] {
            assert!(reloaded.is_active(&h));
        }
        // And after a reload the side branch still takes over once it gets ahead.
        drop(reloaded);
        drop(store);
        let store = open(dir.path(), &params);
        let mut chain = load(&store);
        let a4 = block_on(&chain, a3h, &[], ma);
        let a4h = process_and_commit(&store, &mut chain, a4);
        assert_eq!(chain.tip(), a4h);
        // The loaded chain reads the store: closed with it.
        drop(chain);
        drop(store);
        let store = open(dir.path(), &params);
        let reloaded = load_and_check(&store, &params);
        assert_eq!(reloaded.tip(), a4h);
        assert!(reloaded.contains(&b3h) && !reloaded.is_active(&b3h));
        return;
    }
    panic!("no attempt ordered 3a before 3b");
}

#[test]
fn a_block_without_its_parent_or_an_unknown_tip_is_refused_at_commit() {
    use gossipchain::chain::{Address, BlockHash, BlockKey, ChainState};
    use gossipchain::store::{Store, StoreError};
    use gossipchain::testkit;
    let params = testkit::params();
    let mut chain = ChainState::new(params.clone());
    testkit::extend(&mut chain, 3, Address([1; 32]));
    let third = chain.checked_at(3).unwrap().clone();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("a.redb"), &params).unwrap();
    let err = store
        .commit(std::slice::from_ref(&third), &[], third.key())
        .expect_err("a block without its parent is refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("has no stored parent"), "{err}");
    // Nothing of the refused batch was written.
    assert_eq!(store.block_count().unwrap(), 0);
    assert_eq!(store.tip().unwrap(), None);

    let store = Store::open(&dir.path().join("b.redb"), &params).unwrap();
    let err = store
        .commit(&[], &[], BlockKey::new(1, BlockHash([9; 32])))
        .expect_err("an unknown tip is refused");
    assert!(err.to_string().contains("is not stored"), "{err}");
    assert_eq!(store.tip().unwrap(), None);
    assert_eq!(store.load_chain(Default::default()).unwrap().height(), 0);
}

/// Writes `blocks` and `tip` in the format of schema 1 (the tables `blocks`, `by_height` and
/// `meta` with the chain id and the tip, no ledger), as the versions before the stored ledger did.
fn write_schema_1(
    path: &Path,
    params: &ChainParams,
    blocks: &[(BlockHash, Block)],
    tip: BlockHash,
) {
    use redb::{Database, TableDefinition};
    const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
    const BY_HEIGHT: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("by_height");
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let db = Database::create(path).expect("create");
    let tx = db.begin_write().expect("write");
    {
        let mut meta = tx.open_table(META).expect("meta");
        meta.insert("chain_id", params.chain_id().as_bytes().as_slice())
            .expect("chain id");
        meta.insert("tip", tip.as_bytes().as_slice()).expect("tip");
        let mut b = tx.open_table(BLOCKS).expect("blocks");
        let mut h = tx.open_table(BY_HEIGHT).expect("by_height");
        for (hash, block) in blocks {
            b.insert(hash.as_bytes(), block.encode().as_slice())
                .expect("block");
            h.insert((block.header.height, hash.as_bytes()), ())
                .expect("height");
        }
    }
    tx.commit().expect("commit");
}

#[test]
fn a_store_of_the_former_format_is_migrated_on_open_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let chain = build_store(dir.path(), &params, 200, 21);
    let (blocks, tip) = {
        let store = open(dir.path(), &params);
        (store.blocks().expect("blocks"), store.tip().expect("tip"))
    };
    assert!(blocks.len() > chain.height() as usize, "side branches too");
    let old = dir.path().join("old.redb");
    write_schema_1(&old, &params, &blocks, tip.expect("a tip"));

    let store = Store::open(&old, &params).expect("the former format opens");
    let migrated = load_and_check(&store, &params);
    assert_eq!(migrated.tip(), chain.tip());
    assert_eq!(migrated.ledger(), chain.ledger());
    assert_eq!(migrated.block_count(), chain.block_count());
    assert_eq!(store.blocks().expect("blocks"), blocks);
    drop(migrated);
    drop(store);
    // Opened again, it is of the new format already and holds the same.
    let store = Store::open(&old, &params).expect("reopens");
    assert_eq!(load_and_check(&store, &params).ledger(), chain.ledger());

    // A former store whose best chain breaks a ledger rule is refused, and left as it was.
    let bad = dir.path().join("bad.redb");
    let mut scratch = ChainState::new(params.clone());
    testkit::extend(&mut scratch, 1, Address::of(&key(1)));
    let over = Transfer::sign(&key(1), &params.chain_id(), Address::of(&key(2)), 60, 0, 0);
    let b2 = block_on(&scratch, scratch.tip(), &[over], Address::of(&key(2)));
    let rows = vec![
        (
            scratch.tip(),
            (*scratch.block_at(1).expect("block 1")).clone(),
        ),
        (b2.compute_hash(), b2.clone()),
    ];
    write_schema_1(&bad, &params, &rows, b2.compute_hash());
    let err = open_err(&bad, &params);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("is invalid"), "{err}");
    assert!(
        err.to_string().contains(&b2.compute_hash().to_hex()),
        "{err}"
    );
    // The refused migration wrote nothing: the former tables are there as they were.
    {
        use redb::{Database, ReadableDatabase, ReadableTableMetadata, TableDefinition};
        const BY_HEIGHT: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("by_height");
        let db = Database::create(&bad).expect("open");
        let tx = db.begin_read().expect("read");
        assert_eq!(
            tx.open_table(BY_HEIGHT)
                .expect("by_height")
                .len()
                .expect("len"),
            2
        );
    }
}

/// A key of the `headers` and `bodies` tables: height, block hash.
type IndexKey = (u64, [u8; 32]);

/// Rewrites a store of the current format in schema 4's: every body in the `bodies` table,
/// index records of 76 bytes (no body location), no body file.
fn downgrade_to_schema_4(path: &Path) {
    use redb::{Database, ReadableTable, TableDefinition};
    const BODIES: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("bodies");
    const INDEX: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("headers");
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let file = path.with_extension("bodies");
    let filed = std::fs::read(&file).expect("the body file");
    let db = Database::create(path).expect("open");
    let tx = db.begin_write().expect("write");
    {
        let mut bodies = tx.open_table(BODIES).expect("bodies");
        let mut index = tx.open_table(INDEX).expect("index");
        let rows: Vec<(IndexKey, Vec<u8>)> = index
            .iter()
            .expect("iterate")
            .map(|row| {
                let (k, v) = row.expect("row");
                let (h, hash) = k.value();
                ((h, *hash), v.value().to_vec())
            })
            .collect();
        for ((h, hash), v) in rows {
            assert_eq!(v.len(), 88);
            let offset = u64::from_be_bytes(v[76..84].try_into().unwrap()) as usize;
            let len = u32::from_be_bytes(v[84..88].try_into().unwrap()) as usize;
            if len > 0 {
                bodies
                    .insert((h, &hash), &filed[offset..offset + len])
                    .expect("body");
            }
            index.insert((h, &hash), &v[..76]).expect("record");
        }
        let mut meta = tx.open_table(META).expect("meta");
        meta.remove("bodies_end").expect("end");
        meta.insert("schema", [4u8].as_slice()).expect("schema");
    }
    tx.commit().expect("commit");
    std::fs::remove_file(&file).expect("remove the body file");
}

/// Rewrites a store of the current format in schema 3's: bodies by hash alone (`blocks`), the
/// tip without its height.
fn downgrade_to_schema_3(path: &Path) {
    use redb::{Database, ReadableTable, TableDefinition};
    downgrade_to_schema_4(path);
    const BODIES: TableDefinition<(u64, &[u8; 32]), &[u8]> = TableDefinition::new("bodies");
    const BLOCKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blocks");
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let db = Database::create(path).expect("open");
    let tx = db.begin_write().expect("write");
    {
        let bodies = tx.open_table(BODIES).expect("bodies");
        let mut blocks = tx.open_table(BLOCKS).expect("blocks");
        for row in bodies.iter().expect("iterate") {
            let (k, v) = row.expect("row");
            blocks.insert(k.value().1, v.value()).expect("insert");
        }
        let mut meta = tx.open_table(META).expect("meta");
        meta.remove("tip_height").expect("tip height");
        meta.insert("schema", [3u8].as_slice()).expect("schema");
    }
    tx.delete_table(BODIES).expect("delete bodies");
    tx.commit().expect("commit");
}

#[test]
fn a_store_of_schema_3_gets_its_bodies_rekeyed_by_height_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let chain = build_store(dir.path(), &params, 150, 33);
    let blocks = open(dir.path(), &params).blocks().expect("blocks");
    assert!(blocks.len() > chain.height() as usize, "side branches too");
    downgrade_to_schema_3(&db_path(dir.path()));

    let store = open(dir.path(), &params);
    let migrated = load_and_check(&store, &params);
    assert_eq!(migrated.tip(), chain.tip());
    assert_eq!(migrated.ledger(), chain.ledger());
    assert_eq!(migrated.block_count(), chain.block_count());
    assert_eq!(store.blocks().expect("blocks"), blocks);
    // Blocks are read back by height, one at a time and as a page.
    for h in [1, chain.height() / 2, chain.height()] {
        assert_eq!(migrated.checked_at(h).map(|b| b.hash()), chain.hash_at(h));
    }
    let page = migrated.wires_from(1, chain.height(), usize::MAX);
    assert_eq!(page.len() as u64, chain.height());
    for (i, wire) in page.iter().enumerate() {
        assert_eq!(Some(wire.clone()), chain.wire_at(i as u64 + 1));
    }
    // The migrated store keeps working: a block more, and a restart.
    let mut migrated = migrated;
    let next = testkit::next_block(&migrated, &[], Address::of(&key(5)));
    process_and_commit(&store, &mut migrated, next);
    let tip = migrated.tip();
    // The chain reads through the store: both close before it reopens.
    drop((migrated, store));
    let store = open(dir.path(), &params);
    assert_eq!(load_and_check(&store, &params).tip(), tip);
}

#[test]
fn a_store_of_schema_4_gets_its_bodies_moved_to_the_body_file_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let chain = build_store(dir.path(), &params, 150, 34);
    let blocks = open(dir.path(), &params).blocks().expect("blocks");
    assert!(blocks.len() > chain.height() as usize, "side branches too");
    downgrade_to_schema_4(&db_path(dir.path()));
    assert!(!bodies_path(dir.path()).exists());

    let store = open(dir.path(), &params);
    let migrated = load_and_check(&store, &params);
    assert_eq!(migrated.tip(), chain.tip());
    assert_eq!(migrated.ledger(), chain.ledger());
    assert_eq!(store.blocks().expect("blocks"), blocks);
    let filed = std::fs::metadata(bodies_path(dir.path()))
        .expect("a body file")
        .len();
    let total: u64 = blocks.iter().map(|(_, b)| b.encode().len() as u64).sum();
    assert_eq!(filed, total, "every body moved to the file");
    let page = migrated.wires_from(1, chain.height(), usize::MAX);
    assert_eq!(page.len() as u64, chain.height());
    for (i, wire) in page.iter().enumerate() {
        assert_eq!(Some(wire.clone()), chain.wire_at(i as u64 + 1));
    }
    drop((migrated, store));
    let store = open(dir.path(), &params);
    assert_eq!(load_and_check(&store, &params).tip(), chain.tip());
}

#[test]
fn a_body_file_cut_short_is_refused_and_an_uncommitted_tail_is_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let chain = build_store(dir.path(), &params, 60, 35);
    let file = bodies_path(dir.path());
    let pristine = std::fs::read(&file).expect("read");
    // Bytes a commit wrote before it was killed: cut off, nothing else changes.
    let mut longer = pristine.clone();
    longer.extend_from_slice(&[0xAB; 5000]);
    std::fs::write(&file, &longer).expect("write");
    let store = open(dir.path(), &params);
    assert_eq!(load_and_check(&store, &params).tip(), chain.tip());
    drop(store);
    assert_eq!(std::fs::read(&file).expect("read"), pristine);
    // A file shorter than what the store committed: a clear error, the file left alone.
    std::fs::write(&file, &pristine[..pristine.len() / 2]).expect("write");
    let err = open_err(&db_path(dir.path()), &params);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("truncated or replaced"), "{msg}");
    assert!(msg.contains("blocks.bodies"), "{msg}");
    assert_eq!(
        std::fs::metadata(&file).expect("meta").len() as usize,
        pristine.len() / 2
    );
    // Gone altogether: the same.
    std::fs::remove_file(&file).expect("remove");
    let err = open_err(&db_path(dir.path()), &params);
    assert!(err.to_string().contains("is missing"), "{err}");
    assert!(!file.exists(), "nothing is created in its place");
    // Put back, the store is whole again.
    std::fs::write(&file, &pristine).expect("write");
    let store = open(dir.path(), &params);
    assert_eq!(load_and_check(&store, &params).tip(), chain.tip());
}

#[test]
fn a_page_of_stored_blocks_stops_at_its_byte_budget_and_steps_over_side_branches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    // Side branches at many heights, interleaved with the best chain in the store's key order.
    let built = build_store(dir.path(), &params, 120, 7);
    assert!(built.block_count() > built.height() as usize + 3);
    let store = open(dir.path(), &params);
    // Loaded afresh: no body in memory, every one read from the store.
    let chain = load(&store);
    assert_eq!(chain.bodies_in_memory(), 0);
    let top = chain.height();
    let all = chain.wires_from(1, top, usize::MAX);
    assert_eq!(all.len() as u64, top);
    for (i, wire) in all.iter().enumerate() {
        let h = i as u64 + 1;
        assert_eq!(Some(wire.clone()), built.wire_at(h), "height {h}");
    }
    // A budget of three blocks' bytes gives three, and a budget below one block gives one.
    let three: usize = all[4..7].iter().map(Vec::len).sum();
    assert_eq!(chain.wires_from(5, top, three), all[4..7].to_vec());
    assert_eq!(chain.wires_from(5, top, 1), all[4..5].to_vec());
    // Past the tip, nothing; up to it, what is there.
    assert!(chain.wires_from(top + 1, 10, usize::MAX).is_empty());
    assert_eq!(
        chain.wires_from(top - 1, 10, usize::MAX),
        all[top as usize - 2..].to_vec()
    );
}

#[test]
fn a_store_of_a_newer_format_is_refused_with_what_to_do() {
    use redb::{Database, TableDefinition};
    const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    build_store(dir.path(), &params, 3, 2);
    let path = db_path(dir.path());
    {
        let db = Database::create(&path).expect("open");
        let tx = db.begin_write().expect("write");
        tx.open_table(META)
            .expect("meta")
            .insert("schema", [9u8].as_slice())
            .expect("schema");
        tx.commit().expect("commit");
    }
    let err = open_err(&path, &params);
    assert!(
        matches!(err, StoreError::TooNew { found: 9, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer gossipchain"), "{err}");
}

#[test]
fn old_bodies_leave_memory_and_a_deep_reorganisation_reads_them_back() {
    use gossipchain::chain::tree::RECENT_BLOCKS;
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let store = open(dir.path(), &params);
    let mut chain = load(&store);
    let (alice, bob) = (key(1), key(2));
    let commit = |chain: &mut ChainState, block: Block| {
        let hash = process_and_commit(&store, chain, block);
        // As the node does once the store has committed a batch.
        let g = chain.next_generation();
        chain.persisted(g);
        hash
    };
    let n = RECENT_BLOCKS + 300;
    for i in 0..n {
        let transfers = if i == 5 {
            vec![Transfer::sign(
                &alice,
                &chain.chain_id(),
                Address::of(&bob),
                20,
                1,
                0,
            )]
        } else {
            Vec::new()
        };
        let block = testkit::next_block(&chain, &transfers, Address::of(&alice));
        commit(&mut chain, block);
    }
    assert!(
        chain.bodies_in_memory() <= 2 * RECENT_BLOCKS as usize + 1,
        "{} bodies in memory",
        chain.bodies_in_memory()
    );
    // Old blocks are still served, read from the store.
    assert_eq!(chain.block_at(3).expect("block 3").header.height, 3);
    // A branch from height 2 (below the transfer) that overtakes: every block above the fork
    // is undone with undo records read back from the store.
    let old_tip = chain.tip();
    let mut parent = chain.hash_at(2).expect("fork point");
    let mut side = Vec::new();
    for _ in 0..n {
        let block = block_on(&chain, parent, &[], Address::of(&bob));
        parent = block.compute_hash();
        side.push(parent);
        commit(&mut chain, block);
    }
    assert_ne!(chain.tip(), old_tip);
    assert_eq!(chain.tip(), parent);
    assert_eq!(chain.ledger().account(&Address::of(&bob)).balance, 50 * n);
    drop(chain);
    load_and_check(&store, &params);
}

#[test]
fn headers_and_blocks_by_hash_are_served_from_the_store() {
    use gossipchain::sync::serve::{bodies_of, headers_after};
    let dir = tempfile::tempdir().expect("temp dir");
    let params = testkit::params();
    let before = build_store(dir.path(), &params, 300, 11);
    let store = open(dir.path(), &params);
    let after = load(&store);
    assert_eq!(
        after.bodies_in_memory(),
        0,
        "a loaded chain reads bodies from the store"
    );
    // Headers of the best chain, each read alone from the body file.
    let want: Vec<Header> = (1..=before.height())
        .map(|h| before.block_at(h).expect("best chain").header)
        .collect();
    let served = headers_after(&after, &[params.chain_id()], 2000).expect("genesis is ours");
    assert_eq!(served, want);
    let from = before.height() / 2;
    let served = headers_after(&after, &[before.hash_at(from).expect("held")], 10).expect("ours");
    assert_eq!(served, want[from as usize..from as usize + 10]);
    // Blocks by hash, side branches among them, in the order asked.
    let mut hashes: Vec<BlockHash> = store
        .blocks()
        .expect("blocks")
        .into_iter()
        .map(|(hash, _)| hash)
        .collect();
    hashes.reverse();
    hashes.truncate(128);
    assert!(hashes.iter().any(|h| !after.is_active(h)), "a side block");
    let served = bodies_of(&after, &hashes);
    assert_eq!(served.len(), hashes.len());
    for (wire, hash) in served.iter().zip(&hashes) {
        assert_eq!(Some(wire), before.block(hash).map(|b| b.encode()).as_ref());
    }
}

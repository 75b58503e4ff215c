//! The dashboard and the wallet page in a real headless chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver against a node in this process: the pages load
//! without console errors, the height follows mining within 2 s, the wallet page signs a
//! transfer the node accepts and mines, its key comes from 24 backup words (the same key as
//! the node's Rust code derives) and words restore it, its JavaScript passes the address and
//! backup vectors of proto/vectors/, a fork and its reorganisation are drawn in the block
//! tree, also when the page's tree answer comes back after the reorganisation's events.
//! Screenshots go to target/screenshots/.
//!
//! Without chromium the tests print why and pass, unless GOSSIPCHAIN_REQUIRE_BROWSER=1 (CI).

mod common;
#[path = "browser/driver.rs"]
mod driver;

use common::TestNode;
use driver::{Browser, PAGE_DEADLINE};
use gossipchain::chain::{Address, ChainKind, ChainState, Transfer};
use gossipchain::http::{self, HttpConfig, HttpServer};
use gossipchain::testkit;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node with its HTTP server on an OS-assigned loopback port.
struct Site {
    node: TestNode,
    server: Option<HttpServer>,
}

impl Site {
    async fn start() -> Self {
        let node = common::start(&[]).await;
        let config = HttpConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            fallback: false,
            cors: Vec::new(),
        };
        let server = http::start(node.handle.clone(), config, node.dir.path())
            .await
            .expect("server starts");
        Self {
            node,
            server: Some(server),
        }
    }

    fn server(&self) -> &HttpServer {
        self.server.as_ref().unwrap()
    }

    async fn mine(&self) -> u64 {
        self.mine_block().await.0
    }

    /// Mines a block: its height and hash. (The node's status may lag the answer by a step:
    /// the hash comes from the answer itself.)
    async fn mine_block(&self) -> (u64, String) {
        let b = self
            .node
            .handle
            .mine_one()
            .await
            .unwrap()
            .expect("a block is mined");
        (b.block.header.height, b.hash.to_hex())
    }

    /// Submits a branch of two blocks from genesis, from elsewhere: it overtakes a one-block
    /// best chain. Their hashes.
    async fn overtake_from_genesis(&self) -> (String, String) {
        let mut side = ChainState::new(common::params());
        let miner = Address::of(&testkit::key(10));
        let b1 = testkit::next_block(&side, &[], miner);
        side.process_block(Arc::new(b1.clone()), testkit::NOW)
            .unwrap();
        let b2 = testkit::next_block(&side, &[], miner);
        for blk in [b1.clone(), b2.clone()] {
            self.node.handle.submit_block(blk).await.unwrap().unwrap();
        }
        (b1.compute_hash().to_hex(), b2.compute_hash().to_hex())
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.node.stop().await;
    }
}

/// Waits until the page's event stream is open (the "live" pill).
async fn wait_live(b: &Browser) {
    b.wait_text("live", |t| t == "live").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_loads_cleanly_and_its_height_follows_mining_within_2s() {
    if !driver::available() {
        return;
    }
    let site = Site::start().await;
    site.mine().await;
    let b = Browser::start().await;
    b.client.goto(&site.server().dashboard_url()).await.unwrap();
    wait_live(&b).await;
    b.wait_text("height", |t| t == "1").await;
    // The token left the address bar for the browser's storage.
    let url = b.client.current_url().await.unwrap();
    assert!(!url.as_str().contains("token"), "{url}");
    b.wait_text("token-out", |t| t == "token loaded").await;

    // Mined as the REPL's `mine 1` does: the height shown follows within 2 s.
    for expected in 2..=3u64 {
        let height = site.mine().await;
        assert_eq!(height, expected);
        let mined = Instant::now();
        let (_, shown) = b
            .wait_for(
                "the new height",
                Duration::from_secs(2),
                "return document.getElementById('height').textContent;",
                |v| v.as_str() == Some(&expected.to_string()),
            )
            .await;
        eprintln!(
            "height {expected} shown {:?} after the block was mined",
            shown - mined
        );
    }
    // The latest-blocks table and the tree show the new tip.
    let tip = site.node.status().tip.to_hex();
    b.wait_for(
        "the tip in the blocks table",
        PAGE_DEADLINE,
        "return document.querySelector('#blocks tbody tr td:nth-child(2) a').getAttribute('href');",
        |v| v.as_str() == Some(&format!("#/block/{tip}")),
    )
    .await;
    b.wait_for(
        "the tip in the tree",
        PAGE_DEADLINE,
        &format!("return !!document.querySelector('#tree g.blk.best.tip[data-hash=\"{tip}\"]');"),
        |v| v == &Value::Bool(true),
    )
    .await;

    // The mining button (with the token from the URL) mines a block.
    b.click("#mine-1").await;
    b.wait_text("mine-out", |t| t.starts_with("mined #4")).await;
    b.wait_text("height", |t| t == "4").await;

    // A block's page, opened from the tree.
    b.click(&format!("#tree g.blk[data-hash=\"{tip}\"]")).await;
    b.wait_text("detail-title", |t| t == "block #3").await;
    b.screenshot("dashboard").await;
    b.assert_no_console_errors("dashboard").await;
    b.close().await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_page_signs_a_transfer_the_node_accepts_and_mines() {
    if !driver::available() {
        return;
    }
    let site = Site::start().await;
    site.mine().await;
    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/wallet", site.server().url()))
        .await
        .unwrap();
    // A first visit makes a wallet from 24 words and shows them once; its address is bech32m
    // of this (test) chain, and the node's Rust code derives the same key from the words.
    let address = b
        .wait_text("address", |t| t.starts_with("gct1") && t.len() == 62)
        .await;
    let mine: Address = ChainKind::Test.parse(&address).unwrap();
    let words = b
        .js("return [...document.querySelectorAll('#words li')].map((li) => li.textContent).join(' ');")
        .await;
    let words = words.as_str().unwrap().to_string();
    assert_eq!(words.split(' ').count(), 24, "{words}");
    let from_words = gossipchain::wallet::parse_mnemonic(&words).expect("valid words");
    assert_eq!(
        gossipchain::wallet::Wallet::from_mnemonic(&from_words).address(),
        mine
    );
    b.screenshot("wallet-new-words").await;
    b.click("#words-done").await;
    b.wait_for(
        "the words to be hidden",
        PAGE_DEADLINE,
        "return document.getElementById('words-box').hidden && !document.getElementById('words').children.length;",
        |v| v == &Value::Bool(true),
    )
    .await;
    b.wait_text("balance", |t| t == "0").await;

    // The exported secret is wallet.key's format: it gives the same address.
    b.click("#export").await;
    let out = b.wait_text("key-out", |t| t.contains("secret")).await;
    let secret = out.rsplit(' ').next().unwrap();
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(secret, &mut bytes).unwrap();
    assert_eq!(
        gossipchain::wallet::Wallet::from_secret(bytes).address(),
        mine
    );

    // The node's wallet funds the browser's address.
    site.node
        .handle
        .send(mine, 20, 1)
        .await
        .unwrap()
        .expect("the node's wallet sends");
    site.mine().await;
    b.wait_text("balance", |t| t == "20").await;

    // A mistyped recipient is refused in the page with the reason; nothing is sent.
    let to = Address::of(&testkit::key(77));
    let to_text = ChainKind::Test.encode(&to);
    let typo = format!(
        "{}{}",
        &to_text[..to_text.len() - 1],
        if to_text.ends_with('q') { 'p' } else { 'q' }
    );
    b.fill("to", &typo).await;
    b.fill("amount", "5").await;
    b.fill("fee", "2").await;
    b.click("#send button").await;
    b.wait_text("send-out", |t| t.contains("checksum does not match"))
        .await;
    b.fill("to", &ChainKind::Main.encode(&to)).await;
    b.click("#send button").await;
    b.wait_text("send-out", |t| {
        t.contains("this address is for the default chain")
    })
    .await;
    b.screenshot("wallet-typo").await;
    assert!(site.node.handle.mempool().await.unwrap().is_empty());

    b.fill("to", &to_text).await;
    b.click("#send button").await;
    // Until the answer replaces the last refusal.
    let sent = b
        .wait_text("send-out", |t| !t.contains("default chain"))
        .await;
    let txid = sent
        .strip_prefix("sent ")
        .unwrap_or_else(|| panic!("the node refused the transfer: {sent}"))
        .to_string();
    let pool = site.node.handle.mempool().await.unwrap();
    let (id, tx): &(_, Transfer) = pool.first().expect("the transfer is pending");
    assert_eq!(id.to_hex(), txid);
    assert_eq!(
        (tx.from, tx.to, tx.amount, tx.fee, tx.nonce),
        (mine, to, 5, 2, 0)
    );
    b.wait_text("balance", |t| t == "20 (7 pending)").await;

    let height = site.mine().await;
    b.wait_text("balance", |t| t == "13").await;
    b.wait_text("nonce", |t| t == "1").await;
    let (acct, _) = site.node.handle.balance(to).await.unwrap();
    assert_eq!(acct.balance, 5);
    let block = site.node.handle.chain(1).await.unwrap();
    assert_eq!(block[0].block.header.height, height);
    assert_eq!(
        block[0].block.txs.len(),
        2,
        "the coinbase and the browser's transfer"
    );
    b.screenshot("wallet").await;

    // Restoring from words: a typo is refused with its reason, the right words give the key
    // of the vectors (wallet.0 of proto/vectors/mnemonic.txt).
    let v = read_vectors("mnemonic.txt");
    let vector_words = &v["wallet.0.words"];
    b.js("window.confirm = () => true; return true;").await;
    b.fill("restore-words", &vector_words.replace("art", "artt"))
        .await;
    b.click("#restore button").await;
    b.wait_text("key-out", |t| {
        t.contains("word 24, 'artt', is not in the BIP 39")
    })
    .await;
    b.fill("restore-words", vector_words).await;
    b.click("#restore button").await;
    let mut key = [0u8; 32];
    hex::decode_to_slice(&v["wallet.0.key"], &mut key).unwrap();
    let restored = ChainKind::Test.encode(&Address(key));
    b.wait_text("address", |t| t == restored).await;
    b.wait_text("key-out", |t| t == "wallet restored from its words")
        .await;
    b.screenshot("wallet-restored").await;
    b.assert_no_console_errors("wallet").await;
    b.close().await;
    site.stop().await;
}

/// A vector file of proto/vectors/ as `key = value` pairs.
fn read_vectors(name: &str) -> std::collections::BTreeMap<String, String> {
    let path = format!("{}/proto/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(" = ").expect("key = value");
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_pages_javascript_passes_the_address_and_backup_vectors() {
    if !driver::available() {
        return;
    }
    let site = Site::start().await;
    let b = Browser::start().await;
    b.client
        .goto(&format!("{}/wallet", site.server().url()))
        .await
        .unwrap();
    b.wait_text("address", |t| t.starts_with("gct1")).await;
    let cases = serde_json::json!({
        "address": read_vectors("address.txt"),
        "mnemonic": read_vectors("mnemonic.txt"),
    });
    // Every vector the page's code can check; the answer lists what failed.
    let script = format!(
        r#"const V = {cases};
        return (async () => {{
          const fails = [];
          const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
          const unescape = (s) => s.replace(/\x([0-9a-f]{{2}})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
          let checked = 0;
          for (const [k, s] of Object.entries(V.address)) {{
            let ok = true;
            try {{ GC.bech32mDecode(unescape(s)); }} catch (_) {{ ok = false; }}
            if (k.startsWith("bip350.valid.")) {{ checked++; if (!ok) fails.push(k); }}
            if (k.startsWith("bip350.invalid.")) {{ checked++; if (ok) fails.push(k); }}
            const m = k.match(/^address\.(\d+)\.key$/);
            if (m) {{
              const key = W.hexToBytes(s);
              for (const hrp of ["gc", "gct"]) {{
                checked++;
                const text = V.address[`address.${{m[1]}}.${{hrp}}`];
                if (GC.bech32mEncode(hrp, key) !== text) fails.push(k + " encode " + hrp);
                if (hex(GC.parseAddress(text.toUpperCase(), hrp)) !== s) fails.push(k + " parse " + hrp);
                if (hex(GC.parseAddress(s, hrp)) !== s) fails.push(k + " hex " + hrp);
                let other = true;
                try {{ GC.parseAddress(text, hrp === "gc" ? "gct" : "gc"); }} catch (_) {{ other = false; }}
                if (other) fails.push(k + " accepted on the other kind");
              }}
            }}
          }}
          for (const [k, s] of Object.entries(V.mnemonic)) {{
            const m = k.match(/^(slip10\.\d)\.(m[^.]*)\.private$/);
            if (m) {{
              checked++;
              const path = m[2].split("/").slice(1).map((i) => parseInt(i));
              const got = await W.slip10(W.hexToBytes(V.mnemonic[m[1] + ".seed"]), path);
              if (hex(got) !== s) fails.push(k);
            }}
            const e = k.match(/^bip39\.(\d+)\.entropy$/);
            if (e) {{
              checked++;
              const words = await W.entropyToWords(W.hexToBytes(s));
              if (words.join(" ") !== V.mnemonic[`bip39.${{e[1]}}.words`]) fails.push(k);
              await W.checkWords(words.join(" "));
            }}
            const w = k.match(/^wallet\.(\d+)\.words$/);
            if (w) {{
              checked++;
              const secret = await W.secretFromWords(await W.checkWords(s));
              if (hex(secret) !== V.mnemonic[`wallet.${{w[1]}}.secret`]) fails.push(k);
            }}
          }}
          return {{ checked, fails }};
        }})();"#
    );
    let got = b.js(&script).await;
    assert_eq!(got["fails"], serde_json::json!([]), "{got}");
    // 21 BIP 350 strings, 3 keys on 2 kinds, 12 SLIP-0010 chains, 24 BIP 39 entropies, 3 wallets.
    assert_eq!(got["checked"], 21 + 6 + 12 + 24 + 3, "{got}");
    b.assert_no_console_errors("wallet").await;
    b.close().await;
    site.stop().await;
}

/// A script returning the tree's classes of `first`, `h1`, `h2` (sorted, `null` if not drawn)
/// and the newest line of the reorganisation log.
fn tree_state(first: &str, h1: &str, h2: &str) -> String {
    format!(
        "const q = (h) => document.querySelector(`#tree g.blk[data-hash=\"${{h}}\"]`);
         const c = (h) => q(h) ? q(h).getAttribute('class').trim().split(/\\s+/).sort().join(' ') : null;
         return [c('{first}'), c('{h1}'), c('{h2}'),
                 document.querySelector('#reorgs li') ? document.querySelector('#reorgs li').textContent : null];"
    )
}

/// The drawing after `first` lost to the branch `h1`, `h2`.
fn reorganised(v: &Value) -> bool {
    v[0] == "blk gone" && v[1] == "best blk" && v[2] == "best blk tip" && v[3].is_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_and_its_reorganisation_appear_in_the_block_tree() {
    if !driver::available() {
        return;
    }
    let site = Site::start().await;
    let b = Browser::start().await;
    b.client.goto(&site.server().url()).await.unwrap();
    wait_live(&b).await;
    let (_, first) = site.mine_block().await;
    b.wait_text("height", |t| t == "1").await;

    let (h1, h2) = site.overtake_from_genesis().await;
    let state = tree_state(&first, &h1, &h2);
    let (v, _) = b
        .wait_for(
            "the reorganisation drawn",
            PAGE_DEADLINE,
            &state,
            reorganised,
        )
        .await;
    let log = v[3].as_str().unwrap();
    assert!(
        log.contains("reorganisation of depth 1")
            && log.contains(&first[..8])
            && log.contains(&h1[..8]),
        "{log}"
    );
    b.wait_text("height", |t| t == "2").await;
    // The side branch is on its own lane, below the best chain.
    let lanes = b
        .js(&format!(
            "const y = (h) => document.querySelector(`#tree g.blk[data-hash=\"${{h}}\"]`).transform.baseVal[0].matrix.f;
             return [y('{first}'), y('{h1}')];"
        ))
        .await;
    assert!(lanes[0].as_f64() > lanes[1].as_f64(), "{lanes}");
    // Every line of text fits in its box.
    let overflow = b
        .js(
            "return [...document.querySelectorAll('#tree g.blk')].flatMap((g) => {
               const w = g.querySelector('rect').width.baseVal.value;
               return [...g.querySelectorAll('text')]
                 .filter((t) => t.getAttribute('x') * 1 + t.getComputedTextLength() > w - 4)
                 .map((t) => t.textContent);
             });",
        )
        .await;
    assert_eq!(overflow, serde_json::json!([]), "text wider than its box");
    b.screenshot("tree-reorg").await;

    // After a reload the tree still shows the branch that lost (now a plain side branch).
    b.client.refresh().await.unwrap();
    wait_live(&b).await;
    b.wait_for(
        "the side branch after a reload",
        PAGE_DEADLINE,
        &state,
        |v| v[0] == "blk" && v[2] == "best blk tip",
    )
    .await;
    b.screenshot("tree-after-reload").await;
    b.assert_no_console_errors("block tree").await;
    b.close().await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_answer_overtaken_by_the_reorganisation_events_is_drawn_right() {
    if !driver::available() {
        return;
    }
    let site = Site::start().await;
    let b = Browser::start().await;
    b.client.goto(&site.server().url()).await.unwrap();
    wait_live(&b).await;
    let (_, first) = site.mine_block().await;
    let tip_drawn =
        format!("return !!document.querySelector('#tree g.blk.best.tip[data-hash=\"{first}\"]');");
    b.wait_for("the mined block drawn", PAGE_DEADLINE, &tip_drawn, |v| {
        v == &Value::Bool(true)
    })
    .await;

    // The page asks for the tree; its answer (the mined block best) is held back in the page
    // until the reorganisation's events have been drawn, then handed over.
    b.js("const get = GC.get;
          window.held = null;
          GC.get = (p) => p !== '/tree' ? get(p) :
            get(p).then((v) => new Promise((r) => { window.held = { v, release: () => r(v) }; }));
          window.refreshed = false;
          refreshTree().then(() => { window.refreshed = true; });
          return 0;")
        .await;
    let (held, _) = b
        .wait_for(
            "the tree answer",
            PAGE_DEADLINE,
            "return window.held ? window.held.v : null;",
            |v| !v.is_null(),
        )
        .await;
    let best_in = |h: &str| {
        held["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["hash"] == h)
            .map(|b| b["in_best_chain"].as_bool().unwrap())
    };
    assert_eq!(best_in(&first), Some(true), "{held}");

    let (h1, h2) = site.overtake_from_genesis().await;
    let state = tree_state(&first, &h1, &h2);
    b.wait_for(
        "the reorganisation drawn",
        PAGE_DEADLINE,
        &state,
        reorganised,
    )
    .await;
    // The answer is older than the events the page drew: it knew nothing of the branch.
    assert_eq!((best_in(&h1), best_in(&h2)), (None, None), "{held}");
    b.js("window.held.release(); return 0;").await;
    b.wait_for(
        "the held answer applied",
        PAGE_DEADLINE,
        "return window.refreshed;",
        |v| v == &Value::Bool(true),
    )
    .await;
    let v = b.js(&state).await;
    assert!(reorganised(&v), "the tree drawn from the older answer: {v}");
    b.screenshot("tree-held-answer").await;
    b.assert_no_console_errors("block tree").await;
    b.close().await;
    site.stop().await;
}

//! Nodes in one process on 127.0.0.1: gossip of transactions and blocks, sync of a late joiner,
//! partition and heal.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_share_transactions_and_blocks() {
    let mut hub = start(&[]).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(start(std::slice::from_ref(&hub.addr)).await);
    }
    hub.wait("3 peers", |s| s.peers == 3).await;

    // A block mined on one node becomes every node's tip.
    let mined = others[0].handle.mine_one().await.unwrap().unwrap();
    for n in others.iter().chain([&hub]) {
        n.wait("the mined block", |s| s.tip == mined.hash).await;
    }

    // A transaction submitted on one reaches every mempool.
    let to = others[1].status().address;
    let txid = others[0].handle.send(to, 10, 1).await.unwrap().unwrap();
    for n in others.iter().chain([&hub]) {
        n.wait("the transaction in the mempool", |s| s.mempool == 1)
            .await;
        let pool = n.handle.mempool().await.unwrap();
        assert_eq!(pool[0].0, txid);
    }

    // Mined elsewhere, it leaves every mempool and the balance moves everywhere.
    let block = others[2].handle.mine_one().await.unwrap().unwrap();
    assert_eq!(block.block.txs.len(), 2);
    for n in others.iter().chain([&hub]) {
        n.wait("the second block", |s| {
            s.tip == block.hash && s.mempool == 0
        })
        .await;
        let (account, _) = n.handle.balance(to).await.unwrap();
        assert_eq!(account.balance, 10);
    }
    for n in others.iter_mut() {
        n.stop().await;
    }
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_syncs_2000_blocks_then_follows_gossip() {
    let dir = tempfile::tempdir().unwrap();
    preload(&dir, 2000, gossipchain::chain::Address([7; 32]));
    let c = config(&dir, &[]);
    let mut old = start_with(dir, c).await;
    assert_eq!(old.status().height, 2000);

    let mut late = start(std::slice::from_ref(&old.addr)).await;
    let tip = old.status().tip;
    late.wait("sync to 2000", |s| s.tip == tip).await;

    let next = old.handle.mine_one().await.unwrap().unwrap();
    late.wait("the gossiped block", |s| s.tip == next.hash)
        .await;
    late.stop().await;
    old.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_groups_converge_on_the_most_work_chain_and_lose_no_transaction() {
    use gossipchain::chain::{Address, Transaction, Transfer};
    use gossipchain::testkit::key;
    // A common history paying key(1) and key(2), in every node's store.
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    for d in &dirs {
        let blocks = preload(d, 2, Address::of(&key(1)));
        assert_eq!(blocks.len(), 2);
    }
    let mut nodes = Vec::new();
    let mut first_a = None;
    let mut first_b = None;
    for (i, d) in dirs.into_iter().enumerate() {
        let peers: Vec<_> = match i {
            1 => vec![first_a.clone().unwrap()],
            3 => vec![first_b.clone().unwrap()],
            _ => vec![],
        };
        let c = config(&d, &peers);
        let n = start_with(d, c).await;
        if i == 0 {
            first_a = Some(n.addr.clone());
        }
        if i == 2 {
            first_b = Some(n.addr.clone());
        }
        nodes.push(n);
    }
    let chain_id = common::params().chain_id();
    let sink = Address::of(&key(9));
    // Group A spends from key(1) with nonce 0; group B spends key(1) with another amount at
    // nonce 0 too (a conflict), and pays from a coinbase it mined itself.
    let tx_a = Transfer::sign(&key(1), &chain_id, sink, 5, 1, 0);
    let tx_a_id = Transaction::Transfer(tx_a).compute_txid();
    nodes[0].handle.submit(tx_a).await.unwrap().unwrap();
    nodes[1].wait("tx_a in group A", |s| s.mempool == 1).await;
    let a_block = nodes[0].handle.mine_one().await.unwrap().unwrap();
    nodes[1]
        .wait("group A's block", |s| s.tip == a_block.hash)
        .await;

    let tx_a2 = Transfer::sign(&key(1), &chain_id, sink, 7, 1, 1);
    let tx_a2_id = Transaction::Transfer(tx_a2).compute_txid();
    nodes[1].handle.submit(tx_a2).await.unwrap().unwrap();
    nodes[0].wait("tx_a2 in group A", |s| s.mempool == 1).await;
    let a_block2 = nodes[1].handle.mine_one().await.unwrap().unwrap();
    nodes[0]
        .wait("group A's 2nd block", |s| s.tip == a_block2.hash)
        .await;

    let mut b_tip = None;
    for _ in 0..3 {
        b_tip = Some(nodes[2].handle.mine_one().await.unwrap().unwrap().hash);
    }
    let b_tip = b_tip.unwrap();
    nodes[3].wait("group B's chain", |s| s.tip == b_tip).await;
    assert_eq!(nodes[0].status().height, 4);
    assert_eq!(nodes[3].status().height, 5);

    // Heal: group B's longer chain wins everywhere; group A's transfers are back in its pools.
    nodes[0].handle.dial(nodes[2].addr.clone()).await.unwrap();
    for n in &nodes {
        n.wait("convergence on group B's tip", |s| s.tip == b_tip)
            .await;
    }
    // Relayed again by group A, they reach group B's pools too.
    for n in &nodes {
        n.wait("the losing branch's transfers back", |s| s.mempool == 2)
            .await;
    }
    // Mined later, nothing is lost: both transfers are in the chain every node holds.
    let last = nodes[3].handle.mine_one().await.unwrap().unwrap();
    let ids: Vec<_> = last.block.compute_txids();
    for n in &nodes {
        n.wait("the block with the returned transfers", |s| {
            s.tip == last.hash
        })
        .await;
    }
    assert!(ids.contains(&tx_a_id) && ids.contains(&tx_a2_id), "{ids:?}");
    let (acct, _) = nodes[0].handle.balance(sink).await.unwrap();
    assert_eq!(acct.balance, 12);
    for n in nodes.iter_mut() {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mine_n_yields_n_blocks_in_a_row_then_ends() {
    let mut node = start(&[]).await;
    let start_tip = node.status().tip;
    let start_height = node.status().height;
    let mut blocks = node.handle.mine(3).await.unwrap();
    let mut parent = start_tip;
    for i in 1..=3 {
        let info = blocks.recv().await.expect("a block").expect("mined");
        assert_eq!(info.block.header.height, start_height + i);
        assert_eq!(info.block.header.prev_hash, parent);
        assert!(info.on_best_chain);
        parent = info.hash;
    }
    // Served: the node drops its end of the stream.
    assert!(blocks.recv().await.is_none());
    node.wait("the third block as tip", |s| s.tip == parent)
        .await;
    assert!(node.handle.mine(0).await.unwrap().recv().await.is_none());
    node.stop().await;
}

/// The miner goes on with a coinbase-only block the moment it finds one, before the node has
/// seen it; a transfer waiting in the mempool makes the node replace that search with a fresh
/// template, so the transfer is mined within a few blocks, and every block mined on the way
/// still extends the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_sent_while_mining_back_to_back_is_mined_soon() {
    let mut node = start(&[]).await;
    let start_height = node.status().height;
    let mut blocks = node.handle.mine(1_000_000).await.unwrap();
    let first = blocks.recv().await.expect("a block").expect("mined");
    let txid = node
        .handle
        .send(gossipchain::chain::Address([3; 32]), 5, 1)
        .await
        .unwrap()
        .expect("the reward pays for it");
    let mut parent = first.hash;
    let mut height = first.block.header.height;
    assert_eq!(height, start_height + 1);
    let mut included = None;
    for _ in 0..5_000 {
        let info = blocks.recv().await.expect("a block").expect("mined");
        height += 1;
        assert_eq!(info.block.header.height, height);
        assert_eq!(
            info.block.header.prev_hash, parent,
            "one chain, block after block"
        );
        parent = info.hash;
        if info.block.txs.iter().any(|tx| tx.compute_txid() == txid) {
            included = Some(height);
            break;
        }
    }
    let at = included.expect("the transfer is mined within 5000 blocks");
    // Dropping the stream stops the miner; the node settles on the last block.
    drop(blocks);
    node.wait("the last block as tip", |s| s.height >= at).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_still_lets_a_newcomer_in_and_closes_its_oldest_accepted_connection() {
    let no_kad = |dir: &tempfile::TempDir, peers: &[libp2p::Multiaddr], max: u32| {
        let mut c = config(dir, peers);
        c.net.behaviour.kad = false;
        c.net.behaviour.max_peers = max;
        c
    };
    let dir = tempfile::tempdir().unwrap();
    let c = no_kad(&dir, &[], 2);
    let mut hub = start_with(dir, c).await;
    let mut first = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let c = no_kad(&dir, std::slice::from_ref(&hub.addr), 64);
        first.push(start_with(dir, c).await);
    }
    hub.wait("2 peers, its limit", |s| s.peers == 2).await;
    // A third names the full hub: it gets in (the hub closes the connection it accepted first)
    // instead of being refused, which would leave it alone with no peer at all.
    let dir = tempfile::tempdir().unwrap();
    let c = no_kad(&dir, std::slice::from_ref(&hub.addr), 64);
    let mut newcomer = start_with(dir, c).await;
    newcomer
        .wait("connected to the hub", |s| s.peers == 1)
        .await;
    let (_, evicted) = first[0].handle.wait_for(DEADLINE, |s| s.peers == 0).await;
    assert!(evicted, "the hub closed its oldest accepted connection");
    newcomer.stop().await;
    for n in first.iter_mut() {
        n.stop().await;
    }
    hub.stop().await;
}

/// The count of compact block `event` in `node`'s metrics (see `CompactLabel`).
fn compact_count(node: &TestNode, event: &str) -> u64 {
    let key = format!("gossipchain_compact_blocks_total{{event=\"{event}\"}} ");
    node.handle
        .metrics()
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&key).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

/// Two nodes on the same three blocks paying key(1) (150 coins), `b` dialling `a` with its
/// mempool limited to `b_pool` transfers; returns once a block of `a` reached `b` by gossip.
async fn compact_pair(b_pool: usize) -> (TestNode, TestNode) {
    use gossipchain::chain::Address;
    let miner = Address::of(&gossipchain::testkit::key(1));
    let da = tempfile::tempdir().unwrap();
    preload(&da, 3, miner);
    let c = config(&da, &[]);
    let a = start_with(da, c).await;
    let db = tempfile::tempdir().unwrap();
    preload(&db, 3, miner);
    let mut c = config(&db, std::slice::from_ref(&a.addr));
    c.mempool.max_txs = b_pool;
    let b = start_with(db, c).await;
    a.wait("b to connect", |s| s.peers == 1).await;
    // Until the gossip mesh forms, blocks may reach b only by sync: mine until one arrives as
    // a compact block.
    let deadline = std::time::Instant::now() + DEADLINE;
    while compact_count(&b, "rebuilt") == 0 {
        let mined = a.handle.mine_one().await.unwrap().unwrap();
        b.wait("a's block", |s| s.tip == mined.hash).await;
        assert!(
            std::time::Instant::now() < deadline,
            "no gossip from a to b"
        );
    }
    (a, b)
}

/// `n` transfers of key(1) (1 coin, fee 1 each), submitted to `a`.
async fn fill_mempool(a: &TestNode, n: u64) {
    use gossipchain::chain::{Address, Transfer};
    let chain_id = params().chain_id();
    let to = Address::of(&gossipchain::testkit::key(2));
    for nonce in 0..n {
        let t = Transfer::sign(&gossipchain::testkit::key(1), &chain_id, to, 1, 1, nonce);
        a.handle.submit(t).await.unwrap().expect("admitted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_of_transfers_both_nodes_hold_travels_compact_with_no_round_trip() {
    let (mut a, mut b) = compact_pair(20_000).await;
    fill_mempool(&a, 60).await;
    b.wait("the transfers in b's mempool", |s| s.mempool == 60)
        .await;
    let rebuilt = compact_count(&b, "rebuilt");
    let mined = a.handle.mine_one().await.unwrap().unwrap();
    assert_eq!(mined.block.txs.len(), 61);
    b.wait("the full block", |s| s.tip == mined.hash && s.mempool == 0)
        .await;
    assert_eq!(compact_count(&b, "rebuilt"), rebuilt + 1);
    assert_eq!(compact_count(&b, "asked"), 0, "no extra round trip");
    assert_eq!(compact_count(&b, "fell_back"), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_lacking_transfers_fetches_them_from_the_sender() {
    // b's mempool holds 20 transfers: it lacks the other 40 of a's block.
    let (mut a, mut b) = compact_pair(20).await;
    fill_mempool(&a, 60).await;
    a.wait("a's mempool", |s| s.mempool == 60).await;
    b.wait("b's mempool full", |s| s.mempool == 20).await;
    let mined = a.handle.mine_one().await.unwrap().unwrap();
    assert_eq!(mined.block.txs.len(), 61);
    b.wait("the full block", |s| s.tip == mined.hash).await;
    assert_eq!(compact_count(&b, "asked"), 1, "one GetBlockTxs");
    assert_eq!(compact_count(&b, "filled"), 1);
    assert_eq!(compact_count(&b, "fell_back"), 0);
    let info = b
        .handle
        .block(gossipchain::node::BlockId::Hash(mined.hash))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.block.txs.len(), 61);
    a.stop().await;
    b.stop().await;
}

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

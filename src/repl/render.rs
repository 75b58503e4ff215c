//! Rendering: what each command prints, from what the node answered. Pure, no I/O.

use super::parse::USAGE;
use crate::chain::pace::{ChainPace, si};
use crate::chain::{Account, Address, Block, ChainKind, Transaction, Transfer, Txid};
use crate::net::PeerInfo;
use crate::node::{BlockId, BlockInfo, BlockState, NodeStatus};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// A block timestamp as RFC 3339 with milliseconds.
fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// One line of `chain`: height, hash, transaction count, time, side branch.
pub fn block_line(info: &BlockInfo) -> String {
    let h = &info.block.header;
    format!(
        "#{:<6} {}  {} txs  {}{}",
        h.height,
        info.hash,
        info.block.txs.len(),
        time(h.timestamp),
        if info.on_best_chain {
            ""
        } else {
            "  (side branch)"
        }
    )
}

/// What `block` prints: the header, then each transaction.
pub fn block_detail(info: &BlockInfo, kind: ChainKind) -> String {
    let b: &Block = &info.block;
    let h = &b.header;
    let mut out = String::new();
    let _ = writeln!(out, "hash       {}", info.hash);
    let _ = writeln!(
        out,
        "height     {}{}",
        h.height,
        if info.on_best_chain {
            ""
        } else {
            " (side branch)"
        }
    );
    let _ = writeln!(out, "parent     {}", h.prev_hash);
    let _ = writeln!(out, "time       {}", time(h.timestamp));
    let _ = writeln!(out, "tx_root    {}", h.tx_root);
    let _ = writeln!(out, "bits       {:08x}", h.bits);
    let _ = writeln!(out, "nonce      {}", h.nonce);
    let _ = writeln!(out, "size       {} bytes", b.encoded_len());
    let _ = write!(out, "txs        {}", b.txs.len());
    for tx in &b.txs {
        let txid = tx.compute_txid();
        match tx {
            Transaction::Coinbase(c) => {
                let to = kind.encode(&c.to);
                let _ = write!(out, "\n  {txid}  coinbase {} to {to}", c.amount);
            }
            Transaction::Transfer(t) => {
                let _ = write!(
                    out,
                    "\n  {txid}  {} -> {}  amount {} fee {} nonce {}",
                    kind.encode(&t.from),
                    kind.encode(&t.to),
                    t.amount,
                    t.fee,
                    t.nonce
                );
            }
        }
    }
    out
}

/// What `help` prints.
pub fn help() -> String {
    let mut out = String::from("commands:");
    for (u, what) in USAGE {
        let _ = write!(out, "\n  {u:<32} {what}");
    }
    out
}

/// The `status` lines about difficulty and block rate.
fn pace_lines(p: &ChainPace) -> String {
    let target = match p.block_time_ms {
        Some(ms) => format!(
            "retargeting, one block every {}",
            humantime::format_duration(Duration::from_millis(ms))
        ),
        None => "fixed (no retargeting)".into(),
    };
    let measured = match (p.mean_interval_ms, p.hash_rate) {
        (Some(ms), Some(rate)) => format!(
            "mean interval {:.2} s over the last {} blocks; network {}hashes/s",
            ms / 1000.0,
            p.intervals,
            si(rate)
        ),
        _ => "no blocks mined yet to measure".into(),
    };
    format!(
        "difficulty {:08x} ({}hashes a block expected), {target}\nblock rate {measured}",
        p.next_bits,
        si(p.expected_hashes.as_f64())
    )
}

/// What `status` prints.
pub fn status(s: &NodeStatus) -> String {
    let listen: Vec<String> = s.listen.iter().map(|a| a.to_string()).collect();
    let reachable = if s.reachable.is_empty() {
        "not confirmed (others may not be able to dial this node)".to_string()
    } else {
        let r: Vec<String> = s.reachable.iter().map(|a| a.to_string()).collect();
        r.join(" ")
    };
    format!(
        "peer id    {}\nchain id   {}\nheight     {}\ntip        {}\nwork       {}\n{}\npeers      {}\nmempool    {}\norphans    {}\nmining     {}\nsyncing    {}\naddress    {}\nlistening  {}\nreachable  {reachable}",
        s.peer_id,
        s.chain_id,
        s.height,
        s.tip,
        s.work,
        pace_lines(&s.pace),
        s.peers,
        s.mempool,
        s.orphans,
        if s.mining { "on" } else { "off" },
        if s.syncing { "yes" } else { "no" },
        ChainKind::of(&s.chain_id).encode(&s.address),
        listen.join(" ")
    )
}

/// What `peers` prints.
pub fn peers(peers: &[PeerInfo]) -> String {
    if peers.is_empty() {
        return "no peers".into();
    }
    peers
        .iter()
        .map(|p| {
            let addrs: Vec<String> = p.addresses.iter().map(|a| a.to_string()).collect();
            format!(
                "{}  {}  found by {}{}{}",
                p.peer,
                addrs.join(","),
                p.found_by,
                p.rtt.map_or(String::new(), |r| format!("  rtt {r:.1?}")),
                p.agent
                    .as_deref()
                    .map_or(String::new(), |a| format!("  {a}")),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `chain` prints.
pub fn chain(blocks: &[BlockInfo]) -> String {
    blocks.iter().map(block_line).collect::<Vec<_>>().join("\n")
}

/// What `block <hash>` prints for a hash that is not a stored valid block.
pub fn missing_block(id: BlockId, state: Option<BlockState>) -> String {
    match (id, state) {
        (BlockId::Hash(hash), Some(BlockState::Orphan)) => {
            format!("block {hash} is waiting for its parent")
        }
        (BlockId::Hash(hash), Some(BlockState::Invalid(e))) => {
            format!("error: block {hash} was rejected: {e}")
        }
        _ => "error: no such block".into(),
    }
}

/// What `balance` prints.
pub fn balance(kind: ChainKind, address: &Address, account: &Account, pending: u64) -> String {
    format!(
        "{}\nbalance    {}\nnonce      {}\npending    {} (spent by transactions in the mempool)",
        kind.encode(address),
        account.balance,
        account.nonce,
        pending
    )
}

/// What `mempool` prints.
pub fn mempool(kind: ChainKind, txs: &[(Txid, Transfer)]) -> String {
    if txs.is_empty() {
        return "mempool is empty".into();
    }
    txs.iter()
        .map(|(id, t)| {
            format!(
                "{id}  {} -> {}  amount {} fee {} nonce {}",
                kind.short(&t.from),
                kind.short(&t.to),
                t.amount,
                t.fee,
                t.nonce
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

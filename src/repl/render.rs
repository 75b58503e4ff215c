//! Rendering: what each command prints, from what the node answered (the API's views, the
//! same whether the node answered in-process or over HTTP). Pure, no I/O.

use super::parse::USAGE;
use crate::chain::pace::si;
use crate::http::views::{
    AccountView, BlockSummary, BlockView, MempoolView, PaceView, PeerView, StatusView,
};
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

/// A block timestamp as RFC 3339 with milliseconds.
fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// One line of `chain`: height, hash, transaction count, time, side branch.
pub fn block_line(b: &BlockSummary) -> String {
    format!(
        "#{:<6} {}  {} txs  {}{}",
        b.height,
        b.id,
        b.tx_count,
        time(b.timestamp),
        if b.in_best_chain {
            ""
        } else {
            "  (side branch)"
        }
    )
}

/// What `mine n` prints for each block as it is found.
pub fn mined(b: &BlockSummary) -> String {
    format!("mined {}", block_line(b))
}

/// What `block` prints: the header, then each transaction.
pub fn block_detail(b: &BlockView) -> String {
    let h = &b.summary;
    let mut out = String::new();
    let _ = writeln!(out, "hash       {}", h.id);
    let _ = writeln!(
        out,
        "height     {}{}",
        h.height,
        if h.in_best_chain {
            ""
        } else {
            " (side branch)"
        }
    );
    let _ = writeln!(out, "parent     {}", h.previousblockhash);
    let _ = writeln!(out, "time       {}", time(h.timestamp));
    let _ = writeln!(out, "tx_root    {}", h.merkle_root);
    let _ = writeln!(out, "bits       {:08x}", h.bits);
    let _ = writeln!(out, "nonce      {}", h.nonce);
    let _ = writeln!(out, "size       {} bytes", h.size);
    let _ = write!(out, "txs        {}", b.txs.len());
    for tx in &b.txs {
        match &tx.from {
            None => {
                let _ = write!(out, "\n  {}  coinbase {} to {}", tx.txid, tx.amount, tx.to);
            }
            Some(from) => {
                let _ = write!(
                    out,
                    "\n  {}  {from} -> {}  amount {} fee {} nonce {}",
                    tx.txid,
                    tx.to,
                    tx.amount,
                    tx.fee,
                    tx.nonce.unwrap_or_default()
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
fn pace_lines(p: &PaceView) -> String {
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
        si(p.expected_hashes)
    )
}

/// What `status` prints.
pub fn status(s: &StatusView) -> String {
    let reachable = if s.reachable_addresses.is_empty() {
        "not confirmed (others may not be able to dial this node)".to_string()
    } else {
        s.reachable_addresses.join(" ")
    };
    format!(
        "peer id    {}\nchain id   {}\nheight     {}\ntip        {}\nwork       {}\n{}\npeers      {}\nmempool    {}\norphans    {}\nmining     {}\nsyncing    {}\naddress    {}\nlistening  {}\nreachable  {reachable}\nhttp       {}",
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
        s.address,
        s.listen_addresses.join(" "),
        s.http.as_deref().unwrap_or("off"),
    )
}

/// What `peers` prints.
pub fn peers(peers: &[PeerView]) -> String {
    if peers.is_empty() {
        return "no peers".into();
    }
    peers
        .iter()
        .map(|p| {
            format!(
                "{}  {}  found by {}{}{}",
                p.peer_id,
                p.addresses.join(","),
                p.found_by,
                p.ping_ms.map_or(String::new(), |ms| format!(
                    "  rtt {:.1?}",
                    Duration::from_secs_f64(ms.max(0.0) / 1000.0)
                )),
                p.agent
                    .as_deref()
                    .map_or(String::new(), |a| format!("  {a}")),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `chain` prints.
pub fn chain(blocks: &[BlockSummary]) -> String {
    blocks.iter().map(block_line).collect::<Vec<_>>().join("\n")
}

/// What `balance` prints.
pub fn balance(a: &AccountView) -> String {
    format!(
        "{}\nbalance    {}\nnonce      {}\npending    {} (spent by transactions in the mempool)",
        a.address, a.balance, a.nonce, a.pending_spend
    )
}

/// An address shortened for a list, as [`crate::chain::ChainKind::short`] does: the prefix and
/// first characters, then the last ones (an address not in bech32m is left whole).
fn short(address: &str) -> String {
    match address.find('1') {
        Some(sep) if address.is_char_boundary(sep + 7) && address.len() > sep + 13 => {
            format!("{}…{}", &address[..sep + 7], &address[address.len() - 6..])
        }
        _ => address.to_string(),
    }
}

/// What `mempool` prints.
pub fn mempool(m: &MempoolView) -> String {
    if m.txs.is_empty() {
        return "mempool is empty".into();
    }
    let mut lines: Vec<String> = m
        .txs
        .iter()
        .map(|t| {
            format!(
                "{}  {} -> {}  amount {} fee {} nonce {}",
                t.txid,
                short(t.from.as_deref().unwrap_or_default()),
                short(&t.to),
                t.amount,
                t.fee,
                t.nonce.unwrap_or_default()
            )
        })
        .collect();
    if m.count > m.txs.len() {
        lines.push(format!(
            "... and {} more (GET /mempool/txids lists them all)",
            m.count - m.txs.len()
        ));
    }
    lines.join("\n")
}

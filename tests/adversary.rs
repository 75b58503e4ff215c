//! Adversarial peers. A liar joins with the node's own network layer and no node actor behind
//! it (so it validates nothing and says whatever it is told), or with a bare libp2p swarm that
//! writes arbitrary bytes on the sync protocol. It attacks an honest node that has an honest
//! peer and a watcher. For every attack the honest node must reject it for the right reason,
//! not forward it, penalise or ban the sender, keep serving honest peers, and stay within its
//! memory bounds.
//!
//! - `gossip`: every block rule of PROTOCOL.md §9-§10, malformed and oversized messages, an
//!   orphan flood, a block from the future, invalid transfers.
//! - `compact`: compact blocks with colliding short ids, invalid prefilled transfers or
//!   transfers nobody has, and `GetBlockTxs` for blocks never sent or asked too often.
//! - `sync`: malformed and oversized sync messages, lying statuses and answers, a request
//!   flood, a peer that claims work and never serves it.

mod common;
#[path = "adversary/compact.rs"]
mod compact;
#[path = "adversary/forge.rs"]
mod forge;
#[path = "adversary/gossip.rs"]
mod gossip;
#[path = "adversary/peers.rs"]
mod peers;
#[path = "adversary/sync.rs"]
mod sync;

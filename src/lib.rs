//! gossipchain: a peer-to-peer blockchain node.
//!
//! Data flows one way: wire bytes → `net` (the libp2p swarm) → `node` (the actor owning the
//! state) → [`chain`] (pure consensus rules) → [`store`] (redb).
//!
//! - [`chain`]: blocks, transactions, validation, fork choice, ledger, mempool. No I/O.
//! - [`miner`]: the multi-threaded nonce search.
//! - [`store`]: the crash-safe block store.
//! - [`repl`]: the commands, at the node's prompt; [`client`]: the same commands from the
//!   command line, to a running node over its HTTP API ([`http`]).
//! - [`testkit`]: builders of valid blocks at low difficulty, for tests, benches and fuzzing.

pub mod chain;
pub mod cli;
pub mod client;
pub mod http;
pub mod metrics;
pub mod miner;
pub mod net;
pub mod node;
pub mod priority;
pub mod repl;
pub mod store;
pub mod testkit;
pub mod wallet;

//! gossipchain: a peer-to-peer blockchain node.
//!
//! Data flows one way: wire bytes → [`net`] (the libp2p swarm) → [`node`] (the actor owning the
//! state) → [`chain`] (pure consensus rules) → [`store`] (redb). The REPL, the HTTP API and the
//! command line are edges that call the node through its [`node::NodeHandle`].
//!
//! # Layout
//!
//! - [`chain`]: consensus: blocks, transactions, signatures, proof of work, retargeting,
//!   validation, fork choice, ledger, mempool. Pure logic: no I/O, no clock.
//! - [`cli`]: the command line (clap) and what each subcommand runs.
//! - [`client`]: the prompt's commands from the command line, to a running node over its
//!   HTTP API (`gossipchain status`).
//! - [`http`]: the JSON API, Server-Sent Events, dashboard and wallet page (axum).
//! - [`memory`]: the allocator's free memory given back to the system after a load.
//! - [`metrics`]: the node's Prometheus metrics, served beside libp2p's.
//! - [`miner`]: the multi-threaded nonce search over multi-lane SHA-256 backends.
//! - [`mutants`]: planted bugs behind the `mutants` feature, for the simulator's test that
//!   each is caught (inert without the feature).
//! - [`net`]: the libp2p swarm and nothing else: discovery, gossip, sync messages, peer policy.
//! - [`node`]: the actor that owns the chain state, mempool, store and miner, and its handle.
//! - [`priority`]: thread priorities: the HTTP server's heavy lane in Linux's idle class, the
//!   miner at a higher nice value.
//! - [`repl`]: the commands typed at a running node: parsing, running, rendering.
//! - [`store`]: the crash-safe block store (redb and an append-only body file).
//! - [`sync`]: block acquisition as one component without I/O: statuses, headers first,
//!   bodies from every peer; [`sync::serve`] answers peers' requests from the chain state.
//! - [`testkit`]: builders of valid blocks at low difficulty, for tests, benches and fuzzing.
//! - [`wallet`]: secret key files (the wallet's Ed25519 key, the network identity) and the
//!   wallet's backup words (BIP 39, SLIP-0010).
//!
//! `docs/architecture.md` maps every file and says where to start reading.

pub mod chain;
pub mod cli;
pub mod client;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod miner;
pub mod mutants;
pub mod net;
pub mod node;
pub mod priority;
pub mod repl;
pub mod store;
pub mod sync;
pub mod testkit;
pub mod wallet;

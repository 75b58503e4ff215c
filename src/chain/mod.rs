//! Consensus: the rules every node applies identically. Pure logic with no tokio, no libp2p,
//! no filesystem and no clock (time is an argument), so every rule is testable without a
//! runtime.
//!
//! - [`hash`]: digest newtypes; [`encode`]: the byte cursor for decoding.
//! - [`block`], [`tx`], [`merkle`]: the data and its canonical encoding; [`address`]: the
//!   text form of an address (bech32m) and its parser.
//! - [`pow`]: proof of work and the midstate nonce search; [`target`]: compact targets and work.
//! - [`params`]: chain parameters and the genesis block; [`retarget`]: the target of each block.
//! - [`sig`]: the signature rule (ZIP 215 Ed25519), single, batched and on every core;
//!   [`sigcache`]: the txids whose signature verified, so a transfer is checked once.
//! - [`validate`]: the rules, one error variant each; [`ledger`]: balances and nonces.
//! - [`checked`]: a block with what its check computed (hash, txids, wire bytes).
//! - [`compact`]: compact blocks (BIP 152 short ids), their rebuilding and the recent pool.
//! - [`tree`]: block tree, fork choice, reorganisation; [`mempool`]: pending transfers.
//! - [`headers`]: runs of headers checked ahead of their blocks (headers-first download).
//! - [`pace`]: the next block's difficulty and the recent block rate, for `status`.
//! - [`template`]: the block this node proposes to mine (mining policy).

pub mod address;
pub mod block;
pub mod checked;
pub mod compact;
pub mod encode;
pub mod hash;
pub mod headers;
pub mod ledger;
pub mod mempool;
pub mod merkle;
pub mod pace;
pub mod params;
pub mod pow;
pub mod retarget;
pub mod sig;
pub mod sigcache;
pub mod target;
pub mod template;
pub mod tree;
pub mod tx;
pub mod validate;

pub use address::{Address, ChainKind, ParseAddressError};
pub use block::{Block, BlockKey, Header};
pub use checked::CheckedBlock;
pub use hash::{BlockHash, ChainId, TxRoot, Txid};
pub use headers::{CheckedHeader, HeaderChain, HeaderError};
pub use ledger::{Account, Ledger};
pub use mempool::{Mempool, MempoolError, MempoolLimits};
pub use params::{ChainParams, Difficulty};
pub use sigcache::SigCache;
pub use tree::{ChainState, Outcome, Processed, TipChange};
pub use tx::{Coinbase, Transaction, Transfer};
pub use validate::ValidationError;

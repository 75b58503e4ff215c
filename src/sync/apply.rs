//! Applying a batch of downloaded blocks: the checks that need no chain state (structure and
//! signatures, the costly part, run off the node's actor), then each block in order through
//! the chain's rules, stopping at the first that fails. The node and the simulator both run
//! this code; only what "process one block" does around the chain differs (the node also
//! persists, logs and tells watchers).

use super::{BatchResult, Body};
use crate::chain::{
    Block, BlockHash, ChainId, ChainParams, CheckedBlock, Outcome, Processed, ValidationError,
};
use std::sync::Arc;

/// A block of a batch after the checks that need no chain state.
pub enum Verified {
    /// The chain knew it already when the batch was handed over: not checked again.
    Known(BlockHash),
    /// Structure and signatures hold.
    Checked(Arc<CheckedBlock>),
    /// It breaks a rule; the blocks after it were not checked.
    Invalid {
        /// The block.
        block: Arc<Block>,
        /// Its hash.
        hash: BlockHash,
        /// The rule.
        error: ValidationError,
    },
}

impl Verified {
    /// The block's hash.
    pub fn hash(&self) -> BlockHash {
        match self {
            Verified::Known(h) | Verified::Invalid { hash: h, .. } => *h,
            Verified::Checked(c) => c.hash(),
        }
    }
}

/// The checks of a batch that need no chain state, in order, stopping at the first block that
/// fails (`known[i]`: the chain holds block i already). Run it on a blocking thread.
pub fn verify(
    blocks: Vec<Body>,
    known: &[bool],
    params: &ChainParams,
    chain_id: &ChainId,
) -> Vec<Verified> {
    let mut out = Vec::with_capacity(blocks.len());
    for (i, Body { block, hash, wire }) in blocks.into_iter().enumerate() {
        if known.get(i).copied().unwrap_or(false) {
            out.push(Verified::Known(hash));
            continue;
        }
        let block = Arc::new(block);
        let checked =
            CheckedBlock::check(block.clone(), hash, Some(wire), params).and_then(|mut c| {
                c.verify_signatures(chain_id)?;
                Ok(c)
            });
        match checked {
            Ok(c) => out.push(Verified::Checked(Arc::new(c))),
            Err(error) => {
                out.push(Verified::Invalid { block, hash, error });
                break;
            }
        }
    }
    out
}

/// Where applying a batch stopped.
#[derive(Debug)]
pub struct Stop {
    /// The block's position in the batch.
    pub index: usize,
    /// Its hash.
    pub hash: BlockHash,
    /// Why: a rule (`Some`), or `None` when the block no longer connects to anything the chain
    /// holds (its branch was pruned meanwhile).
    pub error: Option<ValidationError>,
}

/// Applies verified blocks in order with `process` (which validates one against the chain and
/// stores it), stopping at the first that fails or does not connect. `Ok(n)`: all `n` applied.
pub fn apply_in_order(
    verified: Vec<Verified>,
    mut process: impl FnMut(Verified) -> Result<Processed, ValidationError>,
) -> Result<usize, Stop> {
    let n = verified.len();
    for (index, v) in verified.into_iter().enumerate() {
        let hash = v.hash();
        match process(v) {
            Ok(p) => {
                if let Outcome::Orphan { .. } = p.outcome {
                    return Err(Stop {
                        index,
                        hash,
                        error: None,
                    });
                }
            }
            Err(error) => {
                return Err(Stop {
                    index,
                    hash,
                    error: Some(error),
                });
            }
        }
    }
    Ok(n)
}

/// What to tell the component: `condemned` says whether the chain now refuses the stopping
/// block's hash whatever its body (ask the chain: `ChainState::invalid_reason`).
pub fn result(
    stopped: Result<usize, Stop>,
    condemned: impl FnOnce(&BlockHash) -> bool,
) -> BatchResult {
    match stopped {
        Ok(_) => BatchResult::Applied,
        Err(Stop {
            index, error: None, ..
        }) => BatchResult::Paused {
            index,
            reason: "the block no longer connects to the chain".into(),
        },
        Err(Stop {
            index,
            error: Some(e),
            ..
        }) if !e.is_permanent() => BatchResult::Paused {
            index,
            reason: e.to_string(),
        },
        Err(Stop {
            index,
            hash,
            error: Some(e),
        }) => BatchResult::Invalid {
            index,
            reason: e.to_string(),
            condemned: condemned(&hash),
        },
    }
}

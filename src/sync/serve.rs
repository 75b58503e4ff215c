//! What a node serves to peers, as pure functions of its chain state: block locators (what we
//! send to say where our chain is), the blocks of our best chain after a locator
//! (`GetBlocks`), its headers after a locator (`GetHeaders`) and blocks by hash (`GetBodies`).
//! Bounds are the protocol's (`net::protocol`, §14.3-14.4 of `proto/PROTOCOL.md`).

use crate::chain::{BlockHash, ChainState, Header};
use crate::net::protocol;

/// A block locator starting at `from` (any valid block): its ancestors at the heights of
/// [`protocol::locator_heights`]. Walks back only to the best chain, then reads heights from it,
/// so the cost does not grow with the chain.
pub fn locator_from(chain: &ChainState, from: BlockHash) -> Vec<BlockHash> {
    let Some(header) = chain.header(&from) else {
        return locator_from(chain, chain.tip());
    };
    let heights = protocol::locator_heights(header.height);
    let mut out = Vec::with_capacity(heights.len());
    let mut hash = from;
    let mut height = header.height;
    for h in heights {
        // Step back along the side branch until on the best chain or at height h.
        while height > h && !chain.is_active(&hash) {
            let Some(b) = chain.header(&hash) else { break };
            hash = b.prev;
            height -= 1;
        }
        if chain.is_active(&hash) {
            if let Some(a) = chain.hash_at(h) {
                out.push(a);
            }
        } else if height == h {
            out.push(hash);
        }
    }
    out
}

/// The locator for a page starting after `from`: [`locator_from`] if our chain holds `from`;
/// else (`from` ends a received page not yet applied) `from` followed by our tip's locator, so
/// a peer serves the blocks after `from` without our having applied it first.
pub fn locator_for(chain: &ChainState, from: BlockHash) -> Vec<BlockHash> {
    if chain.contains(&from) {
        return locator_from(chain, from);
    }
    let mut out = vec![from];
    out.extend(locator_from(chain, chain.tip()));
    out.truncate(protocol::MAX_LOCATOR);
    out
}

/// The height after the first locator hash on our best chain, if any is.
fn start_after(chain: &ChainState, locator: &[BlockHash]) -> Option<u64> {
    let fork = locator.iter().find(|h| chain.is_active(h))?;
    Some(chain.header(fork)?.height + 1)
}

/// What to answer to a `GetBlocks`: the best-chain blocks after the first locator hash on our
/// best chain, at most `max` (capped at [`protocol::MAX_BLOCKS_PER_RESPONSE`]) and within
/// [`protocol::RESPONSE_BLOCK_BYTES`] (always at least one). `None` if no locator hash is on
/// our best chain.
pub fn blocks_after(
    chain: &ChainState,
    locator: &[BlockHash],
    max: u32,
) -> Option<Vec<protocol::Bytes>> {
    let start = start_after(chain, locator)?;
    let max = max.min(protocol::MAX_BLOCKS_PER_RESPONSE) as u64;
    Some(
        chain
            .wires_from(start, max, protocol::RESPONSE_BLOCK_BYTES)
            .into_iter()
            .map(protocol::Bytes)
            .collect(),
    )
}

/// What to answer to a `GetHeaders`: the headers of the best chain after the first locator hash
/// on it, oldest first, at most `max` (capped at [`protocol::MAX_HEADERS_PER_RESPONSE`]); empty
/// when nothing follows. `None` if no locator hash is on our best chain. Reads no block body
/// but those of the headers wanted: from memory for recent blocks, else 96 bytes each from the
/// store.
pub fn headers_after(chain: &ChainState, locator: &[BlockHash], max: u32) -> Option<Vec<Header>> {
    let start = start_after(chain, locator)?;
    let max = max.min(protocol::MAX_HEADERS_PER_RESPONSE) as u64;
    Some(chain.headers_from(start, max))
}

/// What to answer to a `GetBodies`: the consensus encodings of the blocks `hashes` names (on any
/// branch), in the order asked, stopping before the first we do not hold as a valid block or
/// when [`protocol::RESPONSE_BLOCK_BYTES`] is spent (always the first if we hold it); at most
/// [`protocol::MAX_BODIES_PER_REQUEST`] (the caller refuses longer lists). Empty: we hold none
/// of them, or not the first.
pub fn bodies_of(chain: &ChainState, hashes: &[BlockHash]) -> Vec<Vec<u8>> {
    let hashes = &hashes[..hashes.len().min(protocol::MAX_BODIES_PER_REQUEST)];
    chain.wires_of(hashes, protocol::RESPONSE_BLOCK_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::{Address, Block};
    use crate::testkit;
    use std::sync::Arc;

    #[test]
    fn locator_of_a_side_branch_starts_on_it_and_ends_at_genesis() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 20, Address([1; 32]));
        let fork = chain.hash_at(15).unwrap();
        let side = testkit::block_on(&chain, fork, &[], Address([2; 32]));
        let side_hash = side.compute_hash();
        chain.process_block(Arc::new(side), testkit::NOW).unwrap();
        let loc = locator_from(&chain, side_hash);
        assert_eq!(loc[0], side_hash);
        assert_eq!(loc[1], fork);
        assert_eq!(*loc.last().unwrap(), chain.chain_id());
        let served = blocks_after(&chain, &loc, 100).unwrap();
        assert_eq!(served.len(), 20 - 15);
    }

    #[test]
    fn blocks_after_serves_from_the_fork_point_and_refuses_unknown_locators() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 10, Address([1; 32]));
        let loc = vec![BlockHash([9; 32]), chain.hash_at(4).unwrap()];
        let served = blocks_after(&chain, &loc, 3).unwrap();
        assert_eq!(served.len(), 3);
        assert_eq!(
            Block::decode(&served[0].0, 1 << 20, 10)
                .unwrap()
                .header
                .height,
            5
        );
        assert!(blocks_after(&chain, &[BlockHash([9; 32])], 3).is_none());
    }

    #[test]
    fn headers_after_serves_best_chain_headers_after_the_locator_capped() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 12, Address([1; 32]));
        let loc = vec![BlockHash([9; 32]), chain.hash_at(4).unwrap()];
        let headers = headers_after(&chain, &loc, 5).unwrap();
        let want: Vec<Header> = (5..10).map(|h| chain.block_at(h).unwrap().header).collect();
        assert_eq!(headers, want);
        // Past the tip: what there is; at the tip: nothing; max 0: nothing.
        assert_eq!(headers_after(&chain, &loc, u32::MAX).unwrap().len(), 8);
        let at_tip = vec![chain.tip()];
        assert!(headers_after(&chain, &at_tip, 10).unwrap().is_empty());
        assert!(headers_after(&chain, &loc, 0).unwrap().is_empty());
        // From genesis; a locator with no hash on the best chain is refused.
        let all = headers_after(&chain, &[chain.chain_id()], 100).unwrap();
        assert_eq!(all.len(), 12);
        assert_eq!(all[0].prev_hash, chain.chain_id());
        assert!(headers_after(&chain, &[BlockHash([9; 32])], 10).is_none());
    }

    #[test]
    fn headers_after_ignores_a_side_branch_in_the_locator() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 10, Address([1; 32]));
        let side = testkit::block_on(&chain, chain.hash_at(6).unwrap(), &[], Address([2; 32]));
        let side_hash = side.compute_hash();
        chain.process_block(Arc::new(side), testkit::NOW).unwrap();
        // The side block is held but not on the best chain: the next hash decides.
        let loc = vec![side_hash, chain.hash_at(6).unwrap()];
        let headers = headers_after(&chain, &loc, 100).unwrap();
        assert_eq!(headers.len(), 4);
        assert_eq!(headers[0].height, 7);
        assert_eq!(headers[0].prev_hash, chain.hash_at(6).unwrap());
    }

    #[test]
    fn bodies_of_serves_blocks_of_any_branch_in_order_up_to_the_first_unknown() {
        let mut chain = ChainState::new(testkit::params());
        testkit::extend(&mut chain, 8, Address([1; 32]));
        let side = testkit::block_on(&chain, chain.hash_at(3).unwrap(), &[], Address([2; 32]));
        let side_hash = side.compute_hash();
        chain.process_block(Arc::new(side), testkit::NOW).unwrap();
        let h = |n| chain.hash_at(n).unwrap();
        let asked = vec![h(5), side_hash, h(2), BlockHash([9; 32]), h(6)];
        let served = bodies_of(&chain, &asked);
        assert_eq!(served.len(), 3);
        for (wire, want) in served.iter().zip(&asked) {
            let block = Block::decode(wire, 1 << 20, 10).unwrap();
            assert_eq!(block.compute_hash(), *want);
        }
        // The byte budget: the first block whatever its size, then what fits.
        let two = served[0].len() + served[1].len();
        assert_eq!(chain.wires_of(&asked, 1).len(), 1);
        assert_eq!(chain.wires_of(&asked, two).len(), 2);
        assert!(bodies_of(&chain, &[BlockHash([9; 32]), h(1)]).is_empty());
        assert!(bodies_of(&chain, &[]).is_empty());
        assert_eq!(bodies_of(&chain, &[chain.chain_id()]).len(), 1);
        // At most MAX_BODIES_PER_REQUEST, whatever the list.
        let many = vec![h(1); protocol::MAX_BODIES_PER_REQUEST + 5];
        assert_eq!(
            bodies_of(&chain, &many).len(),
            protocol::MAX_BODIES_PER_REQUEST
        );
    }
}

//! Forged blocks: each breaks one rule of PROTOCOL.md §9-§10 and keeps every other one (a valid
//! proof of work, unless the proof of work is the point), so the node must name that rule.

use gossipchain::chain::block::{BLOCK_VERSION, Header};
use gossipchain::chain::tx::SignatureError;
use gossipchain::chain::{
    Address, Block, BlockHash, ChainParams, ChainState, Coinbase, Transaction, Transfer,
    ValidationError, merkle, pow,
};
use gossipchain::testkit::{self, key};

/// What a forged message is and what the node must make of it.
pub struct Forged {
    /// The gossip payload.
    pub bytes: Vec<u8>,
    /// The block, if the bytes decode to one.
    pub block: Option<Block>,
    /// The error the node must give it (None: the bytes do not decode).
    pub error: Option<ValidationError>,
    /// A valid block with the same hash, for a forgery that reuses a real header: the node
    /// must still accept it after the forgery.
    pub real: Option<Block>,
}

impl Forged {
    /// A forged block, gossiped as a compact block with every transfer in full; one that has
    /// no compact form (no coinbase first, a coinbase later) is malformed bytes on the wire.
    fn block(block: Block, error: ValidationError) -> Self {
        let bytes = testkit::compact_wire(&block);
        if !testkit::has_compact_form(&block) {
            return Self::bytes(bytes);
        }
        Self {
            bytes,
            block: Some(block),
            error: Some(error),
            real: None,
        }
    }

    fn bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            block: None,
            error: None,
            real: None,
        }
    }

    /// Whether the node remembers the hash as invalid (a body that does not match its header's
    /// root condemns nothing: see `condemns_hash` in src/chain/tree.rs).
    pub fn remembered(&self) -> bool {
        !matches!(
            self.error,
            Some(ValidationError::TxRootMismatch { .. }) | None
        )
    }
}

/// What the forger knows: the honest best chain, a transfer already mined in it, and a block
/// the node remembers as invalid (hash, height), once one exists.
pub struct Ctx<'a> {
    pub chain: &'a ChainState,
    pub mined: Transfer,
    pub invalid: Option<(BlockHash, u64)>,
}

/// The miner address of variant `v`: variants differ in bytes (gossip ids) and nothing else.
pub fn miner(v: u64) -> Address {
    Address::of(&key(10_000 + v))
}

fn coinbase(height: u64, to: Address, amount: u64) -> Transaction {
    Transaction::Coinbase(Coinbase { height, to, amount })
}

/// A block with exactly these fields, its root computed and a nonce found for `bits`.
pub fn forge(
    parent: BlockHash,
    height: u64,
    timestamp: u64,
    bits: u32,
    txs: Vec<Transaction>,
) -> Block {
    let txids: Vec<_> = txs.iter().map(Transaction::compute_txid).collect();
    let mut header = Header {
        version: BLOCK_VERSION,
        height,
        prev_hash: parent,
        tx_root: merkle::tx_root(&txids),
        timestamp,
        bits,
        nonce: 0,
    };
    testkit::mine_header(&mut header);
    Block { header, txs }
}

fn on_tip(c: &Ctx, transfers: &[Transfer], v: u64) -> Block {
    testkit::next_block(c.chain, transfers, miner(v))
}

fn tip_height(c: &Ctx) -> u64 {
    c.chain.height()
}

fn tip_time(c: &Ctx) -> u64 {
    c.chain.block(&c.chain.tip()).unwrap().header.timestamp
}

/// key(1)'s next transfer (it holds 140 coins after the shared history).
fn spend(c: &Ctx, amount: u64, fee: u64) -> Transfer {
    let payer = Address::of(&key(1));
    let nonce = c.chain.ledger().account(&payer).nonce;
    Transfer::sign(
        &key(1),
        &c.chain.chain_id(),
        Address::of(&key(2)),
        amount,
        fee,
        nonce,
    )
}

fn txid(t: Transfer) -> gossipchain::chain::Txid {
    Transaction::Transfer(t).compute_txid()
}

/// A chain with other parameters than the test chain.
pub fn other_chain(bits: u32) -> ChainState {
    let params = ChainParams {
        difficulty: gossipchain::chain::Difficulty::Fixed { bits },
        genesis_message: "another chain".into(),
        ..testkit::params()
    };
    ChainState::new(params)
}

/// A gossip case: a name and a forger of variant `v`.
pub type Case = (&'static str, fn(&Ctx, u64) -> Forged);

/// Every rule a gossiped block can break, one forger each; the node bans the sender of each.
pub fn ban_cases() -> Vec<Case> {
    vec![
        ("bytes that are not a block", |_, v| {
            let mut b = b"not a block at all".to_vec();
            b.extend_from_slice(&v.to_be_bytes());
            Forged::bytes(b)
        }),
        ("a block cut short", |c, v| {
            let mut b = on_tip(c, &[], v).encode();
            b.truncate(b.len() - 7);
            Forged::bytes(b)
        }),
        ("a block with a trailing byte", |c, v| {
            let mut b = on_tip(c, &[], v).encode();
            b.push(0);
            Forged::bytes(b)
        }),
        ("a block declaring 4 billion transactions", |c, v| {
            let mut b = on_tip(c, &[], v).header.encode().to_vec();
            b.extend_from_slice(&u32::MAX.to_be_bytes());
            b.extend_from_slice(&[0; 49]);
            Forged::bytes(b)
        }),
        ("bad proof of work", |c, v| {
            let mut b = on_tip(c, &[], v);
            let target = pow::Target::from_compact(b.header.bits).expect("valid");
            while pow::meets_target(&b.compute_hash(), &target) {
                b.header.nonce += 1;
            }
            let hash = b.compute_hash();
            let bits = b.header.bits;
            Forged::block(b, ValidationError::InsufficientWork { hash, bits })
        }),
        ("wrong bits", |c, v| {
            let mut b = on_tip(c, &[], v);
            let nine = ChainParams::with_bits(9).genesis_bits();
            b.header.bits = nine;
            testkit::mine_header(&mut b.header);
            Forged::block(
                b,
                ValidationError::WrongBits {
                    expected: testkit::params().genesis_bits(),
                    got: nine,
                },
            )
        }),
        ("a block of another chain (difficulty 10)", |_, v| {
            let other = other_chain(10);
            let b = testkit::next_block(&other, &[], miner(v));
            Forged::block(
                b,
                ValidationError::WrongBits {
                    expected: testkit::params().genesis_bits(),
                    got: ChainParams::with_bits(10).genesis_bits(),
                },
            )
        }),
        ("wrong height", |c, v| {
            let h = tip_height(c) + 2;
            let b = forge(
                c.chain.tip(),
                h,
                tip_time(c) + 1000,
                testkit::params().genesis_bits(),
                vec![coinbase(h, miner(v), 50)],
            );
            let error = ValidationError::BadHeight {
                expected: h - 1,
                got: h,
            };
            Forged::block(b, error)
        }),
        (
            "a timestamp at (then before) the median of the last 11",
            |c, v| {
                let median = c.chain.median_time_past(&c.chain.tip());
                let mut b = on_tip(c, &[], v);
                b.header.timestamp = median - v;
                testkit::seal(&mut b);
                let error = ValidationError::TimestampTooOld {
                    timestamp: median - v,
                    median,
                };
                Forged::block(b, error)
            },
        ),
        ("a bad tx_root (a real header over another body)", |c, v| {
            let real = on_tip(c, &[], v);
            let mut fake = real.clone();
            fake.txs[0] = coinbase(real.header.height, miner(v + 1), 50);
            let error = ValidationError::TxRootMismatch {
                expected: fake.compute_tx_root(),
                got: real.header.tx_root,
            };
            let mut f = Forged::block(fake, error);
            f.real = Some(real);
            f
        }),
        ("duplicate txids", |c, v| {
            let t = spend(c, 1, 0);
            let b = on_tip(c, &[t, t], v);
            Forged::block(b, ValidationError::DuplicateTxid(txid(t)))
        }),
        ("two coinbases", |c, v| {
            let h = tip_height(c) + 1;
            let second = coinbase(h, miner(v + 1), 0);
            let b = forge(
                c.chain.tip(),
                h,
                tip_time(c) + 1000,
                testkit::params().genesis_bits(),
                vec![coinbase(h, miner(v), 50), second],
            );
            let error = ValidationError::ExtraCoinbase {
                txid: second.compute_txid(),
            };
            Forged::block(b, error)
        }),
        ("an overpaying coinbase", |c, v| {
            let h = tip_height(c) + 1;
            let b = forge(
                c.chain.tip(),
                h,
                tip_time(c) + 1000,
                testkit::params().genesis_bits(),
                vec![coinbase(h, miner(v), 51 + v)],
            );
            let error = ValidationError::CoinbaseAmount {
                expected: 50,
                got: 51 + v,
            };
            Forged::block(b, error)
        }),
        ("a bad signature", |c, v| {
            let mut t = spend(c, 1 + v, 0);
            t.signature[40] ^= 1;
            let b = on_tip(c, &[t], v);
            let error = ValidationError::BadSignature {
                txid: txid(t),
                reason: SignatureError::BadSignature,
            };
            Forged::block(b, error)
        }),
        ("a replayed transfer (already mined, same nonce)", |c, v| {
            let b = on_tip(c, &[c.mined], v);
            let error = ValidationError::BadNonce {
                txid: txid(c.mined),
                expected: 1,
                got: 0,
            };
            Forged::block(b, error)
        }),
        ("an overspend", |c, v| {
            let t = spend(c, 1_000_000 + v, 0);
            let b = on_tip(c, &[t], v);
            let error = ValidationError::InsufficientBalance {
                txid: txid(t),
                balance: c.chain.ledger().account(&t.from).balance,
                needed: 1_000_000 + v,
            };
            Forged::block(b, error)
        }),
        ("a child of a block known invalid", |c, v| {
            let (parent, height) = c.invalid.expect("an earlier case left an invalid block");
            let h = height + 1;
            let b = forge(
                parent,
                h,
                tip_time(c) + 2000,
                testkit::params().genesis_bits(),
                vec![coinbase(h, miner(v), 50)],
            );
            Forged::block(b, ValidationError::InvalidAncestor(parent))
        }),
        ("an amount overflow", |c, v| {
            let t = spend(c, u64::MAX - v, 1 + v);
            let b = on_tip(c, &[t], v);
            Forged::block(b, ValidationError::AmountOverflow { txid: txid(t) })
        }),
    ]
}

//! Golden vectors of the sync protocol's CBOR messages (`proto/vectors/network.txt`): the bytes
//! libp2p's CBOR codec puts on the wire for each message, so a second implementation can check
//! its encoder and decoder. Regenerate with `GOSSIPCHAIN_WRITE_VECTORS=1 cargo test --test
//! wire_vectors`.

use gossipchain::chain::{Address, BlockHash, ChainParams, ChainState, Transaction, Transfer};
use gossipchain::net::protocol::{self, Bytes, Request, Response, Status};
use gossipchain::testkit;
use std::collections::BTreeMap;

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    cbor4ii::serde::to_vec(Vec::new(), v).expect("encodes")
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    cbor4ii::serde::from_slice(b).map_err(|e| e.to_string())
}

/// Messages by vector name.
type Named<T> = Vec<(&'static str, T)>;

/// The messages, by vector name.
fn messages() -> (Named<Request>, Named<Response>) {
    let params = ChainParams::default();
    let chain_id = params.chain_id();
    let genesis = params.genesis();
    let status = Status::new(chain_id, chain_id, 0, 1 << 27);
    let test_chain = {
        let mut c = ChainState::new(testkit::params());
        testkit::extend(&mut c, 1, Address::of(&testkit::key(1)));
        c
    };
    let block = test_chain.block_at(1).unwrap().encode();
    let header = test_chain.block_at(1).unwrap().header.encode().to_vec();
    let tx = Transfer::sign(
        &testkit::key(1),
        &chain_id,
        Address::of(&testkit::key(2)),
        10,
        1,
        0,
    );
    let tx_bytes = Transaction::Transfer(tx).encode();
    let requests = vec![
        ("request.status", Request::Status(status)),
        (
            "request.get_blocks",
            Request::GetBlocks {
                locator: vec![BlockHash([0xaa; 32]), genesis.compute_hash()],
                max: protocol::MAX_BLOCKS_PER_RESPONSE,
            },
        ),
        ("request.get_mempool", Request::GetMempool),
        (
            "request.get_headers",
            Request::GetHeaders {
                locator: vec![BlockHash([0xaa; 32]), genesis.compute_hash()],
                max: protocol::MAX_HEADERS_PER_RESPONSE,
            },
        ),
        (
            "request.get_bodies",
            Request::GetBodies {
                hashes: vec![test_chain.hash_at(1).unwrap(), BlockHash([0xbb; 32])],
            },
        ),
        (
            "request.transactions",
            Request::Transactions(vec![Bytes(tx_bytes.clone())]),
        ),
    ];
    let responses = vec![
        ("response.status", Response::Status(status)),
        ("response.blocks", Response::Blocks(vec![Bytes(block)])),
        ("response.blocks_empty", Response::Blocks(vec![])),
        ("response.headers", Response::Headers(vec![Bytes(header)])),
        ("response.headers_empty", Response::Headers(vec![])),
        (
            "response.transactions",
            Response::Transactions(vec![Bytes(tx_bytes)]),
        ),
        ("response.accepted", Response::Accepted(1)),
        ("response.refused", Response::Refused("rate limit".into())),
    ];
    (requests, responses)
}

fn render() -> String {
    let params = ChainParams::default();
    let chain_id = params.chain_id();
    let mut out = String::from(
        "# gossipchain network vectors, version 1. Specification: proto/PROTOCOL.md, Network.\n\
         # Format as in consensus.txt: `key = value`, values in lower-case hex unless noted.\n\
         # Each `request.*` / `response.*` value is the exact CBOR a node writes on a sync stream\n\
         # (libp2p request-response, protocol /gossipchain/sync/1) for the message described\n\
         # in the comment above it; decoding it must give back that message.\n\
         # Generated and checked by tests/wire_vectors.rs.\n\n",
    );
    out += &format!("chain_id = {chain_id}\n");
    out += &format!("topic.blocks = {}\n", protocol::blocks_topic(&chain_id));
    out += &format!("topic.txs = {}\n", protocol::txs_topic(&chain_id));
    out += &format!("protocol.sync = {}\n\n", protocol::SYNC_PROTOCOL);
    let (requests, responses) = messages();
    for (name, m) in &requests {
        out += &format!("# {m:?}\n{name} = {}\n\n", hex::encode(encode(m)));
    }
    for (name, m) in &responses {
        out += &format!("# {m:?}\n{name} = {}\n\n", hex::encode(encode(m)));
    }
    out
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/vectors/network.txt");

#[test]
fn wire_messages_match_the_golden_vectors() {
    let rendered = render();
    if std::env::var_os("GOSSIPCHAIN_WRITE_VECTORS").is_some() {
        std::fs::write(PATH, &rendered).unwrap();
    }
    let file = std::fs::read_to_string(PATH).expect("proto/vectors/network.txt exists");
    let want = parse(&file);
    let got = parse(&rendered);
    assert_eq!(want, got, "vectors differ from what the code encodes");

    // Decoding the stored bytes gives the messages back.
    let (requests, responses) = messages();
    for (name, m) in requests {
        let bytes = hex::decode(&want[name]).unwrap();
        assert_eq!(decode::<Request>(&bytes).unwrap(), m, "{name}");
    }
    for (name, m) in responses {
        let bytes = hex::decode(&want[name]).unwrap();
        assert_eq!(decode::<Response>(&bytes).unwrap(), m, "{name}");
    }
}

#[test]
fn malformed_cbor_is_an_error_not_a_panic() {
    let (requests, _) = messages();
    let good = encode(&requests[1].1);
    // Every truncation, and every single-byte change, decodes to an error or to some message;
    // none panics.
    for n in 0..good.len() {
        let _ = decode::<Request>(&good[..n]);
    }
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0xff;
        let _ = decode::<Request>(&b);
    }
    assert!(decode::<Request>(&[0xff, 0x00]).is_err());
    assert!(decode::<Request>(b"not cbor at all").is_err());
    // A hash of the wrong length is refused.
    let mut short = BTreeMap::new();
    short.insert("Status", ());
    assert!(decode::<Status>(&encode(&short)).is_err());
}

#[test]
fn the_largest_headers_and_bodies_messages_fit_the_codec_limits() {
    use gossipchain::net::behaviour::{SyncCodec, SyncRequest};
    let params = ChainParams::default();
    let mut codec = SyncCodec::new(params.max_block_bytes);
    let hashes = |n: usize| vec![BlockHash([0xcc; 32]); n];
    let largest = [
        Request::GetHeaders {
            locator: hashes(protocol::MAX_LOCATOR),
            max: u32::MAX,
        },
        Request::GetBodies {
            hashes: hashes(protocol::MAX_BODIES_PER_REQUEST),
        },
    ];
    for request in largest {
        let bytes = encode(&request);
        assert!(bytes.len() as u64 <= protocol::MAX_REQUEST_BYTES / 16);
        match codec.decode_request(&bytes) {
            Ok(SyncRequest::Valid(r)) => assert_eq!(r, request),
            other => panic!("the largest valid request is read as {other:?}"),
        }
    }
    let page = Response::Headers(vec![
        Bytes(vec![0xdd; 96]);
        protocol::MAX_HEADERS_PER_RESPONSE as usize
    ]);
    let bytes = encode(&page);
    assert!(bytes.len() as u64 <= protocol::max_response_bytes(params.max_block_bytes) / 16);
    assert_eq!(codec.decode_response(&bytes).unwrap(), page);
    // Over the limits of the protocol but within the codec's: read as valid, refused by the
    // node's answer (src/node/sync.rs), not a decoding failure.
    let long = Request::GetBodies {
        hashes: hashes(protocol::MAX_BODIES_PER_REQUEST + 1),
    };
    assert!(matches!(
        codec.decode_request(&encode(&long)),
        Ok(SyncRequest::Valid(_))
    ));
    // A malformed one is the sender's fault, as any malformed request.
    let mut bad = encode(&Request::GetHeaders {
        locator: hashes(2),
        max: 1,
    });
    let last = bad.len() - 1;
    bad[last] = 0x60; // `max` made an empty text string
    assert!(matches!(
        codec.decode_request(&bad),
        Ok(SyncRequest::Malformed(_))
    ));
}

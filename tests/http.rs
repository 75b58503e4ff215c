//! The HTTP API against the real server over a real socket (127.0.0.1, OS-assigned ports):
//! every route, every error path, the event stream, a transfer signed outside the node, the
//! token.

mod common;

use common::{DEADLINE, TestNode};
use futures::StreamExt;
use gossipchain::chain::{
    Address, BlockHash, ChainKind, ChainState, Header, MempoolError, Transaction, Transfer, Txid,
    merkle,
};
use gossipchain::http::{self, HttpConfig, HttpServer};
use gossipchain::node::events::NodeEvent;
use gossipchain::testkit;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

struct Api {
    node: TestNode,
    server: Option<HttpServer>,
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn start() -> Self {
        Self::start_dialling(&[]).await
    }

    /// A node dialling `peers`, with its HTTP server.
    async fn start_dialling(peers: &[libp2p::Multiaddr]) -> Self {
        let node = common::start(peers).await;
        let config = HttpConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            fallback: false,
            cors: Vec::new(),
        };
        let server = http::start(node.handle.clone(), config, node.dir.path())
            .await
            .expect("server starts");
        let base = server.url();
        let token = std::fs::read_to_string(node.dir.path().join(".cookie")).unwrap();
        Self {
            node,
            server: Some(server),
            base,
            token,
            client: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    async fn action(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn post_tx(&self, hex: &str) -> (StatusCode, String) {
        let r = self
            .client
            .post(self.url("/tx"))
            .header("content-type", "text/plain")
            .body(hex.to_string())
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
        self.node.stop().await;
    }
}

/// Mines `n` blocks through the API.
async fn mine(api: &Api, n: u64) -> Value {
    let (status, body) = api.action("/mine", json!({ "n": n })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_routes_answer_in_their_shapes() {
    let api = Api::start().await;
    let mined = mine(&api, 3).await;
    assert_eq!(mined["blocks"].as_array().unwrap().len(), 3);
    let st = api.node.status();

    let (s, h) = api.get("/blocks/tip/height").await;
    assert_eq!((s, h.as_str()), (StatusCode::OK, "3"));
    let (_, tip) = api.get("/blocks/tip/hash").await;
    assert_eq!(tip, st.tip.to_hex());
    let (_, at2) = api.get("/block-height/2").await;
    assert_eq!(at2, mined["blocks"][1]["id"].as_str().unwrap());

    let page = api.get_json("/blocks").await;
    let heights: Vec<u64> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, [3, 2, 1, 0], "newest first, down to genesis");
    let page = api.get_json("/blocks/1").await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    assert_eq!(page[0]["height"], 1);

    let block = api.get_json(&format!("/block/{tip}")).await;
    assert_eq!(block["height"], 3);
    assert_eq!(block["in_best_chain"], true);
    assert_eq!(block["txs"][0]["kind"], "coinbase");
    // Addresses are bech32m of the chain's kind (a test chain here: gct1…).
    let kind = ChainKind::of(&st.chain_id);
    assert_eq!(kind, ChainKind::Test);
    let me_text = kind.encode(&st.address);
    assert!(me_text.starts_with("gct1"), "{me_text}");
    assert_eq!(block["txs"][0]["to"], me_text);
    assert_eq!(block["miner"], me_text);
    let coinbase_txid = block["txs"][0]["txid"].as_str().unwrap().to_string();
    let tx = api.get_json(&format!("/tx/{coinbase_txid}")).await;
    assert_eq!(tx["status"]["state"], "confirmed");
    assert_eq!(tx["status"]["block_height"], 3);
    assert_eq!(tx["status"]["block_hash"], tip);

    let me = api.get_json(&format!("/address/{me_text}")).await;
    assert_eq!(me["address"], me_text);
    assert_eq!(me["balance"], 150);
    // The older form, 64 hex digits, names the same account.
    let by_hex = api
        .get_json(&format!("/address/{}", st.address.to_hex()))
        .await;
    assert_eq!(by_hex, me);
    assert_eq!(me["nonce"], 0);
    assert_eq!(me["next_nonce"], 0);

    let id = api.get_json("/node/identity").await;
    assert_eq!(id["peer_id"], st.peer_id.to_string());
    assert_eq!(id["chain_id"], st.chain_id.to_hex());
    assert_eq!(id["address"], me_text);
    assert_eq!(id["address_prefix"], "gct");
    assert!(!id["listen_addresses"].as_array().unwrap().is_empty());
    let status = api.get_json("/node/status").await;
    assert_eq!(status["height"], 3);
    assert_eq!(status["http"], api.base);
    assert_eq!(api.get_json("/node/peers").await, json!([]));
    let sync = api.get_json("/node/syncing").await;
    assert_eq!(sync["is_syncing"], false);
    assert_eq!(sync["head_height"], 3);
    let (s, _) = api.get("/node/health").await;
    assert_eq!(s, StatusCode::OK);

    // The node's own wallet sends; the transfer is pending, then confirmed.
    let to = Address::of(&testkit::key(7));
    let (s, sent) = api
        .action(
            "/wallet/send",
            json!({"to": kind.encode(&to), "amount": 40, "fee": 2}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sent}");
    let txid = sent["txid"].as_str().unwrap().to_string();
    assert_eq!(api.get_json("/mempool/txids").await, json!([txid]));
    let pool = api.get_json("/mempool").await;
    assert_eq!(
        (pool["count"].clone(), pool["total_fee"].clone()),
        (json!(1), json!(2))
    );
    let txs = api.get_json("/mempool/txs").await;
    assert_eq!(txs[0]["amount"], 40);
    let tx = api.get_json(&format!("/tx/{txid}")).await;
    assert_eq!(tx["status"]["state"], "mempool");
    assert_eq!(tx["tx"]["from"], me_text);
    assert_eq!(tx["tx"]["to"], kind.encode(&to));
    let me = api.get_json(&format!("/address/{me_text}")).await;
    assert_eq!(
        (me["pending_spend"].clone(), me["next_nonce"].clone()),
        (json!(42), json!(1))
    );
    mine(&api, 1).await;
    let tx = api.get_json(&format!("/tx/{txid}")).await;
    assert_eq!(tx["status"]["state"], "confirmed");
    assert_eq!(tx["status"]["block_height"], 4);
    let them = api
        .get_json(&format!("/address/{}", kind.encode(&to)))
        .await;
    assert_eq!(them["balance"], 40);

    let tree = api.get_json("/tree?from_height=0").await;
    let blocks = tree["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 5, "genesis (loaded) and four mined: {tree}");
    assert_eq!(blocks[0]["source"], "store");
    assert!(
        blocks[1..].iter().all(|b| b["source"] == "local"
            && b["in_best_chain"] == true
            && b["arrived_ms"].is_u64())
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_is_a_4xx_with_a_json_error() {
    let api = Api::start().await;
    let zeros = "0".repeat(64);
    let long = "a".repeat(http::MAX_BODY + 10);
    // 32 bytes that are not a point of the curve.
    let bad_key = format!("02{}", "00".repeat(31));
    // An address with its last character mistyped, and one of the default chain (this node
    // runs a test chain).
    let someone = Address::of(&testkit::key(5));
    let text = ChainKind::Test.encode(&someone);
    let typo = format!(
        "{}{}",
        &text[..text.len() - 1],
        if text.ends_with('q') { 'p' } else { 'q' }
    );
    let other_chain = ChainKind::Main.encode(&someone);
    // Signed for another chain: the signature does not verify on this one.
    let forged = hex::encode(
        Transaction::Transfer(Transfer::sign(
            &testkit::key(1),
            &BlockHash([7; 32]),
            Address::of(&testkit::key(2)),
            1,
            1,
            0,
        ))
        .encode(),
    );
    // (method, path, content type, body, with token, status, code)
    let cases: Vec<(&str, String, &str, String, bool, u16, &str)> = vec![
        (
            "GET",
            "/block/xyz".into(),
            "",
            "".into(),
            false,
            400,
            "bad_hash",
        ),
        (
            "GET",
            format!("/block/{}", "g".repeat(64)),
            "",
            "".into(),
            false,
            400,
            "bad_hash",
        ),
        (
            "GET",
            format!("/block/{zeros}"),
            "",
            "".into(),
            false,
            404,
            "no_such_block",
        ),
        (
            "GET",
            "/block-height/99".into(),
            "",
            "".into(),
            false,
            404,
            "no_such_height",
        ),
        (
            "GET",
            "/block-height/-1".into(),
            "",
            "".into(),
            false,
            400,
            "bad_height",
        ),
        (
            "GET",
            "/block-height/18446744073709551616".into(),
            "",
            "".into(),
            false,
            400,
            "bad_height",
        ),
        (
            "GET",
            "/blocks/abc".into(),
            "",
            "".into(),
            false,
            400,
            "bad_height",
        ),
        (
            "GET",
            "/blocks/5".into(),
            "",
            "".into(),
            false,
            404,
            "no_such_height",
        ),
        (
            "GET",
            format!("/tx/{zeros}"),
            "",
            "".into(),
            false,
            404,
            "no_such_tx",
        ),
        (
            "GET",
            "/tx/12".into(),
            "",
            "".into(),
            false,
            400,
            "bad_hash",
        ),
        (
            "GET",
            "/address/nothex".into(),
            "",
            "".into(),
            false,
            400,
            "bad_address",
        ),
        (
            "GET",
            format!("/address/{typo}"),
            "",
            "".into(),
            false,
            400,
            "bad_address",
        ),
        (
            "GET",
            format!("/address/{other_chain}"),
            "",
            "".into(),
            false,
            400,
            "bad_address",
        ),
        (
            "POST",
            "/wallet/send".into(),
            "application/json",
            format!(r#"{{"to": "{typo}", "amount": 1}}"#),
            true,
            400,
            "bad_address",
        ),
        (
            "GET",
            format!("/address/{bad_key}"),
            "",
            "".into(),
            false,
            400,
            "bad_address",
        ),
        (
            "GET",
            "/tree?from_height=x".into(),
            "",
            "".into(),
            false,
            400,
            "bad_query",
        ),
        (
            "GET",
            "/no/such/route".into(),
            "",
            "".into(),
            false,
            404,
            "no_such_route",
        ),
        (
            "DELETE",
            "/blocks".into(),
            "",
            "".into(),
            false,
            405,
            "method_not_allowed",
        ),
        (
            "POST",
            "/tx".into(),
            "application/json",
            "\"00\"".into(),
            false,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/tx".into(),
            "",
            "00".into(),
            false,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/tx".into(),
            "text/plain",
            "zz".into(),
            false,
            400,
            "bad_hex",
        ),
        (
            "POST",
            "/tx".into(),
            "text/plain",
            "0102".into(),
            false,
            400,
            "bad_tx",
        ),
        (
            "POST",
            "/tx".into(),
            "text/plain",
            long.clone(),
            false,
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/tx".into(),
            "text/plain",
            "00".repeat(49),
            false,
            400,
            "bad_tx",
        ),
        (
            "POST",
            "/tx".into(),
            "text/plain",
            forged.clone(),
            false,
            422,
            "bad_signature",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            r#"{"n": 0}"#.into(),
            true,
            400,
            "out_of_range",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            r#"{"n": 1001}"#.into(),
            true,
            400,
            "out_of_range",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            r#"{"n": -1}"#.into(),
            true,
            422,
            "bad_field",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            r#"{"n": 1, "on": true}"#.into(),
            true,
            400,
            "bad_field",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            "{}".into(),
            true,
            400,
            "bad_field",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            "{not json".into(),
            true,
            400,
            "bad_json",
        ),
        (
            "POST",
            "/mine".into(),
            "text/plain",
            r#"{"n": 1}"#.into(),
            true,
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            format!(r#"{{"n": 1, "x": "{long}"}}"#),
            true,
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/wallet/send".into(),
            "application/json",
            r#"{"to": "ab", "amount": 1}"#.into(),
            true,
            400,
            "bad_address",
        ),
        (
            "POST",
            "/wallet/send".into(),
            "application/json",
            format!(
                r#"{{"to": "{}", "amount": 0}}"#,
                ChainKind::Test.encode(&Address::of(&testkit::key(1)))
            ),
            true,
            400,
            "bad_amount",
        ),
        (
            "POST",
            "/wallet/send".into(),
            "application/json",
            format!(
                r#"{{"to": "{}", "amount": 5}}"#,
                ChainKind::Test.encode(&Address::of(&testkit::key(1)))
            ),
            true,
            422,
            "insufficient_balance",
        ),
        (
            "POST",
            "/wallet/send".into(),
            "application/json",
            format!(
                r#"{{"to": "{}", "amount": 18446744073709551616}}"#,
                ChainKind::Test.encode(&Address::of(&testkit::key(1)))
            ),
            true,
            422,
            "bad_field",
        ),
        (
            "POST",
            "/wallet/send".into(),
            "application/json",
            format!(
                r#"{{"to": "{}", "amount": 5}}"#,
                api.node.status().address.to_hex()
            ),
            true,
            422,
            "to_self",
        ),
        (
            "POST",
            "/node/dial".into(),
            "application/json",
            r#"{"addr": "not an address"}"#.into(),
            true,
            400,
            "bad_multiaddr",
        ),
        (
            "POST",
            "/node/dial".into(),
            "application/json",
            r#"{"address": "/ip4/127.0.0.1/tcp/1"}"#.into(),
            true,
            422,
            "bad_field",
        ),
        (
            "POST",
            "/mine".into(),
            "application/json",
            r#"{"n": 1}"#.into(),
            false,
            401,
            "token_required",
        ),
        (
            "POST",
            "/wallet/send".into(),
            "application/json",
            "{}".into(),
            false,
            401,
            "token_required",
        ),
        (
            "POST",
            "/node/dial".into(),
            "application/json",
            "{}".into(),
            false,
            401,
            "token_required",
        ),
    ];
    for (method, path, ctype, body, token, status, code) in cases {
        let mut req = api
            .client
            .request(method.parse().unwrap(), api.url(&path))
            .body(body.clone());
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        if token {
            req = req.bearer_auth(&api.token);
        }
        let r = req.send().await.unwrap();
        let got = r.status().as_u16();
        let ctype_back = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let text = r.text().await.unwrap();
        let what = format!("{method} {} ({} bytes)", common_clip(&path), body.len());
        assert_eq!(got, status, "{what}: {text}");
        assert_eq!(ctype_back.as_deref(), Some("application/json"), "{what}");
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(v["code"], code, "{what}: {text}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }
    // A wrong token is refused as such.
    let r = api
        .client
        .post(api.url("/mine"))
        .bearer_auth("0".repeat(64))
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "bad_token");
    assert_eq!(
        api.node.status().height,
        0,
        "nothing was mined without the token"
    );
    api.stop().await;
}

fn common_clip(s: &str) -> String {
    s.chars().take(60).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_signed_outside_the_node_is_accepted_and_mined() {
    let api = Api::start().await;
    let key = testkit::key(42);
    let me = Address::of(&key);
    mine(&api, 1).await;
    let (s, sent) = api
        .action(
            "/wallet/send",
            json!({"to": ChainKind::Test.encode(&me), "amount": 20}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{sent}");
    mine(&api, 1).await;
    let acct = api
        .get_json(&format!("/address/{}", ChainKind::Test.encode(&me)))
        .await;
    assert_eq!(
        (acct["balance"].clone(), acct["next_nonce"].clone()),
        (json!(20), json!(0))
    );

    // Signed here, with the chain id the API reports: the node never sees the key.
    let id = api.get_json("/node/identity").await;
    let chain_id = id["chain_id"].as_str().unwrap().parse().unwrap();
    let dest = Address::of(&testkit::key(43));
    let tx = Transfer::sign(&key, &chain_id, dest, 15, 3, 0);
    let hex = hex::encode(Transaction::Transfer(tx).encode());
    let (s, txid) = api.post_tx(&format!("{hex}\n")).await;
    assert_eq!(s, StatusCode::OK, "{txid}");
    assert_eq!(txid, Transaction::Transfer(tx).compute_txid().to_hex());
    // The same transfer again is refused with the exact reason.
    let (s, again) = api.post_tx(&hex).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(v["code"], "already_known");
    // Spending more than it has.
    let greedy = Transfer::sign(&key, &chain_id, dest, 100, 1, 1);
    let (s, refused) = api
        .post_tx(&hex::encode(Transaction::Transfer(greedy).encode()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.contains("insufficient_balance"), "{refused}");
    // Signed for another chain.
    let other = Transfer::sign(&key, &BlockHash([7; 32]), dest, 1, 1, 1);
    let (_, refused) = api
        .post_tx(&hex::encode(Transaction::Transfer(other).encode()))
        .await;
    assert!(refused.contains("bad_signature"), "{refused}");

    let tx_view = api.get_json(&format!("/tx/{txid}")).await;
    assert_eq!(tx_view["status"]["state"], "mempool");
    mine(&api, 1).await;
    let tx_view = api.get_json(&format!("/tx/{txid}")).await;
    assert_eq!(tx_view["status"]["state"], "confirmed");
    assert_eq!(tx_view["tx"]["hex"], hex);
    let acct = api
        .get_json(&format!("/address/{}", ChainKind::Test.encode(&dest)))
        .await;
    assert_eq!(acct["balance"], 15);
    let acct = api
        .get_json(&format!("/address/{}", ChainKind::Test.encode(&me)))
        .await;
    assert_eq!(
        (acct["balance"].clone(), acct["nonce"].clone()),
        (json!(2), json!(1))
    );
    api.stop().await;
}

/// Reads SSE frames until one named `name` satisfies `pred`; returns its data.
async fn next_event(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<impl AsRef<[u8]>>> + Unpin),
    buf: &mut String,
    name: &str,
    pred: impl FnMut(&Value) -> bool,
) -> Value {
    next_event_with_id(stream, buf, name, pred).await.0
}

/// Reads SSE frames until one named `name` satisfies `pred`; returns its data and its `id`.
async fn next_event_with_id(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<impl AsRef<[u8]>>> + Unpin),
    buf: &mut String,
    name: &str,
    mut pred: impl FnMut(&Value) -> bool,
) -> (Value, Option<u64>) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let mut event = "message";
            let mut data = String::new();
            let mut id = None;
            for line in frame.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e;
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                } else if let Some(i) = line.strip_prefix("id: ") {
                    id = Some(i.parse().expect("a numeric id"));
                }
            }
            if event == name
                && let Ok(v) = serde_json::from_str::<Value>(&data)
                && pred(&v)
            {
                return (v, id);
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no '{name}' event in time; buffered: {buf}"))
            .expect("the stream stays open")
            .unwrap();
        buf.push_str(std::str::from_utf8(chunk.as_ref()).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_shows_blocks_txs_and_a_reorganisation() {
    let api = Api::start().await;
    let r = api.client.get(api.url("/events")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut stream = r.bytes_stream();
    let mut buf = String::new();
    // The first frame says the stream is live, so nothing mined after it can be missed.
    let hello = next_event(&mut stream, &mut buf, "hello", |_| true).await;
    assert_eq!(hello, json!(0));

    let mined = mine(&api, 1).await;
    let id = mined["blocks"][0]["id"].clone();
    let (block, block_seq) = next_event_with_id(&mut stream, &mut buf, "block", |_| true).await;
    assert_eq!(block["hash"], id);
    assert_eq!(block["source"], "local");
    assert!(block["arrived_ms"].is_u64());
    let (tip, tip_seq) = next_event_with_id(&mut stream, &mut buf, "tip", |_| true).await;
    assert_eq!(
        (tip["hash"].clone(), tip["reorg_depth"].clone()),
        (id, json!(0))
    );
    // Events are numbered in order (the SSE id), and the tree says which it reflects.
    assert_eq!((block_seq, tip_seq), (Some(1), Some(2)));
    assert_eq!(api.get_json("/tree").await["seq"], 2);

    let to = Address::of(&testkit::key(9));
    let (_, sent) = api
        .action(
            "/wallet/send",
            json!({"to": ChainKind::Test.encode(&to), "amount": 5}),
        )
        .await;
    let tx = next_event(&mut stream, &mut buf, "tx", |_| true).await;
    assert_eq!(tx["txid"], sent["txid"]);

    // A fork from genesis two blocks long, submitted as if from elsewhere, overtakes the
    // one-block chain: a reorganisation of depth 1, shown in the event and the tree.
    let mut side = ChainState::new(common::params());
    let miner = Address::of(&testkit::key(10));
    let b1 = testkit::next_block(&side, &[], miner);
    side.process_block(Arc::new(b1.clone()), testkit::NOW)
        .unwrap();
    let b2 = testkit::next_block(&side, &[], miner);
    for b in [b1.clone(), b2.clone()] {
        api.node.handle.submit_block(b).await.unwrap().unwrap();
    }
    let (tip, reorg_seq) =
        next_event_with_id(&mut stream, &mut buf, "tip", |t| t["reorg_depth"] == 1).await;
    assert_eq!(tip["hash"], b2.compute_hash().to_hex());
    assert_eq!(tip["disconnected"], json!([mined["blocks"][0]["id"]]));
    assert_eq!(tip["height"], 2);
    let tree = api.get_json("/tree?from_height=1").await;
    assert_eq!(
        tree["seq"],
        json!(reorg_seq.unwrap()),
        "the tree reflects the reorganisation"
    );
    assert_eq!(
        (tree["tip"].clone(), tree["height"].clone()),
        (tip["hash"].clone(), json!(2))
    );
    let blocks = tree["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 3, "{tree}");
    let side_branch: Vec<&Value> = blocks
        .iter()
        .filter(|b| b["in_best_chain"] == false)
        .collect();
    assert_eq!(side_branch.len(), 1);
    assert_eq!(side_branch[0]["hash"], mined["blocks"][0]["id"]);
    // The pending transfer spent the reward of the block that left the chain: it is gone.
    assert_eq!(api.get_json("/mempool").await["count"], 0);
    let (s, _) = api
        .get(&format!("/tx/{}", sent["txid"].as_str().unwrap()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_default_port_falls_back_and_the_token_file_is_private() {
    let api = Api::start().await;
    let taken: std::net::SocketAddr = api.base.trim_start_matches("http://").parse().unwrap();
    // A second server asking for the same address as a default takes another port...
    let dir = tempfile::tempdir().unwrap();
    let other = http::start(
        api.node.handle.clone(),
        HttpConfig {
            addr: taken,
            fallback: true,
            cors: Vec::new(),
        },
        dir.path(),
    )
    .await
    .expect("falls back to a free port");
    assert_ne!(other.addr, taken);
    assert_eq!(other.addr.ip(), taken.ip());
    // ...and asking for it explicitly fails with a clear error.
    let err = http::start(
        api.node.handle.clone(),
        HttpConfig {
            addr: taken,
            fallback: false,
            cors: Vec::new(),
        },
        dir.path(),
    )
    .await
    .err()
    .expect("an explicit address in use is an error");
    assert!(err.to_string().contains(&taken.to_string()), "{err}");

    let cookie = dir.path().join(".cookie");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cookie).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_to_string(&cookie).unwrap(),
        other.cookie.token
    );
    assert!(
        other
            .dashboard_url()
            .ends_with(&format!("/#token={}", other.cookie.token))
    );
    other.shutdown().await;
    assert!(!cookie.exists(), "removed at shutdown");
    // No CORS headers unless configured.
    let r = api
        .client
        .get(api.url("/blocks/tip/height"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_cors_origins_are_allowed_and_others_not() {
    let node = common::start(&[]).await;
    let server = http::start(
        node.handle.clone(),
        HttpConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            fallback: false,
            cors: vec!["http://localhost:3000".into()],
        },
        node.dir.path(),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    for (origin, allowed) in [("http://localhost:3000", true), ("http://other:1", false)] {
        let r = client
            .get(format!("{}/blocks/tip/height", server.url()))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.headers().get("access-control-allow-origin").is_some(),
            allowed,
            "{origin}"
        );
    }
    // A stopped node: not ready, and every query says so.
    let mut node = node;
    node.stop().await;
    let r = client
        .get(format!("{}/node/health", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let r = client
        .get(format!("{}/blocks", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "node_stopped");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_wallet_pages_are_served_from_the_binary() {
    let api = Api::start().await;
    for (path, kind, needle) in [
        ("/", "text/html", "block tree"),
        ("/wallet", "text/html", "sign and send"),
        ("/assets/style.css", "text/css", "#tree"),
        ("/assets/common.js", "text/javascript", "EventSource"),
        ("/assets/tree.js", "text/javascript", "BlockTree"),
        ("/assets/app.js", "text/javascript", "/wallet/send"),
        ("/assets/wallet.js", "text/javascript", "gossipchain/tx/v1"),
        (
            "/assets/bip39-english.txt",
            "text/plain",
            "abandon\nability\n",
        ),
    ] {
        let r = api.client.get(api.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with(kind), "{path}: {ctype}");
        assert!(
            r.headers().contains_key("content-security-policy"),
            "{path}"
        );
        let body = r.text().await.unwrap();
        assert!(body.contains(needle), "{path} lacks {needle}");
        // Nothing is loaded from elsewhere.
        assert!(
            !body.contains("src=\"http")
                && !body.contains("href=\"http")
                && !body.contains("url(http"),
            "{path}"
        );
    }
    // The word list the wallet page makes its backup words from is the Rust side's.
    let (_, list) = api.get("/assets/bip39-english.txt").await;
    assert_eq!(
        list.lines().collect::<Vec<_>>(),
        bip39::Language::English.word_list().to_vec()
    );
    api.stop().await;
}

/// Parses the Prometheus / OpenMetrics text format strictly enough to catch a malformed
/// answer: `# TYPE`/`# HELP`/`# UNIT` lines, samples `name{label="value",...} number` of a
/// family declared above them, and `# EOF` last. Returns each sample's value by its series.
fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut families: Vec<String> = Vec::new();
    let mut samples = std::collections::HashMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    let is_name = |n: &str| {
        !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_default();
            assert!(
                matches!(kind, "TYPE" | "HELP" | "UNIT") && is_name(name),
                "bad comment line: {line}"
            );
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(
                    [
                        "counter",
                        "gauge",
                        "histogram",
                        "info",
                        "unknown",
                        "summary"
                    ]
                    .contains(&t),
                    "{line}"
                );
                families.push(name.to_string());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels close");
                for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
                    assert!(is_name(k) && !v.contains('\n'), "bad label in {line}");
                }
                name
            }
            None => series,
        };
        assert!(is_name(name), "bad name in {line}");
        assert!(
            families.iter().any(|f| name.starts_with(f.as_str())),
            "{name} has no # TYPE above it"
        );
        samples.insert(series.to_string(), value);
    }
    samples
}

/// Reads of the status snapshot and `POST /tx` are answered on the server's prompt lane, every
/// other route on its idle lane; `GET /metrics` counts the requests of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_reads_and_transfers_take_the_prompt_lane_and_the_rest_the_idle_one() {
    let api = Api::start().await;
    let lanes = || async {
        let (status, text) = api.get("/metrics").await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let m = parse_metrics(&text);
        let lane = |name: &str| {
            m.get(&format!(
                "gossipchain_http_requests_total{{lane=\"{name}\"}}"
            ))
            .copied()
            .unwrap_or(0.0)
        };
        (lane("prompt"), lane("idle"))
    };
    let (prompt0, idle0) = lanes().await;
    assert!(idle0 >= 1.0, "the scrape itself is counted: {idle0}");
    for path in [
        "/node/status",
        "/node/syncing",
        "/blocks/tip/height",
        "/blocks/tip/hash",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // A refused transfer is answered on the prompt lane too.
    let (status, body) = api.post_tx("00").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("bad_tx"), "{body}");
    for path in ["/blocks", "/mempool"] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (prompt1, idle1) = lanes().await;
    assert_eq!(prompt1 - prompt0, 5.0, "four snapshot reads and a transfer");
    assert_eq!(
        idle1 - idle0,
        3.0,
        "two reads of the node and the second scrape"
    );
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_follow_blocks_transfers_and_a_reorganisation() {
    let api = Api::start().await;
    let scrape = || async {
        let r = api.client.get(api.url("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
        let text = r.text().await.unwrap();
        (parse_metrics(&text), text)
    };
    let (before, text) = scrape().await;
    assert_eq!(before["gossipchain_chain_height"], 0.0);
    assert_eq!(before["gossipchain_reorgs_total"], 0.0);
    assert_eq!(before["gossipchain_peers{found_by=\"mdns\"}"], 0.0);
    // libp2p's own, in the same answer: the swarm's and gossipsub's.
    assert!(
        text.contains("# TYPE libp2p_swarm_new_listen_addr") && text.contains("libp2p_gossipsub_"),
        "{text}"
    );
    assert!(before["libp2p_swarm_new_listen_addr_total{protocols=\"/ip4/tcp\"}"] >= 1.0);

    mine(&api, 2).await;
    let to = Address::of(&testkit::key(5));
    let (s, _) = api
        .action(
            "/wallet/send",
            json!({"to": ChainKind::Test.encode(&to), "amount": 3}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let forged = Transfer::sign(&testkit::key(6), &BlockHash([7; 32]), to, 1, 1, 0);
    let (s, _) = api
        .post_tx(&hex::encode(Transaction::Transfer(forged).encode()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (m, _) = scrape().await;
    assert_eq!(m["gossipchain_chain_height"], 2.0);
    assert_eq!(
        m["gossipchain_blocks_accepted_total{origin=\"local\"}"],
        2.0
    );
    assert_eq!(m["gossipchain_block_validation_seconds_count"], 2.0);
    assert!(m["gossipchain_block_validation_seconds_sum"] > 0.0);
    assert_eq!(m["gossipchain_mempool_transfers"], 1.0);
    assert_eq!(
        m["gossipchain_transfers_accepted_total{origin=\"local\"}"],
        1.0
    );
    assert_eq!(
        m["gossipchain_transfers_rejected_total{origin=\"local\",reason=\"bad_signature\"}"],
        1.0
    );
    assert!(m["gossipchain_miner_hashes_total"] >= 2.0);
    assert!(m["gossipchain_miner_hash_rate"] > 0.0);
    assert_eq!(m["gossipchain_sync_target_height"], 2.0);

    // A branch of three blocks from genesis takes the two mined off the best chain; a block
    // with a wrong height is refused.
    let mut side = ChainState::new(common::params());
    let miner = Address::of(&testkit::key(10));
    for _ in 0..3 {
        let b = testkit::next_block(&side, &[], miner);
        side.process_block(Arc::new(b.clone()), testkit::NOW)
            .unwrap();
        api.node.handle.submit_block(b).await.unwrap().unwrap();
    }
    let mut bad = testkit::next_block(&side, &[], miner);
    bad.header.height = 9;
    testkit::seal(&mut bad);
    assert!(api.node.handle.submit_block(bad).await.unwrap().is_err());
    api.node.wait("the branch", |s| s.height == 3).await;
    let (m, text) = scrape().await;
    assert_eq!(m["gossipchain_chain_height"], 3.0);
    assert_eq!(m["gossipchain_reorgs_total"], 1.0);
    assert_eq!(m["gossipchain_reorg_depth_blocks_sum"], 2.0);
    assert_eq!(
        m["gossipchain_blocks_accepted_total{origin=\"local\"}"],
        5.0
    );
    let rejected: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("gossipchain_blocks_rejected_total{origin=\"local\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(rejected, 1.0, "{text}");
    // The transfer spent a reward of the branch that lost: it left the mempool.
    assert_eq!(m["gossipchain_mempool_transfers"], 0.0);
    api.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_another_host_is_refused_against_dns_rebinding() {
    let api = Api::start().await;
    let port = api.base.rsplit(':').next().unwrap().to_string();
    for (host, status) in [
        (format!("evil.example:{port}"), StatusCode::FORBIDDEN),
        ("127.0.0.1.nip.io".to_string(), StatusCode::FORBIDDEN),
        (format!("localhost:{port}"), StatusCode::OK),
        (format!("127.0.0.1:{port}"), StatusCode::OK),
    ] {
        for path in ["/blocks/tip/height", "/", "/metrics"] {
            let r = api
                .client
                .get(api.url(path))
                .header("host", &host)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "{host} {path}");
            if status == StatusCode::FORBIDDEN {
                let v: Value = r.json().await.unwrap();
                assert_eq!(v["code"], "host_not_allowed", "{v}");
            }
        }
    }
    // Actions too, even with the token.
    let r = api
        .client
        .post(api.url("/mine"))
        .header("host", "evil.example")
        .bearer_auth(&api.token)
        .json(&json!({"n": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(api.node.status().height, 0);
    api.stop().await;
}

/// The best chain's headers from genesis through `/headers`, in pages.
async fn all_headers(api: &Api) -> Vec<Header> {
    let mut out = Vec::new();
    loop {
        let page = api
            .get_json(&format!("/headers?from={}&count=2", out.len()))
            .await;
        let list = page["headers"].as_array().unwrap();
        if list.is_empty() {
            return out;
        }
        for h in list {
            out.push(Header::decode(&hex::decode(h.as_str().unwrap()).unwrap()).unwrap());
        }
    }
}

/// The proof `/tx/{txid}/merkle-proof` serves, checked with the crate's verifier against the
/// header chain the API serves (each header linked to its parent).
async fn check_proof(api: &Api, txid: &Txid, proof: &Value) -> Result<(), merkle::ProofError> {
    let headers = all_headers(api).await;
    for pair in headers.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].compute_hash());
    }
    let height = proof["block_height"].as_u64().unwrap() as usize;
    let header = &headers[height];
    assert_eq!(proof["block_hash"], header.compute_hash().to_hex());
    let path: Vec<[u8; 32]> = proof["merkle"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            hex::decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    merkle::verify_proof(
        txid,
        proof["pos"].as_u64().unwrap(),
        proof["tx_count"].as_u64().unwrap(),
        &path,
        &header.tx_root,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merkle_proofs_verify_against_the_served_headers_and_bad_requests_are_clear() {
    let api = Api::start().await;
    mine(&api, 2).await;
    // Five transfers and the coinbase: a tree of 6, whose last subtree is not a power of two.
    let mut sent = Vec::new();
    for i in 0..5u64 {
        let to = Address::of(&testkit::key(20 + i)).to_hex();
        let (status, body) = api
            .action("/wallet/send", json!({"to": to, "amount": 1 + i}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        sent.push(body["txid"].as_str().unwrap().to_string());
    }
    // Pending: no proof yet, and the answer says why.
    let (status, body) = api.get(&format!("/tx/{}/merkle-proof", sent[0])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["code"], "tx_pending", "{body}");
    let block = &mine(&api, 1).await["blocks"][0];
    mine(&api, 1).await;

    let txids: Vec<String> = api
        .get_json(&format!("/block/{}", block["id"].as_str().unwrap()))
        .await["txs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["txid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(txids.len(), 6);
    for (pos, id) in txids.iter().enumerate() {
        let proof = api.get_json(&format!("/tx/{id}/merkle-proof")).await;
        assert_eq!(proof["block_height"], 3);
        assert_eq!(proof["block_hash"], block["id"]);
        assert_eq!(
            (proof["pos"].clone(), proof["tx_count"].clone()),
            (json!(pos), json!(6))
        );
        let txid: Txid = id.parse().unwrap();
        assert_eq!(check_proof(&api, &txid, &proof).await, Ok(()), "{proof}");
        // A path with one hash changed leads elsewhere than the header's root.
        let mut tampered = proof.clone();
        let first = tampered["merkle"][0].as_str().unwrap().to_string();
        let flipped = format!(
            "{}{}",
            if &first[..1] == "0" { "1" } else { "0" },
            &first[1..]
        );
        tampered["merkle"][0] = json!(flipped);
        assert!(matches!(
            check_proof(&api, &txid, &tampered).await,
            Err(merkle::ProofError::RootMismatch { .. })
        ));
        // A consistent path for another transaction's position proves nothing for this one.
        let mut moved = proof.clone();
        moved["pos"] = json!((pos + 1) % 6);
        assert!(check_proof(&api, &txid, &moved).await.is_err());
    }
    // The genesis coinbase is in no proof (genesis is not a block anyone mined), and any
    // confirmed transfer of an earlier block has one.
    for id in &sent {
        assert!(txids.contains(id));
    }

    // Unknown txid: one clear JSON error; a malformed one: 400. The node keeps serving.
    let unknown = "ab".repeat(32);
    let (status, body) = api.get(&format!("/tx/{unknown}/merkle-proof")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["code"], "no_such_tx");
    assert_eq!(
        e["message"],
        format!("transaction {unknown} is not on the best chain: no proof of it")
    );
    let (status, body) = api.get("/tx/xyz/merkle-proof").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Headers: bounds and shape.
    let page = api.get_json("/headers?from=1&count=3").await;
    assert_eq!(page["from"], 1);
    assert_eq!(page["tip_height"], 4);
    let list = page["headers"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|h| h.as_str().unwrap().len() == 192));
    assert_eq!(
        api.get_json("/headers?from=5").await["headers"],
        json!([]),
        "past the tip"
    );
    let headers = all_headers(&api).await;
    assert_eq!(headers.len(), 5);
    assert_eq!(headers[0].compute_hash().0, common::params().chain_id().0);
    for bad in [
        "/headers?count=0",
        "/headers?count=501",
        "/headers?from=x",
        "/headers?frm=1",
    ] {
        let (status, body) = api.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let e: Value = serde_json::from_str(&body).unwrap();
        assert!(
            e["code"].is_string() && e["message"].is_string(),
            "{bad}: {body}"
        );
    }
    assert_eq!(api.get_json("/node/status").await["height"], 4);
    api.stop().await;
}

/// Polls `node`'s mempool until `pred` holds, with the test deadline.
async fn wait_mempool(node: &TestNode, what: &str, mut pred: impl FnMut(&[Txid]) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ids: Vec<Txid> = node
            .handle
            .mempool()
            .await
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if pred(&ids) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; mempool {ids:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_gossips_evicts_the_original_on_both_nodes_and_is_announced() {
    let mut peer = common::start(&[]).await;
    let api = Api::start_dialling(std::slice::from_ref(&peer.addr)).await;
    api.node.wait("the peer", |s| s.peers == 1).await;
    let mut peer_events = peer.handle.subscribe();
    let r = api.client.get(api.url("/events")).send().await.unwrap();
    let mut stream = r.bytes_stream();
    let mut buf = String::new();
    next_event(&mut stream, &mut buf, "hello", |_| true).await;
    let tip = mine(&api, 1).await["blocks"][0]["id"].clone();
    peer.wait("the block", |s| s.tip.to_hex() == tip).await;

    let to = Address::of(&testkit::key(30)).to_hex();
    let (status, body) = api
        .action("/wallet/send", json!({"to": to, "amount": 5, "fee": 10}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let old: Txid = body["txid"].as_str().unwrap().parse().unwrap();
    wait_mempool(&peer, "the original on the peer", |ids| ids == [old]).await;
    let original = api.node.handle.mempool().await.unwrap()[0].1;

    // Less than 10 % more: one clear error, nothing changes, the node keeps serving.
    let (status, e) = api
        .action("/wallet/bump", json!({"txid": old.to_hex(), "fee": 10}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["code"], "replacement_underpriced");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.starts_with("replacement fee too low: needs at least 11 "),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    let (status, e) = api
        .action("/wallet/bump", json!({"txid": "cd".repeat(32), "fee": 50}))
        .await;
    assert_eq!(
        (status, e["code"].clone()),
        (StatusCode::NOT_FOUND, json!("not_pending"))
    );
    assert_eq!(api.get_json("/mempool").await["count"], 1);

    // Exactly 10 % more replaces it, here and on the peer by gossip.
    let (status, body) = api
        .action("/wallet/bump", json!({"txid": old.to_hex(), "fee": 11}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new: Txid = body["txid"].as_str().unwrap().parse().unwrap();
    let replaced = next_event(&mut stream, &mut buf, "replaced", |_| true).await;
    assert_eq!(
        replaced,
        json!({
            "txid": old.to_hex(),
            "from": ChainKind::of(&api.node.status().chain_id).encode(&api.node.status().address),
            "nonce": 0,
            "fee": 10,
            "replaced_by": new.to_hex(),
            "new_fee": 11,
        })
    );
    let tx = next_event(&mut stream, &mut buf, "tx", |t| t["txid"] == new.to_hex()).await;
    assert_eq!(
        (tx["fee"].clone(), tx["nonce"].clone()),
        (json!(11), json!(0))
    );
    wait_mempool(&api.node, "the replacement alone here", |ids| ids == [new]).await;
    wait_mempool(&peer, "the replacement alone on the peer", |ids| {
        ids == [new]
    })
    .await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let e = tokio::time::timeout_at(deadline, peer_events.recv())
            .await
            .expect("the peer announces the replacement")
            .unwrap();
        if let NodeEvent::Replaced { txid, by, .. } = e.event {
            assert_eq!((txid, by), (old, new));
            break;
        }
    }
    // The original, arriving late at the peer, is refused there as underpriced.
    assert_eq!(
        peer.handle.submit(original).await.unwrap(),
        Err(MempoolError::ReplacementUnderpriced {
            pending: new,
            old_fee: 11,
            min_fee: 13,
            got: 10
        })
    );
    let (status, body) = api
        .post_tx(&hex::encode(Transaction::Transfer(original).encode()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("replacement_underpriced"), "{body}");

    // Mined on the peer: the replacement is confirmed, the original never.
    let block = peer.handle.mine_one().await.unwrap().unwrap();
    assert_eq!(block.block.compute_txids()[1], new);
    api.node
        .wait("the peer's block", |s| {
            s.tip == block.hash && s.mempool == 0
        })
        .await;
    let (status, _) = api.get(&format!("/tx/{old}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let proof = api.get_json(&format!("/tx/{new}/merkle-proof")).await;
    assert_eq!(check_proof(&api, &new, &proof).await, Ok(()));
    api.stop().await;
    peer.stop().await;
}

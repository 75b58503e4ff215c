//! The [`Backend`] of `gossipchain <command>`: the node's HTTP API, over plain HTTP/1.1 with
//! hyper (already in the tree through axum), one connection a request. Every way the other end
//! can fail to be a gossipchain node (nothing listening, no answer, not HTTP, not our JSON)
//! becomes one [`Failure`] line.

use crate::chain::{Address, ChainKind, Txid};
use crate::http::views::{
    AccountView, BlockSummary, BlockView, DialView, MempoolView, MiningView, PeerView, SentView,
    StatusView, SyncView,
};
use crate::node::BlockId;
use crate::repl::{Backend, Failure};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use libp2p::Multiaddr;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a whole answer (the node gives up on a request after 10 s); a streamed
/// `mine n` has none, it lasts as long as the blocks take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read (`chain 10000` is about 4 MB).
const MAX_ANSWER: usize = 64 << 20;

/// A node's HTTP API.
pub struct Remote {
    /// Host name or address, as given.
    host: String,
    /// Its port.
    port: u16,
    /// `http://host:port`, for messages.
    url: String,
    /// The action token, if known.
    token: Option<String>,
    /// What to say when nothing answers (how to start the node).
    hint: String,
    /// The kind of the node's chain, once known: how addresses are written to it (64 hex
    /// digits, which every node reads, until then).
    pub kind: Option<ChainKind>,
}

/// The API's error body.
#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

impl Remote {
    /// The API at `host:port`; `hint` is said when nothing answers there.
    pub fn new(host: String, port: u16, token: Option<String>, hint: String) -> Self {
        let url = if host.contains(':') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        };
        Self {
            host,
            port,
            url,
            token,
            hint,
            kind: None,
        }
    }

    /// `http://host:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn unreachable(&self, why: impl std::fmt::Display) -> Failure {
        Failure::Unreachable(format!("cannot reach {}: {why}", self.url))
    }

    fn foreign(&self, what: impl std::fmt::Display) -> Failure {
        Failure::Unreachable(format!(
            "{} does not answer as a gossipchain node: {what}",
            self.url
        ))
    }

    /// Sends one request on a new connection and returns the answer's head and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        accept: &str,
    ) -> Result<Response<Incoming>, Failure> {
        let addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.unreachable(format!("cannot resolve {}: {e}", self.host)))?;
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => {
                    stream = Some((s, addr));
                    break;
                }
                Ok(Err(e)) => last = Some(e.to_string()),
                Err(_) => last = Some(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
            }
        }
        let Some((stream, addr)) = stream else {
            return Err(Failure::Unreachable(format!(
                "no node answering at {} ({}; is it running? {})",
                self.url,
                last.unwrap_or_else(|| "no address".into()),
                self.hint
            )));
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .map_err(|e| self.unreachable(e))?;
        tokio::spawn(conn);
        // The address connected to names the server: a name given with --node would be
        // refused by the node's guard against DNS rebinding, meant for browsers, not for us.
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, addr.to_string())
            .header(ACCEPT, accept);
        if method == Method::POST
            && let Some(token) = &self.token
        {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(v) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(v.to_string()))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request.body(body).map_err(|e| self.unreachable(e))?;
        sender
            .send_request(request)
            .await
            .map_err(|e| self.foreign(e))
    }

    /// The whole body of an answer.
    async fn read(&self, response: Response<Incoming>) -> Result<(StatusCode, Bytes), Failure> {
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| self.foreign(e))?
            .to_bytes();
        Ok((status, body))
    }

    /// An error answer as the node's refusal, or as a foreign one.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> Failure {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) if e.code == "token_required" => Failure::Refused {
                code: e.code,
                message: format!(
                    "{} needs the node's token for this: give --data-dir of the node (its .cookie holds the token) or --token",
                    self.url
                ),
            },
            Ok(e) if e.code == "node_stopped" => Failure::Unreachable(e.message),
            Ok(e) => Failure::Refused {
                code: e.code,
                message: e.message,
            },
            Err(_) => self.foreign(format!("HTTP {status} without a gossipchain error")),
        }
    }

    /// One request and its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        let (_, bytes) = self
            .call_raw(method, path, body, "application/json")
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            self.foreign(format!(
                "its answer to {path} is not what a gossipchain node of this version sends ({e})"
            ))
        })
    }

    /// One request and its successful body.
    async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        accept: &str,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let exchange = async {
            let response = self.send(method, path, body, accept).await?;
            self.read(response).await
        };
        let (status, bytes) = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                self.foreign(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))
            })??;
        if !status.is_success() {
            return Err(self.refusal(status, &bytes));
        }
        Ok((status, bytes))
    }

    /// An address as the node reads it.
    fn write(&self, address: &Address) -> String {
        match self.kind {
            Some(kind) => kind.encode(address),
            None => address.to_hex(),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(Method::GET, path, None).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, Failure> {
        self.call(Method::POST, path, body).await
    }
}

/// `GET /mempool`, the part `mempool` shows.
#[derive(Deserialize)]
struct MempoolSize {
    count: usize,
}

impl Backend for Remote {
    async fn status(&self) -> Result<StatusView, Failure> {
        self.get("/node/status").await
    }

    async fn peers(&self) -> Result<Vec<PeerView>, Failure> {
        self.get("/node/peers").await
    }

    async fn chain(&self, n: usize) -> Result<Vec<BlockSummary>, Failure> {
        self.get(&format!("/blocks?count={n}")).await
    }

    async fn block(&self, id: BlockId) -> Result<BlockView, Failure> {
        let hash = match id {
            BlockId::Hash(hash) => hash.to_hex(),
            BlockId::Height(h) => {
                let (_, bytes) = self
                    .call_raw(
                        Method::GET,
                        &format!("/block-height/{h}"),
                        None,
                        "text/plain",
                    )
                    .await?;
                String::from_utf8_lossy(&bytes).trim().to_string()
            }
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.foreign("/block-height answered no block hash"));
        }
        self.get(&format!("/block/{hash}")).await
    }

    async fn balance(&self, address: Address) -> Result<AccountView, Failure> {
        self.get(&format!("/address/{}", self.write(&address)))
            .await
    }

    async fn send(&self, to: Address, amount: u64, fee: u64) -> Result<SentView, Failure> {
        let body = serde_json::json!({"to": self.write(&to), "amount": amount, "fee": fee});
        self.post("/wallet/send", Some(body)).await
    }

    async fn bump(&self, txid: Txid, fee: u64) -> Result<SentView, Failure> {
        let body = serde_json::json!({"txid": txid.to_hex(), "fee": fee});
        self.post("/wallet/bump", Some(body)).await
    }

    async fn mempool(&self) -> Result<MempoolView, Failure> {
        let txs: Vec<_> = self.get("/mempool/txs").await?;
        let size: MempoolSize = self.get("/mempool").await?;
        Ok(MempoolView {
            // Two answers, two moments: the count is at least what was listed.
            count: size.count.max(txs.len()),
            txs,
        })
    }

    async fn mine(&self, n: u64, each: &mut dyn FnMut(&BlockSummary)) -> Result<(), Failure> {
        let body = serde_json::json!({ "n": n });
        let response = tokio::time::timeout(
            ANSWER_TIMEOUT,
            self.send(
                Method::POST,
                "/mine",
                Some(body),
                crate::http::actions::NDJSON,
            ),
        )
        .await
        .map_err(|_| self.foreign(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())))??;
        if !response.status().is_success() {
            let (status, bytes) = self.read(response).await?;
            return Err(self.refusal(status, &bytes));
        }
        let mut body = response.into_body();
        let mut buf: Vec<u8> = Vec::new();
        let mut found = 0u64;
        while found < n {
            let Some(frame) = body.frame().await else {
                break;
            };
            let frame = frame.map_err(|e| self.foreign(e))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            if buf.len() > MAX_ANSWER {
                return Err(self.foreign("a line longer than any block summary"));
            }
            while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                if let Ok(block) = serde_json::from_slice::<BlockSummary>(&line) {
                    each(&block);
                    found += 1;
                } else {
                    return Err(self.refusal(StatusCode::OK, &line));
                }
            }
        }
        if found < n {
            return Err(Failure::Unreachable(format!(
                "{} stopped answering after {found} of {n} blocks",
                self.url
            )));
        }
        Ok(())
    }

    async fn set_mining(&self, on: bool) -> Result<MiningView, Failure> {
        self.post("/mine", Some(serde_json::json!({ "on": on })))
            .await
    }

    async fn dial(&self, addr: &Multiaddr) -> Result<DialView, Failure> {
        let body = serde_json::json!({ "addr": addr.to_string() });
        self.post("/node/dial", Some(body)).await
    }

    async fn sync(&self) -> Result<SyncView, Failure> {
        self.post("/node/sync", None).await
    }
}

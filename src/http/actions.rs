//! The routes that spend or change this node's state: they need the bearer token from the
//! cookie file (`Authorization: Bearer <token>`), see [`super::auth`].

use super::AppState;
use super::api::mempool_error;
use super::auth::Authorized;
use super::error::{ApiError, ApiJson, clip, parse_hash};
use super::views::{BlockSummary, DialView, MiningView, SentView, SyncView};
use crate::chain::{Address, Txid};
use crate::node::{BlockInfo, MineError, NodeHandle, SendError, Stopped};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use libp2p::Multiaddr;
use serde::Deserialize;
use serde_json::json;

/// Most blocks one `POST /mine {n}` mines (as the REPL's `mine n`).
pub const MAX_MINE: u64 = 1000;

/// Body of `POST /wallet/send`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// Recipient address: bech32m of the node's chain kind, or 64 hex digits.
    to: String,
    /// Coins, at least 1.
    amount: u64,
    /// Fee (default 1, as at the REPL).
    #[serde(default = "default_fee")]
    fee: u64,
}

fn default_fee() -> u64 {
    1
}

/// `POST /wallet/send {to, amount, fee}`: signs with this node's wallet and sends.
pub async fn send(
    _: Authorized,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Json<SentView>, ApiError> {
    let to: Address = s.node.address_kind().parse(&body.to).map_err(|e| {
        ApiError::bad_request("bad_address", format!("to '{}': {e}", clip(&body.to)))
    })?;
    Ok(Json(send_view(&s.node, to, body.amount, body.fee).await?))
}

/// Signs a transfer with the node's wallet and sends it, as `POST /wallet/send` and `send` do.
pub async fn send_view(
    node: &NodeHandle,
    to: Address,
    amount: u64,
    fee: u64,
) -> Result<SentView, ApiError> {
    sent(node.send(to, amount, fee).await?)
}

/// Replaces the wallet's pending transfer `txid` by the same one with `fee` (replace-by-fee),
/// as `POST /wallet/bump` and `bump` do.
pub async fn bump_view(node: &NodeHandle, txid: Txid, fee: u64) -> Result<SentView, ApiError> {
    sent(node.bump(txid, fee).await?)
}

/// A wallet transfer's outcome as the API answers it.
fn sent(result: Result<Txid, SendError>) -> Result<SentView, ApiError> {
    match result {
        Ok(txid) => Ok(SentView {
            txid: txid.to_hex(),
        }),
        Err(SendError::Mempool(e)) => Err(mempool_error(e)),
        Err(e @ SendError::ZeroAmount) => Err(ApiError::bad_request("bad_amount", e.to_string())),
        Err(e @ SendError::ToSelf) => Err(ApiError::unprocessable("to_self", e.to_string())),
        Err(e @ SendError::NotPending(_)) => Err(ApiError::not_found("not_pending", e.to_string())),
        Err(e @ SendError::NotOurs(_)) => Err(ApiError::unprocessable("not_ours", e.to_string())),
    }
}

/// Body of `POST /wallet/bump`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpBody {
    /// The pending transfer to speed up, 64 hex digits.
    txid: String,
    /// The new fee: at least 10 % above the old one.
    fee: u64,
}

/// `POST /wallet/bump {txid, fee}`: replaces this wallet's pending transfer by the same one
/// with a higher fee (replace-by-fee); answers the new txid.
pub async fn bump(
    _: Authorized,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<BumpBody>,
) -> Result<Json<SentView>, ApiError> {
    let txid: Txid = parse_hash("txid", &body.txid)?;
    Ok(Json(bump_view(&s.node, txid, body.fee).await?))
}

/// Body of `POST /mine`: `{"n": 3}` mines three blocks now; `{"on": true}` switches
/// continuous mining.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MineBody {
    n: Option<u64>,
    on: Option<bool>,
}

/// The media type of a streamed `POST /mine {"n": ...}`: one JSON object a line.
pub const NDJSON: &str = "application/x-ndjson";

/// `POST /mine`. With `Accept: application/x-ndjson`, `{"n": ...}` streams each block as it is
/// found (one [`BlockSummary`] a line; an error ends the stream with an `{code, message}`
/// line); without, it answers all of them at the end.
pub async fn mine(
    _: Authorized,
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<MineBody>,
) -> Result<Response, ApiError> {
    match (body.n, body.on) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::bad_request(
            "bad_field",
            r#"give either {"n": count} or {"on": true|false}"#,
        )),
        (None, Some(on)) => Ok(Json(set_mining_view(&s.node, on).await?).into_response()),
        (Some(n), None) => {
            if n == 0 || n > MAX_MINE {
                return Err(ApiError::bad_request(
                    "out_of_range",
                    format!("n must be from 1 to {MAX_MINE}, got {n}"),
                ));
            }
            let mined = s.node.mine(n).await?;
            let streamed = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains(NDJSON));
            if streamed {
                return Ok(mine_stream(s.node.clone(), mined, n));
            }
            let mut blocks = Vec::new();
            let mut mined = mined;
            for _ in 0..n {
                match mined.recv().await.ok_or(Stopped)? {
                    Ok(info) => blocks.push(BlockSummary::of(&info, s.node.address_kind())),
                    Err(e) => return Err(mining_stopped(e.to_string())),
                }
            }
            Ok(Json(json!({ "blocks": blocks })).into_response())
        }
    }
}

/// Mining ended before the blocks asked for were found (the node is stopping).
pub fn mining_stopped(e: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "mining_stopped", e)
}

/// The blocks of a `mine n` as NDJSON lines, each sent as soon as the node accepted it. The
/// stream ends once the node's status shows the last one (as `settled` does for a whole
/// answer), so a read after it sees it. A client that hangs up drops the receiver, which
/// stops the search after the block in progress.
fn mine_stream(
    node: NodeHandle,
    mined: tokio::sync::mpsc::UnboundedReceiver<Result<BlockInfo, MineError>>,
    n: u64,
) -> Response {
    let lines = futures::stream::unfold(Some((node, mined, 0u64)), move |state| async move {
        let (node, mut mined, done) = state?;
        let (line, failed) = match mined.recv().await {
            Some(Ok(info)) => (
                serde_json::to_string(&BlockSummary::of(&info, node.address_kind())),
                false,
            ),
            Some(Err(e)) => (
                serde_json::to_string(&ErrorLine::of(mining_stopped(e.to_string()))),
                true,
            ),
            None => (serde_json::to_string(&ErrorLine::of(Stopped.into())), true),
        };
        let line = line.unwrap_or_default();
        let next = done + 1;
        let more = next < n && !failed;
        if !more {
            // One more turn of the actor: its status now includes the last block.
            let _ = node.chain(0).await;
        }
        let item = Ok::<_, std::convert::Infallible>(Bytes::from(line + "\n"));
        Some((item, more.then_some((node, mined, next))))
    });
    (
        [(header::CONTENT_TYPE, NDJSON)],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

/// An error as one NDJSON line.
#[derive(serde::Serialize)]
struct ErrorLine {
    code: &'static str,
    message: String,
}

impl ErrorLine {
    fn of(e: ApiError) -> Self {
        Self {
            code: e.code,
            message: e.message,
        }
    }
}

/// Switches continuous mining, as `POST /mine {"on": ...}` and `mine on|off` do.
pub async fn set_mining_view(node: &NodeHandle, on: bool) -> Result<MiningView, ApiError> {
    node.set_mining(on).await?;
    // Queued without a reply: a round trip confirms that the node has applied it.
    node.chain(0).await?;
    Ok(MiningView { mining: on })
}

/// Body of `POST /node/dial`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialBody {
    /// A multiaddr, e.g. /ip4/127.0.0.1/tcp/4001 (with or without /p2p/<peer id>).
    addr: String,
}

/// `POST /node/dial {addr}`: connects to a peer; answers its peer id.
pub async fn dial(
    _: Authorized,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<DialBody>,
) -> Result<Json<DialView>, ApiError> {
    let addr: Multiaddr = body.addr.parse().map_err(|e| {
        ApiError::bad_request(
            "bad_multiaddr",
            format!("'{}' is not a multiaddr: {e}", clip(&body.addr)),
        )
    })?;
    Ok(Json(dial_view(&s.node, addr).await?))
}

/// Connects to a peer, as `POST /node/dial` and `dial` do.
pub async fn dial_view(node: &NodeHandle, addr: Multiaddr) -> Result<DialView, ApiError> {
    match node.dial(addr.clone()).await {
        Ok(peer) => Ok(DialView {
            peer_id: peer.to_string(),
        }),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "dial_failed",
            format!("cannot dial {addr}: {e}"),
        )),
    }
}

/// `POST /node/sync`: asks every peer for its chain now; answers how many were asked.
pub async fn sync(_: Authorized, State(s): State<AppState>) -> Result<Json<SyncView>, ApiError> {
    Ok(Json(sync_view(&s.node).await?))
}

/// Asks every peer for its chain, as `POST /node/sync` and `sync` do.
pub async fn sync_view(node: &NodeHandle) -> Result<SyncView, ApiError> {
    Ok(SyncView {
        peers: node.sync().await?,
    })
}

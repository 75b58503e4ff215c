//! The routes that spend or change this node's state: they need the bearer token from the
//! cookie file (`Authorization: Bearer <token>`), see [`super::auth`].

use super::AppState;
use super::api::mempool_error;
use super::auth::Authorized;
use super::error::{ApiError, ApiJson, clip, parse_hash};
use super::views::BlockSummary;
use crate::chain::{Address, Txid};
use crate::node::{SendError, Stopped};
use axum::Json;
use axum::extract::State;
use libp2p::Multiaddr;
use serde::Deserialize;
use serde_json::{Value, json};

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
) -> Result<Json<Value>, ApiError> {
    let to: Address = s.node.address_kind().parse(&body.to).map_err(|e| {
        ApiError::bad_request("bad_address", format!("to '{}': {e}", clip(&body.to)))
    })?;
    sent(s.node.send(to, body.amount, body.fee).await?)
}

/// A wallet transfer's outcome as the API answers it.
fn sent(result: Result<Txid, SendError>) -> Result<Json<Value>, ApiError> {
    match result {
        Ok(txid) => Ok(Json(json!({ "txid": txid.to_hex() }))),
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
) -> Result<Json<Value>, ApiError> {
    let txid: Txid = parse_hash("txid", &body.txid)?;
    sent(s.node.bump(txid, body.fee).await?)
}

/// Body of `POST /mine`: `{"n": 3}` mines three blocks now; `{"on": true}` switches
/// continuous mining.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MineBody {
    n: Option<u64>,
    on: Option<bool>,
}

/// `POST /mine`.
pub async fn mine(
    _: Authorized,
    State(s): State<AppState>,
    ApiJson(body): ApiJson<MineBody>,
) -> Result<Json<Value>, ApiError> {
    match (body.n, body.on) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::bad_request(
            "bad_field",
            r#"give either {"n": count} or {"on": true|false}"#,
        )),
        (None, Some(on)) => {
            s.node.set_mining(on).await?;
            Ok(Json(json!({ "mining": on })))
        }
        (Some(n), None) => {
            if n == 0 || n > MAX_MINE {
                return Err(ApiError::bad_request(
                    "out_of_range",
                    format!("n must be from 1 to {MAX_MINE}, got {n}"),
                ));
            }
            let mut blocks = Vec::new();
            let mut mined = s.node.mine(n).await?;
            for _ in 0..n {
                match mined.recv().await.ok_or(Stopped)? {
                    Ok(info) => blocks.push(BlockSummary::of(&info, s.node.address_kind())),
                    Err(e) => {
                        return Err(ApiError::new(
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "mining_stopped",
                            e.to_string(),
                        ));
                    }
                }
            }
            Ok(Json(json!({ "blocks": blocks })))
        }
    }
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
) -> Result<Json<Value>, ApiError> {
    let addr: Multiaddr = body.addr.parse().map_err(|e| {
        ApiError::bad_request(
            "bad_multiaddr",
            format!("'{}' is not a multiaddr: {e}", clip(&body.addr)),
        )
    })?;
    match s.node.dial(addr).await {
        Ok(peer) => Ok(Json(json!({ "peer_id": peer.to_string() }))),
        Err(e) => Err(ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "dial_failed",
            e.to_string(),
        )),
    }
}

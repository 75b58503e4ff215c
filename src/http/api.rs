//! The reading routes (no token needed) and `POST /tx`, shaped after Esplora (chain, mempool,
//! addresses) and the beacon-node API (`/node/*`).
//!
//! The status routes (`/node/status`, `/node/syncing`, `/blocks/tip/*`) answer from the
//! status snapshot the node publishes at the end of each step, without a turn of the node's
//! actor: a dashboard crowd polling them costs the node nothing. Actions answer only once
//! their step's snapshot is out (see `settled` in the router), so a read that follows an
//! action sees it.

use super::AppState;
use super::error::Seg;
use super::error::{ApiError, ApiQuery, clip, parse_hash, parse_height};
use super::views::{
    AccountView, BlockSummary, BlockView, MempoolView, PeerView, StatusView, TreeBlock, TxView,
};
use crate::chain::{Address, BlockHash, ChainKind, MempoolError, Transaction, Txid, merkle};
use crate::node::events::TxStatus;
use crate::node::{BlockId, BlockState, NodeHandle};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

/// Blocks in one page of `/blocks`.
pub const BLOCKS_PAGE: u64 = 10;
/// Heights below the tip `/tree` answers by default.
pub const TREE_WINDOW: u64 = 50;
/// Most blocks one `/tree` answer holds.
pub const MAX_TREE: usize = 2000;

type ApiResult<T> = Result<T, ApiError>;

fn text(s: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], s).into_response()
}

/// `GET /node/health`: 200 ready, 206 syncing, 503 not ready (the node stopped).
pub async fn health(State(s): State<AppState>) -> StatusCode {
    if s.node.chain(0).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if s.node.status().syncing {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    }
}

/// `GET /node/identity`.
pub async fn identity(State(s): State<AppState>) -> Json<Value> {
    let st = s.node.status();
    Json(json!({
        "peer_id": st.peer_id.to_string(),
        "chain_id": st.chain_id.to_hex(),
        "listen_addresses": st.listen.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "reachable_addresses": st.reachable.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "address": ChainKind::of(&st.chain_id).encode(&st.address),
        "address_prefix": ChainKind::of(&st.chain_id).hrp(),
        "agent": concat!("gossipchain/", env!("CARGO_PKG_VERSION")),
    }))
}

/// `GET /node/status`: everything the REPL's `status` shows.
pub async fn status(State(s): State<AppState>) -> ApiResult<Json<StatusView>> {
    Ok(Json(status_view(&s.node)?))
}

/// The node's status as `GET /node/status` and `status` show it: the snapshot of its last
/// step, without a turn of its actor.
pub fn status_view(node: &NodeHandle) -> ApiResult<StatusView> {
    Ok(StatusView::of(&node.live_status()?, node.http_url()))
}

/// `GET /node/peers`.
pub async fn peers(State(s): State<AppState>) -> Json<Vec<PeerView>> {
    Json(peer_views(&s.node).await)
}

/// The connected peers as `GET /node/peers` and `peers` show them.
pub async fn peer_views(node: &NodeHandle) -> Vec<PeerView> {
    node.peers().await.iter().map(PeerView::of).collect()
}

/// `GET /node/syncing`, after the beacon API's shape.
pub async fn syncing(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let st = s.node.live_status()?;
    Ok(Json(json!({
        "is_syncing": st.syncing,
        "head_height": st.height,
        "head_hash": st.tip.to_hex(),
        "peers": st.peers,
        "orphans": st.orphans,
    })))
}

/// `GET /blocks/tip/height` (plain text).
pub async fn tip_height(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(text(s.node.live_status()?.height.to_string()))
}

/// `GET /blocks/tip/hash` (plain text).
pub async fn tip_hash(State(s): State<AppState>) -> ApiResult<Response> {
    Ok(text(s.node.live_status()?.tip.to_hex()))
}

/// Query of `GET /blocks`.
#[derive(Deserialize)]
pub struct BlocksQuery {
    /// How many blocks (default [`BLOCKS_PAGE`], at most [`MAX_BLOCKS`]).
    count: Option<u64>,
}

/// Most blocks one `GET /blocks?count=n` lists (as the REPL's `chain n`).
pub const MAX_BLOCKS: u64 = 10_000;

/// `GET /blocks?count=n`: the newest `n` blocks of the best chain (default a page of ten).
pub async fn blocks_tip(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<BlocksQuery>,
) -> ApiResult<Json<Vec<BlockSummary>>> {
    let count = q.count.unwrap_or(BLOCKS_PAGE);
    if count == 0 || count > MAX_BLOCKS {
        return Err(ApiError::bad_request(
            "out_of_range",
            format!("count must be from 1 to {MAX_BLOCKS}, got {count}"),
        ));
    }
    Ok(Json(chain_view(&s.node, count as usize).await?))
}

/// The newest `count` blocks of the best chain, newest first.
pub async fn chain_view(node: &NodeHandle, count: usize) -> ApiResult<Vec<BlockSummary>> {
    Ok(node
        .chain(count)
        .await?
        .iter()
        .map(|b| BlockSummary::of(b, node.address_kind()))
        .collect())
}

/// `GET /blocks/{start_height}`: ten blocks from that height down.
pub async fn blocks_from(
    State(s): State<AppState>,
    Seg(start): Seg,
) -> ApiResult<Json<Vec<BlockSummary>>> {
    let kind = s.node.address_kind();
    let start = parse_height(&start)?;
    let top = s.node.status().height;
    if start > top {
        return Err(ApiError::not_found(
            "no_such_height",
            format!("height {start} is above the tip ({top})"),
        ));
    }
    let mut out = Vec::new();
    for h in (start.saturating_sub(BLOCKS_PAGE - 1)..=start).rev() {
        if let Some(info) = s.node.block(BlockId::Height(h)).await? {
            out.push(BlockSummary::of(&info, kind));
        }
    }
    Ok(Json(out))
}

/// `GET /block/{hash}`: the block with its transactions.
pub async fn block(State(s): State<AppState>, Seg(hash): Seg) -> ApiResult<Json<BlockView>> {
    let hash: BlockHash = parse_hash("block hash", &hash)?;
    Ok(Json(block_view(&s.node, BlockId::Hash(hash)).await?))
}

/// A block with its transactions, by hash or by best-chain height, as `GET /block/{hash}`
/// and `block` show it; or why there is none.
pub async fn block_view(node: &NodeHandle, id: BlockId) -> ApiResult<BlockView> {
    if let Some(info) = node.block(id).await? {
        return Ok(BlockView::of(&info, node.address_kind()));
    }
    let hash = match id {
        BlockId::Hash(hash) => hash,
        BlockId::Height(height) => return Err(no_such_height(node, height)),
    };
    Err(match node.block_state(hash).await? {
        BlockState::Orphan => ApiError::not_found(
            "block_orphan",
            format!("block {hash} is waiting for its parent"),
        ),
        BlockState::Invalid(e) => {
            ApiError::not_found("block_invalid", format!("block {hash} was rejected: {e}"))
        }
        _ => ApiError::not_found("no_such_block", format!("no block {hash}")),
    })
}

fn no_such_height(node: &NodeHandle, height: u64) -> ApiError {
    ApiError::not_found(
        "no_such_height",
        format!(
            "no block at height {height} (the tip is at {})",
            node.status().height
        ),
    )
}

/// `GET /block-height/{height}`: the best-chain hash at a height (plain text).
pub async fn block_height(State(s): State<AppState>, Seg(height): Seg) -> ApiResult<Response> {
    let height = parse_height(&height)?;
    match s.node.block(BlockId::Height(height)).await? {
        Some(info) => Ok(text(info.hash.to_hex())),
        None => Err(no_such_height(&s.node, height)),
    }
}

/// `GET /tx/{txid}`: the transaction and where it stands.
pub async fn tx(State(s): State<AppState>, Seg(txid): Seg) -> ApiResult<Json<Value>> {
    let kind = s.node.address_kind();
    let txid: Txid = parse_hash("txid", &txid)?;
    match s.node.tx(txid).await? {
        TxStatus::Mempool(t) => Ok(Json(json!({
            "tx": TxView::transfer(txid, &t, kind),
            "status": {"state": "mempool", "confirmed": false},
        }))),
        TxStatus::Confirmed { tx, block, height } => Ok(Json(json!({
            "tx": TxView::of(txid, &tx, kind),
            "status": {
                "state": "confirmed",
                "confirmed": true,
                "block_hash": block.to_hex(),
                "block_height": height,
            },
        }))),
        TxStatus::Unknown => Err(ApiError::not_found(
            "no_such_tx",
            format!("transaction {txid} is neither in the mempool nor on the best chain"),
        )),
    }
}

/// `GET /tx/{txid}/merkle-proof`: the inclusion proof of a best-chain transaction, in
/// Esplora's shape (`block_height`, `merkle`, `pos`) for our RFC 6962 tree, with the block's
/// hash and transaction count, which a verifier of that tree needs (PROTOCOL.md §5.1).
pub async fn merkle_proof(State(s): State<AppState>, Seg(txid): Seg) -> ApiResult<Json<Value>> {
    let txid: Txid = parse_hash("txid", &txid)?;
    let (hash, height) = match s.node.tx(txid).await? {
        TxStatus::Confirmed { block, height, .. } => (block, height),
        TxStatus::Mempool(_) => {
            return Err(ApiError::not_found(
                "tx_pending",
                format!(
                    "transaction {txid} is pending in the mempool: it has no proof until it is in a block"
                ),
            ));
        }
        TxStatus::Unknown => {
            return Err(ApiError::not_found(
                "no_such_tx",
                format!("transaction {txid} is not on the best chain: no proof of it"),
            ));
        }
    };
    // The block may have left the best chain since: then the node no longer vouches for it.
    let info = s
        .node
        .block(BlockId::Hash(hash))
        .await?
        .filter(|i| i.on_best_chain)
        .ok_or_else(|| {
            ApiError::not_found(
                "no_such_tx",
                format!("transaction {txid} left the best chain in a reorganisation; ask again"),
            )
        })?;
    let txids: Vec<Txid> = info.block.txs.iter().map(|t| t.compute_txid()).collect();
    let pos = txids.iter().position(|t| *t == txid);
    let Some((pos, path)) = pos.and_then(|p| Some((p, merkle::proof(&txids, p)?))) else {
        return Err(ApiError::not_found(
            "no_such_tx",
            format!("transaction {txid} is not in block {hash}"),
        ));
    };
    Ok(Json(json!({
        "block_height": height,
        "block_hash": hash.to_hex(),
        "merkle": path.iter().map(hex::encode).collect::<Vec<_>>(),
        "pos": pos,
        "tx_count": txids.len(),
    })))
}

/// Most headers one `/headers` answer holds.
pub const MAX_HEADERS: u64 = 500;

/// Query of `/headers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersQuery {
    /// First height (default 0, genesis).
    from: Option<u64>,
    /// How many (default and most [`MAX_HEADERS`]).
    count: Option<u64>,
}

/// `GET /headers?from=H&count=N`: the best chain's headers from height H up, each as the hex
/// of its 96 bytes (PROTOCOL.md §2), for a client that checks the chain itself (proof of work,
/// linkage). Fewer than N past the tip, or when the blocks are heavy: ask again from where the
/// answer ends.
pub async fn headers(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<HeadersQuery>,
) -> ApiResult<Json<Value>> {
    let from = q.from.unwrap_or(0);
    let count = q.count.unwrap_or(MAX_HEADERS);
    if count == 0 || count > MAX_HEADERS {
        return Err(ApiError::bad_request(
            "out_of_range",
            format!("count must be from 1 to {MAX_HEADERS}, got {count}"),
        ));
    }
    let tip = s.node.live_status()?.height;
    let headers = s.node.headers(from, count).await?;
    Ok(Json(json!({
        "from": from,
        "tip_height": tip,
        "headers": headers.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}

/// The most hex digits a `POST /tx` body may hold (a transfer is 153 bytes).
const MAX_TX_HEX: usize = 2 * crate::chain::tx::TRANSFER_LEN;

/// `POST /tx`: a signed transfer as hex of its PROTOCOL.md encoding, as `text/plain`. Answers
/// the txid (plain text), or why the node refused it.
pub async fn post_tx(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("text/plain") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the transfer as hex with Content-Type: text/plain (got '{}'), e.g. curl -H 'Content-Type: text/plain' --data-binary @tx.hex",
                clip(ctype)
            ),
        ));
    }
    let body = body.map_err(|r| {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(r.status(), code, r.body_text())
    })?;
    let hex_text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("bad_hex", "the body is not text"))?
        .trim();
    if hex_text.len() > MAX_TX_HEX {
        return Err(ApiError::bad_request(
            "bad_tx",
            format!(
                "a transfer is {} hex digits; got {}",
                MAX_TX_HEX,
                hex_text.len()
            ),
        ));
    }
    let bytes = hex::decode(hex_text)
        .map_err(|e| ApiError::bad_request("bad_hex", format!("the body is not hex: {e}")))?;
    let tx = match Transaction::decode(&bytes) {
        Ok(Transaction::Transfer(t)) => t,
        Ok(Transaction::Coinbase(_)) => {
            return Err(ApiError::bad_request(
                "bad_tx",
                "a coinbase cannot be submitted; only miners create them, inside a block",
            ));
        }
        Err(e) => {
            return Err(ApiError::bad_request(
                "bad_tx",
                format!("not a transfer in the PROTOCOL.md encoding: {e}"),
            ));
        }
    };
    match s.node.submit(tx).await? {
        Ok(txid) => Ok(text(txid.to_hex())),
        Err(e) => Err(mempool_error(e)),
    }
}

/// A mempool refusal as an API error (422, the code names the rule: the error's
/// [`MempoolError::label`], the same name the metrics use).
pub fn mempool_error(e: MempoolError) -> ApiError {
    ApiError::unprocessable(e.label(), e.to_string())
}

/// `GET /address/{address}`: balance, nonce and what pending transfers spend.
pub async fn address(State(s): State<AppState>, Seg(address): Seg) -> ApiResult<Json<AccountView>> {
    let address: Address =
        s.node.address_kind().parse(&address).map_err(|e| {
            ApiError::bad_request("bad_address", format!("'{}': {e}", clip(&address)))
        })?;
    Ok(Json(account_view(&s.node, address).await?))
}

/// An account as `GET /address/{address}` and `balance` show it.
pub async fn account_view(node: &NodeHandle, address: Address) -> ApiResult<AccountView> {
    let kind = node.address_kind();
    let (account, pending_spend) = node.balance(address).await?;
    let mempool = node.mempool().await?;
    let pending: Vec<TxView> = mempool
        .iter()
        .filter(|(_, t)| t.from == address || t.to == address)
        .map(|(id, t)| TxView::transfer(*id, t, kind))
        .collect();
    let next_nonce = mempool
        .iter()
        .filter(|(_, t)| t.from == address)
        .map(|(_, t)| t.nonce + 1)
        .max()
        .unwrap_or(account.nonce)
        .max(account.nonce);
    Ok(AccountView {
        address: kind.encode(&address),
        balance: account.balance,
        nonce: account.nonce,
        next_nonce,
        pending_spend,
        pending,
    })
}

/// `GET /mempool`: its size and fees.
pub async fn mempool(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    let txs = s.node.mempool().await?;
    let total_fee: u64 = txs.iter().map(|(_, t)| t.fee).fold(0, u64::saturating_add);
    Ok(Json(json!({
        "count": txs.len(),
        "bytes": txs.len() * crate::chain::tx::TRANSFER_LEN,
        "total_fee": total_fee,
    })))
}

/// `GET /mempool/txids`, highest fee first.
pub async fn mempool_txids(State(s): State<AppState>) -> ApiResult<Json<Vec<String>>> {
    let txs = s.node.mempool().await?;
    Ok(Json(txs.iter().map(|(id, _)| id.to_hex()).collect()))
}

/// Most transfers one `/mempool/txs` answer lists.
pub const MEMPOOL_PAGE: usize = 500;

/// `GET /mempool/txs`: the pending transfers, highest fee first (at most [`MEMPOOL_PAGE`]).
pub async fn mempool_txs(State(s): State<AppState>) -> ApiResult<Json<Vec<TxView>>> {
    Ok(Json(mempool_view(&s.node).await?.txs))
}

/// The mempool as `mempool` shows it: its size and its first [`MEMPOOL_PAGE`] transfers.
pub async fn mempool_view(node: &NodeHandle) -> ApiResult<MempoolView> {
    let kind = node.address_kind();
    let txs = node.mempool().await?;
    Ok(MempoolView {
        count: txs.len(),
        txs: txs
            .iter()
            .take(MEMPOOL_PAGE)
            .map(|(id, t)| TxView::transfer(*id, t, kind))
            .collect(),
    })
}

/// Query of `/tree`.
#[derive(Deserialize)]
pub struct TreeQuery {
    /// Lowest height (default: [`TREE_WINDOW`] below the tip).
    from_height: Option<u64>,
}

/// `GET /tree?from_height=H`: recent blocks of the tree, side branches included, each with
/// when it reached this node and from which peer; `seq` is the number (the SSE `id`) of the
/// last event it reflects, so a page applies the events numbered after it and no others.
pub async fn tree(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<TreeQuery>,
) -> ApiResult<Json<Value>> {
    let kind = s.node.address_kind();
    // The window's floor may come from a status a step old (a few blocks more, no harm); the
    // tip, the blocks and the event number come from one answer of the node, one moment.
    let from = q
        .from_height
        .unwrap_or_else(|| s.node.status().height.saturating_sub(TREE_WINDOW));
    let t = s.node.tree(from, MAX_TREE).await?;
    Ok(Json(json!({
        "seq": t.seq,
        "tip": t.tip.to_hex(),
        "height": t.height,
        "blocks": t.blocks.iter().map(|(a, best)| TreeBlock::of(a, *best, kind)).collect::<Vec<_>>(),
    })))
}

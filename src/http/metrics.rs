//! `GET /metrics`: the node's and libp2p's metrics in the Prometheus text format (OpenMetrics
//! 1.0, which Prometheus scrapes natively). No token: like the other reading routes, it shows
//! nothing secret.

use super::AppState;
use super::error::ApiError;
use crate::metrics::FoundByLabel;
use crate::net::Discovery;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const FOUND_BY: [Discovery; 5] = [
    Discovery::Mdns,
    Discovery::Bootstrap,
    Discovery::Dial,
    Discovery::Inbound,
    Discovery::Kad,
];

/// `GET /metrics`.
pub async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    s.node.chain(0).await?;
    let m = s.node.metrics();
    // The gauges the network and the chain's pace know, as of now.
    let peers = s.node.peers().await;
    for how in FOUND_BY {
        let n = peers.iter().filter(|p| p.found_by == how).count();
        m.peers
            .get_or_create(&FoundByLabel {
                found_by: how.to_string(),
            })
            .set(n as i64);
    }
    let status = s.node.status();
    m.network_hash_rate
        .set(status.pace.hash_rate.unwrap_or(0.0));
    m.height.set(status.height as i64);
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], m.encode()).into_response())
}

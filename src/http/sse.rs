//! `GET /events`: Server-Sent Events `block`, `tip` (with the reorganisation depth), `tx` and
//! `peer`, each with JSON data and the event's number as its SSE `id` (1, 2, … since the node
//! started; `/tree` says up to which number it reflects); a `lagged` event tells a client that
//! fell behind how many it missed (it should then re-read what it shows). The number of open
//! streams is bounded.

use super::AppState;
use super::error::ApiError;
use super::views;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Most event streams open at once; more are refused with 503.
pub const MAX_STREAMS: usize = 512;

/// Counts an open stream while it lives.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `GET /events`.
pub async fn events(
    State(s): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let open = s.streams.fetch_add(1, Ordering::Relaxed);
    let slot = Slot(s.streams.clone());
    if open >= MAX_STREAMS {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("at most {MAX_STREAMS} event streams may be open at once"),
        ));
    }
    let rx = s.node.subscribe();
    let hello = Event::default()
        .event("hello")
        .data(s.node.status().height.to_string());
    let stream = BroadcastStream::new(rx).map(move |item| {
        let _keep = &slot;
        Ok(match item {
            Ok(e) => {
                let (name, data) = views::event(&e.event);
                Event::default()
                    .event(name)
                    .id(e.seq.to_string())
                    .data(data.to_string())
            }
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Event::default().event("lagged").data(n.to_string())
            }
        })
    });
    let mut stopping = s.stopping.clone();
    let stream = futures::stream::once(async move { Ok(hello) })
        .chain(stream)
        .take_until(async move {
            let _ = stopping.wait_for(|v| *v).await;
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

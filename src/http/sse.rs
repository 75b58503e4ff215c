//! `GET /events`: Server-Sent Events `block`, `tip` (with the reorganisation depth), `tx` and
//! `peer`, each with JSON data and the event's number as its SSE `id` (1, 2, … since the node
//! started; `/tree` says up to which number it reflects); a `lagged` event tells a client that
//! fell behind how many it missed (it should then re-read what it shows). The number of open
//! streams is bounded.
//!
//! One task renders each node event to its SSE form once ([`spawn_renderer`]); the streams
//! share the rendered text. Events reach the streams [`BATCH_DELAY`] after the first of a
//! batch, so that the node relays a block before it writes to its dashboards.

use super::AppState;
use super::error::ApiError;
use super::views;
use crate::node::NodeHandle;
use crate::node::events::EVENT_CAPACITY;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// Most event streams open at once; more are refused with 503.
pub const MAX_STREAMS: usize = 512;

/// A node event as every stream sends it.
#[derive(Clone, Debug)]
pub enum Rendered {
    /// An event: its SSE name, number and JSON data.
    Event {
        /// `block`, `tip`, `tx` or `peer`.
        name: &'static str,
        /// Its number (the SSE `id`).
        seq: u64,
        /// Its JSON.
        data: Arc<str>,
    },
    /// The renderer itself fell behind the node by this many events.
    Lagged(u64),
}

/// How long the first event after a quiet spell waits before the streams get it, together
/// with every event that follows it meanwhile. A block's events come the moment the node
/// accepts it, which is also the moment it relays the block to its peers; writing to a
/// hundred streams then costs about a millisecond of CPU, mostly in the kernel where the
/// scheduler does not preempt it (the server's idle class does not help there), and would
/// delay the relay (`cargo bench --bench http`: a block's propagation p99 2.2x its idle
/// value with 100 streams open, 1.1x with this wait). The relay takes well under a
/// millisecond, so the streams are written once it is done; a person watching a dashboard
/// does not see 5 ms, and a burst of events (a sync, a flood of transfers) goes out in one
/// write per stream instead of one per event.
pub const BATCH_DELAY: Duration = Duration::from_millis(5);

/// Renders the node's events, each once, for all the streams, in batches ([`BATCH_DELAY`]);
/// ends at `stopping`.
pub fn spawn_renderer(
    node: &NodeHandle,
    mut stopping: watch::Receiver<bool>,
) -> broadcast::Sender<Rendered> {
    let (tx, _) = broadcast::channel(EVENT_CAPACITY);
    let mut rx = node.subscribe();
    let kind = node.address_kind();
    let out = tx.clone();
    tokio::spawn(async move {
        loop {
            let first = tokio::select! {
                item = rx.recv() => item,
                _ = stopping.wait_for(|s| *s) => return,
            };
            let mut batch = vec![first];
            if !matches!(batch[0], Err(broadcast::error::RecvError::Closed)) {
                tokio::select! {
                    _ = tokio::time::sleep(BATCH_DELAY) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
                loop {
                    match rx.try_recv() {
                        Ok(e) => batch.push(Ok(e)),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            batch.push(Err(broadcast::error::RecvError::Lagged(n)))
                        }
                        Err(broadcast::error::TryRecvError::Closed) => {
                            batch.push(Err(broadcast::error::RecvError::Closed));
                            break;
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                    }
                }
            }
            for item in batch {
                // No stream open: nothing to render for (a node under a load of transfers
                // has an event for each of them).
                if out.receiver_count() == 0
                    && !matches!(item, Err(broadcast::error::RecvError::Closed))
                {
                    continue;
                }
                let rendered = match item {
                    Ok(e) => {
                        let (name, data) = views::event(&e.event, kind);
                        Rendered::Event {
                            name,
                            seq: e.seq,
                            data: data.to_string().into(),
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => Rendered::Lagged(n),
                    // Everything before it has gone out.
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // No stream open is fine.
                let _ = out.send(rendered);
            }
        }
    });
    tx
}

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
    let rx = s.events.subscribe();
    let hello = Event::default()
        .event("hello")
        .data(s.node.status().height.to_string());
    let stream = BroadcastStream::new(rx).map(move |item| {
        let _keep = &slot;
        Ok(match item {
            Ok(Rendered::Event { name, seq, data }) => Event::default()
                .event(name)
                .id(seq.to_string())
                .data(&*data),
            Ok(Rendered::Lagged(n)) | Err(BroadcastStreamRecvError::Lagged(n)) => {
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

//! The server's two lanes: which thread answers a request, at which priority.
//!
//! The **prompt lane** is the thread that accepts connections and reads requests. It runs at
//! the node's own priority and answers, itself, the requests that cost next to nothing and
//! that someone waits on: the reads of the status snapshot (`/node/status`, `/node/syncing`,
//! `/node/identity`, `/node/health`, `/blocks/tip/height`, `/blocks/tip/hash`) and `POST /tx`
//! (a 153-byte transfer decoded and handed to the node's batch admission, which verifies it
//! as it verifies one from gossip). In the idle class these waited seconds whenever the
//! node's threads kept both cores busy validating a load of transfers.
//!
//! The **idle lane** is a second thread in Linux's idle scheduling class
//! ([`crate::priority::idle_this_thread`]): every other route (block and mempool reads, the
//! tree, metrics, pages, actions, the event streams) runs its handler there, and a streamed
//! answer (`/events`) is also produced there (the prompt lane only writes its bytes to the
//! socket), so that a crowd of dashboards or a script reading flat out gets only the CPU the
//! node leaves.
//!
//! The prompt lane's own CPU is bounded: once its thread has used [`PROMPT_BUDGET`] of CPU in
//! a [`PROMPT_WINDOW`] (a quarter of a core), the rest of that window's cheap requests go to
//! the idle lane too. A flood of status reads or transfers therefore takes at most that share
//! from the node, and is still answered, at the idle lane's pace. `GET /metrics` counts the
//! requests each lane handled (`gossipchain_http_requests_total{lane}`).

use super::AppState;
use crate::metrics::LaneLabel;
use crate::node::Stopped;
use axum::body::Body;
use axum::body::HttpBody as _;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::cell::RefCell;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The span over which the prompt lane's CPU is counted.
pub const PROMPT_WINDOW: Duration = Duration::from_millis(100);
/// The CPU the prompt lane's thread may use in one [`PROMPT_WINDOW`] before cheap requests go
/// to the idle lane for the rest of it: a quarter of a core, about 5 000 status reads or
/// transfers a second on a 2020s server core.
pub const PROMPT_BUDGET: Duration = Duration::from_millis(25);
/// Chunks of a streamed answer that may wait between the idle lane, which produces them, and
/// the connection, which writes them.
const STREAM_CHUNKS: usize = 16;

/// Whether a request is one the prompt lane answers (see the module's doc): a read of the
/// status snapshot, or `POST /tx`.
pub fn is_prompt(method: &Method, path: &str) -> bool {
    if method == Method::GET || method == Method::HEAD {
        matches!(
            path,
            "/node/status"
                | "/node/syncing"
                | "/node/identity"
                | "/node/health"
                | "/blocks/tip/height"
                | "/blocks/tip/hash"
        )
    } else {
        method == Method::POST && path == "/tx"
    }
}

/// What the prompt lane's thread has spent in the current window.
#[derive(Debug, Default)]
pub struct Budget {
    /// When the window started, and the thread's CPU time then.
    window: Option<(Instant, Duration)>,
}

impl Budget {
    /// Whether a cheap request may be answered on the prompt lane at `now`, with the thread
    /// having used `cpu` of CPU in all: yes unless it used [`PROMPT_BUDGET`] or more since
    /// the current window began. A window begins with the first request after the last one
    /// ended.
    pub fn allows(&mut self, now: Instant, cpu: Duration) -> bool {
        match self.window {
            Some((start, at)) if now.saturating_duration_since(start) < PROMPT_WINDOW => {
                cpu.saturating_sub(at) < PROMPT_BUDGET
            }
            _ => {
                self.window = Some((now, cpu));
                true
            }
        }
    }
}

thread_local! {
    /// The budget of the thread the prompt lane runs on (the middleware runs only there).
    static BUDGET: RefCell<Budget> = RefCell::default();
}

/// CPU time the calling thread has used, where the system tells it.
fn thread_cpu() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec the call writes to; CLOCK_THREAD_CPUTIME_ID is the
        // calling thread's CPU clock (POSIX), readable by the thread itself.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    None
}

/// Whether the prompt lane's thread is within its budget (always, where its CPU time cannot
/// be read).
fn within_budget() -> bool {
    let Some(cpu) = thread_cpu() else {
        return true;
    };
    BUDGET.with(|b| b.borrow_mut().allows(Instant::now(), cpu))
}

/// Aborts the idle lane's task when the request is dropped (the client went away).
struct AbortOnDrop(JoinHandle<Response>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The middleware, on the prompt lane: answers a cheap request there while the budget lasts,
/// and hands every other request to the idle lane, waiting for its answer.
pub async fn dispatch(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let count = |lane| {
        s.node
            .metrics()
            .http_requests
            .get_or_create(&LaneLabel { lane })
            .inc();
    };
    if is_prompt(request.method(), request.uri().path()) && within_budget() {
        count("prompt");
        return next.run(request).await;
    }
    count("idle");
    let mut task = AbortOnDrop(
        s.idle
            .spawn(async move { produced_here(next.run(request).await) }),
    );
    match (&mut task.0).await {
        Ok(response) => response,
        // A handler's panic ends its connection, as it would on the prompt lane.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The idle lane is gone: the server is stopping.
        Err(_) => super::error::ApiError::from(Stopped).into_response(),
    }
}

/// A streamed answer's body produced by a task of the current runtime (the idle lane's), which
/// hands the connection its chunks; an answer already in memory as it is.
fn produced_here(response: Response) -> Response {
    if response.body().size_hint().exact().is_some() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        while let Some(chunk) = chunks.next().await {
            // The connection closed.
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    Response::from_parts(
        parts,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reads_and_transfers_are_prompt_and_the_rest_idle() {
        for path in [
            "/node/status",
            "/node/syncing",
            "/node/identity",
            "/node/health",
            "/blocks/tip/height",
            "/blocks/tip/hash",
        ] {
            assert!(is_prompt(&Method::GET, path), "{path}");
            assert!(!is_prompt(&Method::POST, path), "POST {path}");
        }
        assert!(is_prompt(&Method::POST, "/tx"));
        for (method, path) in [
            (Method::GET, "/tx"),
            (Method::GET, "/blocks"),
            (Method::GET, "/events"),
            (Method::GET, "/metrics"),
            (Method::GET, "/mempool"),
            (Method::GET, "/node/status/"),
            (Method::POST, "/wallet/send"),
            (Method::POST, "/mine"),
            (Method::PUT, "/tx"),
        ] {
            assert!(!is_prompt(&method, path), "{method} {path}");
        }
    }

    #[test]
    fn the_budget_holds_for_a_window_then_starts_again() {
        let mut b = Budget::default();
        let t0 = Instant::now();
        let cpu0 = Duration::from_secs(3);
        assert!(b.allows(t0, cpu0));
        let half = PROMPT_WINDOW / 2;
        assert!(b.allows(t0 + half, cpu0 + PROMPT_BUDGET - Duration::from_micros(1)));
        assert!(!b.allows(t0 + half, cpu0 + PROMPT_BUDGET));
        assert!(!b.allows(t0 + PROMPT_WINDOW - Duration::from_micros(1), cpu0 * 2));
        // A new window counts from the CPU used when it begins.
        let t1 = t0 + PROMPT_WINDOW;
        assert!(b.allows(t1, cpu0 * 2));
        assert!(b.allows(t1 + half, cpu0 * 2 + PROMPT_BUDGET / 2));
        assert!(!b.allows(t1 + half, cpu0 * 2 + PROMPT_BUDGET));
    }
}

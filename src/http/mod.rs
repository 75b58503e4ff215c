//! The HTTP interface: a JSON API shaped after Esplora and the beacon-node API, Server-Sent
//! Events, the action token. It is an edge like the REPL: every route calls the node through
//! its [`NodeHandle`] and never reaches into its state.
//!
//! - [`api`]: reading routes and `POST /tx`; [`actions`]: the token-gated ones.
//! - [`sse`]: `GET /events`; [`auth`]: the `.cookie` token; [`error`]: `{code, message}`.
//! - [`pages`]: the dashboard and the wallet page, embedded; [`metrics`]: `GET /metrics`.
//!
//! The server runs on two threads of its own, each with its tokio runtime ([`lanes`]): the
//! prompt lane, at the node's priority, accepts connections, reads requests and answers those
//! that cost next to nothing (the status snapshot, `POST /tx`) within a quarter of a core; the
//! idle lane, in Linux's idle scheduling class ([`crate::priority::idle_this_thread`]), runs
//! every other handler and produces the event streams (the prompt lane writes them), so that a crowd of dashboards, or a script reading
//! flat out, gets what CPU the node leaves, gives its core up at once to a node thread that
//! wakes, and never queues ahead of block relay on the node's runtime. Every request still
//! reaches the node only through its handle (channels work across runtimes).
//!
//! Safety by default: loopback only, request bodies of at most 16 KiB, a 10 s timeout on every
//! request but the event stream and mining, no CORS unless origins are configured, and only
//! requests naming the server by an IP address or `localhost` ([`host`], against DNS
//! rebinding).

pub mod actions;
pub mod api;
pub mod auth;
pub mod error;
pub mod host;
pub mod lanes;
pub mod metrics;
pub mod pages;
pub mod sse;
pub mod views;

use crate::node::NodeHandle;
use auth::Cookie;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::routing::{get, post};
use error::ApiError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

/// The default address: loopback, port 5000 (the Flask tutorials' port, so their users find it
/// where they expect). When it is taken (another node on this machine), the next free port up
/// to [`DEFAULT_PORT`] + 9 is used, then any free port.
pub const DEFAULT_PORT: u16 = 5000;
/// The default listening address.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT);
/// The file in the data dir that records where the API listens (`127.0.0.1:5000`, one line),
/// so that `gossipchain <command>` finds the node of a data dir; written at start, removed at
/// shutdown (a node killed leaves it: the client then finds nothing answering there).
pub const ADDR_FILE: &str = "http.addr";
/// Largest request body accepted.
pub const MAX_BODY: usize = 16 * 1024;
/// Longest a request may take (the event stream and `POST /mine` excepted).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How to serve.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Whether another port may be taken when `addr` is in use (true for the default address
    /// only: an address the user chose is used or the start fails).
    pub fallback: bool,
    /// Origins allowed by CORS (none: no CORS headers at all).
    pub cors: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR,
            fallback: true,
            cors: Vec::new(),
        }
    }
}

/// What the routes share.
#[derive(Clone)]
pub struct AppState {
    /// The node.
    pub node: NodeHandle,
    /// The action token.
    pub token: Arc<str>,
    /// Open event streams.
    pub streams: Arc<AtomicUsize>,
    /// Becomes true at shutdown: event streams end, so the server can finish.
    pub stopping: watch::Receiver<bool>,
    /// The node's events, rendered once for every stream ([`sse::spawn_renderer`]).
    pub events: tokio::sync::broadcast::Sender<sse::Rendered>,
    /// The idle lane's runtime, where every request but the prompt lane's is handled
    /// ([`lanes`]).
    pub idle: tokio::runtime::Handle,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error("cannot listen for HTTP on {addr}: {cause}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        cause: std::io::Error,
    },
    /// The cookie file or the address file could not be written.
    #[error("cannot write {path}: {cause}")]
    Cookie {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A thread or runtime of the server could not be started.
    #[error("cannot start the HTTP server's {what}: {cause}")]
    Thread {
        /// Which.
        what: &'static str,
        /// Why.
        cause: std::io::Error,
    },
    /// A CORS origin is not a valid header value.
    #[error("--http-cors: '{0}' is not an origin like http://localhost:3000")]
    Cors(String),
}

/// A running server.
pub struct HttpServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The token actions need.
    pub cookie: Cookie,
    stop: watch::Sender<bool>,
    /// Answered (or dropped) when the server's thread has finished serving.
    done: tokio::sync::oneshot::Receiver<()>,
    /// The [`ADDR_FILE`] written at start.
    addr_file: PathBuf,
}

impl HttpServer {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The dashboard URL with the token in its fragment (the browser keeps the fragment to
    /// itself: it is never sent to the server or written to a log there).
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/#token={}", self.addr, self.cookie.token)
    }

    /// Stops accepting, ends the event streams, waits for open requests, removes the cookie.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(Duration::from_secs(5), self.done)
            .await
            .is_err()
        {
            tracing::warn!("HTTP requests still open after 5 s; closing them");
        }
        self.cookie.remove();
        if std::fs::read_to_string(&self.addr_file).is_ok_and(|a| a.trim() == self.addr.to_string())
        {
            let _ = std::fs::remove_file(&self.addr_file);
        }
    }
}

/// Writes `addr` to `dir/`[`ADDR_FILE`], whole or not at all (written beside, then renamed).
fn record_addr(dir: &Path, addr: SocketAddr) -> std::io::Result<PathBuf> {
    let path = dir.join(ADDR_FILE);
    let tmp = dir.join(format!("{ADDR_FILE}.tmp"));
    std::fs::write(&tmp, format!("{addr}\n"))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

async fn bind(config: &HttpConfig) -> Result<TcpListener, HttpError> {
    let first = TcpListener::bind(config.addr).await;
    let err = match first {
        Ok(l) => return Ok(l),
        Err(e) => e,
    };
    if !config.fallback || err.kind() != std::io::ErrorKind::AddrInUse {
        return Err(HttpError::Bind {
            addr: config.addr,
            cause: err,
        });
    }
    let ip = config.addr.ip();
    let base = config.addr.port();
    for port in (1..10).filter_map(|i| base.checked_add(i)).chain([0]) {
        if let Ok(l) = TcpListener::bind(SocketAddr::new(ip, port)).await {
            return Ok(l);
        }
    }
    Err(HttpError::Bind {
        addr: config.addr,
        cause: err,
    })
}

/// The router over `state` (every route, its limits and error answers).
pub fn router(state: AppState, cors: Option<CorsLayer>) -> Router {
    let timed = Router::new()
        .route("/node/health", get(api::health))
        .route("/node/identity", get(api::identity))
        .route("/node/status", get(api::status))
        .route("/node/peers", get(api::peers))
        .route("/node/syncing", get(api::syncing))
        .route("/node/dial", post(actions::dial))
        .route("/node/sync", post(actions::sync))
        .route("/blocks", get(api::blocks_tip))
        .route("/blocks/tip/height", get(api::tip_height))
        .route("/blocks/tip/hash", get(api::tip_hash))
        .route("/blocks/{start_height}", get(api::blocks_from))
        .route("/block/{hash}", get(api::block))
        .route("/block-height/{height}", get(api::block_height))
        .route("/tx", post(api::post_tx))
        .route("/tx/{txid}", get(api::tx))
        .route("/address/{address}", get(api::address))
        .route("/mempool", get(api::mempool))
        .route("/mempool/txids", get(api::mempool_txids))
        .route("/mempool/txs", get(api::mempool_txs))
        .route("/tree", get(api::tree))
        .route("/metrics", get(metrics::metrics))
        .route("/wallet/send", post(actions::send))
        .route("/wallet/bump", post(actions::bump))
        .route("/tx/{txid}/merkle-proof", get(api::merkle_proof))
        .route("/headers", get(api::headers))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    let untimed = Router::new()
        .route("/events", get(sse::events))
        .route("/mine", post(actions::mine));
    let app = timed
        .merge(untimed)
        .merge(pages::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), settled))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            lanes::dispatch,
        ))
        .layer(axum::middleware::from_fn(host::check))
        .with_state(state);
    match cors {
        Some(c) => app.layer(c),
        None => app,
    }
}

/// Holds the answer to a POST (an action, a transfer) until the node has finished the step
/// that carried it out: one more turn of the node's actor, which comes after that step's
/// status snapshot. The status routes read that snapshot without asking the node, so a client
/// that mines, sends or dials and then reads sees what it did.
async fn settled(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let post = request.method() == Method::POST;
    let response = next.run(request).await;
    if post {
        // A stopped node has nothing more to publish; the answer stands as it is.
        let _ = s.node.chain(0).await;
    }
    response
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        "no_such_route",
        format!("no route {}", error::clip(uri.path())),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", error::clip(uri.path())),
    )
}

fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, HttpError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let list = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).map_err(|_| HttpError::Cors(o.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
    ))
}

/// Binds, writes the token file in `data_dir` and serves on two threads of its own (the
/// [`lanes`]).
pub async fn start(
    node: NodeHandle,
    config: HttpConfig,
    data_dir: &Path,
) -> Result<HttpServer, HttpError> {
    let cors = cors_layer(&config.cors)?;
    let listener = bind(&config).await?;
    let addr = listener.local_addr().map_err(|cause| HttpError::Bind {
        addr: config.addr,
        cause,
    })?;
    let cookie = Cookie::create(data_dir).map_err(|cause| HttpError::Cookie {
        path: data_dir.join(auth::COOKIE_FILE),
        cause,
    })?;
    let addr_file = record_addr(data_dir, addr).map_err(|cause| HttpError::Cookie {
        path: data_dir.join(ADDR_FILE),
        cause,
    })?;
    // The server's own runtimes and threads (see the module's doc): the listener moves to the
    // prompt lane's.
    let runtime = |what| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|cause| HttpError::Thread { what, cause })
    };
    let (prompt, idle) = (runtime("prompt lane")?, runtime("idle lane")?);
    let listener = listener
        .into_std()
        .and_then(|l| {
            let _in = prompt.enter();
            TcpListener::from_std(l)
        })
        .map_err(|cause| HttpError::Bind {
            addr: config.addr,
            cause,
        })?;
    let (stop, stopping) = watch::channel(false);
    let (done_tx, done) = tokio::sync::oneshot::channel();
    // The idle lane runs until the prompt lane has answered its last request.
    let (served_tx, served) = tokio::sync::oneshot::channel::<()>();
    let state = AppState {
        // Rendering every event of the node is the idle lane's work.
        events: {
            let _in = idle.enter();
            sse::spawn_renderer(&node, stopping.clone())
        },
        node: node.clone(),
        token: cookie.token.as_str().into(),
        streams: Arc::default(),
        stopping: stopping.clone(),
        idle: idle.handle().clone(),
    };
    std::thread::Builder::new()
        .name("http-idle".into())
        .spawn(move || {
            crate::priority::idle_this_thread("HTTP idle lane");
            idle.block_on(async move {
                let _ = served.await;
            });
        })
        .map_err(|cause| HttpError::Thread {
            what: "idle lane",
            cause,
        })?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            prompt.block_on(async move {
                let app = router(state, cors);
                let mut on_stop = stopping;
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = on_stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!("HTTP server failed: {e}");
                }
            });
            drop(served_tx);
            let _ = done_tx.send(());
        })
        .map_err(|cause| HttpError::Thread {
            what: "prompt lane",
            cause,
        })?;
    let server = HttpServer {
        addr,
        cookie,
        stop,
        done,
        addr_file,
    };
    node.set_http_url(server.url());
    if addr != config.addr && config.addr.port() != 0 {
        tracing::info!(
            "HTTP API on {} ({} is taken, probably by another node on this machine)",
            server.url(),
            config.addr
        );
    } else {
        tracing::info!("HTTP API on {}", server.url());
    }
    if !addr.ip().is_loopback() {
        tracing::warn!(
            "the HTTP API listens beyond loopback ({addr}): anyone who can reach it reads the node, and anyone with the token spends its coins"
        );
    }
    tracing::info!("dashboard: {}", server.dashboard_url());
    Ok(server)
}

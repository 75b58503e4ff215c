//! The dashboard (`/`) and the wallet page (`/wallet`), every asset embedded in the binary: no
//! CDN, no build step, works offline. The pages only call the public API, like any client.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("assets/index.html");
const WALLET: &str = include_str!("assets/wallet.html");
const STYLE: &str = include_str!("assets/style.css");
const COMMON_JS: &str = include_str!("assets/common.js");
const TREE_JS: &str = include_str!("assets/tree.js");
const APP_JS: &str = include_str!("assets/app.js");
const WALLET_JS: &str = include_str!("assets/wallet.js");

/// The BIP 39 English word list, one word a line, for the wallet page's backup words: the
/// list of the `bip39` crate that `gossipchain wallet` uses, so both make the same words.
fn bip39_english() -> &'static str {
    static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LIST.get_or_init(|| bip39::Language::English.word_list().join("\n") + "\n")
}

/// A page may load only what this node serves, and nothing may frame it.
const CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The page routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { asset(HTML, INDEX) }))
        .route("/wallet", get(|| async { asset(HTML, WALLET) }))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/assets/common.js", get(|| async { asset(JS, COMMON_JS) }))
        .route("/assets/tree.js", get(|| async { asset(JS, TREE_JS) }))
        .route("/assets/app.js", get(|| async { asset(JS, APP_JS) }))
        .route("/assets/wallet.js", get(|| async { asset(JS, WALLET_JS) }))
        .route(
            "/assets/bip39-english.txt",
            get(|| async { asset("text/plain; charset=utf-8", bip39_english()) }),
        )
}

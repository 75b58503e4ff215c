//! The `Host` check against DNS rebinding: a page of another site can have its own name resolve
//! to 127.0.0.1 and then call this API as if it were that site (the browser sends
//! `Host: evil.example:5000`). Only requests naming the server by an IP address or `localhost`
//! are answered; every other name gets a 403 with a JSON error. A request without a `Host`
//! (not a browser's) is answered.

use super::error::{ApiError, clip};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;

/// Whether `host` (a `Host` header: a name or address, with or without a port) names this
/// server in a way no other site can: an IP literal, `localhost` or a `*.localhost` name
/// (which browsers resolve to loopback themselves, RFC 6761).
pub fn allowed(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        match rest.split_once(']') {
            Some((v6, tail)) if tail.is_empty() || tail.starts_with(':') => {
                return v6.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost")
}

/// The middleware.
pub async fn check(request: Request, next: Next) -> Response {
    if let Some(value) = request.headers().get(header::HOST) {
        let ok = value.to_str().map(allowed).unwrap_or(false);
        if !ok {
            let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "host_not_allowed",
                format!(
                    "Host '{}' is not an IP address or localhost: name this node by its address (a guard against DNS rebinding)",
                    clip(&shown)
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn ip_literals_and_localhost_pass_other_names_do_not() {
        for ok in [
            "127.0.0.1",
            "127.0.0.1:5000",
            "10.0.0.7:5001",
            "[::1]:5000",
            "[::1]",
            "localhost",
            "LOCALHOST:5000",
            "node.localhost:80",
            "localhost.:5000",
        ] {
            assert!(allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:5000",
            "127.0.0.1.evil.example:5000",
            "localhost.evil.example",
            "[::1",
            "[::1]x",
            "[evil]:80",
            "127.0.0.1:port",
            "",
        ] {
            assert!(!allowed(bad), "{bad}");
        }
    }
}

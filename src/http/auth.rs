//! The action token, after bitcoind's `.cookie`: a fresh random token at every start, written
//! to `<data dir>/.cookie` with mode 0600 (so only the user running the node, and whoever can
//! read the data dir, may act), removed at shutdown. Actions need it as
//! `Authorization: Bearer <token>`; reading routes do not.

use super::AppState;
use super::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The cookie file's name in the data dir.
pub const COOKIE_FILE: &str = ".cookie";

/// A token and the file that holds it.
#[derive(Clone, Debug)]
pub struct Cookie {
    /// 64 hex digits.
    pub token: String,
    /// Where it is written.
    pub path: PathBuf,
}

impl Cookie {
    /// Makes a new token and writes it to `dir/.cookie` (mode 0600, replacing an old one).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let bytes: [u8; 32] = rand::random();
        let token = hex::encode(bytes);
        let path = dir.join(COOKIE_FILE);
        // Written beside and renamed, so a reader never sees a half-written token, and created
        // 0600 from the start, so it is never readable by others even for a moment.
        let tmp = dir.join(".cookie.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(Self { token, path })
    }

    /// Removes the file (at shutdown), if it still holds this token.
    pub fn remove(&self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t.trim() == self.token) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Proof that the request carried the token.
pub struct Authorized;

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            Some(t) if same(t.as_bytes(), state.token.as_bytes()) => Ok(Authorized),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_token",
                "the token is wrong: read it from the .cookie file in the node's data dir (it changes at every start)",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "token_required",
                "this action needs 'Authorization: Bearer <token>', the token in the .cookie file of the node's data dir",
            )),
        }
    }
}

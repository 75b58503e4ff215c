//! The API's error: an HTTP status with a JSON body `{code, message}`. Every client mistake (bad
//! hex, an unknown hash, an oversized body, a wrong content type, a number out of range, a
//! missing token) maps to a 4xx; only a stopped node is a 5xx (503).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::node::Stopped;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code, snake_case.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the input is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404: no such thing.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 422: well-formed, but the node refuses it.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<Stopped> for ApiError {
    fn from(_: Stopped) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_stopped",
            "the node has stopped",
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "bad_json",
            JsonRejection::JsonDataError(_) => "bad_field",
            _ if r.status() == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "bad_body",
        };
        Self::new(r.status(), code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("bad_query", r.body_text())
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(v) = Json::<T>::from_request(req, state).await?;
        Ok(Self(v))
    }
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(v))
    }
}

/// One path parameter as text, whose rejections are [`ApiError`]s.
pub struct Seg(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Seg {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r| ApiError::bad_request("bad_path", r.body_text()))
    }
}

/// Parses a path segment of 64 hex digits.
pub fn parse_hash<T: std::str::FromStr>(what: &'static str, s: &str) -> Result<T, ApiError> {
    if s.len() != 64 {
        return Err(ApiError::bad_request(
            "bad_hash",
            format!(
                "a {what} is 64 hex digits; '{}' has {} characters",
                clip(s),
                s.chars().count()
            ),
        ));
    }
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_hash",
            format!("a {what} is 64 hex digits; '{}' is not hex", clip(s)),
        )
    })
}

/// Parses a decimal u64 path segment.
pub fn parse_height(s: &str) -> Result<u64, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_height",
            format!(
                "a height is a whole number from 0 to {}; got '{}'",
                u64::MAX,
                clip(s)
            ),
        )
    })
}

/// At most 80 characters of user input, for messages.
pub fn clip(s: &str) -> String {
    if s.chars().count() > 80 {
        let mut out: String = s.chars().take(77).collect();
        out.push_str("...");
        out
    } else {
        s.to_string()
    }
}

//! The HTTP boundary's error type and its RFC 9457 rendering.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An RFC 9457 problem document, as every error response of the platform carries it.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct ProblemDetails {
    /// A URI naming the kind of problem: `urn:polyclinic:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for a person; never a stack trace.
    pub detail: String,
    /// A stable snake_case code that clients can branch on.
    pub code: String,
}

/// An error that a handler returns. 4xx errors carry a helpful detail; anything else is an
/// opaque 500 whose cause chain is logged once, here, when the response is rendered.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Cow<'static, str>,
    retry_after_secs: Option<u64>,
    www_authenticate: Option<&'static str>,
    extensions: Vec<(&'static str, serde_json::Value)>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            retry_after_secs: None,
            www_authenticate: None,
            extensions: Vec::new(),
            source: None,
        }
    }

    /// Adds an extension member to the problem document (RFC 9457 section 3.2), such as
    /// OAuth's `error` on the token endpoint or a list of field errors.
    pub fn with_extension(mut self, name: &'static str, value: serde_json::Value) -> Self {
        self.extensions.push((name, value));
        self
    }

    /// Adds a `WWW-Authenticate` challenge (for 401s).
    pub fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.www_authenticate = Some(challenge);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn unauthorized(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    pub fn not_found(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn unprocessable(code: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 503 `dependency_unavailable` with `Retry-After: 2`: something this service needs (its
    /// database, another service) cannot be reached just now, and nothing was changed.
    pub fn dependency_unavailable(detail: impl Into<Cow<'static, str>>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "dependency_unavailable",
            detail,
        );
        error.retry_after_secs = Some(2);
        error
    }

    /// 429 with a `Retry-After` header.
    pub fn too_many_requests(code: &'static str, retry_after_secs: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code,
            format!("Too many requests; retry in {retry_after_secs} s."),
        );
        error.retry_after_secs = Some(retry_after_secs.max(1));
        error
    }

    /// An unexpected failure: the client sees an opaque 500, the log sees `source`. The
    /// database being away is told apart: 503 `dependency_unavailable` with `Retry-After`.
    pub fn internal(source: anyhow::Error) -> Self {
        if is_database_outage(&source) {
            let mut error = ApiError::dependency_unavailable(
                "The database cannot be reached just now; retry shortly (with the same \
                 Idempotency-Key, where the route takes one).",
            );
            error.source = Some(source);
            return error;
        }
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: Cow::Borrowed("internal_error"),
            detail: Cow::Borrowed(
                "An unexpected error occurred. Quote the x-request-id header when reporting it.",
            ),
            retry_after_secs: None,
            www_authenticate: None,
            extensions: Vec::new(),
            source: Some(source),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

/// Glue code propagates `anyhow` errors with `?`; they become opaque 500s. Domain errors
/// get their own `From` impls that choose a 4xx status and code.
impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::internal(err)
    }
}

/// A repository's query failing is unexpected (or the database being away: a 503).
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        ApiError::internal(err.into())
    }
}

/// Whether `err` is PostgreSQL being away (unreachable, restarting, or no connection free
/// in time) rather than a fault of the request or the code: that is a 503 with
/// `Retry-After`, as for any other dependency.
fn is_database_outage(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            // 57P01-57P03: the server is shutting down, crashed, or cannot take connections yet;
            // 08xxx: the connection failed.
            Some(sqlx::Error::Database(db)) => db
                .code()
                .is_some_and(|code| code.starts_with("57P0") || code.starts_with("08")),
            _ => false,
        })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            // The one place where unexpected errors are logged, with their whole chain.
            tracing::error!(error = %format!("{source:#}"), code = %self.code, "request failed");
        }
        let body = ProblemDetails {
            kind: format!("urn:polyclinic:problem:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.into_owned(),
            code: self.code.into_owned(),
        };
        let mut document = serde_json::to_value(&body).unwrap_or_default();
        if let serde_json::Value::Object(members) = &mut document {
            for (name, value) in self.extensions {
                members.entry(name).or_insert(value);
            }
        }
        let bytes = serde_json::to_vec(&document).unwrap_or_default();
        let mut response = (self.status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_that_is_away_is_a_503_with_retry_after_and_anything_else_a_500() {
        for away in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            let error = ApiError::from(anyhow::Error::new(away).context("reading appointments"));
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(error.code(), "dependency_unavailable");
            let response = error.into_response();
            assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        }
        for other in [
            anyhow::Error::new(sqlx::Error::RowNotFound),
            anyhow::anyhow!("a bug"),
        ] {
            let error = ApiError::from(other);
            assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(error.code(), "internal_error");
        }
    }
}

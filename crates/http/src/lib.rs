//! What every Polyclinic HTTP service shares.
//!
//! - [`ApiError`]: the one error type at the HTTP boundary, rendered as RFC 9457
//!   `application/problem+json` with a stable `code`.
//! - [`extract`]: `Json`, `Path` and `Query` extractors whose rejections use that same shape.
//! - [`ServiceApp`]: wraps a service's API router with the platform routes (`/health/live`,
//!   `/health/ready`, `/metrics`, `/openapi.json`), request ids, tracing, metrics, a body
//!   limit and problem+json fallbacks.
//!   [`Platform`] is its outermost work on a request (id, span, log, metrics, security
//!   headers, a panic as a 500), for a service that answers some requests itself, in front
//!   of its router (the gateway's forwarding).
//! - [`serve`]: serving with graceful shutdown; [`serve_connections`] for a service other
//!   than a router.

mod app;
pub mod client_address;
mod error;
pub mod extract;
mod health;
mod metrics;
mod observe;
mod page;
mod server;
mod strict;
pub mod text;
mod validation;

pub use app::{Platform, ServiceApp, document};
pub use client_address::{ClientAddress, TrustedProxies};
pub use error::{ApiError, ProblemDetails};
pub use health::Check;
pub use observe::{REQUEST_ID_HEADER, RequestId};
pub use page::{Page, PageQuery, page_limit};
pub use server::{serve, serve_connections, shutdown_signal};
pub use validation::{FieldError, Violations};

/// Re-exported so that services name one version of the router and shutdown types.
pub use axum;
pub use tokio_util::sync::CancellationToken;
pub use utoipa;
pub use utoipa_axum;

/// Whether a presented secret equals the expected one, in time that does not depend on
/// where they differ (only on their lengths).
pub fn secrets_match(presented: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

//! Static assets compiled into the binary: htmx, the stylesheet and the icon. Nothing is
//! fetched from elsewhere at run time, so the app works on a network without internet.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::WebState;

/// htmx 2.0.11, unmodified (`htmx.org` on npm, `dist/htmx.min.js`, BSD-0-Clause).
pub const HTMX: &str = "/assets/htmx-2.0.11.min.js";
pub const STYLESHEET: &str = "/assets/app.css";
pub const ICON: &str = "/assets/icon.svg";

fn asset(body: &'static [u8], content_type: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// A versioned file never changes: cached for a year. The others for an hour.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const HOURLY: &str = "public, max-age=3600";

pub fn router() -> Router<WebState> {
    Router::new()
        .route(
            HTMX,
            get(|| async {
                asset(
                    include_bytes!("../assets/htmx-2.0.11.min.js"),
                    "text/javascript; charset=utf-8",
                    IMMUTABLE,
                )
            }),
        )
        .route(
            STYLESHEET,
            get(|| async {
                asset(
                    include_bytes!("../assets/app.css"),
                    "text/css; charset=utf-8",
                    HOURLY,
                )
            }),
        )
        .route(
            ICON,
            get(|| async {
                asset(
                    include_bytes!("../assets/icon.svg"),
                    "image/svg+xml",
                    HOURLY,
                )
            }),
        )
        .route(
            "/favicon.ico",
            get(|| async {
                asset(
                    include_bytes!("../assets/icon.svg"),
                    "image/svg+xml",
                    HOURLY,
                )
            }),
        )
}

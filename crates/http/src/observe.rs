//! The outermost middleware of every service: request id, request span, access log line,
//! HTTP metrics and the security headers every answer carries.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

use crate::metrics::{HttpMetrics, Route};

/// The header that carries the request id in and out of every service. A `HeaderName`, not
/// a string: a map given a string parses it again on every insert.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request: the caller's `x-request-id` when it is sane, otherwise
/// a new UUIDv7. Handlers extract it to pass it on to other services. It is kept as the
/// header value it is sent as, so passing it on copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(&REQUEST_ID_HEADER)
            .filter(|value| value.to_str().is_ok_and(is_acceptable_id))
            .map(|value| RequestId(value.clone()))
            .unwrap_or_else(RequestId::generate)
    }

    fn generate() -> Self {
        let mut text = uuid::Uuid::encode_buffer();
        let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut text);
        // A UUID's text is always a valid header value.
        RequestId(
            HeaderValue::from_str(text)
                .unwrap_or_else(|_| HeaderValue::from_static("unidentified")),
        )
    }

    pub fn as_str(&self) -> &str {
        // Only plain ASCII is ever kept (`is_acceptable_id`, or a UUID).
        self.0.to_str().unwrap_or_default()
    }

    /// The id as the `x-request-id` header carries it.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A caller's id is kept only if it is short and plain, so it cannot inject into logs.
fn is_acceptable_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId::from_headers(&parts.headers)))
    }
}

/// What the outermost middleware needs: the service's name and its HTTP metrics.
pub(crate) struct Observer {
    pub(crate) service: &'static str,
    pub(crate) metrics: HttpMetrics,
}

/// The middleware: [`observed`] around the rest of the router, for the route it matched.
pub(crate) async fn observe(
    State(observer): State<Arc<Observer>>,
    request: Request,
    next: Next,
) -> Response {
    let route = Route::of(request.extensions().get::<MatchedPath>());
    observed(&observer, route, request, |_, request| next.run(request)).await
}

/// The platform's work around answering one request for `route`: its id (given to `answer`,
/// and put in the request's extensions for extractors), span, access log line, metrics and
/// security headers.
pub(crate) async fn observed<Answer>(
    observer: &Observer,
    route: Route,
    mut request: Request,
    answer: impl FnOnce(RequestId, Request) -> Answer,
) -> Response
where
    Answer: Future<Output = Response>,
{
    let metrics = &observer.metrics;
    let request_id = RequestId::from_headers(request.headers());
    request.extensions_mut().insert(request_id.clone());
    let method = request.method().clone();

    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {}", route.as_str()),
        otel.kind = "server",
        method = %method,
        route = route.as_str(),
        request_id = %request_id,
        status = Empty,
        latency_ms = Empty,
        error = Empty,
    );
    // The request's span continues the caller's trace. The handler sees this span's own
    // trace context in place of the caller's, so that whatever it passes on (a call to
    // another service, an event) is a child of this span, with the caller's baggage.
    polyclinic_telemetry::continue_trace(
        &span,
        observer.service,
        polyclinic_telemetry::TraceHeaders::of(request.headers()),
    );
    if let Some(own) = polyclinic_telemetry::TraceContext::of(&span) {
        let headers = request.headers_mut();
        for name in polyclinic_telemetry::TRACE_HEADERS {
            headers.remove(name);
        }
        for (name, value) in own.as_headers().pairs() {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
    }
    let started = Instant::now();
    let mut response = answer(request_id.clone(), request)
        .instrument(span.clone())
        .await;
    let elapsed = started.elapsed();
    let status = response.status();

    span.record("status", status.as_u16());
    if status.is_server_error() {
        span.record("error", status.canonical_reason().unwrap_or("server error"));
    }
    span.record("latency_ms", elapsed.as_secs_f64() * 1000.0);
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!("request failed");
        } else if is_polled(route.as_str()) {
            tracing::debug!("request finished");
        } else {
            tracing::info!("request finished");
        }
    });
    metrics.observe(&method, &route, status.as_u16(), elapsed);

    let headers = response.headers_mut();
    headers.insert(REQUEST_ID_HEADER, request_id.header_value());
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// Headers every response carries unless its handler chose otherwise: an API response is
/// never sniffed, framed, cached or allowed to load anything.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::REFERRER_POLICY, "no-referrer"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::CACHE_CONTROL, "no-store"),
];

/// Routes that probes, scrapers and the services' own pollers call every few seconds: their
/// answers log at debug, so info stays what an operator wants to read.
fn is_polled(route: &str) -> bool {
    route.starts_with("/health") || route == "/metrics" || route == "/internal/auth/revocations"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_scrapes_and_the_revocation_poll_are_quiet_and_api_calls_are_not() {
        for route in [
            "/health/live",
            "/health/ready",
            "/metrics",
            "/internal/auth/revocations",
        ] {
            assert!(is_polled(route), "{route}");
        }
        for route in [
            "/api/appointments",
            "/internal/records/{id}/declarations",
            "/",
        ] {
            assert!(!is_polled(route), "{route}");
        }
    }

    #[test]
    fn plain_caller_ids_are_kept_and_odd_ones_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123.x:y_z"));
        assert_eq!(RequestId::from_headers(&headers).as_str(), "abc-123.x:y_z");

        headers.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_static("has spaces\tand tabs"),
        );
        let replaced = RequestId::from_headers(&headers);
        assert_ne!(replaced.as_str(), "has spaces\tand tabs");
        assert!(uuid::Uuid::parse_str(replaced.as_str()).is_ok());

        let long = "a".repeat(200);
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_str(&long).unwrap());
        assert_ne!(RequestId::from_headers(&headers).as_str(), long);
    }
}

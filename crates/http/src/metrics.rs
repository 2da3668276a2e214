//! Prometheus metrics: the HTTP request counter and latency histogram every service has,
//! and the `/metrics` route that exposes a service's whole registry.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A request's labels. Every value is bounded (a method outside HTTP's own is `other`, a
/// path no route matched is `unmatched`), so no caller can grow the metric families, and
/// none is copied per request: the route is the router's own shared pattern.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: Route,
    status: u16,
}

/// The route a request matched, as the router (or a service answering without it) wrote its
/// pattern, or `unmatched`.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    Matched(MatchedPath),
    Pattern(&'static str),
    Unmatched,
}

impl Route {
    pub(crate) fn of(matched: Option<&MatchedPath>) -> Self {
        matched.map_or(Self::Unmatched, |matched| Self::Matched(matched.clone()))
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Matched(matched) => matched.as_str(),
            Self::Pattern(pattern) => pattern,
            Self::Unmatched => "unmatched",
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// `method`'s label: its name if HTTP defines it, otherwise `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

pub(crate) struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
}

fn latency_histogram() -> Histogram {
    // 1 ms up to about 16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl HttpMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_requests",
            "HTTP requests handled, by method, matched route and status",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer HTTP requests, by method, matched route and status",
            Unit::Seconds,
            latency.clone(),
        );
        Self { requests, latency }
    }

    pub(crate) fn observe(&self, method: &Method, route: &Route, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method_label(method),
            route: route.clone(),
            status,
        };
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }
}

/// What `/metrics` answers: the registry, to anyone or only to the holder of a token.
pub(crate) struct MetricsRoute {
    pub(crate) registry: Registry,
    pub(crate) token: Option<String>,
}

pub(crate) async fn get_metrics(
    State(route): State<Arc<MetricsRoute>>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(token) = &route.token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::secrets_match(presented, token) {
            return crate::ApiError::unauthorized(
                "metrics_token_required",
                "Metrics are for the monitoring system: present its bearer token.",
            )
            .with_challenge("Bearer")
            .into_response();
        }
    }
    let registry = &route.registry;
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

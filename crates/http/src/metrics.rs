//! Prometheus metrics: the HTTP request counter and latency histogram every service has,
//! and the `/metrics` route that exposes a service's whole registry.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
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

    pub(crate) fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status: status.to_string(),
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

//! `/status`: each upstream's readiness, version and latency, as JSON or as a small HTML
//! page (what the original's Eureka dashboard showed).

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use polyclinic_config::Service;
use serde::Serialize;
use serde_json::Value;

use polyclinic_auth::{Role, authenticate};
use polyclinic_http::{ApiError, ClientAddress};

use crate::GatewayState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpstreamStatus {
    pub service: String,
    /// Where the gateway reaches the service: shown to administrators only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `up`, `degraded` (answers but not ready) or `down`.
    pub status: String,
    pub version: Option<String>,
    pub latency_ms: u64,
    /// The dependencies a degraded service reported down.
    pub failing: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusReport {
    pub gateway_version: String,
    pub upstreams: Vec<UpstreamStatus>,
}

async fn probe(state: &GatewayState, service: Service) -> UpstreamStatus {
    let url = state.upstreams.base_url(service);
    let started = Instant::now();
    let answer = state
        .http
        .get(format!("{url}/health/ready"))
        .timeout(Duration::from_secs(3))
        .send()
        .await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (status, body) = match answer {
        Ok(response) => {
            let ready = response.status().is_success();
            let body = response.json::<Value>().await.unwrap_or_default();
            (if ready { "up" } else { "degraded" }, body)
        }
        Err(_) => ("down", Value::Null),
    };
    let failing = body["checks"]
        .as_object()
        .map(|checks| {
            checks
                .iter()
                .filter(|(_, check)| check["status"] != "up")
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    UpstreamStatus {
        service: service.as_str().to_owned(),
        url: Some(url),
        status: status.to_owned(),
        version: body["version"].as_str().map(str::to_owned),
        latency_ms,
        failing,
    }
}

/// Every upstream's state: JSON for programs, HTML for a browser (by `Accept`). Internal
/// addresses are shown to administrators only; every caller counts against its rate limit
/// (each call probes every service).
#[utoipa::path(get, path = "/status", tag = "platform",
    responses((status = 200, body = StatusReport, description = "JSON, or HTML when the client accepts text/html"),
        (status = 429, body = polyclinic_http::ProblemDetails)))]
pub async fn status(
    State(state): State<GatewayState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let caller = authenticate(&state.verifier, &headers, &uri)
        .await
        .ok()
        .flatten();
    if let Err(retry_after) = state.limits.check(caller.as_ref(), client) {
        return ApiError::too_many_requests("rate_limited", retry_after).into_response();
    }
    let is_admin = caller.is_some_and(|caller| caller.is(Role::Admin));
    let services = Service::ALL
        .into_iter()
        .filter(|service| *service != Service::Gateway);
    let mut upstreams = Vec::new();
    for service in services {
        let mut upstream = probe(&state, service).await;
        if !is_admin {
            upstream.url = None;
        }
        upstreams.push(upstream);
    }
    let report = StatusReport {
        gateway_version: env!("CARGO_PKG_VERSION").to_owned(),
        upstreams,
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        let mut page = Html(render(&report)).into_response();
        page.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            axum::http::HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
        page
    } else {
        axum::Json(report).into_response()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn render(report: &StatusReport) -> String {
    let rows: String = report
        .upstreams
        .iter()
        .map(|upstream| {
            format!(
                "<tr><th scope=\"row\">{}</th><td class=\"{}\">{}</td><td>{}</td><td>{} ms</td><td>{}</td><td>{}</td></tr>",
                escape(&upstream.service),
                escape(&upstream.status),
                escape(&upstream.status),
                escape(upstream.version.as_deref().unwrap_or("-")),
                upstream.latency_ms,
                escape(&upstream.failing.join(", ")),
                escape(upstream.url.as_deref().unwrap_or("-")),
            )
        })
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Polyclinic status</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}\
         th,td{{padding:.4rem .8rem;border-bottom:1px solid #ddd;text-align:left}}\
         .up{{color:#176117}}.degraded{{color:#8a5a00}}.down{{color:#a31515}}</style></head>\
         <body><h1>Polyclinic status</h1><p>Gateway {}</p><table><thead><tr><th scope=\"col\">service</th>\
         <th scope=\"col\">status</th><th scope=\"col\">version</th><th scope=\"col\">latency</th>\
         <th scope=\"col\">failing</th><th scope=\"col\">address</th></tr></thead><tbody>{rows}</tbody></table></body></html>",
        escape(&report.gateway_version)
    )
}

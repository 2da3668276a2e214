//! `/docs`: Swagger UI over the merged OpenAPI document of every service. The UI's assets
//! are built into the binary, so it works offline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use polyclinic_config::Service;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::GatewayState;

/// How long a merged document is served before the services are asked again.
const CACHE_FOR: Duration = Duration::from_secs(30);

/// The merged document, cached.
#[derive(Default)]
pub struct DocsCache {
    merged: Mutex<Option<(Instant, Arc<Value>)>>,
}

/// `/docs` (the UI) and `/docs/openapi.json` (the merged document).
pub fn router(state: GatewayState) -> Router {
    let ui: Router = SwaggerUi::new("/docs")
        .config(Config::from("/docs/openapi.json").try_it_out_enabled(true))
        .into();
    let ui = ui.layer(axum::middleware::map_response(
        |mut response: Response| async move {
            // Swagger UI runs scripts and styles of its own origin only.
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                 script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
                ),
            );
            response
        },
    ));
    Router::new()
        .route("/docs/openapi.json", get(merged_document))
        .with_state(state)
        .merge(ui)
}

async fn merged_document(State(state): State<GatewayState>) -> Response {
    let mut cached = state.docs.merged.lock().await;
    if let Some((at, document)) = cached.as_ref()
        && at.elapsed() < CACHE_FOR
    {
        return axum::Json(document.as_ref().clone()).into_response();
    }
    let document = Arc::new(merge(&state).await);
    *cached = Some((Instant::now(), document.clone()));
    axum::Json(document.as_ref().clone()).into_response()
}

/// The gateway's own document with every reachable service's paths and schemas added. A
/// service that does not answer is left out (and named in the description).
async fn merge(state: &GatewayState) -> Value {
    let mut merged = serde_json::to_value(crate::openapi()).unwrap_or_default();
    let mut missing = Vec::new();
    for service in Service::ALL
        .into_iter()
        .filter(|service| *service != Service::Gateway)
    {
        let url = format!("{}/openapi.json", state.upstreams.base_url(service));
        let fetched = async {
            state
                .http
                .get(&url)
                .timeout(Duration::from_secs(3))
                .send()
                .await?
                .error_for_status()?
                .json::<Value>()
                .await
        };
        match fetched.await {
            Ok(document) => merge_into(&mut merged, &document),
            Err(err) => {
                tracing::warn!(%service, error = %err, "could not fetch a service's OpenAPI document");
                missing.push(service.as_str());
            }
        }
    }
    // Monitoring is not part of the API (and without `http.metrics_token` the gateway does
    // not serve it at all).
    if let Some(paths) = merged["paths"].as_object_mut() {
        paths.remove("/metrics");
    }
    merged["info"]["title"] = Value::from("Polyclinic API");
    let mut description = String::from(
        "Every service's API behind the gateway. Errors are RFC 9457 problem documents \
         (`application/problem+json`) with a stable `code`.",
    );
    if !missing.is_empty() {
        description.push_str(&format!(" Not reachable just now: {}.", missing.join(", ")));
    }
    merged["info"]["description"] = Value::from(description);
    merged
}

fn merge_into(target: &mut Value, source: &Value) {
    for section in [
        &["paths"][..],
        &["components", "schemas"][..],
        &["tags"][..],
    ] {
        let Some(from) = section
            .iter()
            .try_fold(source, |value, key| value.get(*key))
        else {
            continue;
        };
        let mut into = &mut *target;
        for key in section {
            if !into
                .get(*key)
                .is_some_and(|value| value.is_object() || value.is_array())
            {
                into[*key] = if from.is_array() {
                    Value::Array(Vec::new())
                } else {
                    Value::Object(Map::new())
                };
            }
            into = &mut into[*key];
        }
        match (into, from) {
            (Value::Object(into), Value::Object(from)) => {
                // Internal routes are served by each service to the others; the gateway
                // does not route them, so its document does not show them.
                for (key, value) in from
                    .iter()
                    .filter(|(key, _)| !key.starts_with("/internal/"))
                {
                    into.entry(key.clone()).or_insert_with(|| value.clone());
                }
            }
            (Value::Array(into), Value::Array(from)) => {
                for value in from {
                    if !into.contains(value) {
                        into.push(value.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

//! Liveness and readiness.
//!
//! `/health/live` answers 200 while the process serves HTTP. `/health/ready` runs every
//! registered [`Check`] (PostgreSQL, later the broker or Redis) with a timeout and answers
//! 503 naming the dependencies that failed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A probe answers `Ok` with an optional detail (such as a lag) or `Err` with why it is down.
type Probe =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send>> + Send + Sync;

/// A dependency that must answer for the service to be ready.
#[derive(Clone)]
pub struct Check {
    name: &'static str,
    probe: Arc<Probe>,
}

impl Check {
    /// A check called `name` that succeeds when `probe` resolves to `Ok`; an `Ok(Some(..))`
    /// detail is shown in the report.
    pub fn new<F, Fut>(name: &'static str, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Option<String>, String>> + Send + 'static,
    {
        Self {
            name,
            probe: Arc::new(move || Box::pin(probe())),
        }
    }
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

pub(crate) struct Readiness {
    pub(crate) service: &'static str,
    pub(crate) checks: Vec<Check>,
}

/// The readiness report.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct HealthReport {
    /// `ok` or `unavailable`.
    pub status: String,
    pub service: String,
    pub version: String,
    /// One entry per dependency.
    pub checks: BTreeMap<String, CheckReport>,
}

#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct CheckReport {
    /// `up` or `down`.
    pub status: String,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Liveness: the process is up and serving.
#[utoipa::path(get, path = "/health/live", tag = "platform",
    responses((status = 200, description = "The process is serving", body = HealthReport)))]
pub(crate) async fn live(State(readiness): State<Arc<Readiness>>) -> Json<HealthReport> {
    Json(HealthReport {
        status: "ok".into(),
        service: readiness.service.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        checks: BTreeMap::new(),
    })
}

/// Readiness: every dependency answers.
#[utoipa::path(get, path = "/health/ready", tag = "platform", responses(
    (status = 200, description = "Every dependency answers", body = HealthReport),
    (status = 503, description = "A dependency is down; it is named in `checks`", body = HealthReport),
))]
pub(crate) async fn ready(
    State(readiness): State<Arc<Readiness>>,
) -> (StatusCode, Json<HealthReport>) {
    let mut checks = BTreeMap::new();
    for check in &readiness.checks {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, (check.probe)()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(error) = &outcome {
            tracing::warn!(dependency = check.name, %error, "readiness check failed");
        }
        let (status, detail, error) = match outcome {
            Ok(detail) => ("up", detail, None),
            Err(error) => ("down", None, Some(error)),
        };
        checks.insert(
            check.name.to_owned(),
            CheckReport {
                status: status.into(),
                latency_ms,
                detail,
                error,
            },
        );
    }
    let healthy = checks.values().all(|check| check.status == "up");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let report = HealthReport {
        status: if healthy { "ok" } else { "unavailable" }.into(),
        service: readiness.service.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        checks,
    };
    (status, Json(report))
}

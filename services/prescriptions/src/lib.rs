//! The prescriptions service: medical records, prescriptions and the audit trail of access to health data.
//!
//! It owns the `prescriptions` schema and nothing else, including its outbox, relayed by the
//! event backbone. [`router`] builds the HTTP interface (tests call it in process); [`run`]
//! migrates the schema, completes prescriptions that ran their course every hour, and serves
//! until shutdown.
//!
//! Access to clinical data is decided here with the caller's token: the patient reads their
//! own record; a doctor or nurse reads it while they have a scheduled or completed
//! appointment with the patient (`polyclinic_client::care`, asked of the appointments service); admins read no
//! clinical content. Every read, write and refused attempt appends a row to the hash-chained
//! [`audit`] trail.
//!
//! The floor plan is every service's: `routes/` (HTTP in and out), the flows that own
//! transactions, audit rows and the outbox ([`jobs`] for the scheduled ones), `domain/`
//! (types and rules, no I/O) and `repo/` (the SQL).

pub mod access;
pub mod charting;
pub mod domain;
pub mod jobs;
pub mod prescribing;
pub mod repo;
mod routes;

pub use jobs::complete_expired;
/// The audit trail (its rows, search and verification) is part of this crate's interface.
pub use repo::audit;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_client::ServiceClient;
use polyclinic_config::{Config, Service};
use polyclinic_events::{Backbone, ServiceRoutes};
use polyclinic_http::CancellationToken;
use polyclinic_http::axum::Router;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use polyclinic_client::care::CareTeam;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Prescriptions;

/// The migrations of the `prescriptions` schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    care: Arc<CareTeam>,
    /// The clinic's timezone: a FHIR date (a whole day) is read in it.
    zone: chrono_tz::Tz,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

impl AppState {
    pub fn new(config: &Config, pool: PgPool, verifier: Arc<Verifier>) -> Self {
        let client = ServiceClient::new(Duration::from_secs(
            config.http.upstream_timeout_secs.into(),
        ));
        Self {
            pool,
            verifier,
            care: Arc::new(CareTeam::new(
                client,
                &config.service_url(Service::Appointments),
            )),
            // The configuration checked it is an IANA name.
            zone: config.timezone.parse().unwrap_or(chrono_tz::Tz::UTC),
        }
    }
}

/// The documented routes (prescriptions consumes no events) and the FHIR ones.
static ROUTES: ServiceRoutes<AppState> =
    ServiceRoutes::new(SERVICE, routes::api).with_fhir(routes::fhir::router);

/// This service's OpenAPI document.
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

/// The service's complete router.
pub fn router(config: &Config, state: AppState, backbone: &Backbone) -> Router {
    ROUTES.router(config, state, backbone, Vec::new())
}

/// Migrates the schema, then serves on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = polyclinic_db::open(&config, SERVICE, &MIGRATOR).await?;
    let backbone = Backbone::start(&config, SERVICE, &pool, &shutdown).await?;
    let verifier = Verifier::new(VerifierSettings::from_config(&config, SERVICE));
    jobs::spawn_completion(pool.clone(), shutdown.clone());
    jobs::spawn_checkpoints(pool.clone(), shutdown.clone());
    let app = router(
        &config,
        AppState::new(&config, pool.clone(), verifier),
        &backbone,
    );
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    backbone.serve(listener, app, grace).await?;
    pool.close().await;
    Ok(())
}

/// Checks the audit trail's hash chain and checkpoints (`polyclinic audit-verify`).
pub async fn verify_audit(config: &Config) -> anyhow::Result<audit::Verification> {
    let pool = polyclinic_db::pool(config, SERVICE)?;
    let verification = audit::verify(&pool).await;
    pool.close().await;
    verification
}

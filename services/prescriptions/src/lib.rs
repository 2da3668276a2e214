//! The prescriptions service: medical records, prescriptions and the audit trail of access to health data.
//!
//! It owns the `prescriptions` schema and nothing else, including its outbox, relayed by the
//! event backbone. [`router`] builds the HTTP interface (tests call it in process); [`run`]
//! migrates the schema, completes prescriptions that ran their course every hour, and serves
//! until shutdown.
//!
//! Access to clinical data is decided here with the caller's token: the patient reads their
//! own record; a doctor or nurse reads it while they have a scheduled or completed
//! appointment with the patient ([`care`], asked of the appointments service); admins read no
//! clinical content. Every read, write and refused attempt appends a row to the hash-chained
//! [`audit`] trail.

pub mod audit;
pub mod care;
pub mod domain;
pub mod repo;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_client::ServiceClient;
use polyclinic_config::{Config, Service};
use polyclinic_events::Backbone;
use polyclinic_http::axum::Router;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{CancellationToken, ServiceApp};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::care::CareTeam;

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
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
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
        }
    }
}

fn api() -> OpenApiRouter<AppState> {
    routes::api()
}

/// This service's OpenAPI document.
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    polyclinic_http::document(SERVICE, api().split_for_parts().1)
}

/// The service's HTTP interface, before the event backbone is attached.
pub fn service_app(config: &Config, state: AppState) -> ServiceApp {
    let check = polyclinic_db::readiness_check(&state.pool);
    ServiceApp::new(SERVICE, api().with_state(state))
        .configured(config)
        .check(check)
}

/// The service's complete router.
pub fn router(config: &Config, state: AppState, backbone: &Backbone) -> Router {
    backbone.attach(service_app(config, state)).into_router()
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
    spawn_completion(pool.clone(), shutdown.clone());
    spawn_checkpoints(pool.clone(), shutdown.clone());
    let app = router(
        &config,
        AppState::new(&config, pool.clone(), verifier),
        &backbone,
    );
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    polyclinic_http::serve(listener, app, shutdown, grace).await?;
    pool.close().await;
    Ok(())
}

/// Marks ACTIVE prescriptions whose validity ended before `today` COMPLETED, each with its
/// row in the audit trail (a write by the platform itself). Safe with several instances: the
/// rows are locked and skipped by others. Returns how many.
pub async fn complete_expired(pool: &PgPool, today: chrono::NaiveDate) -> anyhow::Result<u64> {
    let mut tx = pool.begin().await?;
    let ended: Vec<(uuid::Uuid, uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "update prescriptions set status = 'COMPLETED', status_reason = 'the prescription ran its course', updated_at = now()
         where id in (select id from prescriptions where status = 'ACTIVE' and valid_until < $1
                      for update skip locked)
         returning id, patient_id, record_id",
    )
    .bind(today)
    .fetch_all(&mut *tx)
    .await?;
    for (id, patient_id, record_id) in &ended {
        audit::append(
            &mut tx,
            &audit::Access {
                actor_id: "polyclinic-prescriptions",
                actor_role: "SYSTEM",
                action: "prescription.complete",
                patient_id: Some(*patient_id),
                record_id: Some(*record_id),
                entry_id: Some(*id),
                request_id: None,
                outcome: audit::Outcome::Allowed,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ended.len() as u64)
}

/// Runs [`complete_expired`] every hour until `shutdown`.
fn spawn_completion(pool: PgPool, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match complete_expired(&pool, chrono::Utc::now().date_naive()).await {
                Ok(0) => {}
                Ok(count) => {
                    tracing::info!(count, "prescriptions that ran their course are completed")
                }
                Err(err) => {
                    tracing::error!(error = %format!("{err:#}"), "completing prescriptions failed; tried again in an hour")
                }
            }
        }
    });
}

/// Checkpoints the audit trail's head every [`audit::CHECKPOINT_EVERY`] until `shutdown`.
fn spawn_checkpoints(pool: PgPool, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(audit::CHECKPOINT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = audit::checkpoint(&pool).await {
                tracing::warn!(error = %format!("{err:#}"), "checkpointing the audit trail failed; tried again in a minute");
            }
        }
    });
}

/// Checks the audit trail's hash chain and checkpoints (`polyclinic audit-verify`).
pub async fn verify_audit(config: &Config) -> anyhow::Result<audit::Verification> {
    let pool = polyclinic_db::pool(config, SERVICE)?;
    let verification = audit::verify(&pool).await;
    pool.close().await;
    verification
}

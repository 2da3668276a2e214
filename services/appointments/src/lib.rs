//! The appointments service: doctors' schedules, availability, reservations and the appointment lifecycle.
//!
//! It owns the `appointments` schema and nothing else, including its outbox, relayed by the
//! event backbone. [`router`] builds the HTTP interface (tests call it in process); [`run`]
//! migrates the schema, starts the payment-events consumer and the jobs, and serves until
//! shutdown.
//!
//! Layers: `routes` (thin handlers) -> [`booking`] (the flows) -> [`domain`] (rules, no I/O)
//! and `repo` (SQL); [`peers`] calls the identity and payments services.

pub mod booking;
mod consumer;
pub mod domain;
pub mod jobs;
pub mod peers;
pub mod repo;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use chrono_tz::Tz;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_client::ServiceClient;
use polyclinic_config::{Config, Service};
use polyclinic_events::api::Replay;
use polyclinic_events::{Backbone, ServiceRoutes};
use polyclinic_http::CancellationToken;
use polyclinic_http::axum::Router;
use polyclinic_locks::Locks;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::booking::Booking;
use crate::domain::appointment::Policy;
use crate::domain::waitlist::WaitlistPolicy;
use crate::jobs::Jobs;
use crate::peers::Peers;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Appointments;

/// The migrations of the `appointments` schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub booking: Arc<Booking>,
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

/// The clinic's booking and waitlist rules from the configuration.
pub fn policy(config: &Config) -> (Policy, WaitlistPolicy) {
    let minutes = |value: u32| chrono::Duration::minutes(i64::from(value));
    let booking = Policy {
        hold: minutes(config.booking.hold_minutes),
        notice: minutes(config.booking.min_notice_minutes),
        cancellation_cutoff: chrono::Duration::hours(i64::from(
            config.booking.cancellation_cutoff_hours,
        )),
        max_pending: i64::from(config.booking.max_pending_per_patient),
    };
    let waitlist = WaitlistPolicy {
        offer: minutes(config.waitlist.offer_minutes),
        max_entries: i64::from(config.waitlist.max_entries_per_patient),
        max_range_days: config.waitlist.max_range_days,
    };
    (booking, waitlist)
}

/// The clinic's timezone (validated when the configuration was loaded).
pub fn zone(config: &Config) -> anyhow::Result<Tz> {
    config
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("`timezone`: {} is not an IANA timezone", config.timezone))
}

impl AppState {
    /// The state for `config`: the lock backend it names and clients of the peer services.
    pub async fn new(
        config: &Config,
        pool: PgPool,
        verifier: Arc<Verifier>,
    ) -> anyhow::Result<Self> {
        // Advisory locks hold a connection each; a pool of their own keeps them from starving
        // the queries made while they are held.
        let lock_pool =
            polyclinic_db::service_pool(config, SERVICE, "polyclinic-appointments-locks")?;
        let locks = Locks::from_config(config, &lock_pool).await?;
        let client = ServiceClient::new(Duration::from_secs(
            config.http.upstream_timeout_secs.into(),
        ));
        let peers = Peers::new(
            client,
            &config.service_url(Service::Identity),
            &config.service_url(Service::Payments),
        );
        let booking = Booking::new(
            pool.clone(),
            locks,
            Arc::new(peers),
            policy(config),
            zone(config)?,
        );
        Ok(Self {
            pool,
            verifier,
            booking: Arc::new(booking),
        })
    }
}

/// The documented routes, and the internal routes of the payment-events consumer.
static ROUTES: ServiceRoutes<AppState> =
    ServiceRoutes::with_consumers(SERVICE, routes::api).with_fhir(routes::fhir::router);

/// This service's OpenAPI document.
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

/// The service's complete router; `consumers` are those whose dead letters it can replay.
/// With the Redis lock backend, readiness also checks Redis.
pub fn router(
    config: &Config,
    state: AppState,
    backbone: &Backbone,
    consumers: Vec<Arc<dyn Replay>>,
) -> Router {
    let lock_check = state.booking.locks().readiness_check();
    let mut app = ROUTES.app(config, state, consumers);
    if let Some(lock_check) = lock_check {
        app = app.check(lock_check);
    }
    backbone.attach(app).into_router()
}

/// Migrates the schema, starts the consumer and the jobs, then serves on `listener` until
/// `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = polyclinic_db::open(&config, SERVICE, &MIGRATOR).await?;
    let backbone = Backbone::start(&config, SERVICE, &pool, &shutdown).await?;
    let verifier = Verifier::new(VerifierSettings::from_config(&config, SERVICE));
    let state = AppState::new(&config, pool.clone(), verifier).await?;

    let payments = Arc::new(consumer::payment_events(&config, &pool, &backbone));
    backbone.run(payments.clone());
    let retention = chrono::Duration::days(i64::from(config.booking.retention_days));
    Jobs::new(pool.clone(), zone(&config)?, retention).spawn(shutdown.clone());
    jobs::spawn_waitlist(state.booking.clone(), shutdown.clone());

    let app = router(&config, state, &backbone, vec![payments]);
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    backbone.serve(listener, app, grace).await?;
    pool.close().await;
    Ok(())
}

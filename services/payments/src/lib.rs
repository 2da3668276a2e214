//! The payments service: payment intents with manual capture, refunds, idempotency keys and provider webhooks.
//!
//! It owns the `payments` schema and nothing else, including its outbox, relayed by the
//! event backbone. [`router`] builds the HTTP interface (tests
//! call it in process); [`run`] migrates the schema and serves until shutdown.

pub mod domain;
pub mod ledger;
pub mod provider;

use std::time::Duration;

use polyclinic_config::{Config, Service};
use polyclinic_events::Backbone;
use polyclinic_http::axum::Router;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{CancellationToken, ServiceApp};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Payments;

/// The migrations of the `payments` schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// This service's OpenAPI document.
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    polyclinic_http::document(SERVICE, api().split_for_parts().1)
}

/// The service's HTTP interface, before the event backbone is attached.
pub fn service_app(config: &Config, state: AppState) -> ServiceApp {
    let check = polyclinic_db::readiness_check(&state.pool);
    ServiceApp::new(SERVICE, api().with_state(state))
        .body_limit(config.http.body_limit_bytes as usize)
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
    let app = router(&config, AppState { pool: pool.clone() }, &backbone);
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    polyclinic_http::serve(listener, app, shutdown, grace).await?;
    pool.close().await;
    Ok(())
}

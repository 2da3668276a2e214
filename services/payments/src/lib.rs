//! The payments service: payment intents with manual capture, refunds, idempotency keys and provider webhooks.
//!
//! It owns the `payments` schema and nothing else, including its outbox, relayed by the
//! event backbone. [`router`] builds the HTTP interface (tests
//! call it in process); [`run`] migrates the schema and serves until shutdown.

pub mod domain;
pub mod ledger;
pub mod provider;
mod repo;
mod routes;

use std::time::Duration;

use std::sync::Arc;

use axum::extract::FromRef;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_config::{Config, PaymentsProvider, Service};
use polyclinic_events::Backbone;
use polyclinic_http::axum::Router;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{CancellationToken, ServiceApp};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::ledger::Ledger;
use crate::provider::Provider;
use crate::provider::simulated::Simulated;
use crate::provider::stripe::StripeClient;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Payments;

/// The migrations of the `payments` schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    ledger: Arc<Ledger>,
    /// Whether server-side confirmation with test cards is allowed: the simulated provider,
    /// or a Stripe test key.
    test_mode: bool,
    /// Secrets that sign the provider's webhooks.
    webhook_secrets: Arc<Vec<String>>,
}

impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl AppState {
    /// The state for `config`, with the configured provider.
    pub fn new(config: &Config, pool: PgPool, verifier: Arc<Verifier>) -> anyhow::Result<Self> {
        let (provider, test_mode) = match config.payments_provider {
            PaymentsProvider::Simulated => {
                (Provider::Simulated(Simulated::new(pool.clone())), true)
            }
            PaymentsProvider::Stripe => {
                let key = config.stripe.secret_key.clone().ok_or_else(|| {
                    anyhow::anyhow!("`stripe.secret_key` is required with the stripe provider")
                })?;
                let test_mode = key.starts_with("sk_test_");
                (
                    Provider::Stripe(StripeClient::new(&config.stripe.api_base, &key)),
                    test_mode,
                )
            }
        };
        Ok(Self {
            ledger: Arc::new(Ledger::new(pool.clone(), provider)),
            pool,
            verifier,
            test_mode,
            webhook_secrets: Arc::new(config.stripe.webhook_secrets.clone()),
        })
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
    let verifier = Verifier::new(VerifierSettings::from_config(&config));
    let app = router(
        &config,
        AppState::new(&config, pool.clone(), verifier)?,
        &backbone,
    );
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    polyclinic_http::serve(listener, app, shutdown, grace).await?;
    pool.close().await;
    Ok(())
}

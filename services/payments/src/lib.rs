//! The payments service: payment intents with manual capture, refunds, idempotency keys and provider webhooks.
//!
//! It owns the `payments` schema and nothing else, including its outbox, relayed by the
//! event backbone. [`router`] builds the HTTP interface (tests
//! call it in process); [`run`] migrates the schema and serves until shutdown.

pub mod domain;
pub mod ledger;
pub mod provider;
pub mod repo;
mod routes;
pub mod settlement;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_client::ServiceClient;
use polyclinic_config::{Config, PaymentsProvider, Service};
use polyclinic_events::api::Replay;
use polyclinic_events::{Backbone, ServiceRoutes};
use polyclinic_http::CancellationToken;
use polyclinic_http::axum::Router;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::ledger::{CardTiming, Ledger};
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
    /// Calls the appointments service (the price of a payment is the appointment's).
    client: ServiceClient,
    appointments_url: String,
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
    /// The state for `config`, with the configured provider.
    pub fn new(config: &Config, pool: PgPool, verifier: Arc<Verifier>) -> anyhow::Result<Self> {
        let (ledger, test_mode) = ledger(config, &pool)?;
        Ok(Self {
            ledger: Arc::new(ledger),
            pool,
            verifier,
            test_mode,
            webhook_secrets: Arc::new(config.stripe.webhook_secrets.clone()),
            client: ServiceClient::new(Duration::from_secs(
                config.http.upstream_timeout_secs.into(),
            )),
            appointments_url: config.service_url(Service::Appointments),
        })
    }
}

/// The ledger over the configured provider, and whether that provider is in test mode
/// (the simulated provider, or a Stripe test key): server-side confirmation with test cards
/// is allowed only then.
pub fn ledger(config: &Config, pool: &PgPool) -> anyhow::Result<(Ledger, bool)> {
    let (provider, test_mode) = match config.payments_provider {
        PaymentsProvider::Simulated => {
            // The simulated provider stands for a system outside ours: it gets connections of
            // its own, so a ledger transaction waiting on it never waits on its own pool.
            let provider_pool =
                polyclinic_db::service_pool(config, SERVICE, "polyclinic-payments-simulated")?;
            (Provider::Simulated(Simulated::new(provider_pool)), true)
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
    let hours = |value: u32| chrono::Duration::hours(i64::from(value));
    let timing = CardTiming {
        ahead: chrono::Duration::days(i64::from(config.payments.authorize_ahead_days)),
        lead: hours(config.payments.authorize_lead_hours),
        update: hours(config.payments.card_update_hours),
    };
    Ok((Ledger::new(pool.clone(), provider, timing), test_mode))
}

/// The documented routes, and the internal routes of the settlement consumer.
static ROUTES: ServiceRoutes<AppState> = ServiceRoutes::with_consumers(SERVICE, routes::api);

/// This service's OpenAPI document.
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    ROUTES.openapi()
}

/// The service's complete router; `consumers` are those whose dead letters it can replay.
pub fn router(
    config: &Config,
    state: AppState,
    backbone: &Backbone,
    consumers: Vec<Arc<dyn Replay>>,
) -> Router {
    ROUTES.router(config, state, backbone, consumers)
}

/// How long a payment sits in a non-final state before the provider is asked about it.
const RECONCILE_AFTER: chrono::Duration = chrono::Duration::minutes(5);

/// Every minute: authorises the saved cards whose time has come, renews authorisations that
/// would lapse before their capture, cancels payments whose patient gave no other card by
/// the deadline, and asks the provider about payments that a lost webhook may have left
/// behind (letting authorisations older than 7 days expire).
fn spawn_reconciliation(ledger: Arc<Ledger>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = chrono::Utc::now();
            for (job, outcome) in [
                ("authorize-saved-cards", ledger.authorize_due(now).await),
                ("renew-authorizations", ledger.renew_lapsing(now).await),
                ("cancel-unmended", ledger.cancel_unmended(now).await),
            ] {
                match outcome {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(%job, count, "job done"),
                    Err(err) => {
                        tracing::error!(%job, error = %err, "job failed; it runs again in a minute")
                    }
                }
            }
            match ledger.reconcile(now, RECONCILE_AFTER, 100).await {
                Ok(0) => {}
                Ok(moved) => tracing::info!(moved, "reconciliation moved payments forward"),
                Err(err) => {
                    tracing::error!(error = %err, "reconciliation failed; it runs again in a minute")
                }
            }
        }
    });
}

/// Migrates the schema, starts the settlement consumer and the reconciliation job, then
/// serves on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = polyclinic_db::open(&config, SERVICE, &MIGRATOR).await?;
    let backbone = Backbone::start(&config, SERVICE, &pool, &shutdown).await?;
    let verifier = Verifier::new(VerifierSettings::from_config(&config, SERVICE));
    let state = AppState::new(&config, pool.clone(), verifier)?;

    let settlement = Arc::new(settlement::consumer(
        &config,
        &pool,
        &backbone,
        state.ledger.clone(),
    ));
    backbone.run(settlement.clone());
    spawn_reconciliation(state.ledger.clone(), shutdown.clone());

    let app = router(&config, state, &backbone, vec![settlement]);
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    backbone.serve(listener, app, grace).await?;
    pool.close().await;
    Ok(())
}

//! The identity service: users and their role profiles, departments and rooms, login and
//! tokens.
//!
//! It owns the `identity` schema and nothing else. With the built-in provider (the default)
//! it is an OIDC provider itself: Ed25519-signed access tokens, rotating refresh tokens,
//! client credentials for the platform's services. With Keycloak it keeps the profiles and
//! manages Keycloak's users through the Admin REST API. [`router`] builds the HTTP interface
//! (tests call it in process); [`run`] migrates, bootstraps and serves until shutdown.

mod accounts;
pub mod domain;
mod repo;
mod routes;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::FromRef;
use polyclinic_auth::{RevocationFeed, Verifier, VerifierSettings};
use polyclinic_client::care::CareTeam;
use polyclinic_client::{ServiceClient, ServiceTokens};
use polyclinic_config::{Config, IdentityProvider, Service};
use polyclinic_events::{Backbone, ServiceRoutes};
use polyclinic_http::CancellationToken;
use polyclinic_http::axum::Router;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::accounts::Credentials;
use crate::accounts::handoff::Handoffs;
use crate::accounts::keycloak::KeycloakAdmin;
use crate::accounts::tokens::TokenSettings;
use crate::accounts::{bootstrap, login, tokens};

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Identity;

/// The migrations of the `identity` schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A platform service's own OAuth client (client credentials).
#[derive(Debug, Clone)]
pub struct ServiceCredentials {
    pub service: Service,
    pub secret: String,
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    tokens: Arc<TokenSettings>,
    credentials: Arc<Credentials>,
    /// `client_id` -> each platform service's own client.
    service_clients: Arc<HashMap<String, ServiceCredentials>>,
    provider: IdentityProvider,
    /// The clinic's name, for FHIR's Organization.
    clinic_name: Arc<str>,
    /// The FHIR base URL (`<public_url>/fhir`), for SMART's `fhirUser` and configuration.
    fhir_base: Arc<str>,
    /// Whether a doctor or nurse cares for a patient (FHIR's Patient for the care team).
    care: Arc<CareTeam>,
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
    /// The state for `config`, with the Keycloak client when Keycloak is the provider.
    pub fn new(config: &Config, pool: PgPool, verifier: Arc<Verifier>) -> anyhow::Result<Self> {
        let credentials = match config.identity_provider {
            IdentityProvider::Builtin => Credentials::Builtin,
            IdentityProvider::Keycloak => {
                let secret =
                    config.keycloak.client_secret.clone().context(
                        "`keycloak.client_secret` is required with the keycloak provider",
                    )?;
                Credentials::Keycloak(KeycloakAdmin::new(&config.keycloak, secret)?)
            }
        };
        // Only services whose background work calls something get a client: not the web app
        // (it signs people in as the first-party client `polyclinic-web` and acts only for
        // them), not this service (it reads its own revocations).
        let service_clients = Service::ALL
            .into_iter()
            .filter(|service| !polyclinic_auth::scopes::granted_to(*service).is_empty())
            .map(|service| {
                (
                    format!("polyclinic-{service}"),
                    ServiceCredentials {
                        service,
                        secret: config.client_secret(service),
                    },
                )
            })
            .collect();
        Ok(Self {
            pool,
            verifier,
            tokens: Arc::new(token_settings(config)),
            credentials: Arc::new(credentials),
            service_clients: Arc::new(service_clients),
            provider: config.identity_provider,
            clinic_name: config.clinic_name.as_str().into(),
            fhir_base: polyclinic_fhir::Base::of(&config.public_url).0,
            care: Arc::new(CareTeam::new(
                ServiceClient::new(Duration::from_secs(
                    config.http.upstream_timeout_secs.into(),
                )),
                &config.service_url(Service::Appointments),
            )),
        })
    }
}

impl AppState {
    /// A person's own FHIR resource, as SMART's `fhirUser` names it: a patient's Patient, a
    /// doctor's or nurse's Practitioner; an administrator has none.
    pub fn fhir_user(&self, user: &domain::user::User) -> Option<String> {
        let resource_type = match user.role {
            domain::user::UserRole::Patient => "Patient",
            domain::user::UserRole::Doctor | domain::user::UserRole::Nurse => "Practitioner",
            domain::user::UserRole::Admin => return None,
        };
        Some(format!("{}/{resource_type}/{}", self.fhir_base, user.id))
    }
}

fn token_settings(config: &Config) -> TokenSettings {
    TokenSettings {
        issuer: config.issuer(),
        audience: config.auth.audience.clone(),
        access_ttl: Duration::from_secs(config.auth.access_token_ttl_secs.into()),
        refresh_ttl: Duration::from_secs(config.auth.refresh_token_ttl_secs.into()),
        leeway: Duration::from_secs(config.auth.leeway_secs.into()),
        publish_lead: Duration::from_secs(config.auth.key_publish_lead_secs.into()),
    }
}

/// The documented routes (identity consumes no events) and the FHIR ones.
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

/// Migrates the schema, makes sure a signing key and an administrator exist, then serves on
/// `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = polyclinic_db::open(&config, SERVICE, &MIGRATOR).await?;
    let verifier = Verifier::new(VerifierSettings {
        revocations: local_revocations(pool.clone(), &config),
        ..VerifierSettings::from_config(&config, SERVICE)
    });
    let state = AppState::new(&config, pool.clone(), verifier)?;
    if config.identity_provider == IdentityProvider::Builtin {
        tokens::ensure_signing_key(&pool).await?;
    }
    let backbone = Backbone::start(&config, SERVICE, &pool, &shutdown).await?;
    bootstrap::ensure_first_admin(&pool, &state.credentials, &config).await?;
    tokio::spawn(purge_throttle_hourly(pool.clone(), shutdown.clone()));
    let handoffs = Handoffs {
        pool: pool.clone(),
        client: ServiceClient::new(Duration::from_secs(
            config.http.upstream_timeout_secs.into(),
        )),
        tokens: Arc::new(ServiceTokens::for_service(&config, SERVICE)),
        records: config.service_url(Service::Prescriptions),
    };
    tokio::spawn(handoffs.run(shutdown.clone()));

    let app = router(&config, state, &backbone);
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    backbone.serve(listener, app, grace).await?;
    pool.close().await;
    Ok(())
}

/// This service's own verifier reads the revocations from its tables, as the feed does.
fn local_revocations(pool: PgPool, config: &Config) -> RevocationFeed {
    let horizon = Duration::from_secs(
        u64::from(config.auth.access_token_ttl_secs) + u64::from(config.auth.leeway_secs),
    );
    RevocationFeed::Local(Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move { login::revocation_list(&pool, horizon).await })
    }))
}

/// Forgets finished login-throttle windows and expired authorization codes every hour
/// (idempotent: any number of instances may run it).
async fn purge_throttle_hourly(pool: PgPool, shutdown: CancellationToken) {
    loop {
        match login::purge_throttle(&pool).await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "purged login-throttle windows"),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "purging login-throttle windows failed")
            }
        }
        if let Err(err) = accounts::smart::purge_codes(&pool).await {
            tracing::warn!(error = %format!("{err:#}"), "purging authorization codes failed");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// Publishes a new signing key that starts signing after `auth.key_publish_lead_secs`; the
/// current key keeps verifying until its tokens expire. Returns the new key id.
pub async fn rotate_signing_key(config: &Config) -> anyhow::Result<String> {
    polyclinic_db::ensure_database(config.database_url_for(SERVICE)).await?;
    let pool = polyclinic_db::open(config, SERVICE, &MIGRATOR).await?;
    let kid = tokens::rotate(&pool, token_settings(config).publish_lead).await?;
    pool.close().await;
    Ok(kid)
}

//! The clinic's web app on port 8090: server-rendered pages (askama templates, checked at
//! compile time) with htmx for partial updates, for patients, doctors, nurses and admins.
//!
//! It is a backend-for-frontend and a client of the gateway like any other: the clinic's data
//! it shows and changes is the services', through the gateway; its own schema holds only its
//! sessions. The browser holds one HttpOnly, SameSite session cookie (Secure when served over
//! TLS); the tokens it stands for stay in [`session`] (sealed, in PostgreSQL, shared by every
//! replica) and are refreshed here. Every unsafe request must carry the session's CSRF token ([`guard`]). Static
//! assets are compiled into the binary ([`assets`]), so the app works without a CDN.

mod api;
mod assets;
mod guard;
mod keycloak;
mod model;
mod page;
mod routes;
mod session;
mod view;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use polyclinic_config::{Config, IdentityProvider, Service};
use polyclinic_http::axum::Router;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{CancellationToken, ServiceApp};
use tokio::net::TcpListener;

use crate::api::{AuthEndpoints, Gateway};
use crate::keycloak::KeycloakLogin;
use crate::session::Sessions;
use crate::view::Clinic;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Web;

/// The migrations of the web app's schema (its sessions).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// What the web app's handlers share.
#[derive(Clone)]
pub struct WebState {
    gateway: Gateway,
    sessions: Sessions,
    /// The web app's own schema (its sessions).
    pool: sqlx::PgPool,
    clinic: Arc<Clinic>,
    /// Served over TLS: the cookie is `Secure` (and `__Host-` prefixed).
    secure: bool,
    /// Set in Keycloak mode: sign-in goes through Keycloak (authorization code + PKCE).
    keycloak: Option<Arc<KeycloakLogin>>,
    /// Patients may cancel or move a paid booking until this many hours before it (the
    /// appointments service enforces it; the pages only hide buttons that would fail).
    cutoff_hours: i64,
    /// The clinic's currency, for fees entered here.
    currency: String,
    /// The Content-Security-Policy of every page.
    csp: axum::http::HeaderValue,
}

impl WebState {
    pub fn new(config: &Config, pool: sqlx::PgPool) -> anyhow::Result<Self> {
        let sessions = Sessions::new(config, pool.clone())?;
        let timeout = Duration::from_secs(config.http.upstream_timeout_secs.into());
        let base = config.service_url(Service::Gateway);
        let keycloak = match config.identity_provider {
            IdentityProvider::Builtin => None,
            IdentityProvider::Keycloak => Some(Arc::new(KeycloakLogin::new(config)?)),
        };
        let auth = match &keycloak {
            Some(keycloak) => keycloak.endpoints.clone(),
            None => AuthEndpoints {
                token_url: format!("{base}/api/auth/token"),
                revoke_url: format!("{base}/api/auth/revoke"),
                client_id: "polyclinic-web".to_owned(),
            },
        };
        let gateway = Gateway::new(base, auth, timeout, sessions.clone())
            .context("building the gateway client")?;
        Ok(Self {
            gateway,
            sessions,
            pool,
            clinic: Arc::new(Clinic::new(&config.timezone)?),
            secure: web_is_tls(config),
            keycloak,
            cutoff_hours: config.booking.cancellation_cutoff_hours.into(),
            currency: config.currency.clone(),
            csp: content_security_policy(config)?,
        })
    }
}

/// Scripts, styles and everything else from this app only; forms may also lead to Keycloak
/// (signing out ends the Keycloak session there), as a redirect after a form is held to
/// `form-action` too.
fn content_security_policy(config: &Config) -> anyhow::Result<axum::http::HeaderValue> {
    let mut form_action = "'self'".to_owned();
    if config.identity_provider == IdentityProvider::Keycloak {
        let issuer = config.issuer();
        let origin = issuer.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        form_action.push(' ');
        form_action.push_str(&origin);
    }
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    axum::http::HeaderValue::from_str(&policy)
        .with_context(|| format!("the issuer {} makes no valid policy", config.issuer()))
}

/// Whether browsers reach the app over HTTPS.
fn web_is_tls(config: &Config) -> bool {
    config.public_web_url.starts_with("https://")
}

/// The web app's OpenAPI document: only the platform routes (its pages are HTML, not API).
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    polyclinic_http::document(SERVICE, OpenApiRouter::<()>::new().split_for_parts().1)
}

/// The complete router: pages and assets behind the session and CSRF guard, plus the
/// health, metrics and OpenAPI routes every service serves.
pub fn router(config: &Config, state: WebState) -> Router {
    let database = polyclinic_db::readiness_check(&state.pool);
    // Assets are outside the guard: they start no session and carry no cookie, so a shared
    // cache may keep them.
    let pages = routes::router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::sessions_and_csrf,
        ))
        .merge(assets::router())
        .layer(axum::middleware::from_fn(api::with_visitor))
        .with_state(state);
    ServiceApp::new(SERVICE, OpenApiRouter::from(pages))
        .configured(config)
        .check(database)
        .into_router()
}

/// Serves on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = polyclinic_db::open(&config, SERVICE, &MIGRATOR).await?;
    let state = WebState::new(&config, pool)?;
    let sessions = state.sessions.clone();
    let purging = shutdown.clone();
    let period = Duration::from_secs(config.sessions.purge_interval_secs.into());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = purging.cancelled() => break,
                _ = every.tick() => {
                    if let Err(err) = sessions.purge().await {
                        tracing::warn!(error = %format!("{err:#}"), "purging expired sessions failed; tried again later");
                    }
                }
            }
        }
    });
    let app = router(&config, state);
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    polyclinic_http::serve(listener, app, shutdown, grace).await?;
    Ok(())
}

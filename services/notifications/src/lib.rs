//! The notifications service: event consumers, email rendering and delivery, the notification
//! log and inbox, and the admins' event log across every service.
//!
//! It owns the `notifications` schema and nothing else, including its outbox, inbox and dead
//! letters on the event backbone. [`router`] builds the HTTP interface; [`run`] migrates the
//! schema, starts the consumers (the event log, and [`mail`], which writes the messages an
//! event calls for) and the [`delivery`] senders, and serves until shutdown.

pub mod calendar;
pub mod delivery;
pub mod directory;
pub mod event_log;
pub mod mail;
pub mod messages;
pub mod repo;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_client::{ServiceClient, ServiceTokens};
use polyclinic_config::{Config, Service};
use polyclinic_contracts::Topic;
use polyclinic_events::api::Replay;
use polyclinic_events::{Backbone, Consumer, ConsumerSettings, Handlers, ServiceRoutes};
use polyclinic_http::CancellationToken;
use polyclinic_http::axum::Router;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;

use crate::delivery::{Sender, Transport};
use crate::directory::Directory;
use crate::mail::Mail;
use crate::messages::Templates;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Notifications;

/// The migrations of the `notifications` schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    client: ServiceClient,
    /// Every service with a schema, by name, with its base URL: where consumer outcomes and
    /// dead letters are asked for.
    services: Arc<Vec<(String, String)>>,
    /// Names, places and the clinic's calendar identity, for the calendar feeds.
    mail: Arc<Mail>,
    /// The gateway's public base URL, where feeds are read.
    public_url: String,
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
    pub fn new(config: &Config, pool: PgPool, verifier: Arc<Verifier>, mail: Arc<Mail>) -> Self {
        let services = Service::ALL
            .into_iter()
            .filter(|service| service.has_events())
            .map(|service| (service.as_str().to_owned(), config.service_url(service)))
            .collect();
        Self {
            pool,
            verifier,
            client: ServiceClient::new(Duration::from_secs(
                config.http.upstream_timeout_secs.into(),
            )),
            services: Arc::new(services),
            mail,
            public_url: config.public_url.trim_end_matches('/').to_owned(),
        }
    }
}

/// The documented routes, and the internal routes of the event log and mail consumers.
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

fn event_log_consumer(config: &Config, pool: &PgPool, backbone: &Backbone) -> Consumer<()> {
    let topics: Vec<&str> = Topic::ALL.iter().map(|topic| topic.as_str()).collect();
    let mut settings = ConsumerSettings::from_config(config, event_log::CONSUMER, &topics);
    settings.service = "notifications".to_owned();
    let handlers = Handlers::new()
        .otherwise(|conn, envelope, _: &()| Box::pin(event_log::record(conn, envelope)));
    Consumer::new(
        backbone.bus(),
        pool.clone(),
        settings,
        handlers,
        (),
        backbone.metrics().clone(),
    )
}

/// What writing messages needs, from the configuration.
pub fn mail(config: &Config) -> anyhow::Result<Mail> {
    let client = ServiceClient::new(Duration::from_secs(
        config.http.upstream_timeout_secs.into(),
    ));
    let directory = Directory::new(
        client,
        ServiceTokens::for_service(config, SERVICE),
        &config.service_url(Service::Identity),
    );
    let from: lettre::message::Mailbox =
        config.email.from.parse().map_err(|err| {
            anyhow::anyhow!("invalid configuration value for `email.from`: {err}")
        })?;
    Ok(Mail {
        directory,
        templates: Templates::load()?,
        zone: config.timezone.parse().map_err(|_| {
            anyhow::anyhow!("`timezone`: {} is not an IANA timezone", config.timezone)
        })?,
        clinic: config.clinic_name.clone(),
        // People sign in through the web app; the emails send them there.
        sign_in_url: config.public_web_url.clone(),
        organizer: calendar::Party {
            name: from.name.unwrap_or_else(|| config.clinic_name.clone()),
            email: from.email.to_string(),
        },
        uid_domain: calendar::uid_domain(&config.public_url),
    })
}

/// Migrates the schema, starts the consumers and the senders, then serves on `listener`
/// until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = polyclinic_db::open(&config, SERVICE, &MIGRATOR).await?;
    let backbone = Backbone::start(&config, SERVICE, &pool, &shutdown).await?;
    let verifier = Verifier::new(VerifierSettings::from_config(&config, SERVICE));

    let event_log = Arc::new(event_log_consumer(&config, &pool, &backbone));
    backbone.run(event_log.clone());
    let writing = Arc::new(self::mail(&config)?);
    let mail = Arc::new(mail::consumer(&config, &pool, &backbone, writing.clone()));
    backbone.run(mail.clone());
    let calendar = Arc::new(calendar::visits::consumer(&config, &pool, &backbone));
    backbone.run(calendar.clone());
    let transport = Transport::from_config(&config.email)?;
    Sender::new(pool.clone(), transport, &config.email).spawn(shutdown.clone());

    let state = AppState::new(&config, pool.clone(), verifier, writing);
    let app = router(&config, state, &backbone, vec![event_log, mail, calendar]);
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    backbone.serve(listener, app, grace).await?;
    pool.close().await;
    Ok(())
}

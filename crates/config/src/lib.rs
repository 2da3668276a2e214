//! Polyclinic's configuration, one struct for the whole platform.
//!
//! Values are layered: compiled defaults, then an optional `polyclinic.toml`, then environment
//! variables. Every key `a.b` can be set from the environment as `POLYCLINIC_A_B` (a few keys
//! also answer to the conventional names in [`ALIASES`], such as `DATABASE_URL`). A bad value
//! fails loading with an error that names the key and where the value came from.

mod load;
mod service;

use serde::{Deserialize, Serialize};

pub use load::{ALIASES, ConfigError, env_var_for, keys};
pub use service::Service;

/// The whole platform's configuration. Each service reads the parts it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The PostgreSQL database every service keeps its schema in (created if missing).
    pub database_url: String,
    /// The gateway's public base URL, as browsers and API clients see it.
    pub public_url: String,
    /// Which backend short-lived locks use.
    pub locks: LockBackend,
    /// The Redis server for the `redis` lock backend.
    pub redis_url: String,
    /// Prefix of every Redis key the platform writes, so that several deployments (or
    /// tests) can share one server.
    pub redis_key_prefix: String,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub gateway: ServiceConfig,
    pub identity: ServiceConfig,
    pub appointments: ServiceConfig,
    pub payments: ServiceConfig,
    pub notifications: ServiceConfig,
    pub prescriptions: ServiceConfig,
}

/// Where short-lived locks live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockBackend {
    /// PostgreSQL advisory locks: nothing else to run.
    Postgres,
    /// Redis `SET NX PX` with a random token: for many instances under load.
    Redis,
}

/// How logs are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` for people at a terminal, `json` for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,sqlx=warn`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Limits shared by every HTTP server of the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest accepted request body; larger ones get 413.
    pub body_limit_bytes: u32,
    /// How long shutdown waits for in-flight requests before giving up on them.
    pub shutdown_grace_secs: u32,
}

/// Where one service listens and how the others reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The TCP port the service listens on (on all interfaces).
    pub port: u16,
    /// The base URL other services use to call this one; defaults to
    /// `http://127.0.0.1:<port>`, which is right for `polyclinic all`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// This service's own database URL (for a least-privilege role per service);
    /// defaults to the shared `database_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Upper bound of the service's PostgreSQL connection pool.
    pub db_max_connections: u32,
}

impl ServiceConfig {
    fn with_port(port: u16) -> Self {
        Self {
            port,
            url: None,
            database_url: None,
            db_max_connections: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "postgres://postgres@127.0.0.1:5432/polyclinic".into(),
            public_url: "http://127.0.0.1:8080".into(),
            locks: LockBackend::Postgres,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_key_prefix: "polyclinic:".into(),
            log: LogConfig {
                format: LogFormat::Pretty,
                filter: "info,sqlx=warn".into(),
            },
            http: HttpConfig {
                body_limit_bytes: 256 * 1024,
                shutdown_grace_secs: 20,
            },
            gateway: ServiceConfig::with_port(8080),
            identity: ServiceConfig::with_port(8081),
            appointments: ServiceConfig::with_port(8083),
            payments: ServiceConfig::with_port(8084),
            notifications: ServiceConfig::with_port(8085),
            prescriptions: ServiceConfig::with_port(8086),
        }
    }
}

impl Config {
    /// The settings of one service.
    pub fn service(&self, service: Service) -> &ServiceConfig {
        match service {
            Service::Gateway => &self.gateway,
            Service::Identity => &self.identity,
            Service::Appointments => &self.appointments,
            Service::Payments => &self.payments,
            Service::Notifications => &self.notifications,
            Service::Prescriptions => &self.prescriptions,
        }
    }

    /// The settings of one service, for changing them (tests bind port 0 and record the
    /// actual address here).
    pub fn service_mut(&mut self, service: Service) -> &mut ServiceConfig {
        match service {
            Service::Gateway => &mut self.gateway,
            Service::Identity => &mut self.identity,
            Service::Appointments => &mut self.appointments,
            Service::Payments => &mut self.payments,
            Service::Notifications => &mut self.notifications,
            Service::Prescriptions => &mut self.prescriptions,
        }
    }

    /// The base URL (no trailing slash) at which other services reach `service`.
    pub fn service_url(&self, service: Service) -> String {
        let settings = self.service(service);
        match &settings.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://127.0.0.1:{}", settings.port),
        }
    }

    /// The database URL `service` connects with.
    pub fn database_url_for(&self, service: Service) -> &str {
        self.service(service)
            .database_url
            .as_deref()
            .unwrap_or(&self.database_url)
    }
}

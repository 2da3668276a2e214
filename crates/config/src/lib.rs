//! Polyclinic's configuration, one struct for the whole platform.
//!
//! Values are layered: compiled defaults, then an optional `polyclinic.toml`, then environment
//! variables. Every key `a.b` can be set from the environment as `POLYCLINIC_A_B` (a few keys
//! also answer to the conventional names in [`ALIASES`], such as `DATABASE_URL`). A bad value
//! fails loading with an error that names the key and where the value came from.

mod load;
mod sections;
mod service;

use serde::{Deserialize, Serialize};

pub use load::{ALIASES, ConfigError, env_var_for, keys};
pub use sections::*;
pub use service::Service;

/// The whole platform's configuration. Each service reads the parts it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `development` allows generated and well-known development secrets; `production`
    /// refuses to start without real ones.
    pub environment: Environment,
    /// The PostgreSQL database every service keeps its schema in (created if missing).
    pub database_url: String,
    /// Whether a service brings its schema up to date as the owner (`database_url`) when it
    /// starts. `false` when a separate step (`polyclinic migrate`, the Kubernetes migration
    /// Job) does it and the services' pods hold only their own logins: a service then
    /// refuses to start on a schema older than its migrations.
    pub migrate_on_start: bool,
    /// The gateway's public base URL, as browsers and API clients see it.
    pub public_url: String,
    /// The web app's public base URL, as browsers see it: Keycloak redirects back to it, and
    /// an `https://` URL makes the session cookie `Secure`.
    pub public_web_url: String,
    /// Who issues tokens: the identity service itself, or Keycloak.
    pub identity_provider: IdentityProvider,
    /// Which bus carries events between services.
    pub event_bus: EventBus,
    /// Who handles card payments.
    pub payments_provider: PaymentsProvider,
    /// Which backend short-lived locks use.
    pub locks: LockBackend,
    /// The Redis server for the `redis` lock backend.
    pub redis_url: String,
    /// Prefix of every Redis key the platform writes, so that several deployments (or
    /// tests) can share one server.
    pub redis_key_prefix: String,
    /// The clinic's name, as FHIR's Organization (and so other systems) show it.
    pub clinic_name: String,
    /// The clinic's IANA timezone: schedules are laid out and times shown in it.
    pub timezone: String,
    /// The clinic's ISO 4217 currency: fees are set in it (amounts carry their own currency).
    pub currency: String,
    /// Browser origins allowed to call the API cross-origin (CORS); empty allows none.
    pub cors_origins: Vec<String>,
    pub admin: AdminConfig,
    pub auth: AuthConfig,
    pub keycloak: KeycloakConfig,
    pub kafka: KafkaConfig,
    pub events: EventsConfig,
    pub booking: AppointmentsConfig,
    pub waitlist: WaitlistConfig,
    pub sessions: SessionsConfig,
    pub stripe: StripeConfig,
    pub email: EmailConfig,
    pub rate_limit: RateLimitConfig,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub gateway: ServiceConfig,
    pub identity: ServiceConfig,
    pub appointments: ServiceConfig,
    /// The payments service, and when cards are charged.
    pub payments: PaymentsConfig,
    pub notifications: ServiceConfig,
    pub prescriptions: ServiceConfig,
    /// The browser app (a client of the gateway; keeps only its sessions).
    pub web: ServiceConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            environment: Environment::Development,
            database_url: "postgres://postgres@127.0.0.1:5432/polyclinic".into(),
            migrate_on_start: true,
            public_url: "http://127.0.0.1:8080".into(),
            public_web_url: "http://127.0.0.1:8090".into(),
            identity_provider: IdentityProvider::Builtin,
            event_bus: EventBus::Postgres,
            payments_provider: PaymentsProvider::Simulated,
            locks: LockBackend::Postgres,
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_key_prefix: "polyclinic:".into(),
            clinic_name: "Polyclinic".into(),
            timezone: "UTC".into(),
            currency: "EUR".into(),
            cors_origins: Vec::new(),
            admin: AdminConfig {
                email: "admin@polyclinic.local".into(),
                password: None,
            },
            auth: AuthConfig {
                audience: "polyclinic-api".into(),
                issuer: None,
                jwks_url: None,
                access_token_ttl_secs: 600,
                refresh_token_ttl_secs: 14 * 24 * 3600,
                leeway_secs: 30,
                key_publish_lead_secs: 60,
                jwks_refetch_interval_secs: 5,
                revocation_poll_secs: 2,
            },
            keycloak: KeycloakConfig {
                url: "http://127.0.0.1:8443".into(),
                realm: "polyclinic".into(),
                client_id: "polyclinic-identity".into(),
                client_secret: None,
            },
            kafka: KafkaConfig {
                brokers: "127.0.0.1:9092".into(),
                properties: Vec::new(),
                partitions: 6,
                replication_factor: 1,
                create_topics: true,
                topic_prefix: String::new(),
                group_instance_id: String::new(),
                security_protocol: "plaintext".into(),
                ssl_ca_location: String::new(),
                ssl_certificate_location: String::new(),
                ssl_key_location: String::new(),
                ssl_key_password: String::new(),
                sasl_mechanism: String::new(),
                sasl_username: String::new(),
                sasl_password: String::new(),
                sasl_oauthbearer_token_endpoint_url: String::new(),
                sasl_oauthbearer_client_id: String::new(),
                sasl_oauthbearer_client_secret: String::new(),
                sasl_oauthbearer_scope: String::new(),
            },
            events: EventsConfig {
                max_attempts: 5,
                retry_base_ms: 500,
            },
            sessions: SessionsConfig {
                keys: Vec::new(),
                idle_minutes: 30,
                absolute_hours: 12,
                purge_interval_secs: 300,
            },
            booking: AppointmentsConfig {
                hold_minutes: 10,
                min_notice_minutes: 60,
                cancellation_cutoff_hours: 24,
                max_pending_per_patient: 3,
                retention_days: 730,
            },
            waitlist: WaitlistConfig {
                offer_minutes: 15,
                max_entries_per_patient: 3,
                max_range_days: 90,
            },
            stripe: StripeConfig {
                secret_key: None,
                webhook_secrets: Vec::new(),
                api_base: "https://api.stripe.com".into(),
            },
            email: EmailConfig {
                transport: EmailTransport::Log,
                smtp_url: None,
                from: "Polyclinic <noreply@polyclinic.local>".into(),
                max_attempts: 6,
                retry_base_ms: 2_000,
                concurrency: 32,
            },
            rate_limit: RateLimitConfig {
                anonymous_per_minute: 300,
                user_per_minute: 1200,
                webhook_per_minute: 600,
                feed_per_minute: 30,
            },
            log: LogConfig {
                format: LogFormat::Pretty,
                filter: "info,sqlx=warn".into(),
            },
            http: HttpConfig {
                body_limit_bytes: 256 * 1024,
                shutdown_grace_secs: 20,
                upstream_timeout_secs: 15,
                client_address_header: ClientAddressHeader::XForwardedFor,
                metrics_token: None,
            },
            gateway: ServiceConfig::with_port(8080),
            identity: ServiceConfig::with_port(8081),
            appointments: ServiceConfig::with_port(8083),
            payments: PaymentsConfig {
                service: ServiceConfig::with_port(8084),
                authorize_ahead_days: 6,
                authorize_lead_hours: 48,
                card_update_hours: 24,
            },
            notifications: ServiceConfig::with_port(8085),
            prescriptions: ServiceConfig::with_port(8086),
            web: ServiceConfig::with_port(8090),
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
            Service::Payments => &self.payments.service,
            Service::Notifications => &self.notifications,
            Service::Prescriptions => &self.prescriptions,
            Service::Web => &self.web,
        }
    }

    /// The settings of one service, for changing them (tests bind port 0 and record the
    /// actual address here).
    pub fn service_mut(&mut self, service: Service) -> &mut ServiceConfig {
        match service {
            Service::Gateway => &mut self.gateway,
            Service::Identity => &mut self.identity,
            Service::Appointments => &mut self.appointments,
            Service::Payments => &mut self.payments.service,
            Service::Notifications => &mut self.notifications,
            Service::Prescriptions => &mut self.prescriptions,
            Service::Web => &mut self.web,
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

    /// The token issuer every service trusts: `auth.issuer` when set, otherwise the
    /// built-in provider at `<public_url>/api/auth` or the Keycloak realm's URL.
    pub fn issuer(&self) -> String {
        if let Some(issuer) = &self.auth.issuer {
            return issuer.trim_end_matches('/').to_owned();
        }
        match self.identity_provider {
            IdentityProvider::Builtin => {
                format!("{}/api/auth", self.public_url.trim_end_matches('/'))
            }
            IdentityProvider::Keycloak => self.keycloak.realm_url(),
        }
    }

    /// Where services fetch the issuer's signing keys: `auth.jwks_url` when set, otherwise
    /// the identity service's JWKS over the internal network, or Keycloak's certs endpoint.
    pub fn jwks_url(&self) -> String {
        if let Some(url) = &self.auth.jwks_url {
            return url.clone();
        }
        match self.identity_provider {
            IdentityProvider::Builtin => {
                format!("{}/api/auth/jwks", self.service_url(Service::Identity))
            }
            IdentityProvider::Keycloak => {
                format!(
                    "{}/protocol/openid-connect/certs",
                    self.keycloak.realm_url()
                )
            }
        }
    }

    /// The networks whose forwarding headers `service` believes (see
    /// [`ServiceConfig::trusted_proxies`]); validated at load, so none is dropped here.
    pub fn trusted_proxies(&self, service: Service) -> Vec<ipnet::IpNet> {
        self.service(service)
            .trusted_proxies
            .iter()
            .filter_map(|proxy| parse_network(proxy))
            .collect()
    }

    /// The client secret `service` presents for its service token. In development an
    /// unset secret falls back to a well-known value; production refuses that at start-up.
    pub fn client_secret(&self, service: Service) -> String {
        self.service(service)
            .client_secret
            .clone()
            .unwrap_or_else(|| format!("development-only-secret-of-{service}"))
    }
}

/// A CIDR (`10.0.0.0/8`, `fd00::/8`) or a single address (`10.1.2.3`, as a /32 or /128).
pub fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

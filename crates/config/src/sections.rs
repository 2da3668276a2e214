//! The sections of [`crate::Config`].

use serde::{Deserialize, Serialize};

/// Development allows well-known secrets; production insists on real ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Production,
}

/// Who issues the tokens that every service verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProvider {
    /// The identity service is an OIDC provider itself.
    Builtin,
    /// Keycloak issues tokens; the identity service manages users through its Admin API.
    Keycloak,
}

/// Where short-lived locks live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockBackend {
    /// PostgreSQL advisory locks: nothing else to run.
    Postgres,
    /// Redis `SET NX PX` with a random token: for many instances under load.
    Redis,
    /// No lock at all: the database's constraints alone keep bookings apart (they always
    /// do; the lock only spares the database the contention). For comparison and tests.
    None,
}

/// The first administrator, created on start when no active admin exists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub email: String,
    /// Unset in development: a password is generated and printed once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Tokens: what is issued (built-in provider) and what is accepted (every service).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The `aud` every access token must carry.
    pub audience: String,
    /// Overrides the expected `iss` (for a Keycloak whose public host differs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Overrides where signing keys are fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Access token lifetime, 300 to 900 seconds.
    pub access_token_ttl_secs: u32,
    /// Refresh token lifetime.
    pub refresh_token_ttl_secs: u32,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway_secs: u32,
    /// How long a new signing key is published before it signs anything.
    pub key_publish_lead_secs: u32,
    /// The least time between two JWKS fetches caused by unknown key ids.
    pub jwks_refetch_interval_secs: u32,
    /// How often services refresh the list of revoked sessions and deactivated users.
    pub revocation_poll_secs: u32,
}

/// The Keycloak realm used when `identity_provider = "keycloak"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeycloakConfig {
    /// Keycloak's base URL as the services reach it.
    pub url: String,
    pub realm: String,
    /// The confidential client whose service account manages users.
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl KeycloakConfig {
    /// `<url>/realms/<realm>`: the realm's issuer and the base of its endpoints.
    pub fn realm_url(&self) -> String {
        format!("{}/realms/{}", self.url.trim_end_matches('/'), self.realm)
    }
}

/// Gateway rate limits, per gateway instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per minute from one client IP without a token.
    pub anonymous_per_minute: u32,
    /// Requests per minute from one authenticated subject.
    pub user_per_minute: u32,
    /// Requests per minute from one client IP to the Stripe webhook (Stripe's own budget,
    /// apart from anonymous visitors').
    pub webhook_per_minute: u32,
    /// Reads per minute of one calendar feed (its URL), on top of the anonymous budget of
    /// the address reading it: calendar applications poll every few minutes at most.
    pub feed_per_minute: u32,
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
    /// How long the gateway and service clients wait for an upstream answer (then 504).
    pub upstream_timeout_secs: u32,
    /// Which header trusted proxies write the client's address into:
    /// `x-forwarded-for` (nginx, most ingresses, and Polyclinic's own gateway and web app)
    /// or `forwarded` (RFC 7239). Only one is read, so a client cannot slip the other past
    /// a proxy that does not rewrite it.
    pub client_address_header: ClientAddressHeader,
    /// The bearer token Prometheus presents for `/metrics`. Unset, the gateway and the web
    /// app (the public listeners) do not serve `/metrics` and the other services serve it
    /// to anyone who can reach them; set, every service asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
}

/// The header that carries the client's address through trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAddressHeader {
    XForwardedFor,
    Forwarded,
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
    /// Peers (CIDRs) whose `X-Forwarded-For` (or `Forwarded`) this service believes about
    /// the client's address: its reverse proxies, and for the gateway the web app. Read
    /// right to left, skipping trusted hops; anyone else's is ignored. The default trusts
    /// loopback only, which is right for `polyclinic all` on one machine.
    pub trusted_proxies: Vec<String>,
    /// The secret of the service's own OAuth client (`polyclinic-<service>`), used for
    /// service tokens by background work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl ServiceConfig {
    pub(crate) fn with_port(port: u16) -> Self {
        Self {
            port,
            url: None,
            database_url: None,
            db_max_connections: 10,
            trusted_proxies: vec!["127.0.0.0/8".into(), "::1/128".into()],
            client_secret: None,
        }
    }
}

/// Which event bus carries events between services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventBus {
    /// The shared log table in the `eventbus` schema: nothing else to run.
    Postgres,
    /// Kafka topics, one per producing service.
    Kafka,
}

/// The Kafka bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    /// Extra librdkafka properties as `name=value`, for producers and consumers alike.
    pub properties: Vec<String>,
    /// Partitions of topics created at start-up.
    pub partitions: u32,
    /// Replication factor of topics created at start-up.
    pub replication_factor: u32,
    /// Whether the services create their topics when missing (off where the cluster's
    /// operators make them, or the brokers cannot: librdkafka's mock cluster has no
    /// CreateTopics request).
    pub create_topics: bool,
    /// Prefix of topic and consumer group names (empty in production; tests isolate
    /// themselves with it).
    pub topic_prefix: String,
    /// Static group membership (KIP-345): this process's `group.instance.id` in every
    /// consumer group, stable across its restarts and unique among live processes (the pod
    /// name). A restarted process then takes its partitions back at once instead of waiting
    /// for the group to give up on the one that died. Empty: dynamic membership.
    pub group_instance_id: String,
    /// How clients reach the brokers: `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`
    /// (librdkafka's `security.protocol`).
    pub security_protocol: String,
    /// PEM file of the CA that signed the brokers' certificates; empty: the system's CAs.
    pub ssl_ca_location: String,
    /// PEM file of this client's certificate, for brokers that require mutual TLS.
    pub ssl_certificate_location: String,
    /// PEM file of this client's private key (with `ssl_certificate_location`).
    pub ssl_key_location: String,
    /// The private key's password, when the key file is encrypted.
    pub ssl_key_password: String,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (with a `sasl_*` protocol).
    pub sasl_mechanism: String,
    /// The SASL user (PLAIN and SCRAM).
    pub sasl_username: String,
    /// The SASL password (PLAIN and SCRAM); `POLYCLINIC_KAFKA_SASL_PASSWORD_FILE` reads it
    /// from a mounted secret.
    pub sasl_password: String,
    /// OAUTHBEARER: the OpenID Connect token endpoint that issues the client's tokens
    /// (client credentials grant).
    pub sasl_oauthbearer_token_endpoint_url: String,
    /// OAUTHBEARER: the client id at the token endpoint.
    pub sasl_oauthbearer_client_id: String,
    /// OAUTHBEARER: the client secret at the token endpoint.
    pub sasl_oauthbearer_client_secret: String,
    /// OAUTHBEARER: the scope asked for (optional).
    pub sasl_oauthbearer_scope: String,
}

/// `kafka.security_protocol` values.
pub const KAFKA_SECURITY_PROTOCOLS: &[&str] = &["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
/// `kafka.sasl_mechanism` values.
pub const KAFKA_SASL_MECHANISMS: &[&str] =
    &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

impl KafkaConfig {
    /// librdkafka properties for the connection's security, from the settings above (in
    /// the order they apply; `kafka.properties` come after them and win).
    pub fn security_properties(&self) -> Vec<(String, String)> {
        let mut properties = vec![(
            "security.protocol".to_owned(),
            self.security_protocol.clone(),
        )];
        let mut add = |name: &str, value: &str| {
            if !value.trim().is_empty() {
                properties.push((name.to_owned(), value.trim().to_owned()));
            }
        };
        if self.security_protocol.ends_with("ssl") {
            add("ssl.ca.location", &self.ssl_ca_location);
            add("ssl.certificate.location", &self.ssl_certificate_location);
            add("ssl.key.location", &self.ssl_key_location);
            add("ssl.key.password", &self.ssl_key_password);
        }
        if self.security_protocol.starts_with("sasl") {
            add("sasl.mechanism", &self.sasl_mechanism);
            if self.sasl_mechanism == "OAUTHBEARER" {
                add("sasl.oauthbearer.method", "oidc");
                add(
                    "sasl.oauthbearer.token.endpoint.url",
                    &self.sasl_oauthbearer_token_endpoint_url,
                );
                add(
                    "sasl.oauthbearer.client.id",
                    &self.sasl_oauthbearer_client_id,
                );
                add(
                    "sasl.oauthbearer.client.secret",
                    &self.sasl_oauthbearer_client_secret,
                );
                add("sasl.oauthbearer.scope", &self.sasl_oauthbearer_scope);
            } else {
                add("sasl.username", &self.sasl_username);
                add("sasl.password", &self.sasl_password);
            }
        }
        properties
    }
}

/// The event backbone's consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Attempts before a failing event is dead-lettered.
    pub max_attempts: u32,
    /// The first retry's delay in milliseconds; each further one doubles, up to a minute.
    pub retry_base_ms: u32,
}

/// The web app's sessions, kept in its schema (`web.session`) so that they outlive a
/// restart and are shared by every replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// Keys that encrypt the tokens a session holds, at rest: 32 random bytes each, in
    /// base64 (`openssl rand -base64 32`). The first encrypts; every one decrypts. To rotate,
    /// put a new key first and drop an old one once `absolute_hours` have passed. Empty in
    /// development only: a fixed development key is used, and production refuses to start.
    pub keys: Vec<String>,
    /// A session not used for this long ends.
    pub idle_minutes: u32,
    /// A session ends this long after it began, however busy.
    pub absolute_hours: u32,
    /// How often expired sessions are deleted (one instance at a time does it).
    pub purge_interval_secs: u32,
}

/// Booking rules of the appointments service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentsConfig {
    /// How long a reservation holds its slot while the card is authorised.
    pub hold_minutes: u32,
    /// How soon a slot may be booked at the earliest.
    pub min_notice_minutes: u32,
    /// How long before the start a patient may still cancel.
    pub cancellation_cutoff_hours: u32,
    /// Reservations a patient may hold unpaid at once.
    pub max_pending_per_patient: u32,
    /// How long ended, expired, rejected and cancelled appointments are kept.
    pub retention_days: u32,
}

/// Waitlists of the appointments service: patients waiting for a slot to free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitlistConfig {
    /// How long a freed slot is held for the first patient in line to claim it.
    pub offer_minutes: u32,
    /// Waitlist entries a patient may hold at once.
    pub max_entries_per_patient: u32,
    /// The longest date range one entry may cover, in days.
    pub max_range_days: u32,
}

/// The payments service: where it listens (as every service) and when cards are charged.
///
/// A card authorisation lapses after about seven days, so a visit further ahead than
/// `authorize_ahead_days` has its card saved at booking and authorised off-session
/// `authorize_lead_hours` before the visit; a failed authorisation leaves the patient
/// `card_update_hours` to give another card before the visit is cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "PaymentsSection", into = "PaymentsSection")]
pub struct PaymentsConfig {
    pub service: ServiceConfig,
    pub authorize_ahead_days: u32,
    pub authorize_lead_hours: u32,
    pub card_update_hours: u32,
}

/// [`PaymentsConfig`] as written: one table, the service's keys beside the card timing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentsSection {
    port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    db_max_connections: u32,
    trusted_proxies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    authorize_ahead_days: u32,
    authorize_lead_hours: u32,
    card_update_hours: u32,
}

impl From<PaymentsSection> for PaymentsConfig {
    fn from(section: PaymentsSection) -> Self {
        Self {
            service: ServiceConfig {
                port: section.port,
                url: section.url,
                database_url: section.database_url,
                db_max_connections: section.db_max_connections,
                trusted_proxies: section.trusted_proxies,
                client_secret: section.client_secret,
            },
            authorize_ahead_days: section.authorize_ahead_days,
            authorize_lead_hours: section.authorize_lead_hours,
            card_update_hours: section.card_update_hours,
        }
    }
}

impl From<PaymentsConfig> for PaymentsSection {
    fn from(config: PaymentsConfig) -> Self {
        let ServiceConfig {
            port,
            url,
            database_url,
            db_max_connections,
            trusted_proxies,
            client_secret,
        } = config.service;
        Self {
            port,
            url,
            database_url,
            db_max_connections,
            trusted_proxies,
            client_secret,
            authorize_ahead_days: config.authorize_ahead_days,
            authorize_lead_hours: config.authorize_lead_hours,
            card_update_hours: config.card_update_hours,
        }
    }
}

/// Who handles card payments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentsProvider {
    /// Stripe's state machine in process, with its test cards: no account needed.
    Simulated,
    /// The Stripe API.
    Stripe,
}

/// The Stripe account, for `payments_provider = "stripe"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StripeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    /// Webhook signing secrets; several while one is being rotated.
    pub webhook_secrets: Vec<String>,
    pub api_base: String,
}

/// How emails leave the notifications service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    /// Messages are stored and listed (and their subjects logged), not sent.
    Log,
    /// Messages are sent through an SMTP server.
    Smtp,
}

/// Email delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub transport: EmailTransport,
    /// `smtp://user:pass@host:587?tls=starttls` (`tls=starttls`, the default on port 587;
    /// `tls=tls` or `smtps://`, implicit TLS, the default on 465; `tls=none` for a relay on
    /// a trusted network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
    /// The sender address, optionally with a name: `Polyclinic <noreply@clinic.example>`.
    pub from: String,
    /// Sending attempts before a message is FAILED.
    pub max_attempts: u32,
    /// The first retry's delay in milliseconds; each further one doubles, up to an hour.
    pub retry_base_ms: u32,
    /// Emails a sender has in flight at once, over as many pooled SMTP connections.
    pub concurrency: u32,
}

/// The 32 bytes of a `sessions.keys` entry (standard or URL-safe base64, padded or not).
pub fn session_key(text: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let text = text.trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| "is not base64 (make one with `openssl rand -base64 32`)".to_owned())?;
    if decoded.len() != 32 {
        return Err(format!(
            "is {} bytes; a key is 32 random bytes (`openssl rand -base64 32`)",
            decoded.len()
        ));
    }
    Ok(decoded)
}

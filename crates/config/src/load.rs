//! Loading: defaults, then the file, then the environment, then validation.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::{Config, Service};

/// Keys that are set from a conventional variable instead of `POLYCLINIC_<KEY>`.
pub const ALIASES: &[(&str, &str)] = &[
    ("database_url", "DATABASE_URL"),
    ("stripe.secret_key", "STRIPE_SECRET_KEY"),
    ("stripe.webhook_secrets", "STRIPE_WEBHOOK_SECRET"),
    ("stripe.api_base", "POLYCLINIC_STRIPE_API_BASE"),
    ("email.transport", "POLYCLINIC_EMAIL"),
    ("email.smtp_url", "POLYCLINIC_SMTP_URL"),
    ("email.from", "POLYCLINIC_EMAIL_FROM"),
];

/// Why the configuration could not be loaded. Every variant names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {} is not valid TOML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("invalid configuration value for `{key}` (set by {origin}): {message}")]
    Invalid {
        key: String,
        origin: String,
        message: String,
    },
    #[error("the {service} service needs `{key}` ({env}): it {message}")]
    Missing {
        key: String,
        env: String,
        service: Service,
        message: String,
    },
}

impl ConfigError {
    /// What `service` lacks, naming the key and its environment variable.
    fn missing(service: Service, key: &str, message: &str) -> Self {
        ConfigError::Missing {
            env: env_var_for(key),
            key: key.to_owned(),
            service,
            message: message.to_owned(),
        }
    }
}

/// Where a value came from, so that an error can point at it.
#[derive(Debug, Clone)]
enum Origin {
    Default,
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the compiled default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Integer,
    Boolean,
    Text,
    /// A list, written in the environment as comma-separated values.
    List,
}

/// Keys without a default value, so absent from the serialized defaults.
const OPTIONAL_KEYS: &[&str] = &[
    "admin.password",
    "stripe.secret_key",
    "auth.issuer",
    "auth.jwks_url",
    "keycloak.client_secret",
    "email.smtp_url",
    "http.metrics_token",
];

/// Optional keys that every service section has.
const OPTIONAL_SERVICE_KEYS: &[&str] = &["url", "database_url", "client_secret"];

/// The environment variable that sets `key` (a dotted path such as `gateway.port`).
pub fn env_var_for(key: &str) -> String {
    match ALIASES.iter().find(|(aliased, _)| *aliased == key) {
        Some((_, var)) => (*var).to_owned(),
        None => format!("POLYCLINIC_{}", key.replace('.', "_").to_uppercase()),
    }
}

/// Every configuration key with its environment variable, sorted by key.
pub fn keys() -> Vec<(String, String)> {
    settable_keys()
        .into_iter()
        .map(|(key, _)| {
            let var = env_var_for(&key);
            (key, var)
        })
        .collect()
}

fn defaults_table() -> Table {
    #[expect(
        clippy::expect_used,
        reason = "the compiled defaults are plain data and always serialize"
    )]
    Table::try_from(Config::default()).expect("the default configuration serializes")
}

fn settable_keys() -> Vec<(String, Kind)> {
    let mut keys = Vec::new();
    collect_leaves(&defaults_table(), "", &mut keys);
    keys.extend(
        OPTIONAL_KEYS
            .iter()
            .map(|key| ((*key).to_owned(), Kind::Text)),
    );
    for service in Service::ALL {
        for key in OPTIONAL_SERVICE_KEYS {
            keys.push((format!("{service}.{key}"), Kind::Text));
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

fn collect_leaves(table: &Table, prefix: &str, out: &mut Vec<(String, Kind)>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            Value::Table(inner) => collect_leaves(inner, &key, out),
            Value::Integer(_) => out.push((key, Kind::Integer)),
            Value::Boolean(_) => out.push((key, Kind::Boolean)),
            Value::Array(_) => out.push((key, Kind::List)),
            _ => out.push((key, Kind::Text)),
        }
    }
}

fn merge(
    base: &mut Table,
    overlay: Table,
    prefix: &str,
    origins: &mut HashMap<String, Origin>,
    origin: &Origin,
) {
    for (name, value) in overlay {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match (base.get_mut(&name), value) {
            (Some(Value::Table(existing)), Value::Table(inner)) => {
                merge(existing, inner, &key, origins, origin);
            }
            (_, value) => {
                origins.insert(key, origin.clone());
                base.insert(name, value);
            }
        }
    }
}

fn set(table: &mut Table, key: &str, value: Value) {
    let mut current = table;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_owned(), value);
            return;
        }
        let entry = current
            .entry(part.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(inner) => current = inner,
            other => {
                *other = Value::Table(Table::new());
                let Value::Table(inner) = other else { return };
                current = inner;
            }
        }
    }
}

fn parse_env(kind: Kind, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    match kind {
        Kind::Integer => raw
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("`{raw}` is not a whole number")),
        Kind::Boolean => match raw {
            "true" | "1" | "yes" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" => Ok(Value::Boolean(false)),
            _ => Err(format!("`{raw}` is not true or false")),
        },
        Kind::Text => Ok(Value::String(raw.to_owned())),
        Kind::List => Ok(Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_owned()))
                .collect(),
        )),
    }
}

/// `<VAR>_FILE`: the value of `key` read from a file, as Docker and Kubernetes mount
/// secrets. The file's content, less a trailing newline, is the value; setting both the
/// variable and its `_FILE` form is refused, as one of them would be silently ignored.
fn from_file(
    env: &HashMap<String, String>,
    key: &str,
    var: &str,
) -> Result<Option<(String, String)>, ConfigError> {
    let file_var = format!("{var}_FILE");
    let Some(path) = env.get(&file_var) else {
        return Ok(None);
    };
    if env.contains_key(var) {
        return Err(ConfigError::Invalid {
            key: key.to_owned(),
            origin: Origin::Env(file_var).to_string(),
            message: format!("{var} is set too: set one of the two"),
        });
    }
    let content = std::fs::read_to_string(path.trim()).map_err(|err| ConfigError::Invalid {
        key: key.to_owned(),
        origin: Origin::Env(file_var.clone()).to_string(),
        message: format!("cannot read {}: {err}", path.trim()),
    })?;
    let value = content.strip_suffix('\n').unwrap_or(&content);
    let value = value.strip_suffix('\r').unwrap_or(value).to_owned();
    Ok(Some((file_var, value)))
}

impl Config {
    /// Loads the configuration from the defaults, the optional `file` and the variables in
    /// `env` (pass `std::env::vars()` in production; tests pass their own).
    pub fn load<I>(file: Option<&Path>, env: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut table = defaults_table();
        let mut origins = HashMap::new();

        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let overlay: Table = toml::from_str(&text).map_err(|err| ConfigError::Syntax {
                path: path.to_owned(),
                message: err.message().to_owned(),
            })?;
            merge(
                &mut table,
                overlay,
                "",
                &mut origins,
                &Origin::File(path.to_owned()),
            );
        }

        let env: HashMap<String, String> = env.into_iter().collect();
        for (key, kind) in settable_keys() {
            let var = env_var_for(&key);
            let from_file = from_file(&env, &key, &var)?;
            if let Some((file_var, raw)) = from_file {
                let value = parse_env(kind, &raw).map_err(|message| ConfigError::Invalid {
                    key: key.clone(),
                    origin: Origin::Env(file_var.clone()).to_string(),
                    message,
                })?;
                set(&mut table, &key, value);
                origins.insert(key, Origin::Env(file_var));
            } else if let Some(raw) = env.get(&var) {
                let value = parse_env(kind, raw).map_err(|message| ConfigError::Invalid {
                    key: key.clone(),
                    origin: Origin::Env(var.clone()).to_string(),
                    message,
                })?;
                set(&mut table, &key, value);
                origins.insert(key, Origin::Env(var));
            }
        }

        let origin_of = |key: &str| -> String {
            let fallback = match file {
                Some(path) => Origin::File(path.to_owned()),
                None => Origin::Default,
            };
            origins.get(key).unwrap_or(&fallback).to_string()
        };

        let config: Config =
            serde_path_to_error::deserialize(Value::Table(table)).map_err(|err| {
                let key = err.path().to_string();
                ConfigError::Invalid {
                    origin: origin_of(&key),
                    message: err.into_inner().to_string(),
                    key,
                }
            })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: origin_of(&key),
                key,
                message,
            })?;
        Ok(config)
    }

    /// The Kafka connection's TLS and SASL settings: a known protocol and mechanism, what
    /// the mechanism needs, no TLS file without TLS, and files that exist.
    fn validate_kafka_security(&self) -> Result<(), (String, String)> {
        use crate::{KAFKA_SASL_MECHANISMS, KAFKA_SECURITY_PROTOCOLS};
        let kafka = &self.kafka;
        let fail = |key: &str, message: String| Err((format!("kafka.{key}"), message));
        let protocol = kafka.security_protocol.as_str();
        if !KAFKA_SECURITY_PROTOCOLS.contains(&protocol) {
            return fail(
                "security_protocol",
                format!(
                    "`{protocol}` is not one of {}",
                    KAFKA_SECURITY_PROTOCOLS.join(", ")
                ),
            );
        }
        let tls = protocol.ends_with("ssl");
        let files = [
            ("ssl_ca_location", &kafka.ssl_ca_location),
            ("ssl_certificate_location", &kafka.ssl_certificate_location),
            ("ssl_key_location", &kafka.ssl_key_location),
        ];
        for (key, path) in files {
            if path.trim().is_empty() {
                continue;
            }
            if !tls {
                return fail(
                    key,
                    format!("is set, but security_protocol `{protocol}` uses no TLS"),
                );
            }
            if !Path::new(path.trim()).is_file() {
                return fail(key, format!("`{}` is not a readable file", path.trim()));
            }
        }
        if kafka.ssl_certificate_location.trim().is_empty()
            != kafka.ssl_key_location.trim().is_empty()
        {
            return fail(
                "ssl_key_location",
                "a client certificate needs its key, and a key its certificate (ssl_certificate_location and ssl_key_location)".into(),
            );
        }
        let mechanism = kafka.sasl_mechanism.as_str();
        if !protocol.starts_with("sasl") {
            if !mechanism.is_empty() {
                return fail(
                    "sasl_mechanism",
                    format!(
                        "is set, but security_protocol `{protocol}` uses no SASL (sasl_ssl or sasl_plaintext)"
                    ),
                );
            }
            return Ok(());
        }
        if !KAFKA_SASL_MECHANISMS.contains(&mechanism) {
            return fail(
                "sasl_mechanism",
                format!(
                    "`{mechanism}` is not one of {} (security_protocol `{protocol}` needs one)",
                    KAFKA_SASL_MECHANISMS.join(", ")
                ),
            );
        }
        let needed: &[(&str, &String)] = if mechanism == "OAUTHBEARER" {
            &[
                (
                    "sasl_oauthbearer_token_endpoint_url",
                    &kafka.sasl_oauthbearer_token_endpoint_url,
                ),
                (
                    "sasl_oauthbearer_client_id",
                    &kafka.sasl_oauthbearer_client_id,
                ),
                (
                    "sasl_oauthbearer_client_secret",
                    &kafka.sasl_oauthbearer_client_secret,
                ),
            ]
        } else {
            &[
                ("sasl_username", &kafka.sasl_username),
                ("sasl_password", &kafka.sasl_password),
            ]
        };
        for (key, value) in needed {
            if value.trim().is_empty() {
                return fail(key, format!("is required by sasl_mechanism {mechanism}"));
            }
        }
        Ok(())
    }

    /// Rules that types alone do not express. Returns the offending key and why.
    fn validate(&self) -> Result<(), (String, String)> {
        let postgres = |key: String, url: &str| {
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                Ok(())
            } else {
                Err((key, format!("`{url}` is not a postgres:// URL")))
            }
        };
        let http = |key: String, url: &str| {
            if (url.starts_with("http://") || url.starts_with("https://")) && url.len() > 8 {
                Ok(())
            } else {
                Err((key, format!("`{url}` is not an http:// or https:// URL")))
            }
        };

        postgres("database_url".into(), &self.database_url)?;
        if !(self.redis_url.starts_with("redis://") || self.redis_url.starts_with("rediss://")) {
            return Err((
                "redis_url".into(),
                format!("`{}` is not a redis:// or rediss:// URL", self.redis_url),
            ));
        }
        http("public_url".into(), &self.public_url)?;
        http("public_web_url".into(), &self.public_web_url)?;
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err((
                "currency".into(),
                format!("`{}` is not an ISO 4217 code such as EUR", self.currency),
            ));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err((
                "http.body_limit_bytes".into(),
                "must be at least 1024 bytes".into(),
            ));
        }

        for (index, property) in self.kafka.properties.iter().enumerate() {
            if property
                .split_once('=')
                .is_none_or(|(name, _)| name.trim().is_empty())
            {
                return Err((
                    format!("kafka.properties[{index}]"),
                    format!("`{property}` is not name=value"),
                ));
            }
        }
        self.validate_kafka_security()?;
        for (index, key) in self.sessions.keys.iter().enumerate() {
            if let Err(message) = crate::session_key(key) {
                return Err((format!("sessions.keys[{index}]"), message));
            }
        }
        if !(1..=24 * 60).contains(&self.sessions.idle_minutes) {
            return Err((
                "sessions.idle_minutes".into(),
                "must be between 1 and 1440 (a day)".into(),
            ));
        }
        if !(1..=24 * 30).contains(&self.sessions.absolute_hours) {
            return Err((
                "sessions.absolute_hours".into(),
                "must be between 1 and 720 (30 days)".into(),
            ));
        }
        if !(1..=86_400).contains(&self.sessions.purge_interval_secs) {
            return Err((
                "sessions.purge_interval_secs".into(),
                "must be between 1 and 86400 (a day)".into(),
            ));
        }
        if !(1..=256).contains(&self.email.concurrency) {
            return Err((
                "email.concurrency".into(),
                "must be between 1 and 256 (SMTP connections a sender keeps open)".into(),
            ));
        }
        if self.kafka.partitions == 0 || self.kafka.replication_factor == 0 {
            return Err((
                "kafka.partitions".into(),
                "partitions and replication factor must be at least 1".into(),
            ));
        }
        if self.clinic_name.trim().is_empty() {
            return Err(("clinic_name".into(), "must name the clinic".into()));
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err((
                "timezone".into(),
                format!(
                    "`{}` is not an IANA timezone such as Europe/Berlin",
                    self.timezone
                ),
            ));
        }
        if self.booking.retention_days == 0 {
            return Err((
                "booking.retention_days".into(),
                "must be at least 1: ended appointments are kept that many days".into(),
            ));
        }
        if self.booking.hold_minutes == 0 || self.booking.max_pending_per_patient == 0 {
            return Err((
                "booking.hold_minutes".into(),
                "holds and pending reservations must be allowed (at least 1)".into(),
            ));
        }
        if self.waitlist.offer_minutes == 0
            || self.waitlist.max_entries_per_patient == 0
            || !(1..=366).contains(&self.waitlist.max_range_days)
        {
            return Err((
                "waitlist.offer_minutes".into(),
                "offers last at least a minute, a patient may join at least one waitlist, and \
                 an entry covers 1 to 366 days (`waitlist.max_range_days`)"
                    .into(),
            ));
        }
        // An authorisation lives seven days: it must be taken within them, and early enough
        // to leave time for a failed one to be mended.
        if !(1..=6).contains(&self.payments.authorize_ahead_days) {
            return Err((
                "payments.authorize_ahead_days".into(),
                "must be 1 to 6: a card authorisation lapses after seven days".into(),
            ));
        }
        let lead = self.payments.authorize_lead_hours;
        if !(2..=24 * self.payments.authorize_ahead_days).contains(&lead)
            || self.payments.card_update_hours == 0
            || self.payments.card_update_hours >= lead
        {
            return Err((
                "payments.authorize_lead_hours".into(),
                "must be 2 hours to `payments.authorize_ahead_days` days, and longer than \
                 `payments.card_update_hours` (at least 1), so a declined card can be replaced \
                 before the visit"
                    .into(),
            ));
        }
        // Whether the Stripe key and the SMTP URL are set is the payments and notifications
        // services' own business (`check_services`): no other process holds them.
        match (&self.email.transport, &self.email.smtp_url) {
            (_, Some(url)) if !(url.starts_with("smtp://") || url.starts_with("smtps://")) => {
                return Err((
                    "email.smtp_url".into(),
                    "is not an smtp:// or smtps:// URL".into(),
                ));
            }
            _ => {}
        }
        if self.email.max_attempts == 0 || !self.email.from.contains('@') {
            return Err((
                "email.from".into(),
                "needs an address, and `email.max_attempts` at least 1".into(),
            ));
        }
        if self.events.max_attempts == 0 {
            return Err(("events.max_attempts".into(), "must be at least 1".into()));
        }
        if !(300..=900).contains(&self.auth.access_token_ttl_secs) {
            return Err((
                "auth.access_token_ttl_secs".into(),
                "must be between 300 and 900 seconds".into(),
            ));
        }
        http("keycloak.url".into(), &self.keycloak.url)?;
        http("stripe.api_base".into(), &self.stripe.api_base)?;
        for (index, origin) in self.cors_origins.iter().enumerate() {
            http(format!("cors_origins[{index}]"), origin)?;
        }
        let mut taken: HashMap<u16, Service> = HashMap::new();
        for service in Service::ALL {
            let settings = self.service(service);
            if let Some(url) = &settings.database_url {
                postgres(format!("{service}.database_url"), url)?;
            }
            if let Some(url) = &settings.url {
                http(format!("{service}.url"), url)?;
            }
            for (index, proxy) in settings.trusted_proxies.iter().enumerate() {
                if crate::parse_network(proxy).is_none() {
                    return Err((
                        format!("{service}.trusted_proxies[{index}]"),
                        format!("`{proxy}` is not an address or CIDR such as 10.0.0.0/8"),
                    ));
                }
            }
            if settings.db_max_connections == 0 {
                return Err((
                    format!("{service}.db_max_connections"),
                    "must be at least 1".into(),
                ));
            }
            // Port 0 asks the OS for a free port, so it may repeat.
            if settings.port != 0
                && let Some(other) = taken.insert(settings.port, service)
            {
                return Err((
                    format!("{service}.port"),
                    format!("port {} is already used by {other}", settings.port),
                ));
            }
        }
        Ok(())
    }

    /// What the services this process runs need that the rest of the platform does not: the
    /// settings of their third parties, and in production each one's own secrets. Checked
    /// when they start (and by `polyclinic check`), so a pod holds only its own service's
    /// secrets. In development an unset service secret falls back to a well-known value.
    pub fn check_services(&self, services: &[Service]) -> Result<(), ConfigError> {
        for &service in services {
            if let Some((key, message)) = self.unset_setting_of(service) {
                return Err(ConfigError::missing(service, key, message));
            }
        }
        if self.environment != crate::Environment::Production {
            return Ok(());
        }
        for &service in services {
            for (key, value) in self.secrets_of(service) {
                let message = match value {
                    Some(secret) if secret.len() >= 16 => continue,
                    Some(_) => "must be at least 16 characters in production",
                    None => "must be set in production",
                };
                return Err(ConfigError::missing(service, &key, message));
            }
        }
        Ok(())
    }

    /// A setting `service` cannot run without in any environment, if it is unset.
    fn unset_setting_of(&self, service: Service) -> Option<(&'static str, &'static str)> {
        match service {
            Service::Payments
                if self.payments_provider == crate::PaymentsProvider::Stripe
                    && self.stripe.secret_key.is_none() =>
            {
                Some((
                    "stripe.secret_key",
                    "is required with the stripe payments provider",
                ))
            }
            Service::Notifications
                if self.email.transport == crate::EmailTransport::Smtp
                    && self.email.smtp_url.is_none() =>
            {
                Some((
                    "email.smtp_url",
                    "is required with the smtp email transport",
                ))
            }
            _ => None,
        }
    }

    /// The secrets `service` cannot run without in production, by key.
    fn secrets_of(&self, service: Service) -> Vec<(String, Option<&str>)> {
        let mut secrets = Vec::new();
        let client = |of: Service| {
            (
                format!("{of}.client_secret"),
                self.service(of).client_secret.as_deref(),
            )
        };
        match service {
            // The web app holds no service credentials (it acts for the signed-in person);
            // its own secret is the key that seals its sessions' tokens.
            Service::Web => secrets.push((
                "sessions.keys".to_owned(),
                self.sessions.keys.first().map(String::as_str),
            )),
            Service::Identity => match self.identity_provider {
                // Keycloak checks the services' secrets; identity signs in with its own client.
                crate::IdentityProvider::Keycloak => secrets.push((
                    "keycloak.client_secret".to_owned(),
                    self.keycloak.client_secret.as_deref(),
                )),
                // The built-in provider checks every service's secret itself.
                crate::IdentityProvider::Builtin => secrets.extend(
                    Service::ALL
                        .into_iter()
                        .filter(|s| *s != Service::Web)
                        .map(client),
                ),
            },
            other => secrets.push(client(other)),
        }
        if service == Service::Payments && self.payments_provider == crate::PaymentsProvider::Stripe
        {
            secrets.push((
                "stripe.secret_key".to_owned(),
                self.stripe.secret_key.as_deref(),
            ));
            secrets.push((
                "stripe.webhook_secrets".to_owned(),
                self.stripe.webhook_secrets.first().map(String::as_str),
            ));
        }
        secrets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write_file(contents: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "polyclinic-config-test-{}-{}.toml",
            std::process::id(),
            contents.len()
        ));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.database_url,
            "postgres://postgres@127.0.0.1:5432/polyclinic"
        );
        assert_eq!(config.gateway.port, 8080);
        assert_eq!(
            config.service_url(Service::Payments),
            "http://127.0.0.1:8084"
        );
    }

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let path = write_file(
            "public_url = \"https://clinic.example\"\n[identity]\nport = 9001\n[gateway]\nport = 9000\n",
        );
        let config = Config::load(
            Some(&path),
            env(&[
                ("POLYCLINIC_GATEWAY_PORT", "9100"),
                ("DATABASE_URL", "postgres://app@db/clinic"),
                ("POLYCLINIC_LOG_FORMAT", "json"),
            ]),
        )
        .unwrap();
        std::fs::remove_file(&path).unwrap();

        assert_eq!(config.public_url, "https://clinic.example", "from the file");
        assert_eq!(config.identity.port, 9001, "from the file");
        assert_eq!(
            config.gateway.port, 9100,
            "the environment wins over the file"
        );
        assert_eq!(config.database_url, "postgres://app@db/clinic");
        assert_eq!(config.log.format, crate::LogFormat::Json);
        assert_eq!(config.appointments.port, 8083, "untouched default");
    }

    #[test]
    fn a_port_that_is_not_a_number_fails_naming_the_key_and_the_variable() {
        let err = Config::load(None, env(&[("POLYCLINIC_GATEWAY_PORT", "eighty")])).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`gateway.port`"), "{message}");
        assert!(message.contains("POLYCLINIC_GATEWAY_PORT"), "{message}");
    }

    #[test]
    fn a_port_out_of_range_fails_naming_the_key() {
        let err = Config::load(None, env(&[("POLYCLINIC_IDENTITY_PORT", "70000")])).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`identity.port`"), "{message}");
        assert!(message.contains("POLYCLINIC_IDENTITY_PORT"), "{message}");
    }

    #[test]
    fn an_unknown_log_format_fails_naming_the_key() {
        let err = Config::load(None, env(&[("POLYCLINIC_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("`log.format`"), "{err}");
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        let path = write_file("[gateway]\nprot = 1\n");
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn two_services_on_one_port_are_refused() {
        let err = Config::load(None, env(&[("POLYCLINIC_PAYMENTS_PORT", "8081")])).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`payments.port`"), "{message}");
        assert!(message.contains("identity"), "{message}");
    }

    #[test]
    fn a_database_url_of_another_kind_is_refused() {
        let err =
            Config::load(None, env(&[("DATABASE_URL", "mysql://root@localhost/x")])).unwrap_err();
        assert!(err.to_string().contains("`database_url`"), "{err}");
    }

    #[test]
    fn the_timezone_must_be_an_iana_name() {
        let config = Config::load(None, env(&[("POLYCLINIC_TIMEZONE", "Europe/Berlin")])).unwrap();
        assert_eq!(config.timezone, "Europe/Berlin");
        let err = Config::load(None, env(&[("POLYCLINIC_TIMEZONE", "Mars/Olympus")])).unwrap_err();
        assert!(err.to_string().contains("`timezone`"), "{err}");
    }

    #[test]
    fn lists_are_read_from_comma_separated_variables() {
        let config = Config::load(
            None,
            env(&[(
                "POLYCLINIC_CORS_ORIGINS",
                "https://a.example, https://b.example",
            )]),
        )
        .unwrap();
        assert_eq!(
            config.cors_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn production_refuses_to_run_a_service_without_its_own_secrets() {
        let production = |pairs: &[(&str, &str)]| {
            let mut pairs = pairs.to_vec();
            pairs.push(("POLYCLINIC_ENVIRONMENT", "production"));
            Config::load(None, env(&pairs)).unwrap()
        };
        let bare = production(&[]);
        let err = bare.check_services(&[Service::Gateway]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the gateway service needs `gateway.client_secret` (POLYCLINIC_GATEWAY_CLIENT_SECRET): it must be set in production"
        );
        // The web app holds no service secret; its own is the key that seals its sessions.
        let err = bare.check_services(&[Service::Web]).unwrap_err();
        assert!(err.to_string().contains("`sessions.keys`"), "{err}");
        let web = production(&[(
            "POLYCLINIC_SESSIONS_KEYS",
            "bmV3ZXN0IGtleSBvZiBleGFjdGx5IDMyIGJ5dGVzISE=",
        )]);
        assert!(web.check_services(&[Service::Web]).is_ok());
        let not_a_key = Config::load(None, env(&[("POLYCLINIC_SESSIONS_KEYS", "short")]))
            .unwrap_err()
            .to_string();
        assert!(not_a_key.contains("`sessions.keys[0]`"), "{not_a_key}");
        let short = production(&[("POLYCLINIC_GATEWAY_CLIENT_SECRET", "short")]);
        assert!(short.check_services(&[Service::Gateway]).is_err());

        // The gateway's own secret is all the gateway needs, whatever the others lack.
        let gateway = production(&[("POLYCLINIC_GATEWAY_CLIENT_SECRET", "a gateway secret, long")]);
        assert!(gateway.check_services(&[Service::Gateway]).is_ok());
        assert!(gateway.check_services(&[Service::Payments]).is_err());

        // With Stripe, payments needs the API key and a webhook secret too.
        let payments = production(&[
            ("POLYCLINIC_PAYMENTS_PROVIDER", "stripe"),
            (
                "POLYCLINIC_PAYMENTS_CLIENT_SECRET",
                "a payments secret, long",
            ),
            ("STRIPE_SECRET_KEY", "sk_live_a_long_enough_key"),
        ]);
        let err = payments.check_services(&[Service::Payments]).unwrap_err();
        assert!(err.to_string().contains("stripe.webhook_secrets"), "{err}");

        // A third party's setting is its service's alone, in any environment.
        let stripe =
            Config::load(None, env(&[("POLYCLINIC_PAYMENTS_PROVIDER", "stripe")])).unwrap();
        assert!(stripe.check_services(&[Service::Gateway]).is_ok());
        let err = stripe.check_services(&[Service::Payments]).unwrap_err();
        assert!(err.to_string().contains("STRIPE_SECRET_KEY"), "{err}");

        // Under Keycloak, identity signs in with its Keycloak client and checks no one's secret.
        let identity = production(&[
            ("POLYCLINIC_IDENTITY_PROVIDER", "keycloak"),
            (
                "POLYCLINIC_KEYCLOAK_CLIENT_SECRET",
                "a keycloak secret, long",
            ),
        ]);
        assert!(identity.check_services(&[Service::Identity]).is_ok());
        let builtin = production(&[(
            "POLYCLINIC_IDENTITY_CLIENT_SECRET",
            "an identity secret, long",
        )]);
        assert!(
            builtin.check_services(&[Service::Identity]).is_err(),
            "the built-in provider checks every service's secret"
        );
    }

    fn scratch_file(name: &str, contents: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("polyclinic-config-{name}-{}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_secret_is_read_from_the_file_its_file_variable_names() {
        let secret = scratch_file("sasl-password", "s3cret passphrase\n");
        let ca = scratch_file("ca.pem", "-----BEGIN CERTIFICATE-----\n");
        let config = Config::load(
            None,
            env(&[
                ("POLYCLINIC_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
                ("POLYCLINIC_KAFKA_SSL_CA_LOCATION", ca.to_str().unwrap()),
                ("POLYCLINIC_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
                ("POLYCLINIC_KAFKA_SASL_USERNAME", "polyclinic"),
                (
                    "POLYCLINIC_KAFKA_SASL_PASSWORD_FILE",
                    secret.to_str().unwrap(),
                ),
            ]),
        )
        .unwrap();
        assert_eq!(
            config.kafka.sasl_password, "s3cret passphrase",
            "the trailing newline of the mounted file is not part of it"
        );
        let properties = config.kafka.security_properties();
        for expected in [
            ("security.protocol", "sasl_ssl"),
            ("ssl.ca.location", ca.to_str().unwrap()),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "polyclinic"),
            ("sasl.password", "s3cret passphrase"),
        ] {
            assert!(
                properties.contains(&(expected.0.to_owned(), expected.1.to_owned())),
                "{expected:?} in {properties:?}"
            );
        }

        let both = Config::load(
            None,
            env(&[
                ("POLYCLINIC_KAFKA_SASL_PASSWORD", "inline"),
                (
                    "POLYCLINIC_KAFKA_SASL_PASSWORD_FILE",
                    secret.to_str().unwrap(),
                ),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(both.contains("set one of the two"), "{both}");
        let missing = Config::load(
            None,
            env(&[("POLYCLINIC_KAFKA_SASL_PASSWORD_FILE", "/nonexistent/secret")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            missing.contains("`kafka.sasl_password`") && missing.contains("/nonexistent/secret"),
            "{missing}"
        );
        std::fs::remove_file(secret).unwrap();
        std::fs::remove_file(ca).unwrap();
    }

    #[test]
    fn kafka_security_settings_that_cannot_connect_are_refused_naming_the_key() {
        let refused =
            |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap_err().to_string();
        let unknown = refused(&[("POLYCLINIC_KAFKA_SECURITY_PROTOCOL", "tls")]);
        assert!(unknown.contains("`kafka.security_protocol`"), "{unknown}");
        let no_mechanism = refused(&[("POLYCLINIC_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")]);
        assert!(
            no_mechanism.contains("`kafka.sasl_mechanism`"),
            "{no_mechanism}"
        );
        let no_password = refused(&[
            ("POLYCLINIC_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("POLYCLINIC_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("POLYCLINIC_KAFKA_SASL_USERNAME", "polyclinic"),
        ]);
        assert!(
            no_password.contains("`kafka.sasl_password`"),
            "{no_password}"
        );
        let no_client = refused(&[
            ("POLYCLINIC_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("POLYCLINIC_KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
        ]);
        assert!(
            no_client.contains("`kafka.sasl_oauthbearer_token_endpoint_url`"),
            "{no_client}"
        );
        let tls_file_without_tls = refused(&[("POLYCLINIC_KAFKA_SSL_CA_LOCATION", "/etc/hosts")]);
        assert!(
            tls_file_without_tls.contains("uses no TLS"),
            "{tls_file_without_tls}"
        );
        let missing_ca = refused(&[
            ("POLYCLINIC_KAFKA_SECURITY_PROTOCOL", "ssl"),
            ("POLYCLINIC_KAFKA_SSL_CA_LOCATION", "/nonexistent/ca.pem"),
        ]);
        assert!(
            missing_ca.contains("`kafka.ssl_ca_location`"),
            "{missing_ca}"
        );
        let certificate_without_key = refused(&[
            ("POLYCLINIC_KAFKA_SECURITY_PROTOCOL", "ssl"),
            ("POLYCLINIC_KAFKA_SSL_CERTIFICATE_LOCATION", "/etc/hosts"),
        ]);
        assert!(
            certificate_without_key.contains("`kafka.ssl_key_location`"),
            "{certificate_without_key}"
        );
    }

    #[test]
    fn every_key_has_an_environment_variable() {
        let keys = keys();
        assert!(keys.contains(&("gateway.port".into(), "POLYCLINIC_GATEWAY_PORT".into())));
        assert!(keys.contains(&("database_url".into(), "DATABASE_URL".into())));
        assert!(keys.contains(&(
            "identity.database_url".into(),
            "POLYCLINIC_IDENTITY_DATABASE_URL".into()
        )));
    }
}

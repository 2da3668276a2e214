//! The platform assembled: every service bound, migrated and run, and the one OpenAPI
//! document. The `polyclinic` binary and the test harness (`polyclinic-testing`) both
//! depend on this crate, so tests start services exactly as the binary does and the harness
//! never depends on the binary.
//!
//! `polyclinic all` runs every service in one process, each on its own port, calling each
//! other over HTTP as they do when split; `polyclinic <service>` runs one.

pub mod local_postgres;

use std::collections::BTreeSet;

use anyhow::Context;
use polyclinic_config::{Config, Service};
use polyclinic_http::CancellationToken;
use polyclinic_http::utoipa::openapi::OpenApi;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Binds each service's configured port on all interfaces.
pub async fn bind(
    config: &Config,
    services: &[Service],
) -> anyhow::Result<Vec<(Service, TcpListener)>> {
    let mut listeners = Vec::with_capacity(services.len());
    for &service in services {
        let port = config.service(service).port;
        let listener = TcpListener::bind(("0.0.0.0", port))
            .await
            .with_context(|| format!("binding port {port} for {service} (`{service}.port`)"))?;
        listeners.push((service, listener));
    }
    Ok(listeners)
}

/// Runs the given services until `shutdown` is cancelled. If one fails, the others are
/// stopped and its error is returned.
pub async fn run(
    config: Config,
    listeners: Vec<(Service, TcpListener)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Without migrations at start, `polyclinic migrate` created the database too.
    let databases: BTreeSet<&str> = listeners
        .iter()
        .filter(|(service, _)| config.migrate_on_start && service.schema().is_some())
        .map(|(service, _)| config.database_url_for(*service))
        .collect();
    for url in databases {
        polyclinic_db::ensure_database(url).await?;
    }

    let mut running = JoinSet::new();
    for (service, listener) in listeners {
        let (config, shutdown) = (config.clone(), shutdown.clone());
        running.spawn(async move {
            let outcome = run_service(service, config, listener, shutdown).await;
            (service, outcome)
        });
    }

    let mut first_error = None;
    while let Some(joined) = running.join_next().await {
        let failure = match joined {
            Ok((_, Ok(()))) => continue,
            Ok((service, Err(err))) => err.context(format!("the {service} service failed")),
            Err(join) => anyhow::Error::new(join).context("a service task panicked"),
        };
        tracing::error!(error = %format!("{failure:#}"), "stopping every service");
        shutdown.cancel();
        first_error.get_or_insert(failure);
    }
    first_error.map_or(Ok(()), Err)
}

async fn run_service(
    service: Service,
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    match service {
        Service::Gateway => polyclinic_gateway::run(config, listener, shutdown).await,
        Service::Identity => polyclinic_identity::run(config, listener, shutdown).await,
        Service::Appointments => polyclinic_appointments::run(config, listener, shutdown).await,
        Service::Payments => polyclinic_payments::run(config, listener, shutdown).await,
        Service::Notifications => polyclinic_notifications::run(config, listener, shutdown).await,
        Service::Prescriptions => polyclinic_prescriptions::run(config, listener, shutdown).await,
        Service::Web => polyclinic_web::run(config, listener, shutdown).await,
    }
}

/// Applies every service's migrations to its schema.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    for service in Service::ALL {
        let migrator = match service {
            Service::Gateway => continue,
            Service::Web => &polyclinic_web::MIGRATOR,
            Service::Identity => &polyclinic_identity::MIGRATOR,
            Service::Appointments => &polyclinic_appointments::MIGRATOR,
            Service::Payments => &polyclinic_payments::MIGRATOR,
            Service::Notifications => &polyclinic_notifications::MIGRATOR,
            Service::Prescriptions => &polyclinic_prescriptions::MIGRATOR,
        };
        // As the owner, whatever `migrate_on_start` says: this is the step that migrates.
        polyclinic_db::ensure_database(config.database_url_for(service)).await?;
        polyclinic_db::migrate_as_owner(config, service, migrator).await?;
        tracing::info!(%service, "schema is up to date");
    }
    if config.event_bus == polyclinic_config::EventBus::Postgres {
        polyclinic_events::log::ensure(&config.database_url).await?;
        tracing::info!("the event log's schema is up to date");
    }
    Ok(())
}

/// The OpenAPI document of the whole platform: every service's document merged.
pub fn openapi() -> OpenApi {
    let mut merged = polyclinic_gateway::openapi();
    for doc in [
        polyclinic_identity::openapi(),
        polyclinic_appointments::openapi(),
        polyclinic_payments::openapi(),
        polyclinic_notifications::openapi(),
        polyclinic_prescriptions::openapi(),
        polyclinic_web::openapi(),
    ] {
        merged.merge(doc);
    }
    merged.info.title = "Polyclinic".to_owned();
    merged.info.description = Some(
        "The clinic platform's API, behind the gateway at /api. Errors are RFC 9457 problem \
         documents (`application/problem+json`) with a stable `code`."
            .to_owned(),
    );
    merged
}

/// Every configuration key with its environment variable and effective value; secrets and
/// passwords inside URLs are masked.
pub fn describe_config(config: &Config) -> anyhow::Result<String> {
    let table = toml::Table::try_from(config).context("serializing the configuration")?;
    let mut lines = Vec::new();
    for (key, var) in polyclinic_config::keys() {
        let secret = key.contains("password")
            || key.contains("secret")
            || key.contains("token")
            || key == "sessions.keys";
        let value = match lookup(&table, &key) {
            None => "(unset)".to_owned(),
            Some(_) if secret => "***".to_owned(),
            Some(value) => mask(&value),
        };
        lines.push(format!("{key} = {value}    # {var}"));
    }
    Ok(lines.join("\n"))
}

fn lookup(table: &toml::Table, key: &str) -> Option<String> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    })
}

/// Hides the password of a `scheme://user:password@host` URL.
fn mask(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return value.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(
            mask("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(mask("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(mask("info"), "info");
    }
}

//! PostgreSQL helpers shared by the services.
//!
//! Every service owns one schema of the shared database and nothing else: its pool pins
//! `search_path` to that schema, so its tables, and its own `_sqlx_migrations` history,
//! live there. No service reads another's tables.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use polyclinic_config::{Config, Service};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

pub mod idempotency;

pub use sqlx;

/// Creates the database named in `url` if it does not exist yet, connecting to the
/// server's `postgres` maintenance database to do so.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).context("parsing the database URL")?;
    let Some(name) = options.get_database().map(str::to_owned) else {
        // No database named: PostgreSQL uses the user's default, which always exists.
        return Ok(());
    };
    let maintenance = options.clone().database("postgres");
    let mut conn = PgConnection::connect_with(&maintenance)
        .await
        .context("connecting to PostgreSQL to check that the database exists")?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .context("looking up the database")?;
    if !exists {
        let created = sqlx::query(&format!("create database {}", quote_ident(&name)))
            .execute(&mut conn)
            .await;
        match created {
            Ok(_) => tracing::info!(database = %name, "created the database"),
            // Another process created it between our check and our create.
            Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P04") => {}
            Err(err) => return Err(err).context(format!("creating database {name}")),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// A lazily connecting pool for `service`, with `search_path` pinned to its schema.
pub fn pool(config: &Config, service: Service) -> anyhow::Result<PgPool> {
    let schema = service
        .schema()
        .with_context(|| format!("the {service} service keeps no data"))?;
    schema_pool(
        config.database_url_for(service),
        schema,
        config.service(service).db_max_connections,
        &format!("polyclinic-{service}"),
    )
}

/// A lazily connecting pool on `url` whose `search_path` is `schema`.
pub fn schema_pool(
    url: &str,
    schema: &str,
    max_connections: u32,
    application: &str,
) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)
        .context("parsing the database URL")?
        .application_name(application)
        .options([("search_path", schema)]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Creates `schema` if needed and applies `migrator` inside it.
pub async fn migrate(pool: &PgPool, schema: &str, migrator: &Migrator) -> anyhow::Result<()> {
    // Checking first lets a least-privilege role without CREATE on the database start
    // against a schema that an operator created for it.
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_namespace where nspname = $1)")
            .bind(schema)
            .fetch_one(pool)
            .await
            .with_context(|| format!("looking up schema {schema}"))?;
    if !exists {
        let created = sqlx::query(&format!(
            "create schema if not exists {}",
            quote_ident(schema)
        ))
        .execute(pool)
        .await;
        match created {
            Ok(_) => {}
            // Two instances started at once; the other one won.
            Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("23505") => {}
            Err(err) => return Err(err).context(format!("creating schema {schema}")),
        }
    }
    migrator
        .run(pool)
        .await
        .with_context(|| format!("applying the migrations of schema {schema}"))
}

/// Opens `service`'s pool and brings its schema up to date: what every service does first.
pub async fn open(
    config: &Config,
    service: Service,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let pool = pool(config, service)?;
    let schema = service.schema().unwrap_or_default();
    migrate(&pool, schema, migrator).await?;
    Ok(pool)
}

/// Answers whether the database can run a query right now, for readiness checks.
pub async fn ping(pool: &PgPool) -> Result<Option<String>, String> {
    sqlx::query("select 1")
        .execute(pool)
        .await
        .map(|_| None)
        .map_err(|err| err.to_string())
}

/// The readiness check every service with a schema registers.
pub fn readiness_check(pool: &PgPool) -> polyclinic_http::Check {
    let pool = pool.clone();
    polyclinic_http::Check::new("postgres", move || {
        let pool = pool.clone();
        async move { ping(&pool).await }
    })
}

/// The name of the constraint that `err` violated, if it is a constraint violation. Repos
/// map names (every constraint is named) to domain errors.
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// A `LIKE`/`ILIKE` pattern that matches `text` anywhere, with `%`, `_` and `\` in it taken
/// literally.
pub fn contains_pattern(text: &str) -> String {
    format!(
        "%{}%",
        text.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// Quotes an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(super::contains_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
    }

    #[test]
    fn identifiers_are_quoted_and_embedded_quotes_doubled() {
        assert_eq!(quote_ident("identity"), "\"identity\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}

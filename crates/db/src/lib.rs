//! PostgreSQL helpers shared by the services.
//!
//! Every service owns one schema of the shared database and nothing else: its pool pins
//! `search_path` to that schema, so its tables, and its own `_sqlx_migrations` history,
//! live there. No service reads another's tables.
//!
//! Two roles per schema. The owner (the `database_url` login) runs the migrations, so it
//! owns the tables and their triggers. The service runs as [`runtime_role`], which each
//! schema's migrations create and grant what the service needs on its tables and nothing
//! more: it cannot alter a table, switch a trigger off or grant itself a privilege, so an
//! append-only table (the audit trail) stays append-only whatever the service's code does.
//! With a `<service>.database_url` the service logs in as that role (a login that is, or
//! is a member of, the runtime role); without one it logs in with `database_url` and takes
//! the runtime role for the whole session (`SET ROLE` at connection start).

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

/// The role `service` runs as (its schema's migrations create it): it reads and writes
/// the service's tables and owns none of them.
pub fn runtime_role(service: Service) -> String {
    format!("polyclinic_{service}")
}

/// A lazily connecting pool for `service`, with `search_path` pinned to its schema, running
/// as its [`runtime_role`].
pub fn pool(config: &Config, service: Service) -> anyhow::Result<PgPool> {
    service_pool(config, service, &format!("polyclinic-{service}"))
}

/// Another pool of `service`'s, like [`pool`] (a second pool keeps one kind of work, such
/// as held advisory locks, from starving the rest); `application` names it in
/// `pg_stat_activity`.
pub fn service_pool(
    config: &Config,
    service: Service,
    application: &str,
) -> anyhow::Result<PgPool> {
    let schema = service
        .schema()
        .with_context(|| format!("the {service} service keeps no data"))?;
    // A login of the service's own is the runtime role already; the shared one takes it.
    let role = match config.service(service).database_url {
        Some(_) => None,
        None => Some(runtime_role(service)),
    };
    connect_lazy(
        config.database_url_for(service),
        schema,
        role.as_deref(),
        config.service(service).db_max_connections,
        application,
    )
}

/// A lazily connecting pool on `url` whose `search_path` is `schema`, as the URL's login
/// (migrations, tests and tools).
pub fn schema_pool(
    url: &str,
    schema: &str,
    max_connections: u32,
    application: &str,
) -> anyhow::Result<PgPool> {
    connect_lazy(url, schema, None, max_connections, application)
}

fn connect_lazy(
    url: &str,
    schema: &str,
    role: Option<&str>,
    max_connections: u32,
    application: &str,
) -> anyhow::Result<PgPool> {
    let mut settings = vec![("search_path", schema)];
    if let Some(role) = role {
        settings.push(("role", role));
    }
    let options = PgConnectOptions::from_str(url)
        .context("parsing the database URL")?
        .application_name(application)
        .options(settings);
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

/// Brings `service`'s schema up to date as the owner (`database_url`), or with
/// `migrate_on_start = false` checks that `polyclinic migrate` did, then opens its pool as the
/// runtime role: what every service does first.
pub async fn open(
    config: &Config,
    service: Service,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let schema = service.schema().unwrap_or_default();
    if config.migrate_on_start {
        migrate_as_owner(config, service, migrator).await?;
    }
    let pool = pool(config, service)?;
    if !config.migrate_on_start {
        up_to_date(&pool, schema, migrator).await?;
    }
    let owns: i64 = sqlx::query_scalar(
        "select count(*) from pg_tables where schemaname = $1 and tableowner = current_user",
    )
    .bind(schema)
    .fetch_one(&pool)
    .await
    .with_context(|| {
        format!(
            "connecting to schema {schema} as the {service} service's role {}",
            runtime_role(service)
        )
    })?;
    if owns > 0 {
        tracing::warn!(%service, schema, tables = owns,
            "the service's database login owns its tables: it could alter them and their triggers; give it a role that does not (see `{}`)", runtime_role(service));
    }
    Ok(pool)
}

/// Brings `service`'s schema up to date as the schemas' owner (`database_url`), on a
/// connection of its own that is closed again.
pub async fn migrate_as_owner(
    config: &Config,
    service: Service,
    migrator: &Migrator,
) -> anyhow::Result<()> {
    let schema = service.schema().unwrap_or_default();
    let owner = schema_pool(&config.database_url, schema, 1, "polyclinic-migrate")?;
    let migrated = migrate(&owner, schema, migrator).await;
    owner.close().await;
    migrated
}

/// Fails unless every migration this binary has was applied to `schema` (by `polyclinic
/// migrate`), so a service never runs on tables older than its code.
async fn up_to_date(pool: &PgPool, schema: &str, migrator: &Migrator) -> anyhow::Result<()> {
    let context = || format!("reading the migration history of schema {schema}");
    // A schema never migrated has no history yet: every migration is missing.
    let kept: bool = sqlx::query_scalar("select to_regclass('_sqlx_migrations') is not null")
        .fetch_one(pool)
        .await
        .with_context(context)?;
    let applied: Vec<i64> = if kept {
        sqlx::query_scalar("select version from _sqlx_migrations where success order by version")
            .fetch_all(pool)
            .await
            .with_context(context)?
    } else {
        Vec::new()
    };
    let missing: Vec<i64> = migrator
        .iter()
        .filter(|migration| migration.migration_type.is_up_migration())
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect();
    if let Some(first) = missing.first() {
        anyhow::bail!(
            "schema {schema} lacks {} of this binary's migrations (the first is {first}); run `polyclinic migrate` (the migration Job) with the owner's login first",
            missing.len()
        );
    }
    Ok(())
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

/// PostgreSQL's plan for `query` with its arguments bound, as `EXPLAIN (FORMAT JSON)` gives
/// it: the query-plan tests read it to check that a hot query keeps its index.
pub async fn explain<'q>(
    conn: &mut PgConnection,
    mut query: impl sqlx::Execute<'q, sqlx::Postgres>,
) -> anyhow::Result<serde_json::Value> {
    let sql = format!("explain (format json) {}", query.sql());
    let arguments = query
        .take_arguments()
        .map_err(|err| anyhow::anyhow!("binding the query's arguments: {err}"))?
        .unwrap_or_default();
    sqlx::query_scalar_with(&sql, arguments)
        .fetch_one(conn)
        .await
        .with_context(|| format!("explaining {sql}"))
}

/// PostgreSQL's generic plan for `sql`, planned without its parameters' values, as
/// `EXPLAIN (FORMAT JSON)` gives it. A prepared statement (every query sqlx sends) is
/// planned for each execution's values only until PostgreSQL finds a generic plan no
/// dearer; from then on a pooled connection runs that one plan whatever the values, so a
/// hot query must be served by its index in that plan too.
pub async fn explain_generic(
    conn: &mut PgConnection,
    sql: &str,
) -> anyhow::Result<serde_json::Value> {
    const NAME: &str = "polyclinic_explained";
    sqlx::raw_sql("set plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(&format!("prepare {NAME} as {sql}"))
        .execute(&mut *conn)
        .await
        .with_context(|| format!("preparing {sql}"))?;
    let parameters: i32 = sqlx::query_scalar(
        "select coalesce(array_length(parameter_types, 1), 0) from pg_prepared_statements where name = $1",
    )
    .bind(NAME)
    .fetch_one(&mut *conn)
    .await?;
    // The values make no difference to a generic plan.
    let values = if parameters == 0 {
        String::new()
    } else {
        format!("({})", vec!["null"; parameters as usize].join(", "))
    };
    let plan = sqlx::query_scalar(&format!("explain (format json) execute {NAME}{values}"))
        .fetch_one(&mut *conn)
        .await
        .with_context(|| format!("explaining the generic plan of {sql}"));
    sqlx::raw_sql(&format!("deallocate {NAME}; reset plan_cache_mode"))
        .execute(&mut *conn)
        .await?;
    plan
}

/// Appends ` and {column} = <value>` to `query` when `value` is given. Lists write only the
/// filters a request gives into their statement, so each shape of list is a statement of
/// its own that PostgreSQL plans for its index; a catch-all `$1 is null or column = $1`
/// statement ends up, after a few runs, with one generic plan that can use no index.
pub fn and_equal<'a, T>(
    query: &mut sqlx::QueryBuilder<'a, sqlx::Postgres>,
    column: &str,
    value: Option<T>,
) where
    T: 'a + sqlx::Encode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    if let Some(value) = value {
        query
            .push(format_args!(" and {column} = "))
            .push_bind(value);
    }
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

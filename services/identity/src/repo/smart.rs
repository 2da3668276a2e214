//! SMART apps, the grants people give them, and authorization codes.

use chrono::{DateTime, Utc};
use polyclinic_db::violated_constraint;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

/// A registered app.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct App {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub confidential: bool,
    /// What the app may ask for.
    pub scopes: Vec<String>,
    /// `ACTIVE` or `DISABLED`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub secret_hash: Option<Vec<u8>>,
}

const APP_COLUMNS: &str =
    "client_id, name, redirect_uris, confidential, scopes, status, created_at, secret_hash";

/// An app to register.
#[derive(Debug)]
pub struct NewApp<'a> {
    pub client_id: &'a str,
    pub name: &'a str,
    pub redirect_uris: &'a [String],
    pub secret_hash: Option<&'a [u8]>,
    pub scopes: &'a [String],
    pub created_by: Uuid,
}

/// Registers an app; `None` when the client id is taken.
pub async fn insert_app(pool: &PgPool, app: &NewApp<'_>) -> anyhow::Result<Option<App>> {
    let inserted = sqlx::query_as(&format!(
        "insert into smart_apps (client_id, name, redirect_uris, confidential, secret_hash, scopes, created_by)
         values ($1, $2, $3, $4, $5, $6, $7) returning {APP_COLUMNS}"
    ))
    .bind(app.client_id)
    .bind(app.name)
    .bind(app.redirect_uris)
    .bind(app.secret_hash.is_some())
    .bind(app.secret_hash)
    .bind(app.scopes)
    .bind(app.created_by)
    .fetch_one(pool)
    .await;
    match inserted {
        Ok(app) => Ok(Some(app)),
        Err(err) if violated_constraint(&err) == Some("smart_apps_pkey") => Ok(None),
        Err(err) => Err(err.into()),
    }
}

pub async fn list_apps(pool: &PgPool) -> anyhow::Result<Vec<App>> {
    Ok(sqlx::query_as(&format!(
        "select {APP_COLUMNS} from smart_apps order by lower(name), client_id"
    ))
    .fetch_all(pool)
    .await?)
}

pub async fn find_app(pool: &PgPool, client_id: &str) -> anyhow::Result<Option<App>> {
    Ok(sqlx::query_as(&format!(
        "select {APP_COLUMNS} from smart_apps where client_id = $1"
    ))
    .bind(client_id)
    .fetch_optional(pool)
    .await?)
}

/// Disables an app; `false` when there is no such app.
pub async fn disable_app(conn: &mut PgConnection, client_id: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query(
        "update smart_apps set status = 'DISABLED', updated_at = now() where client_id = $1",
    )
    .bind(client_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1)
}

/// A person's grant to an app, as they and the admins see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Grant {
    pub id: Uuid,
    pub client_id: String,
    pub app_name: String,
    pub user_id: Uuid,
    pub scopes: Vec<String>,
    pub granted_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

const GRANT_SELECT: &str = "select g.id, g.client_id, a.name as app_name, g.user_id, g.scopes,
    g.granted_at, g.revoked_at from smart_grants g join smart_apps a on a.client_id = g.client_id";

/// Gives `user_id`'s live grant to `client_id` these `scopes` (replacing what it granted
/// before). Returns the grant's id.
pub async fn upsert_grant(
    conn: &mut PgConnection,
    client_id: &str,
    user_id: Uuid,
    scopes: &[String],
) -> anyhow::Result<Uuid> {
    Ok(sqlx::query_scalar(
        "insert into smart_grants (id, client_id, user_id, scopes) values ($1, $2, $3, $4)
         on conflict (client_id, user_id) where revoked_at is null
         do update set scopes = excluded.scopes, granted_at = now(), updated_at = now()
         returning id",
    )
    .bind(Uuid::now_v7())
    .bind(client_id)
    .bind(user_id)
    .bind(scopes)
    .fetch_one(&mut *conn)
    .await?)
}

pub async fn find_grant(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<Option<Grant>> {
    Ok(sqlx::query_as(&format!("{GRANT_SELECT} where g.id = $1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
}

/// A person's live grants, newest first.
pub async fn grants_of(pool: &PgPool, user_id: Uuid) -> anyhow::Result<Vec<Grant>> {
    Ok(sqlx::query_as(&format!(
        "{GRANT_SELECT} where g.user_id = $1 and g.revoked_at is null order by g.granted_at desc"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}

/// Revokes grants (one, or every live one of an app) and returns each with the logins
/// (refresh token families) it held, for those to be ended too.
pub async fn revoke_grants(
    conn: &mut PgConnection,
    grant_id: Option<Uuid>,
    client_id: Option<&str>,
) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
    let revoked: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "update smart_grants set revoked_at = now(), updated_at = now()
         where revoked_at is null and ($1::uuid is null or id = $1)
           and ($2::text is null or client_id = $2)
         returning id, user_id",
    )
    .bind(grant_id)
    .bind(client_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(revoked)
}

/// The logins (refresh token families) held through `grant_id`.
pub async fn families_of(conn: &mut PgConnection, grant_id: Uuid) -> anyhow::Result<Vec<Uuid>> {
    Ok(
        sqlx::query_scalar("select distinct family_id from refresh_tokens where grant_id = $1")
            .bind(grant_id)
            .fetch_all(&mut *conn)
            .await?,
    )
}

/// A code to store.
#[derive(Debug)]
pub struct NewCode<'a> {
    pub code_hash: &'a [u8],
    pub grant_id: Uuid,
    pub redirect_uri: &'a str,
    pub code_challenge: &'a str,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_code(conn: &mut PgConnection, code: &NewCode<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "insert into authorization_codes (code_hash, grant_id, redirect_uri, code_challenge, scopes, nonce, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(code.code_hash)
    .bind(code.grant_id)
    .bind(code.redirect_uri)
    .bind(code.code_challenge)
    .bind(code.scopes)
    .bind(code.nonce)
    .bind(code.expires_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A stored code, with its grant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCode {
    pub grant_id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub scopes: Vec<String>,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub family_id: Option<Uuid>,
}

/// The code with this digest, locked, and marked used by the login `family_id` (whatever
/// follows: a code is tried once; a second try finds the first one's login to end).
pub async fn take_code(
    conn: &mut PgConnection,
    code_hash: &[u8],
    family_id: Uuid,
) -> anyhow::Result<Option<StoredCode>> {
    let found: Option<StoredCode> = sqlx::query_as(
        "select c.grant_id, g.client_id, g.user_id, c.scopes, c.redirect_uri, c.code_challenge,
                c.nonce, c.expires_at, c.used_at, g.revoked_at, c.family_id
         from authorization_codes c join smart_grants g on g.id = c.grant_id
         where c.code_hash = $1 for update of c",
    )
    .bind(code_hash)
    .fetch_optional(&mut *conn)
    .await?;
    if found.is_some() {
        sqlx::query(
            "update authorization_codes set used_at = coalesce(used_at, now()),
                 family_id = coalesce(family_id, $2), updated_at = now()
             where code_hash = $1",
        )
        .bind(code_hash)
        .bind(family_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(found)
}

/// Forgets codes that expired a day ago.
pub async fn purge_codes(pool: &PgPool, before: DateTime<Utc>) -> anyhow::Result<u64> {
    Ok(
        sqlx::query("delete from authorization_codes where expires_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

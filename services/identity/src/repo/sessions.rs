//! Logins: refresh token families and their revocation.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshToken {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    /// The SMART grant the login holds, for an app's login.
    pub grant_id: Option<Uuid>,
    /// What the app was granted when the login began.
    pub scopes: Option<Vec<String>>,
}

pub struct NewRefreshToken<'a> {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub client_id: &'a str,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
    pub grant_id: Option<Uuid>,
    pub scopes: Option<&'a [String]>,
}

pub async fn insert_refresh_token(
    conn: &mut PgConnection,
    token: &NewRefreshToken<'_>,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into refresh_tokens (id, family_id, user_id, client_id, token_hash, expires_at, grant_id, scopes)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(token.family_id)
    .bind(token.user_id)
    .bind(token.client_id)
    .bind(token.token_hash)
    .bind(token.expires_at)
    .bind(token.grant_id)
    .bind(token.scopes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The refresh token with this hash, locked for the rest of the transaction so that two
/// concurrent refreshes cannot both rotate it.
pub async fn find_refresh_token_for_update(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> anyhow::Result<Option<RefreshToken>> {
    Ok(sqlx::query_as(
        "select id, family_id, user_id, client_id, expires_at, used_at, grant_id, scopes from refresh_tokens
         where token_hash = $1 for update",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?)
}

pub async fn mark_used(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("update refresh_tokens set used_at = now(), updated_at = now() where id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn is_revoked(conn: &mut PgConnection, family_id: Uuid) -> anyhow::Result<bool> {
    Ok(
        sqlx::query_scalar("select exists (select 1 from revoked_sessions where family_id = $1)")
            .bind(family_id)
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Ends a login: its refresh tokens stop working and its access tokens are voided.
pub async fn revoke_family(
    conn: &mut PgConnection,
    family_id: Uuid,
    user_id: Uuid,
    reason: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into revoked_sessions (family_id, user_id, reason) values ($1, $2, $3)
         on conflict (family_id) do nothing",
    )
    .bind(family_id)
    .bind(user_id)
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Ends every live login of `user_id` except `keep`.
pub async fn revoke_user_sessions(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> anyhow::Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "insert into revoked_sessions (family_id, user_id, reason)
         select distinct family_id, user_id, $3 from refresh_tokens
         where user_id = $1 and expires_at > now() and ($2::uuid is null or family_id <> $2)
         on conflict (family_id) do nothing
         returning family_id",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .fetch_all(&mut *conn)
    .await?)
}

/// Logins revoked since `since`, for the revocation feed.
pub async fn revoked_since(
    pool: &PgPool,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<(Uuid, DateTime<Utc>)>> {
    Ok(
        sqlx::query_as("select family_id, revoked_at from revoked_sessions where revoked_at >= $1")
            .bind(since)
            .fetch_all(pool)
            .await?,
    )
}

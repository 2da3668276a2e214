//! Signing keys of the built-in provider.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub active_from: DateTime<Utc>,
}

pub async fn insert_key(pool: &PgPool, key: &StoredKey) -> anyhow::Result<()> {
    sqlx::query(
        "insert into signing_keys (kid, algorithm, private_key, public_key, active_from)
         values ($1, 'EdDSA', $2, $3, $4)",
    )
    .bind(&key.kid)
    .bind(&key.private_key)
    .bind(&key.public_key)
    .bind(key.active_from)
    .execute(pool)
    .await?;
    Ok(())
}

/// The key that signs at `now`: the newest one already active.
pub async fn signing_key(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<Option<StoredKey>> {
    Ok(sqlx::query_as(
        "select kid, private_key, public_key, active_from from signing_keys
         where active_from <= $1 order by active_from desc limit 1",
    )
    .bind(now)
    .fetch_optional(pool)
    .await?)
}

/// Every key, oldest first.
pub async fn all_keys(pool: &PgPool) -> anyhow::Result<Vec<StoredKey>> {
    Ok(sqlx::query_as(
        "select kid, private_key, public_key, active_from from signing_keys order by active_from",
    )
    .fetch_all(pool)
    .await?)
}

//! Counters of login attempts, each a fixed window that starts with its first attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Takes one attempt from `key`'s counter (a fresh window when the last one is over) in one
/// statement, so concurrent attempts each get their own number: of a burst of 40, exactly
/// `n` see a count of `n` or less. Returns the count with this attempt and when the window
/// started.
pub async fn take_attempt(
    pool: &PgPool,
    key: &[u8],
    window: Duration,
) -> anyhow::Result<(i32, DateTime<Utc>)> {
    Ok(sqlx::query_as(
        "insert into login_throttle as t (key, window_started_at, attempts) values ($1, now(), 1)
         on conflict (key) do update set
             attempts = case when t.window_started_at <= now() - $2 then 1 else t.attempts + 1 end,
             window_started_at = case when t.window_started_at <= now() - $2 then now()
                                      else t.window_started_at end,
             updated_at = now()
         returning attempts, window_started_at",
    )
    .bind(key)
    .bind(window)
    .fetch_one(pool)
    .await?)
}

/// Gives one attempt back (a login that succeeded does not count against the account).
pub async fn give_back(pool: &PgPool, key: &[u8]) -> anyhow::Result<()> {
    sqlx::query(
        "update login_throttle set attempts = greatest(attempts - 1, 0), updated_at = now()
         where key = $1",
    )
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets the counter (the person at that address proved they know the password).
pub async fn clear(pool: &PgPool, key: &[u8]) -> anyhow::Result<()> {
    sqlx::query("delete from login_throttle where key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}

/// Deletes counters whose window ended before `before`.
pub async fn purge(pool: &PgPool, before: DateTime<Utc>) -> anyhow::Result<u64> {
    Ok(
        sqlx::query("delete from login_throttle where window_started_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

//! `webhook_events`: the provider's events already handled, so each is handled once.

use sqlx::PgPool;
use uuid::Uuid;

/// Records a webhook event; false when it was recorded before.
pub async fn record(
    pool: &PgPool,
    id: &str,
    event_type: &str,
    payment_id: Option<Uuid>,
) -> anyhow::Result<bool> {
    Ok(sqlx::query(
        "insert into webhook_events (id, event_type, payment_id) values ($1, $2, $3) on conflict (id) do nothing",
    )
    .bind(id)
    .bind(event_type)
    .bind(payment_id)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Forgets a webhook event whose handling failed, so its redelivery is handled.
pub async fn forget(pool: &PgPool, id: &str) -> anyhow::Result<()> {
    sqlx::query("delete from webhook_events where id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

//! Payment queries that are not operations.

use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::Payment;

/// Payments matching the filters, newest first, before the cursor.
pub async fn list(
    pool: &PgPool,
    status: Option<&str>,
    appointment_id: Option<Uuid>,
    patient_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: usize,
) -> anyhow::Result<Vec<Payment>> {
    Ok(sqlx::query_as(
        "select id, appointment_id, patient_id, amount, currency, status, provider, provider_intent_id,
                client_secret, amount_captured, amount_refunded, authorized_at, created_at, updated_at
         from payments
         where ($1::text is null or status = $1)
           and ($2::uuid is null or appointment_id = $2)
           and ($3::uuid is null or patient_id = $3)
           and ($4::uuid is null or id < $4)
         order by id desc
         limit $5",
    )
    .bind(status)
    .bind(appointment_id)
    .bind(patient_id)
    .bind(before)
    .bind(i64::try_from(limit).unwrap_or(100))
    .fetch_all(pool)
    .await?)
}

/// The payment of a provider intent.
pub async fn find_by_intent(pool: &PgPool, intent_id: &str) -> anyhow::Result<Option<Payment>> {
    Ok(sqlx::query_as(
        "select id, appointment_id, patient_id, amount, currency, status, provider, provider_intent_id,
                client_secret, amount_captured, amount_refunded, authorized_at, created_at, updated_at
         from payments where provider_intent_id = $1",
    )
    .bind(intent_id)
    .fetch_optional(pool)
    .await?)
}

/// Records a webhook event; false when it was recorded before.
pub async fn record_webhook(
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
pub async fn forget_webhook(pool: &PgPool, id: &str) -> anyhow::Result<()> {
    sqlx::query("delete from webhook_events where id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

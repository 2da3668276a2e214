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

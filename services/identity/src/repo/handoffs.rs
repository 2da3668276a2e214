//! Declarations waiting to be handed to the patient's medical record.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::user::{BloodType, Declaration};

/// Queues `declaration` of `patient_id`, in the caller's transaction.
pub async fn insert(
    conn: &mut PgConnection,
    patient_id: Uuid,
    declaration: &Declaration,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into clinical_handoffs (id, patient_id, allergies, blood_type) values ($1, $2, $3, $4)",
    )
    .bind(Uuid::now_v7())
    .bind(patient_id)
    .bind(&declaration.allergies)
    .bind(declaration.blood_type.map(BloodType::as_str))
    .execute(conn)
    .await?;
    Ok(())
}

/// A queued declaration.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Handoff {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub allergies: Vec<String>,
    pub blood_type: Option<String>,
    pub attempts: i32,
}

/// Up to `limit` declarations due now, oldest first, locked for the caller's transaction
/// (other instances skip them).
pub async fn lock_due(conn: &mut PgConnection, limit: i64) -> anyhow::Result<Vec<Handoff>> {
    Ok(sqlx::query_as(
        "select id, patient_id, allergies, blood_type, attempts from clinical_handoffs
         where next_attempt_at <= now() order by next_attempt_at, id limit $1
         for update skip locked",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The record has it: forget it.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> anyhow::Result<()> {
    sqlx::query("delete from clinical_handoffs where id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Not delivered: try again after `delay`.
pub async fn retry_later(
    conn: &mut PgConnection,
    id: Uuid,
    delay: Duration,
    error: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "update clinical_handoffs set attempts = attempts + 1, next_attempt_at = now() + $2,
                last_error = $3, updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(delay)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

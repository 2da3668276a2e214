//! The `event-log` consumer: records every event of every topic for the admins' event log.

use polyclinic_events::{Envelope, Handled};
use sqlx::PgConnection;

/// The consumer's name in inboxes and positions.
pub const CONSUMER: &str = "event-log";

/// Records `envelope` (idempotently: a replayed or redelivered event is already there).
pub async fn record(conn: &mut PgConnection, envelope: &Envelope) -> anyhow::Result<Handled> {
    // Each service publishes on `polyclinic.<service>` as `/polyclinic/<service>`.
    let topic = format!(
        "polyclinic.{}",
        envelope.source.trim_start_matches("/polyclinic/")
    );
    sqlx::query(
        "insert into event_log (event_id, topic, event_type, subject, source, correlation_id, occurred_at, envelope)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (event_id) do nothing",
    )
    .bind(envelope.id)
    .bind(&topic)
    .bind(&envelope.event_type)
    .bind(&envelope.subject)
    .bind(&envelope.source)
    .bind(&envelope.correlationid)
    .bind(envelope.time)
    .bind(serde_json::to_value(envelope)?)
    .execute(&mut *conn)
    .await?;
    Ok(Handled::Done)
}

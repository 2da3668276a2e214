//! Writing events in the caller's transaction.

use polyclinic_config::Service;
use polyclinic_contracts::Event;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Envelope, EventContext};

/// Writes `event` to the outbox of the connection's schema, in the caller's open
/// transaction: it is published if and only if that transaction commits. Returns the event
/// id.
pub async fn enqueue<E: Event>(
    conn: &mut PgConnection,
    source: Service,
    event: &E,
    context: &EventContext,
) -> anyhow::Result<Uuid> {
    let envelope = Envelope::new(source, event, context)?;
    enqueue_envelope(conn, E::TOPIC.as_str(), &envelope).await?;
    Ok(envelope.id)
}

/// Writes a ready envelope to the outbox on `topic`.
pub async fn enqueue_envelope(
    conn: &mut PgConnection,
    topic: &str,
    envelope: &Envelope,
) -> anyhow::Result<()> {
    // One round trip: the row, and the wake-up of the relay, delivered at commit (a
    // rolled-back transaction wakes nobody).
    sqlx::query(
        "with written as (
             insert into outbox (event_id, topic, key, event_type, envelope) values ($1, $2, $3, $4, $5)
             returning 1)
         select pg_notify('polyclinic_outbox_' || current_schema(), '') from written",
    )
    .bind(envelope.id)
    .bind(topic)
    .bind(&envelope.subject)
    .bind(&envelope.event_type)
    .bind(serde_json::to_value(envelope)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

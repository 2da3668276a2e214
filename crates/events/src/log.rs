//! The `postgres` bus: one append-only log shared by every service, in the `eventbus`
//! schema, read by consumers from a position they store in their own schema.

use std::time::Duration;

use serde_json::Value;
use sqlx::PgConnection;
use sqlx::migrate::Migrator;
use uuid::Uuid;

/// The schema of the log.
pub const SCHEMA: &str = "eventbus";
/// Notified when events are appended, with the topics they were appended to (joined by
/// [`TOPIC_SEPARATOR`]) as the payload.
pub const CHANNEL: &str = "polyclinic_eventbus";
/// Between the topics of a [`CHANNEL`] notification.
pub const TOPIC_SEPARATOR: &str = ",";

/// The topics a [`CHANNEL`] notification names; `None` when it names none (every topic may
/// have events).
pub fn notified_topics(payload: &str) -> Option<impl Iterator<Item = &str>> {
    (!payload.is_empty()).then(|| payload.split(TOPIC_SEPARATOR))
}

/// The log's own migrations, applied in the `eventbus` schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Creates the `eventbus` schema and its log if needed. Every service calls it at start-up;
/// concurrent calls are serialized by the migration lock.
pub async fn ensure(database_url: &str) -> anyhow::Result<()> {
    let pool = polyclinic_db::schema_pool(database_url, SCHEMA, 1, "polyclinic-eventbus")?;
    polyclinic_db::migrate(&pool, SCHEMA, &MIGRATOR).await?;
    pool.close().await;
    Ok(())
}

/// An event as the log holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoggedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub key: String,
    pub event_type: String,
    pub envelope: Value,
}

/// Appends `events` in order, in the caller's transaction. Positions are taken under a
/// transaction-level lock, so position order is commit order across every appender.
pub(crate) async fn append(conn: &mut PgConnection, events: &[LoggedEvent]) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('polyclinic-eventbus-append', 0))")
        .execute(&mut *conn)
        .await?;
    let topics: Vec<&str> = events.iter().map(|event| event.topic.as_str()).collect();
    let keys: Vec<&str> = events.iter().map(|event| event.key.as_str()).collect();
    let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
    let types: Vec<&str> = events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    let envelopes: Vec<&Value> = events.iter().map(|event| &event.envelope).collect();
    sqlx::query(
        "insert into eventbus.events (topic, key, event_id, event_type, envelope)
         select topic, key, event_id, event_type, envelope
         from unnest($1::text[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[])
              with ordinality as appended (topic, key, event_id, event_type, envelope, ordinal)
         order by ordinal
         on conflict (event_id) do nothing",
    )
    .bind(&topics)
    .bind(&keys)
    .bind(&ids)
    .bind(&types)
    .bind(&envelopes)
    .execute(&mut *conn)
    .await?;
    // The notification names the topics, so that consumers of the others sleep on.
    let appended: std::collections::BTreeSet<&str> = topics.iter().copied().collect();
    sqlx::query("select pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(
            appended
                .into_iter()
                .collect::<Vec<_>>()
                .join(TOPIC_SEPARATOR),
        )
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Reads up to `$3` events of topic `$1` after position `$2`, in order: off the log's key
/// (topic, position), whatever plan PostgreSQL caches for it.
pub const READ_AFTER: &str =
    "select position, event_id, topic, key, event_type, envelope from eventbus.events
     where topic = $1 and position > $2 order by position limit $3";

/// Up to `limit` events of `topic` after `position`, in order.
pub(crate) async fn read_after(
    conn: &mut PgConnection,
    topic: &str,
    position: i64,
    limit: i64,
) -> anyhow::Result<Vec<LoggedEvent>> {
    Ok(sqlx::query_as(READ_AFTER)
        .bind(topic)
        .bind(position)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?)
}

/// Deletes log entries older than `retention`; consumers further behind than that lose
/// them, so the retention is generous.
pub async fn purge(conn: &mut PgConnection, retention: Duration) -> anyhow::Result<u64> {
    let deleted =
        sqlx::query("delete from eventbus.events where appended_at < now() - $1::interval")
            .bind(format!("{} seconds", retention.as_secs()))
            .execute(&mut *conn)
            .await?;
    Ok(deleted.rows_affected())
}

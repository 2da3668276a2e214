//! The admins' event log: every event of every topic, as the `event-log` consumer wrote it.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// An event of the log, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub event_id: Uuid,
    pub topic: String,
    pub event_type: String,
    pub subject: String,
    pub source: String,
    pub correlation_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// What the log is filtered by.
#[derive(Debug, Default, Clone, Copy)]
pub struct Filter<'a> {
    pub event_type: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Only events before this one (ids are UUIDv7).
    pub before: Option<Uuid>,
}

/// Events of the log matching `filter`, newest first.
pub async fn list_events(
    pool: &PgPool,
    filter: Filter<'_>,
    limit: usize,
) -> anyhow::Result<Vec<EventRow>> {
    Ok(sqlx::query_as(
        "select event_id, topic, event_type, subject, source, correlation_id, occurred_at from event_log
         where ($1::text is null or event_type = $1)
           and ($2::text is null or subject = $2)
           and ($3::text is null or correlation_id = $3)
           and ($4::timestamptz is null or occurred_at >= $4)
           and ($5::timestamptz is null or occurred_at < $5)
           and ($6::uuid is null or event_id < $6)
         order by event_id desc
         limit $7",
    )
    .bind(filter.event_type)
    .bind(filter.subject)
    .bind(filter.correlation_id)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.before)
    .bind(i64::try_from(limit).unwrap_or(200))
    .fetch_all(pool)
    .await?)
}

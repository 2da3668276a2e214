//! The admins' event log: every event of every topic, as the `event-log` consumer wrote it.

use chrono::{DateTime, Utc};
use polyclinic_db::and_equal;
use sqlx::{PgPool, Postgres, QueryBuilder};
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
    Ok(list_query(filter, limit)
        .build_query_as()
        .fetch_all(pool)
        .await?)
}

/// The statement [`list_events`] runs, with only the filters given written into it
/// ([`and_equal`]): a page
/// of the log is a walk down its primary key (UUIDv7, so newest first) from the cursor.
pub fn list_query(filter: Filter<'_>, limit: usize) -> QueryBuilder<'_, Postgres> {
    let mut query = QueryBuilder::new(
        "select event_id, topic, event_type, subject, source, correlation_id, occurred_at
         from event_log where true",
    );
    and_equal(&mut query, "event_type", filter.event_type);
    and_equal(&mut query, "subject", filter.subject);
    and_equal(&mut query, "correlation_id", filter.correlation_id);
    if let Some(from) = filter.from {
        query.push(" and occurred_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" and occurred_at < ").push_bind(to);
    }
    if let Some(before) = filter.before {
        query.push(" and event_id < ").push_bind(before);
    }
    query
        .push(" order by event_id desc limit ")
        .push_bind(i64::try_from(limit).unwrap_or(200));
    query
}

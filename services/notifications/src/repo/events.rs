//! The admins' event log.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::routes::events::LoggedEvent;

/// Events of the log matching the filters, newest first, before the cursor event.
#[allow(
    clippy::too_many_arguments,
    reason = "one parameter per filter of the route"
)]
pub async fn list_events(
    pool: &PgPool,
    event_type: Option<&str>,
    subject: Option<&str>,
    correlation_id: Option<&str>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    before: Option<Uuid>,
    limit: usize,
) -> anyhow::Result<Vec<LoggedEvent>> {
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
    .bind(event_type)
    .bind(subject)
    .bind(correlation_id)
    .bind(from)
    .bind(to)
    .bind(before)
    .bind(i64::try_from(limit).unwrap_or(200))
    .fetch_all(pool)
    .await?)
}

//! Parked events (retried with backoff away from the stream) and dead letters: their
//! tables. The consumer's retry and replay flows (`consumer/retry.rs`) decide; these read
//! and write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::log::LoggedEvent;

/// Parks `event`: `retrying` after a failure (attempted once), or `waiting` behind an
/// earlier parked event of the same aggregate.
pub(crate) async fn park(
    conn: &mut PgConnection,
    consumer: &str,
    event: &LoggedEvent,
    state: &str,
    error: Option<&str>,
    delay: Duration,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into parked_events (consumer, event_id, topic, key, event_type, envelope, state, attempts,
                                    last_error, next_attempt_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + $10::interval)
         on conflict (consumer, event_id) do nothing",
    )
    .bind(consumer)
    .bind(event.event_id)
    .bind(&event.topic)
    .bind(&event.key)
    .bind(&event.event_type)
    .bind(&event.envelope)
    .bind(state)
    .bind(i32::from(error.is_some()))
    .bind(error)
    .bind(interval(delay))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn interval(delay: Duration) -> String {
    format!("{} milliseconds", delay.as_millis())
}

/// Lets the next waiting event of the aggregate be tried.
pub(crate) async fn release_next(
    conn: &mut PgConnection,
    consumer: &str,
    key: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "update parked_events set state = 'retrying', next_attempt_at = now(), updated_at = now()
         where id = (select id from parked_events where consumer = $1 and key = $2 and state = 'waiting'
                     order by id limit 1)",
    )
    .bind(consumer)
    .bind(key)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A parked event due for another attempt: its row id, attempts so far, and the event.
#[derive(sqlx::FromRow)]
pub(crate) struct Due {
    pub id: i64,
    pub attempts: i32,
    #[sqlx(flatten)]
    pub event: LoggedEvent,
}

/// The columns of a parked or dead-lettered event, read as a [`LoggedEvent`] (which has no
/// position outside the log).
const EVENT: &str = "0::bigint as position, event_id, topic, key, event_type, envelope";

/// Claims one of `consumer`'s parked events that is due (locked until the transaction
/// ends; those another instance holds are skipped).
pub(crate) async fn claim_due(
    conn: &mut PgConnection,
    consumer: &str,
) -> anyhow::Result<Option<Due>> {
    Ok(sqlx::query_as(&format!(
        "select id, attempts, {EVENT} from parked_events
         where consumer = $1 and state = 'retrying' and next_attempt_at <= now()
         order by id limit 1 for update skip locked"
    ))
    .bind(consumer)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Removes a parked event (handled, or dead-lettered).
pub(crate) async fn unpark(conn: &mut PgConnection, id: i64) -> anyhow::Result<()> {
    sqlx::query("delete from parked_events where id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records another failed attempt; the next is due after `delay`.
pub(crate) async fn retry_later(
    conn: &mut PgConnection,
    id: i64,
    attempts: i32,
    error: &str,
    delay: Duration,
) -> anyhow::Result<()> {
    sqlx::query(
        "update parked_events set attempts = $2, last_error = $3,
                next_attempt_at = now() + $4::interval, updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(error)
    .bind(interval(delay))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves an event that failed `attempts` times to the dead letters, and records that in
/// the inbox.
pub(crate) async fn dead_letter(
    conn: &mut PgConnection,
    consumer: &str,
    event: &LoggedEvent,
    error: &str,
    attempts: i32,
) -> anyhow::Result<()> {
    sqlx::query(
        "insert into dead_letters (id, consumer, event_id, topic, key, event_type, envelope, error, attempts)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         on conflict (consumer, event_id) do nothing",
    )
    .bind(Uuid::now_v7())
    .bind(consumer)
    .bind(event.event_id)
    .bind(&event.topic)
    .bind(&event.key)
    .bind(&event.event_type)
    .bind(&event.envelope)
    .bind(error)
    .bind(attempts)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "insert into inbox (consumer, event_id, event_type, outcome, detail) values ($1, $2, $3, 'dead_lettered', $4)
         on conflict (consumer, event_id) do nothing",
    )
    .bind(consumer)
    .bind(event.event_id)
    .bind(&event.event_type)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A dead-lettered event, as admins list it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: Uuid,
    pub consumer: String,
    pub event_id: Uuid,
    pub topic: String,
    pub event_type: String,
    pub error: String,
    pub attempts: i32,
    pub replayed_at: Option<DateTime<Utc>>,
    pub replay_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Dead letters of this schema, newest first; `open_only` hides replayed ones.
pub async fn list_dead_letters(pool: &PgPool, open_only: bool) -> anyhow::Result<Vec<DeadLetter>> {
    Ok(sqlx::query_as(
        "select id, consumer, event_id, topic, event_type, error, attempts, replayed_at, replay_error, created_at
         from dead_letters where not $1 or replayed_at is null order by created_at desc limit 500",
    )
    .bind(open_only)
    .fetch_all(pool)
    .await?)
}

/// Locks `consumer`'s dead letter `id`, if it is not replayed yet, and gives its event.
pub(crate) async fn lock_dead_letter(
    conn: &mut PgConnection,
    consumer: &str,
    id: Uuid,
) -> anyhow::Result<Option<LoggedEvent>> {
    Ok(sqlx::query_as(&format!(
        "select {EVENT} from dead_letters
         where id = $1 and consumer = $2 and replayed_at is null for update"
    ))
    .bind(id)
    .bind(consumer)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Marks a dead letter replayed, and its inbox row with what the handler said.
pub(crate) async fn mark_replayed(
    conn: &mut PgConnection,
    consumer: &str,
    id: Uuid,
    event_id: Uuid,
    detail: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query("update dead_letters set replayed_at = now(), replay_error = null, updated_at = now() where id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "update inbox set outcome = 'replayed', detail = $3, handled_at = now(), updated_at = now()
         where consumer = $1 and event_id = $2",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(detail)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records why a replay failed again.
pub(crate) async fn mark_replay_failed(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
) -> anyhow::Result<()> {
    sqlx::query("update dead_letters set replay_error = $2, updated_at = now() where id = $1")
        .bind(id)
        .bind(error)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

//! Notifications: written by the mail consumer, claimed by the sender, read in the inbox.

use chrono::{DateTime, Utc};
use polyclinic_db::and_equal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::calendar::Method;
use crate::messages::Rendered;

/// The channel on which the sender is woken when messages are written.
pub const CHANNEL: &str = "polyclinic_notifications";

/// A message to write.
#[derive(Debug)]
pub struct NewNotification<'a> {
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub recipient_id: Uuid,
    pub recipient_email: &'a str,
    pub template: &'a str,
    pub rendered: &'a Rendered,
    /// The iCalendar part, for messages about an appointment's time.
    pub calendar: Option<(Method, &'a str)>,
}

/// Writes a PENDING message unless this event already has it for this recipient; returns
/// whether it was new.
pub async fn insert(conn: &mut PgConnection, new: &NewNotification<'_>) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "insert into notifications (id, event_id, event_type, recipient_id, recipient_email, template,
                                    subject, body_text, body_html, traceparent, calendar, calendar_method)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         on conflict on constraint notifications_once_key do nothing",
    )
    .bind(Uuid::now_v7())
    .bind(new.event_id)
    .bind(new.event_type)
    .bind(new.recipient_id)
    .bind(new.recipient_email)
    .bind(new.template)
    .bind(&new.rendered.subject)
    .bind(&new.rendered.text)
    .bind(&new.rendered.html)
    // Sending the message continues the trace of the event that caused it.
    .bind(polyclinic_telemetry::TraceContext::current().and_then(|trace| trace.traceparent))
    .bind(new.calendar.map(|(_, text)| text))
    .bind(new.calendar.map(|(method, _)| method.as_str()))
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Wakes the sender when the caller's transaction commits.
pub async fn wake_sender(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("select pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// A message the sender works on.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Outbound {
    pub id: Uuid,
    pub recipient_email: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i32,
    pub traceparent: Option<String>,
    /// The iCalendar part and its method (`REQUEST` or `CANCEL`), if it has one.
    pub calendar: Option<String>,
    pub calendar_method: Option<String>,
}

/// Claims up to `limit` messages due at `now` for one sender: their next attempt is moved
/// `lease` ahead, so no other sender takes them while this one works. Rows another sender is
/// claiming are skipped.
pub async fn claim_due(
    pool: &PgPool,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> sqlx::Result<Vec<Outbound>> {
    sqlx::query_as(
        "update notifications set next_attempt_at = $2, updated_at = now()
         where id in (
             select id from notifications
             where status = 'PENDING' and next_attempt_at <= $1
             order by next_attempt_at
             limit $3
             for update skip locked)
         returning id, recipient_email, subject, body_text, body_html, attempts, traceparent,
                   calendar, calendar_method",
    )
    .bind(now)
    .bind(now + lease)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Records the messages `ids` as sent through `transport`.
pub async fn mark_sent_all(pool: &PgPool, ids: &[Uuid], transport: &str) -> sqlx::Result<()> {
    sqlx::query(
        "update notifications set status = 'SENT', transport = $2, attempts = attempts + 1,
                sent_at = now(), last_error = null, updated_at = now()
         where id = any($1)",
    )
    .bind(ids)
    .bind(transport)
    .execute(pool)
    .await?;
    Ok(())
}

/// Hands claimed messages back before their lease ends (a sender shutting down).
pub async fn release(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "update notifications set next_attempt_at = now(), updated_at = now()
         where id = any($1) and status = 'PENDING'",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt: tried again at `retry_at`, or FAILED when `None`.
pub async fn mark_failed_attempt(
    pool: &PgPool,
    id: Uuid,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "update notifications set attempts = attempts + 1, last_error = $2,
                status = case when $3::timestamptz is null then 'FAILED' else 'PENDING' end,
                next_attempt_at = coalesce($3, next_attempt_at), updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(retry_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// A message in a recipient's inbox.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct InboxItem {
    pub id: Uuid,
    pub template: String,
    pub subject: String,
    pub body_text: String,
    /// `PENDING`, `SENT` or `FAILED`: how the email is doing.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

const INBOX: &str = "id, template, subject, body_text, status, created_at, read_at";

/// The recipient's messages, newest first, before the cursor.
pub async fn inbox(
    pool: &PgPool,
    recipient_id: Uuid,
    unread_only: bool,
    before: Option<Uuid>,
    limit: usize,
) -> anyhow::Result<Vec<InboxItem>> {
    Ok(inbox_query(recipient_id, unread_only, before, limit)
        .build_query_as()
        .fetch_all(pool)
        .await?)
}

/// The statement [`inbox`] runs: a page of `(recipient_id, id)`, with only the conditions
/// asked for written into it (so the cursor bounds the index scan instead of filtering it).
pub fn inbox_query(
    recipient_id: Uuid,
    unread_only: bool,
    before: Option<Uuid>,
    limit: usize,
) -> QueryBuilder<'static, Postgres> {
    let mut query = QueryBuilder::new(format!(
        "select {INBOX} from notifications where recipient_id = "
    ));
    query.push_bind(recipient_id);
    if unread_only {
        query.push(" and read_at is null");
    }
    if let Some(before) = before {
        query.push(" and id < ").push_bind(before);
    }
    query
        .push(" order by id desc limit ")
        .push_bind(i64::try_from(limit).unwrap_or(100));
    query
}

pub async fn unread_count(pool: &PgPool, recipient_id: Uuid) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "select count(*) from notifications where recipient_id = $1 and read_at is null",
    )
    .bind(recipient_id)
    .fetch_one(pool)
    .await?)
}

/// Marks the recipient's message read; `None` if it is not theirs.
pub async fn mark_read(
    pool: &PgPool,
    recipient_id: Uuid,
    id: Uuid,
) -> anyhow::Result<Option<InboxItem>> {
    Ok(sqlx::query_as(&format!(
        "update notifications set read_at = coalesce(read_at, now()), updated_at = now()
         where id = $1 and recipient_id = $2
         returning {INBOX}"
    ))
    .bind(id)
    .bind(recipient_id)
    .fetch_optional(pool)
    .await?)
}

/// A message as admins see it: who, what, how delivery went; not the body.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub recipient_id: Uuid,
    pub recipient_email: String,
    pub channel: String,
    pub template: String,
    pub subject: String,
    pub status: String,
    pub transport: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const DELIVERY: &str =
    "id, event_id, event_type, recipient_id, recipient_email, channel, template, subject,
    status, transport, attempts, last_error, next_attempt_at, sent_at, created_at, updated_at";

/// Filters of the admins' list.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub status: Option<&'a str>,
    pub recipient_id: Option<Uuid>,
    pub template: Option<&'a str>,
    pub event_id: Option<Uuid>,
    pub before: Option<Uuid>,
}

/// The messages matching `filter`, newest first, at most `limit`.
pub async fn list(
    pool: &PgPool,
    filter: &Filter<'_>,
    limit: usize,
) -> anyhow::Result<Vec<Delivery>> {
    let mut query = QueryBuilder::new(format!("select {DELIVERY} from notifications where true"));
    and_equal(&mut query, "status", filter.status);
    and_equal(&mut query, "recipient_id", filter.recipient_id);
    and_equal(&mut query, "template", filter.template);
    and_equal(&mut query, "event_id", filter.event_id);
    if let Some(before) = filter.before {
        query.push(" and id < ").push_bind(before);
    }
    query
        .push(" order by id desc limit ")
        .push_bind(i64::try_from(limit).unwrap_or(100));
    Ok(query.build_query_as().fetch_all(pool).await?)
}

/// Puts a FAILED message back in the queue, its attempts counted afresh. `Err` with the
/// current status when it is not FAILED, `Ok(None)` when there is no such message.
pub async fn resend(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<Result<Delivery, String>>> {
    let mut tx = pool.begin().await?;
    let status: Option<String> =
        sqlx::query_scalar("select status from notifications where id = $1 for update")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(status) = status else {
        return Ok(None);
    };
    if status != "FAILED" {
        return Ok(Some(Err(status)));
    }
    let delivery: Delivery = sqlx::query_as(&format!(
        "update notifications set status = 'PENDING', attempts = 0, next_attempt_at = now(), updated_at = now()
         where id = $1 returning {DELIVERY}"
    ))
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    wake_sender(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(Ok(delivery)))
}

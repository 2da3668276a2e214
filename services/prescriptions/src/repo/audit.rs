//! The audit trail: one row per read, write or refused attempt on clinical data, chained by
//! hashes. Appends are serialised by a transaction lock, so each row's `prev_hash` is the
//! row before it; the database refuses to change or delete rows (and the service's role
//! could not switch that off), and [`verify`] finds a row that was altered anyway (by
//! someone with the owner's rights, say). The chain alone cannot tell that its newest rows
//! were cut off, so [`checkpoint`] copies its head into a table of its own every minute:
//! a checkpointed row that is gone is found too.

use chrono::{DateTime, Utc};
use polyclinic_db::and_equal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

/// Whether the access happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
        }
    }
}

/// One access to record.
#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub actor_id: &'a str,
    pub actor_role: &'a str,
    /// `record.read`, `entry.write`, `prescription.write`, `refill.request`, ...
    pub action: &'a str,
    pub patient_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    /// The entry, prescription or refill.
    pub entry_id: Option<Uuid>,
    pub request_id: Option<&'a str>,
    pub outcome: Outcome,
}

/// The text a row's hash covers.
fn canonical(at: DateTime<Utc>, access: &Access<'_>) -> String {
    let id = |value: Option<Uuid>| value.map(|id| id.to_string()).unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}",
        at.timestamp_micros(),
        access.actor_id,
        access.actor_role,
        access.action,
        id(access.patient_id),
        id(access.record_id),
        id(access.entry_id),
        access.request_id.unwrap_or(""),
        access.outcome.as_str()
    )
}

fn chain(previous: &[u8], content: &str) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(previous);
    context.update(content.as_bytes());
    context.finish().as_ref().to_vec()
}

/// Serialises appends (and checkpoints) for the rest of the transaction.
async fn lock_trail(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('prescriptions:audit_log', 0))")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Appends `access` in the caller's transaction (a write's row commits with the write).
pub async fn append(conn: &mut PgConnection, access: &Access<'_>) -> anyhow::Result<()> {
    lock_trail(conn).await?;
    let previous: Vec<u8> =
        sqlx::query_scalar("select hash from audit_log order by id desc limit 1")
            .fetch_optional(&mut *conn)
            .await?
            .unwrap_or_default();
    // Stored to the microsecond; hashed as stored.
    let at =
        DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now);
    let hash = chain(&previous, &canonical(at, access));
    sqlx::query(
        "insert into audit_log (at, actor_id, actor_role, action, patient_id, record_id, entry_id, request_id,
                                outcome, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(at)
    .bind(access.actor_id)
    .bind(access.actor_role)
    .bind(access.action)
    .bind(access.patient_id)
    .bind(access.record_id)
    .bind(access.entry_id)
    .bind(access.request_id)
    .bind(access.outcome.as_str())
    .bind(&previous)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Appends `access` in a transaction of its own (reads, refusals).
pub async fn record(pool: &PgPool, access: &Access<'_>) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    append(&mut tx, access).await?;
    tx.commit().await?;
    Ok(())
}

/// A row of the trail as admins and patients read it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_role: String,
    pub action: String,
    pub patient_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub entry_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub outcome: String,
}

/// Filters of a search.
#[derive(Debug, Default)]
pub struct Search<'a> {
    pub patient_id: Option<Uuid>,
    pub actor_id: Option<&'a str>,
    pub action: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Rows before this id (newest first).
    pub before: Option<i64>,
}

/// The trail's rows matching `search`, newest first, at most `limit`.
pub async fn search(
    pool: &PgPool,
    search: &Search<'_>,
    limit: usize,
) -> anyhow::Result<Vec<AuditRow>> {
    Ok(search_query(search, limit)
        .build_query_as()
        .fetch_all(pool)
        .await?)
}

/// The statement [`search`] runs, with only the filters given written into it
/// ([`and_equal`]): a search by patient reads `(patient_id, id)` and one by actor
/// `(actor_id, id)`, whatever the trail's size.
pub fn search_query<'a>(search: &'a Search<'_>, limit: usize) -> QueryBuilder<'a, Postgres> {
    let mut query = QueryBuilder::new(
        "select id, at, actor_id, actor_role, action, patient_id, record_id, entry_id, request_id, outcome
         from audit_log where true",
    );
    and_equal(&mut query, "patient_id", search.patient_id);
    and_equal(&mut query, "actor_id", search.actor_id);
    and_equal(&mut query, "action", search.action);
    and_equal(&mut query, "outcome", search.outcome);
    if let Some(from) = search.from {
        query.push(" and at >= ").push_bind(from);
    }
    if let Some(to) = search.to {
        query.push(" and at < ").push_bind(to);
    }
    if let Some(before) = search.before {
        query.push(" and id < ").push_bind(before);
    }
    query
        .push(" order by id desc limit ")
        .push_bind(i64::try_from(limit).unwrap_or(100));
    query
}

/// How often the trail's head is checkpointed.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Copies the trail's head (its newest row's id and hash) into `audit_checkpoints`, unless
/// the newest checkpoint has it already. Returns the id checkpointed, if one was.
pub async fn checkpoint(pool: &PgPool) -> anyhow::Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    lock_trail(&mut tx).await?;
    let head: Option<(i64, Vec<u8>)> =
        sqlx::query_as("select id, hash from audit_log order by id desc limit 1")
            .fetch_optional(&mut *tx)
            .await?;
    let Some((id, hash)) = head else {
        return Ok(None);
    };
    let last: Option<i64> =
        sqlx::query_scalar("select audit_id from audit_checkpoints order by id desc limit 1")
            .fetch_optional(&mut *tx)
            .await?;
    if last == Some(id) {
        return Ok(None);
    }
    sqlx::query("insert into audit_checkpoints (audit_id, hash) values ($1, $2)")
        .bind(id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(id))
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub rows: u64,
    /// The first row whose content or link does not match its hash.
    pub broken_at: Option<i64>,
    /// The first checkpointed row that is gone (or not as checkpointed): the trail was cut
    /// back to before it.
    pub missing: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    id: i64,
    at: DateTime<Utc>,
    actor_id: String,
    actor_role: String,
    action: String,
    patient_id: Option<Uuid>,
    record_id: Option<Uuid>,
    entry_id: Option<Uuid>,
    request_id: Option<String>,
    outcome: String,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

/// Recomputes the chain from the first row, then checks every checkpoint against it.
pub async fn verify(pool: &PgPool) -> anyhow::Result<Verification> {
    let mut verification = verify_chain(pool).await?;
    if verification.broken_at.is_none() {
        verification.missing = sqlx::query_scalar(
            "select c.audit_id from audit_checkpoints c left join audit_log a on a.id = c.audit_id
             where a.id is null or a.hash <> c.hash
             order by c.audit_id limit 1",
        )
        .fetch_optional(pool)
        .await?;
    }
    Ok(verification)
}

async fn verify_chain(pool: &PgPool) -> anyhow::Result<Verification> {
    let mut previous: Vec<u8> = Vec::new();
    let mut after = 0i64;
    let mut rows = 0u64;
    loop {
        let batch: Vec<StoredRow> = sqlx::query_as(
            "select id, at, actor_id, actor_role, action, patient_id, record_id, entry_id, request_id, outcome,
                    prev_hash, hash
             from audit_log where id > $1 order by id limit 1000",
        )
        .bind(after)
        .fetch_all(pool)
        .await?;
        let Some(last) = batch.last() else {
            return Ok(Verification {
                rows,
                broken_at: None,
                missing: None,
            });
        };
        after = last.id;
        for row in &batch {
            let outcome = match row.outcome.as_str() {
                "allowed" => Outcome::Allowed,
                _ => Outcome::Denied,
            };
            let access = Access {
                actor_id: &row.actor_id,
                actor_role: &row.actor_role,
                action: &row.action,
                patient_id: row.patient_id,
                record_id: row.record_id,
                entry_id: row.entry_id,
                request_id: row.request_id.as_deref(),
                outcome,
            };
            let expected = chain(&previous, &canonical(row.at, &access));
            if row.prev_hash != previous || row.hash != expected || outcome.as_str() != row.outcome
            {
                return Ok(Verification {
                    rows,
                    broken_at: Some(row.id),
                    missing: None,
                });
            }
            previous = row.hash.clone();
            rows += 1;
        }
    }
}

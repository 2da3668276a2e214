//! Each person's private calendar feed: a secret URL (`/calendar/<secret>.ics`) that
//! Google, Apple and Outlook calendars subscribe to, listing the visits the person takes
//! part in from a month ago to a year ahead.
//!
//! The secret is 32 random bytes, shown once when the feed is made; only its SHA-256 hash
//! is kept, so the table leaks no working URL. Making a feed again replaces the secret
//! (the old URL stops working at once); removing it ends the feed. A deactivated person's
//! feed answers as if it did not exist. Feeds carry names, times and places only.

use chrono::{DateTime, Duration, Utc};
use polyclinic_contracts::appointments::AppointmentStatus;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::PgPool;
use uuid::Uuid;

use super::visits::{self, VisitRow};
use super::{Standing, Visit};
use crate::mail::Mail;

/// How far back and ahead a feed looks.
const PAST: Duration = Duration::days(31);
const AHEAD: Duration = Duration::days(366);
/// The most visits one feed lists.
const MOST: i64 = 500;

/// Why a feed could not be served.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Unknown, rotated, removed, malformed, or its owner deactivated: all look the same.
    #[error("no such calendar feed")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for FeedError {
    fn from(err: sqlx::Error) -> Self {
        FeedError::Unexpected(err.into())
    }
}

/// A feed's secret, as it appears in its URL: 43 characters of URL-safe base64.
fn new_secret() -> anyhow::Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn hash(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// Whether `text` could be a secret this service made (so anything else is refused before
/// the database is asked).
fn well_formed(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// A person's feed as they see it: never its secret.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FeedRow {
    pub created_at: DateTime<Utc>,
    pub last_read_at: Option<DateTime<Utc>>,
}

/// Makes `user`'s feed, replacing the one they had; returns the new secret and when it was
/// made.
pub async fn create(pool: &PgPool, user: Uuid) -> anyhow::Result<(String, DateTime<Utc>)> {
    let secret = new_secret()?;
    let created_at: DateTime<Utc> = sqlx::query_scalar(
        "insert into calendar_feeds (user_id, secret_hash) values ($1, $2)
         on conflict (user_id) do update
             set secret_hash = excluded.secret_hash, created_at = now(), last_read_at = null,
                 updated_at = now()
         returning created_at",
    )
    .bind(user)
    .bind(hash(&secret))
    .fetch_one(pool)
    .await?;
    Ok((secret, created_at))
}

pub async fn find(pool: &PgPool, user: Uuid) -> sqlx::Result<Option<FeedRow>> {
    sqlx::query_as("select created_at, last_read_at from calendar_feeds where user_id = $1")
        .bind(user)
        .fetch_optional(pool)
        .await
}

/// Ends `user`'s feed; false if they had none.
pub async fn remove(pool: &PgPool, user: Uuid) -> sqlx::Result<bool> {
    Ok(sqlx::query("delete from calendar_feeds where user_id = $1")
        .bind(user)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

/// The owner of the feed with `secret`, noting that it was read.
async fn owner(pool: &PgPool, secret: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "update calendar_feeds set last_read_at = now() where secret_hash = $1 returning user_id",
    )
    .bind(hash(secret))
    .fetch_optional(pool)
    .await
}

fn standing(status: AppointmentStatus) -> Standing {
    match status {
        AppointmentStatus::Paid | AppointmentStatus::Pending => Standing::Tentative,
        AppointmentStatus::Scheduled | AppointmentStatus::Completed | AppointmentStatus::NoShow => {
            Standing::Confirmed
        }
        _ => Standing::Cancelled,
    }
}

/// The feed with `secret` as iCalendar text, read at `now`.
pub async fn serve(
    pool: &PgPool,
    mail: &Mail,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<String, FeedError> {
    if !well_formed(secret) {
        return Err(FeedError::NotFound);
    }
    let user = owner(pool, secret).await?.ok_or(FeedError::NotFound)?;
    let directory = &mail.directory;
    let unreachable = |err: polyclinic_client::ClientError| FeedError::Unexpected(err.into());
    match directory.person(user, None).await.map_err(unreachable)? {
        Some(person) if person.is_active() => {}
        _ => return Err(FeedError::NotFound),
    }
    let rows = visits::of_person(pool, user, now - PAST, now + AHEAD, MOST).await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        events.push(visit(mail, user, row).await.map_err(unreachable)?);
    }
    Ok(super::feed(
        &events,
        &format!("{} appointments", mail.clinic),
        &mail.uid_domain,
        &mail.organizer,
    ))
}

/// `row` as `user` sees it in their calendar: patients see whom they visit, the care team
/// whom they see.
async fn visit(
    mail: &Mail,
    user: Uuid,
    row: &VisitRow,
) -> Result<Visit, polyclinic_client::ClientError> {
    let directory = &mail.directory;
    let doctor = directory.person(row.doctor_id, None).await?;
    let other = if row.patient_id == user {
        doctor
            .as_ref()
            .map_or_else(|| "your doctor".to_owned(), |doctor| doctor.display_name())
    } else {
        directory
            .person(row.patient_id, None)
            .await?
            .map_or_else(|| "a patient".to_owned(), |patient| patient.display_name())
    };
    let location = directory
        .location(doctor.as_ref(), row.room_id, None)
        .await?;
    Ok(Visit {
        appointment_id: row.appointment_id,
        revision: row.revision,
        stamp: row.changed_at,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        location,
        standing: standing(row.status),
        summary: format!("Appointment with {other}"),
        url: format!(
            "{}/appointments/{}",
            mail.sign_in_url.trim_end_matches('/'),
            row.appointment_id
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_43_url_safe_characters_and_nothing_else_is_one() {
        let secret = new_secret().unwrap();
        assert!(well_formed(&secret), "{secret}");
        assert_ne!(secret, new_secret().unwrap());
        assert!(!well_formed("short"));
        assert!(!well_formed(&format!("{}=", &secret[..42])));
        assert_eq!(hash(&secret).len(), 32);
    }
}

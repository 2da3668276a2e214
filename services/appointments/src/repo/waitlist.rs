//! Waitlist entries, their offers, and the openings the matcher works through.

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use polyclinic_contracts::{AppointmentId, DoctorId, PatientId};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::waitlist::{EntryStatus, OfferStatus, Target, Window};

/// A waitlist entry as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: Uuid,
    pub patient_id: PatientId,
    pub doctor_id: Option<DoctorId>,
    pub specialization: Option<String>,
    pub from_date: NaiveDate,
    pub to_date: NaiveDate,
    pub earliest: NaiveTime,
    pub latest: NaiveTime,
    #[sqlx(try_from = "String")]
    pub status: EntryStatus,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl EntryRow {
    pub fn window(&self) -> Window {
        Window::stored(self.from_date, self.to_date, self.earliest, self.latest)
    }

    pub fn target(&self) -> Target {
        match (self.doctor_id, &self.specialization) {
            (Some(doctor), _) => Target::Doctor(doctor),
            (None, Some(specialization)) => Target::Specialization(specialization.clone()),
            // The table's check constraint rules this out.
            (None, None) => Target::Specialization(String::new()),
        }
    }
}

const ENTRY: &str =
    "id, patient_id, doctor_id, specialization, from_date, to_date, earliest, latest,
    status, ended_at, created_at, updated_at";

/// Serialises the waitlist changes of one patient until the transaction ends, so that the
/// entry limit cannot be overrun by requests racing each other.
pub async fn lock_patient(conn: &mut PgConnection, patient_id: PatientId) -> sqlx::Result<()> {
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended('appointments:waitlist-patient:' || $1::text, 0))",
    )
    .bind(patient_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Serialises the matcher across instances until the transaction ends: one matcher at a
/// time hands out offers, so the order of the line holds.
pub async fn lock_matcher(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended('appointments:waitlist-matcher', 0))",
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The patient's entries still in line.
pub async fn active_of_patient(
    conn: &mut PgConnection,
    patient_id: PatientId,
) -> sqlx::Result<Vec<EntryRow>> {
    sqlx::query_as(&format!(
        "select {ENTRY} from waitlist_entries
         where patient_id = $1 and status in ('WAITING', 'OFFERED') order by id"
    ))
    .bind(patient_id)
    .fetch_all(conn)
    .await
}

/// Writes a WAITING entry.
pub async fn insert_entry(
    conn: &mut PgConnection,
    patient_id: PatientId,
    target: &Target,
    window: &Window,
) -> sqlx::Result<EntryRow> {
    let (doctor_id, specialization) = match target {
        Target::Doctor(doctor) => (Some(*doctor), None),
        Target::Specialization(name) => (None, Some(name.as_str())),
    };
    sqlx::query_as(&format!(
        "insert into waitlist_entries (id, patient_id, doctor_id, specialization, from_date, to_date,
                                       earliest, latest, status)
         values ($1, $2, $3, $4, $5, $6, $7, $8, 'WAITING')
         returning {ENTRY}"
    ))
    .bind(Uuid::now_v7())
    .bind(patient_id)
    .bind(doctor_id)
    .bind(specialization)
    .bind(window.from())
    .bind(window.to())
    .bind(window.earliest())
    .bind(window.latest())
    .fetch_one(conn)
    .await
}

pub async fn find_entry(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<EntryRow>> {
    sqlx::query_as(&format!(
        "select {ENTRY} from waitlist_entries where id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The entry, locked until the transaction ends.
pub async fn lock_entry(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<EntryRow>> {
    sqlx::query_as(&format!(
        "select {ENTRY} from waitlist_entries where id = $1 for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Moves an entry to `status` (ended ones get their end time).
pub async fn set_entry_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: EntryStatus,
) -> sqlx::Result<()> {
    sqlx::query(
        "update waitlist_entries set status = $2,
                ended_at = case when $2 in ('WAITING', 'OFFERED') then null else now() end,
                updated_at = now()
         where id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// The patient's entries, newest first, at most `limit`.
pub async fn of_patient(
    pool: &PgPool,
    patient_id: PatientId,
    limit: i64,
) -> sqlx::Result<Vec<EntryRow>> {
    sqlx::query_as(&format!(
        "select {ENTRY} from waitlist_entries where patient_id = $1 order by id desc limit $2"
    ))
    .bind(patient_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Entries in line for `doctor_id` (by name, or by `specialization` when given), in the
/// order they joined, after the cursor, at most `limit`.
pub async fn in_line_for(
    conn: &mut PgConnection,
    doctor_id: DoctorId,
    specialization: Option<&str>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<EntryRow>> {
    sqlx::query_as(&format!(
        "select {ENTRY} from (
             select * from waitlist_entries
             where doctor_id = $1 and status in ('WAITING', 'OFFERED')
             union all
             select * from waitlist_entries
             where specialization = lower($2) and status in ('WAITING', 'OFFERED')
         ) line
         where ($3::uuid is null or id > $3)
         order by id
         limit $4"
    ))
    .bind(doctor_id)
    .bind(specialization.map(str::trim))
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Every entry in line, in the order they joined, after the cursor, at most `limit`.
pub async fn in_line(
    pool: &PgPool,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<EntryRow>> {
    sqlx::query_as(&format!(
        "select {ENTRY} from waitlist_entries
         where status in ('WAITING', 'OFFERED') and ($1::uuid is null or id > $1)
         order by id limit $2"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many entries in line are served before `entry`: for a doctor's entry, the earlier
/// ones for that doctor and for `specialization` (the doctor's, which the matcher serves in
/// the same order); for a specialization's entry, the earlier ones for it.
pub async fn ahead_of(
    pool: &PgPool,
    entry: &EntryRow,
    specialization: Option<&str>,
) -> sqlx::Result<i64> {
    let specialization = specialization
        .map(|name| name.trim().to_lowercase())
        .or_else(|| entry.specialization.clone());
    sqlx::query_scalar(
        "select count(*) from waitlist_entries
         where status in ('WAITING', 'OFFERED') and id < $1
           and (doctor_id = $2 or specialization = $3)",
    )
    .bind(entry.id)
    .bind(entry.doctor_id)
    .bind(specialization)
    .fetch_one(pool)
    .await
}

/// WAITING entries whose range ended before `today`: they end.
pub async fn end_lapsed(conn: &mut PgConnection, today: NaiveDate) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "update waitlist_entries set status = 'ENDED', ended_at = now(), updated_at = now()
         where status = 'WAITING' and to_date < $1",
    )
    .bind(today)
    .execute(conn)
    .await?
    .rows_affected())
}

/// An offer as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    pub id: Uuid,
    pub entry_id: Uuid,
    pub appointment_id: AppointmentId,
    pub doctor_id: DoctorId,
    pub starts_at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub status: OfferStatus,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const OFFER: &str = "id, entry_id, appointment_id, doctor_id, starts_at, status, expires_at, decided_at, created_at";

/// Records an open offer of `appointment_id` to `entry_id`.
pub async fn insert_offer(
    conn: &mut PgConnection,
    entry_id: Uuid,
    appointment_id: AppointmentId,
    doctor_id: DoctorId,
    starts_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<OfferRow> {
    sqlx::query_as(&format!(
        "insert into waitlist_offers (id, entry_id, appointment_id, doctor_id, starts_at, status, expires_at)
         values ($1, $2, $3, $4, $5, 'OPEN', $6)
         returning {OFFER}"
    ))
    .bind(Uuid::now_v7())
    .bind(entry_id)
    .bind(appointment_id)
    .bind(doctor_id)
    .bind(starts_at)
    .bind(expires_at)
    .fetch_one(conn)
    .await
}

/// The offer of an appointment.
pub async fn find_offer_of(
    pool: &PgPool,
    appointment_id: AppointmentId,
) -> sqlx::Result<Option<OfferRow>> {
    sqlx::query_as(&format!(
        "select {OFFER} from waitlist_offers where appointment_id = $1"
    ))
    .bind(appointment_id)
    .fetch_optional(pool)
    .await
}

/// The offer of an appointment, locked until the transaction ends.
pub async fn lock_offer_of(
    conn: &mut PgConnection,
    appointment_id: AppointmentId,
) -> sqlx::Result<Option<OfferRow>> {
    sqlx::query_as(&format!(
        "select {OFFER} from waitlist_offers where appointment_id = $1 for update"
    ))
    .bind(appointment_id)
    .fetch_optional(conn)
    .await
}

/// Closes an open offer as `status`.
pub async fn decide_offer(
    conn: &mut PgConnection,
    id: Uuid,
    status: OfferStatus,
) -> sqlx::Result<()> {
    sqlx::query(
        "update waitlist_offers set status = $2, decided_at = now(), updated_at = now()
         where id = $1 and status = 'OPEN'",
    )
    .bind(id)
    .bind(status.as_str())
    .execute(conn)
    .await?;
    Ok(())
}

/// The entries' open offers, by entry.
pub async fn open_offers(pool: &PgPool, entries: &[Uuid]) -> sqlx::Result<Vec<OfferRow>> {
    sqlx::query_as(&format!(
        "select {OFFER} from waitlist_offers where entry_id = any($1) and status = 'OPEN'"
    ))
    .bind(entries)
    .fetch_all(pool)
    .await
}

/// Which of `entries` were offered `doctor_id`'s slot at `starts_at` before.
pub async fn offered_before(
    conn: &mut PgConnection,
    entries: &[Uuid],
    doctor_id: DoctorId,
    starts_at: DateTime<Utc>,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "select entry_id from waitlist_offers
         where entry_id = any($1) and doctor_id = $2 and starts_at = $3",
    )
    .bind(entries)
    .bind(doctor_id)
    .bind(starts_at)
    .fetch_all(conn)
    .await
}

/// Notes that `doctor_id` may have free time starting in `[from, until)`.
pub async fn insert_opening(
    conn: &mut PgConnection,
    doctor_id: DoctorId,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<()> {
    insert_opening_for(conn, &Target::Doctor(doctor_id), from, until).await
}

/// Notes that `target` (a doctor, or every doctor of a specialization) may have free time
/// starting in `[from, until)`.
pub async fn insert_opening_for(
    conn: &mut PgConnection,
    target: &Target,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<()> {
    if until <= from {
        return Ok(());
    }
    let (doctor_id, specialization) = match target {
        Target::Doctor(doctor) => (Some(*doctor), None),
        Target::Specialization(name) => (None, Some(name.as_str())),
    };
    sqlx::query(
        "insert into waitlist_openings (doctor_id, specialization, starts_from, starts_until)
         values ($1, $2, $3, $4)",
    )
    .bind(doctor_id)
    .bind(specialization)
    .bind(from)
    .bind(until)
    .execute(conn)
    .await?;
    Ok(())
}

/// One doctor's (or specialization's) openings, merged: the earliest start and the latest.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Opening {
    pub doctor_id: Option<DoctorId>,
    pub specialization: Option<String>,
    pub starts_from: DateTime<Utc>,
    pub starts_until: DateTime<Utc>,
}

impl Opening {
    /// The same time, for one doctor.
    pub fn of_doctor(&self, doctor_id: DoctorId) -> Opening {
        Opening {
            doctor_id: Some(doctor_id),
            specialization: None,
            ..self.clone()
        }
    }
}

/// Takes up to `limit` openings (the caller holds the matcher's lock), merged per doctor or
/// specialization; they are gone when the transaction commits.
pub async fn take_openings(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Opening>> {
    sqlx::query_as(
        "with taken as (
             delete from waitlist_openings
             where id in (select id from waitlist_openings order by id limit $1)
             returning doctor_id, specialization, starts_from, starts_until)
         select doctor_id, specialization, min(starts_from) as starts_from,
                max(starts_until) as starts_until
         from taken group by doctor_id, specialization order by doctor_id, specialization",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Puts an opening back, to be worked through again later.
pub async fn return_opening(conn: &mut PgConnection, opening: &Opening) -> sqlx::Result<()> {
    let target = match (&opening.doctor_id, &opening.specialization) {
        (Some(doctor), _) => Target::Doctor(*doctor),
        (None, Some(name)) => Target::Specialization(name.clone()),
        (None, None) => return Ok(()),
    };
    insert_opening_for(conn, &target, opening.starts_from, opening.starts_until).await
}

/// Deletes entries out of line since before `before`, with their offers.
pub async fn purge_ended(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "delete from waitlist_offers where entry_id in (
             select id from waitlist_entries
             where status in ('BOOKED', 'ENDED', 'LEFT') and ended_at < $1)",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?;
    let deleted = sqlx::query(
        "delete from waitlist_entries where status in ('BOOKED', 'ENDED', 'LEFT') and ended_at < $1",
    )
    .bind(before)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(deleted)
}

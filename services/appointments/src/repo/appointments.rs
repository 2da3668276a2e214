//! Appointments, their status history, and the queries the jobs work through.
//!
//! Every status change goes through [`change_status`], which writes the history row in the
//! same transaction. Overlaps are refused by the exclusion constraints; their names map to
//! [`Overlap`].

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use polyclinic_contracts::appointments::AppointmentRef;
use polyclinic_contracts::{AppointmentId, DoctorId, Money, NurseId, PatientId, PaymentId, RoomId};
use polyclinic_db::and_equal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::appointment::{Lifecycle, Status};
use crate::domain::schedule::{Buffers, Slot};
use crate::repo::waitlist;

/// An appointment as stored (the API's body is `routes::body::Appointment`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AppointmentRow {
    pub id: AppointmentId,
    pub patient_id: PatientId,
    pub doctor_id: DoctorId,
    pub room_id: Option<RoomId>,
    pub nurse_id: Option<NurseId>,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub notes: String,
    /// The doctor's fee when it was booked ([`AppointmentRow::fee`]), in minor units.
    pub fee_amount: i64,
    pub fee_currency: String,
    /// Until when a PENDING reservation holds its slot.
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub payment_id: Option<PaymentId>,
    /// Why it was rejected or cancelled.
    pub status_reason: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every change of status or time.
    pub revision: i32,
    /// The doctor's buffers when it was booked, in minutes.
    pub buffer_before_minutes: i32,
    pub buffer_after_minutes: i32,
}

impl AppointmentRow {
    /// The doctor's fee when it was booked.
    pub fn fee(&self) -> Money {
        Money::stored(self.fee_amount, self.fee_currency.clone())
    }

    /// The appointment as events describe it.
    pub fn reference(&self) -> AppointmentRef {
        AppointmentRef {
            appointment_id: self.id.into(),
            patient_id: self.patient_id.into(),
            doctor_id: self.doctor_id.into(),
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            room_id: self.room_id.map(Uuid::from),
            nurse_id: self.nurse_id.map(Uuid::from),
            payment_id: self.payment_id.map(Uuid::from),
            amount: self.fee_amount,
            currency: self.fee_currency.clone(),
            status: Some(self.status),
            revision: self.revision,
        }
    }

    /// The time it keeps from the doctor's other bookings: the visit and its buffers.
    pub fn blocked(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        let minutes = |value: i32| chrono::Duration::minutes(i64::from(value));
        (
            self.starts_at - minutes(self.buffer_before_minutes),
            self.ends_at + minutes(self.buffer_after_minutes),
        )
    }

    /// Whether `user` takes part in it as its patient, doctor or nurse.
    pub fn involves(&self, user: Uuid) -> bool {
        self.patient_id == user
            || self.doctor_id == user
            || self.nurse_id.is_some_and(|nurse| nurse == user)
    }
}

const COLUMNS: &str = "id, patient_id, doctor_id, room_id, nurse_id, status, starts_at, ends_at,
    reason, notes, fee_amount, fee_currency, hold_expires_at, payment_id, status_reason,
    created_by, created_at, updated_at, revision, buffer_before_minutes, buffer_after_minutes";

/// Which exclusion constraint refused a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Doctor,
    Room,
    Nurse,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the time overlaps another appointment")]
    Overlap(Overlap),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn write_error(err: sqlx::Error) -> WriteError {
    match polyclinic_db::violated_constraint(&err) {
        Some("appointment_no_overlap") => WriteError::Overlap(Overlap::Doctor),
        Some("appointment_room_no_overlap") => WriteError::Overlap(Overlap::Room),
        Some("appointment_nurse_no_overlap") => WriteError::Overlap(Overlap::Nurse),
        _ => WriteError::Database(err),
    }
}

/// A reservation to be written.
#[derive(Debug, Clone)]
pub struct NewAppointment {
    pub patient_id: PatientId,
    pub doctor_id: DoctorId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub notes: String,
    pub fee: Money,
    pub hold_expires_at: DateTime<Utc>,
    /// The doctor's buffers when it was booked: the appointment keeps them.
    pub buffers: Buffers,
    pub created_by: Uuid,
}

fn minutes(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Writes a new appointment in `status` (PENDING for a reservation, OFFERED for a
/// waitlist's offer) and its first history row (one round trip). The created_by of an offer
/// is nobody's: the platform made it.
pub async fn insert(
    conn: &mut PgConnection,
    new: &NewAppointment,
    status: Status,
) -> Result<AppointmentRow, WriteError> {
    sqlx::query_as(&format!(
        "with written as (
             insert into appointments (id, patient_id, doctor_id, status, starts_at, ends_at, reason, notes,
                                       fee_amount, fee_currency, hold_expires_at, created_by,
                                       buffer_before_minutes, buffer_after_minutes)
             values ($1, $2, $3, $14, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             returning {COLUMNS}),
         history as (
             insert into appointment_history (appointment_id, from_status, to_status, actor)
             select id, null, status, nullif(created_by, '00000000-0000-0000-0000-000000000000')
             from written)
         select * from written"
    ))
    .bind(Uuid::now_v7())
    .bind(new.patient_id)
    .bind(new.doctor_id)
    .bind(new.starts_at)
    .bind(new.ends_at)
    .bind(&new.reason)
    .bind(&new.notes)
    .bind(new.fee.amount)
    .bind(&new.fee.currency)
    .bind(new.hold_expires_at)
    .bind(new.created_by)
    .bind(minutes(new.buffers.before))
    .bind(minutes(new.buffers.after))
    .bind(status.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(write_error)
}

/// Serialises the reservations of one patient until the transaction ends, so that the
/// pending limit cannot be overrun by requests racing each other.
pub async fn lock_patient(conn: &mut PgConnection, patient_id: PatientId) -> sqlx::Result<()> {
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended('appointments:patient:' || $1::text, 0))",
    )
    .bind(patient_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the patient has an active appointment (or an offer) overlapping `[from, until)`.
pub async fn patient_busy(
    conn: &mut PgConnection,
    patient_id: PatientId,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "select exists (select 1 from appointments
                        where patient_id = $1 and status in ('OFFERED', 'PENDING', 'PAID', 'SCHEDULED')
                          and starts_at < $3 and ends_at > $2)",
    )
    .bind(patient_id)
    .bind(from)
    .bind(until)
    .fetch_one(conn)
    .await
}

/// How many unpaid reservations the patient holds.
pub async fn pending_count(conn: &mut PgConnection, patient_id: PatientId) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from appointments where patient_id = $1 and status = 'PENDING'",
    )
    .bind(patient_id)
    .fetch_one(conn)
    .await
}

pub async fn find(pool: &PgPool, id: AppointmentId) -> sqlx::Result<Option<AppointmentRow>> {
    sqlx::query_as(&format!("select {COLUMNS} from appointments where id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The appointment, locked until the transaction ends.
pub async fn lock(
    conn: &mut PgConnection,
    id: AppointmentId,
) -> sqlx::Result<Option<AppointmentRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from appointments where id = $1 for update"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// What a status change also sets.
#[derive(Debug, Clone, Default)]
pub struct Change<'a> {
    pub reason: Option<&'a str>,
    /// The room and nurse of an approval.
    pub assignment: Option<(RoomId, NurseId)>,
    pub payment_id: Option<PaymentId>,
    /// A user, or `None` for jobs and events.
    pub actor: Option<Uuid>,
    /// Until when the slot is held, for a move to OFFERED or PENDING (a claimed offer is held
    /// anew); other statuses hold nothing.
    pub hold_until: Option<DateTime<Utc>>,
}

/// Moves `appointment` to `to`, recording who and why in its history. The caller holds the
/// row lock and has checked that the lifecycle allows the move.
pub async fn change_status(
    conn: &mut PgConnection,
    appointment: &AppointmentRow,
    to: Status,
    change: Change<'_>,
) -> Result<AppointmentRow, WriteError> {
    let (room, nurse) = change.assignment.unzip();
    let updated: AppointmentRow = sqlx::query_as(&format!(
        "update appointments set status = $2,
                status_reason = coalesce($3, status_reason),
                room_id = coalesce($4, room_id),
                nurse_id = coalesce($5, nurse_id),
                payment_id = coalesce(payment_id, $6),
                hold_expires_at = case when $2 in ('OFFERED', 'PENDING')
                                       then coalesce($7, hold_expires_at) end,
                revision = revision + 1,
                updated_at = now()
         where id = $1
         returning {COLUMNS}"
    ))
    .bind(appointment.id)
    .bind(to.as_str())
    .bind(change.reason)
    .bind(room)
    .bind(nurse)
    .bind(change.payment_id)
    .bind(change.hold_until)
    .fetch_one(&mut *conn)
    .await
    .map_err(write_error)?;
    history(
        conn,
        appointment.id,
        Some(appointment.status),
        to,
        change.actor,
        change.reason,
    )
    .await?;
    // The slot is free again: the waitlist's matcher looks at it (a visit that has begun
    // frees nothing anyone could still book).
    if appointment.status.is_active() && !to.is_active() && appointment.starts_at > Utc::now() {
        let (from, until) = appointment.blocked();
        waitlist::insert_opening(conn, appointment.doctor_id, from, until).await?;
    }
    Ok(updated)
}

/// Moves the appointment to another slot (and the buffers the doctor keeps around it now),
/// keeping everything else.
pub async fn move_to(
    conn: &mut PgConnection,
    appointment: &AppointmentRow,
    slot: &Slot,
    actor: Uuid,
) -> Result<AppointmentRow, WriteError> {
    let updated: AppointmentRow = sqlx::query_as(&format!(
        "update appointments set starts_at = $2, ends_at = $3, reminder_sent_at = null,
                buffer_before_minutes = $4, buffer_after_minutes = $5, revision = revision + 1,
                updated_at = now()
         where id = $1
         returning {COLUMNS}"
    ))
    .bind(appointment.id)
    .bind(slot.starts_at)
    .bind(slot.ends_at)
    .bind(minutes(slot.buffers.before))
    .bind(minutes(slot.buffers.after))
    .fetch_one(&mut *conn)
    .await
    .map_err(write_error)?;
    let (from, until) = appointment.blocked();
    waitlist::insert_opening(conn, appointment.doctor_id, from, until).await?;
    let note = format!("moved from {}", appointment.starts_at.to_rfc3339());
    history(
        conn,
        appointment.id,
        Some(appointment.status),
        appointment.status,
        Some(actor),
        Some(&note),
    )
    .await?;
    Ok(updated)
}

/// Records the payment of a reservation. The commit does not wait for the WAL flush: should
/// a crash lose it, the payment's authorisation records it again (see `change_status`), and
/// the payments service finds payments by appointment anyway.
pub async fn set_payment(
    pool: &PgPool,
    id: AppointmentId,
    payment_id: PaymentId,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("set local synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query("update appointments set payment_id = $2, updated_at = now() where id = $1 and payment_id is null")
        .bind(id)
        .bind(payment_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

async fn history(
    conn: &mut PgConnection,
    id: AppointmentId,
    from: Option<Status>,
    to: Status,
    actor: Option<Uuid>,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into appointment_history (appointment_id, from_status, to_status, actor, reason)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(from.map(Status::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// One row of an appointment's history.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct HistoryEntry {
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: Option<Uuid>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn list_history(pool: &PgPool, id: AppointmentId) -> sqlx::Result<Vec<HistoryEntry>> {
    sqlx::query_as(
        "select from_status, to_status, actor, reason, created_at from appointment_history
         where appointment_id = $1 order by id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// The statement of [`busy`] (`$1` the doctor, `$2` and `$3` the window): a search of the
/// doctor's exclusion constraint's index, which holds their active appointments only.
pub const BUSY: &str = "select lower(blocked), upper(blocked) from appointments
     where doctor_id = $1 and status in ('OFFERED', 'PENDING', 'PAID', 'SCHEDULED')
       and blocked && tstzrange($2, $3, '[)')
     order by starts_at";

/// The time a doctor's active appointments keep (visits and their buffers) between `from`
/// and `to`.
pub async fn busy(
    pool: &PgPool,
    doctor_id: DoctorId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> anyhow::Result<Vec<(DateTime<Utc>, DateTime<Utc>)>> {
    Ok(sqlx::query_as(BUSY)
        .bind(doctor_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?)
}

/// Whether a room or nurse is in a SCHEDULED appointment overlapping the period.
pub async fn assignment_conflict(
    pool: &PgPool,
    except: AppointmentId,
    room_id: RoomId,
    nurse_id: NurseId,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> sqlx::Result<Option<Overlap>> {
    let (rooms, nurses) = assigned_during(pool, except, starts_at, ends_at).await?;
    Ok(if rooms.contains(&room_id) {
        Some(Overlap::Room)
    } else if nurses.contains(&nurse_id) {
        Some(Overlap::Nurse)
    } else {
        None
    })
}

/// The rooms and nurses that scheduled visits other than `except`, overlapping
/// `[starts_at, ends_at)`, hold.
pub async fn assigned_during(
    pool: &PgPool,
    except: AppointmentId,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
) -> sqlx::Result<(HashSet<RoomId>, HashSet<NurseId>)> {
    let rows: Vec<(Option<RoomId>, Option<NurseId>)> = sqlx::query_as(
        "select room_id, nurse_id from appointments
         where status = 'SCHEDULED' and id <> $1 and period && tstzrange($2, $3, '[)')",
    )
    .bind(except)
    .bind(starts_at)
    .bind(ends_at)
    .fetch_all(pool)
    .await?;
    let rooms = rows.iter().filter_map(|(room, _)| *room).collect();
    let nurses = rows.iter().filter_map(|(_, nurse)| *nurse).collect();
    Ok((rooms, nurses))
}

/// Filters of a list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these; all statuses when empty.
    pub statuses: Vec<Status>,
    pub patient_id: Option<PatientId>,
    pub doctor_id: Option<DoctorId>,
    pub nurse_id: Option<NurseId>,
    pub room_id: Option<RoomId>,
    /// The doctor or the nurse (FHIR's `practitioner`).
    pub staff_id: Option<Uuid>,
    /// Starting at or after.
    pub from: Option<DateTime<Utc>>,
    /// Starting before.
    pub to: Option<DateTime<Utc>>,
    /// Only those booked after this one (the cursor): lists run oldest booking first.
    pub after: Option<AppointmentId>,
}

/// Appointments matching `filter`, at most `limit`: in booking order, or, narrowed to a
/// time window (`from` or `to`), in the order they start.
pub async fn list(
    pool: &PgPool,
    filter: &Filter,
    limit: usize,
) -> anyhow::Result<Vec<AppointmentRow>> {
    Ok(list_query(filter, limit)
        .build_query_as()
        .fetch_all(pool)
        .await?)
}

/// The statement [`list`] runs, with only the filters given written into it
/// ([`and_equal`]). Each shape of list has an index that yields its rows in its order: `(patient_id, id)`, `(doctor_id, id)`,
/// `(nurse_id, id)`, `(status, id)` and the primary key for booking order, the `starts_at`
/// indexes for a window.
pub fn list_query(filter: &Filter, limit: usize) -> QueryBuilder<'_, Postgres> {
    let mut query = QueryBuilder::new(format!("select {COLUMNS} from appointments where true"));
    if !filter.statuses.is_empty() {
        let statuses: Vec<&str> = filter
            .statuses
            .iter()
            .map(|status| status.as_str())
            .collect();
        if let [status] = statuses[..] {
            query.push(" and status = ").push_bind(status);
        } else {
            query
                .push(" and status = any(")
                .push_bind(statuses)
                .push(")");
        }
    }
    and_equal(&mut query, "patient_id", filter.patient_id);
    and_equal(&mut query, "doctor_id", filter.doctor_id);
    and_equal(&mut query, "nurse_id", filter.nurse_id);
    and_equal(&mut query, "room_id", filter.room_id);
    if let Some(staff) = filter.staff_id {
        query
            .push(" and (doctor_id = ")
            .push_bind(staff)
            .push(" or nurse_id = ")
            .push_bind(staff)
            .push(")");
    }
    if let Some(from) = filter.from {
        query.push(" and starts_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" and starts_at < ").push_bind(to);
    }
    let windowed = filter.from.is_some() || filter.to.is_some();
    match (filter.after, windowed) {
        (Some(after), false) => {
            query.push(" and id > ").push_bind(Uuid::from(after));
        }
        (Some(after), true) => {
            query
                .push(" and (starts_at, id) > (select starts_at, id from appointments where id = ")
                .push_bind(Uuid::from(after))
                .push(")");
        }
        (None, _) => {}
    }
    query.push(if windowed {
        " order by starts_at, id limit "
    } else {
        " order by id limit "
    });
    query.push_bind(i64::try_from(limit).unwrap_or(100));
    query
}

/// The doctor's active appointments starting at or after `from`, locked.
pub async fn lock_active_from(
    conn: &mut PgConnection,
    doctor_id: DoctorId,
    from: DateTime<Utc>,
) -> sqlx::Result<Vec<AppointmentRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from appointments
         where doctor_id = $1 and status in ('OFFERED', 'PENDING', 'PAID', 'SCHEDULED') and starts_at >= $2
         order by starts_at
         for update"
    ))
    .bind(doctor_id)
    .bind(from)
    .fetch_all(conn)
    .await
}

/// Up to `limit` appointments of `status` whose `column` has passed `now`, locked; rows
/// another instance has locked are skipped, so several job runners share the work.
pub async fn lock_due(
    conn: &mut PgConnection,
    due: Due,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<AppointmentRow>> {
    sqlx::query_as(&due_sql(due))
        .bind(now)
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// The statement of [`lock_due`] (`$1` now, `$2` the limit). Each condition is bounded on
/// an index (a visit that ended started before now), so a night's sweep reads the rows due
/// and not the years of history behind them.
pub fn due_sql(due: Due) -> String {
    let condition = match due {
        Due::HoldExpired => "status = 'PENDING' and hold_expires_at <= $1",
        Due::OfferExpired => "status = 'OFFERED' and hold_expires_at <= $1",
        Due::Ended => "status = 'SCHEDULED' and starts_at < $1 and ends_at <= $1",
        Due::Reminder => {
            "status = 'SCHEDULED' and reminder_sent_at is null
             and starts_at > $1 and starts_at <= $1 + interval '24 hours'"
        }
    };
    format!(
        "select {COLUMNS} from appointments where {condition}
         order by starts_at limit $2
         for update skip locked"
    )
}

/// What a job looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// PENDING reservations whose hold ran out.
    HoldExpired,
    /// Waitlist offers that ran out unclaimed.
    OfferExpired,
    /// SCHEDULED appointments that have ended.
    Ended,
    /// SCHEDULED appointments starting within 24 hours, not yet reminded of.
    Reminder,
}

pub async fn mark_reminded(conn: &mut PgConnection, id: AppointmentId) -> sqlx::Result<()> {
    sqlx::query("update appointments set reminder_sent_at = now() where id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The statement of [`purge_terminal`] (`$1` the cut-off), read off the partial index of
/// terminal appointments by their last change.
pub const PURGE: &str = "delete from appointments
     where status in ('COMPLETED', 'NO_SHOW', 'EXPIRED', 'REJECTED', 'CANCELLED') and updated_at < $1";

/// Deletes terminal appointments last changed before `before`, with their history.
pub async fn purge_terminal(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(sqlx::query(PURGE)
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected())
}

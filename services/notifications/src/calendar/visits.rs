//! The `notifications-calendar` consumer: every appointment event leaves the appointment's
//! ids, times, status and revision in `calendar_visits`, which the feeds read. Nothing here
//! asks another service, so the view keeps up even while the identity service is away.

use chrono::{DateTime, Utc};
use polyclinic_config::Config;
use polyclinic_contracts::Topic;
use polyclinic_contracts::appointments::{AppointmentRef, AppointmentStatus};
use polyclinic_events::{Backbone, Consumer, ConsumerSettings, Envelope, Handled, Handlers};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The consumer's name in inboxes, positions and dead letters.
pub const CONSUMER: &str = "notifications-calendar";

/// The status an event of `event_type` leaves an appointment in, for events written before
/// they carried it; `None` where the type does not say (a reschedule keeps the status).
fn status_of(event_type: &str) -> Option<AppointmentStatus> {
    let what = event_type
        .strip_prefix("polyclinic.appointment.")?
        .strip_suffix(".v1")?;
    Some(match what {
        "reserved" => AppointmentStatus::Pending,
        "paid" => AppointmentStatus::Paid,
        "scheduled" | "reminder" => AppointmentStatus::Scheduled,
        "rejected" => AppointmentStatus::Rejected,
        "cancelled" => AppointmentStatus::Cancelled,
        "expired" => AppointmentStatus::Expired,
        "completed" => AppointmentStatus::Completed,
        "no_show" => AppointmentStatus::NoShow,
        _ => return None,
    })
}

/// Records what `envelope` says of its appointment, unless a later revision is known.
pub async fn record(conn: &mut PgConnection, envelope: &Envelope) -> anyhow::Result<Handled> {
    if !envelope.event_type.starts_with("polyclinic.appointment.") {
        return Ok(Handled::Skipped("not about an appointment".to_owned()));
    }
    // Every appointment event carries the appointment (flattened): read that part alone.
    let appointment: AppointmentRef = serde_json::from_value(envelope.data.clone())?;
    let status = appointment
        .status
        .or_else(|| status_of(&envelope.event_type));
    upsert(conn, &appointment, status, envelope.time).await?;
    Ok(Handled::Done)
}

async fn upsert(
    conn: &mut PgConnection,
    appointment: &AppointmentRef,
    status: Option<AppointmentStatus>,
    changed_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into calendar_visits (appointment_id, patient_id, doctor_id, nurse_id, room_id, status,
                                      starts_at, ends_at, revision, changed_at, announced)
         values ($1, $2, $3, $4, $5, coalesce($6, 'PENDING'), $7, $8, $9, $10,
                 coalesce($6, 'PENDING') in ('PAID', 'SCHEDULED'))
         on conflict (appointment_id) do update set
             nurse_id = excluded.nurse_id,
             room_id = excluded.room_id,
             status = coalesce($6, calendar_visits.status),
             starts_at = excluded.starts_at,
             ends_at = excluded.ends_at,
             revision = excluded.revision,
             changed_at = excluded.changed_at,
             announced = calendar_visits.announced or coalesce($6, calendar_visits.status) in ('PAID', 'SCHEDULED'),
             updated_at = now()
         where calendar_visits.revision <= excluded.revision",
    )
    .bind(appointment.appointment_id)
    .bind(appointment.patient_id)
    .bind(appointment.doctor_id)
    .bind(appointment.nurse_id)
    .bind(appointment.room_id)
    .bind(status.map(AppointmentStatus::as_str))
    .bind(appointment.starts_at)
    .bind(appointment.ends_at)
    .bind(appointment.revision)
    .bind(changed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One appointment as feeds show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VisitRow {
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub room_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: AppointmentStatus,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub revision: i32,
    pub changed_at: DateTime<Utc>,
}

/// The visits `user` takes part in (as patient, doctor or nurse) starting in
/// `[from, to)`, which calendars have heard of, soonest first, at most `limit`.
pub async fn of_person(
    pool: &PgPool,
    user: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<VisitRow>> {
    // Three index scans, one per part a person can play.
    sqlx::query_as(
        "select appointment_id, patient_id, doctor_id, room_id, status, starts_at, ends_at,
                revision, changed_at
         from (
             select * from calendar_visits where patient_id = $1 and starts_at >= $2 and starts_at < $3
             union
             select * from calendar_visits where doctor_id = $1 and starts_at >= $2 and starts_at < $3
             union
             select * from calendar_visits where nurse_id = $1 and starts_at >= $2 and starts_at < $3
         ) visits
         where announced
         order by starts_at, appointment_id
         limit $4",
    )
    .bind(user)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub fn consumer(config: &Config, pool: &PgPool, backbone: &Backbone) -> Consumer<()> {
    let settings = ConsumerSettings::from_config(config, CONSUMER, &[Topic::Appointments.as_str()]);
    let handlers =
        Handlers::new().otherwise(|conn, envelope, _: &()| Box::pin(record(conn, envelope)));
    Consumer::new(
        backbone.bus(),
        pool.clone(),
        settings,
        handlers,
        (),
        backbone.metrics().clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_type_names_the_status_it_leaves() {
        assert_eq!(
            status_of("polyclinic.appointment.scheduled.v1"),
            Some(AppointmentStatus::Scheduled)
        );
        assert_eq!(
            status_of("polyclinic.appointment.no_show.v1"),
            Some(AppointmentStatus::NoShow)
        );
        assert_eq!(status_of("polyclinic.appointment.rescheduled.v1"), None);
        assert_eq!(status_of("polyclinic.payment.authorized.v1"), None);
    }
}

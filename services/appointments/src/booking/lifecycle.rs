//! The moves after a reservation: paid (from the payments service's event), approved,
//! rejected, cancelled, rescheduled, completed or missed.

use chrono::Utc;
use polyclinic_contracts::appointments::{
    AppointmentCancelledV1, AppointmentCompletedV1, AppointmentNoShowV1, AppointmentPaidV1,
    AppointmentRejectedV1, AppointmentRescheduledV1, AppointmentScheduledV1,
};
use polyclinic_contracts::{AppointmentId, NurseId, PaymentId, RoomId};
use polyclinic_events::{EventContext, Handled};
use sqlx::PgConnection;
use uuid::Uuid;

use super::waitlist::{Closing, close_offer};
use super::{Booking, BookingError, Caller, announce, payment_error, release, unavailable};
use crate::domain::appointment::{Actor, Lifecycle, Status};
use crate::peers::{Nurse, Room};
use crate::repo::appointments::{self as repo, AppointmentRow, Change};

/// The rooms and nurses free for an appointment.
#[derive(Debug, Default)]
pub struct Staffing {
    pub rooms: Vec<Room>,
    pub nurses: Vec<Nurse>,
}

/// Whether `caller` may see `appointment`: admins all, the others their own.
pub fn visible_to(caller: &Caller<'_>, appointment: &AppointmentRow) -> bool {
    match caller.actor {
        Actor::Admin | Actor::System => true,
        Actor::Patient => appointment.patient_id == caller.id,
        Actor::Doctor => appointment.doctor_id == caller.id,
        Actor::Nurse => appointment.nurse_id.is_some_and(|nurse| nurse == caller.id),
    }
}

/// Cancels a locked, active `appointment` and announces it.
pub(crate) async fn cancel_locked(
    conn: &mut PgConnection,
    appointment: &AppointmentRow,
    reason: &str,
    by: Actor,
    actor: Option<Uuid>,
    context: &EventContext,
) -> Result<AppointmentRow, BookingError> {
    let cancelled = repo::change_status(
        conn,
        appointment,
        Status::Cancelled,
        Change {
            reason: Some(reason),
            actor,
            ..Change::default()
        },
    )
    .await?;
    let event = AppointmentCancelledV1 {
        appointment: cancelled.reference(),
        cancelled_by: by.as_str().to_owned(),
        previous_status: appointment.status,
    };
    announce(conn, &event, context).await?;
    Ok(cancelled)
}

impl Booking {
    /// The appointment, if `caller` may see it (404 otherwise, never 403).
    pub async fn find(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
    ) -> Result<AppointmentRow, BookingError> {
        match repo::find(&self.pool, id).await? {
            Some(appointment) if visible_to(&caller, &appointment) => Ok(appointment),
            _ => Err(BookingError::NotFound),
        }
    }

    /// Locks the appointment for a change by `caller`, who must be able to see it.
    pub(super) async fn lock_for(
        conn: &mut PgConnection,
        caller: &Caller<'_>,
        id: AppointmentId,
    ) -> Result<AppointmentRow, BookingError> {
        match repo::lock(conn, id).await? {
            Some(appointment) if visible_to(caller, &appointment) => Ok(appointment),
            _ => Err(BookingError::NotFound),
        }
    }

    /// What an approval of `id` may choose from: the rooms and active nurses of the doctor's
    /// department that no scheduled visit overlapping it holds. A doctor no longer in the
    /// directory has nothing to offer. The doctor's department is the directory's answer of
    /// up to 30 seconds ago (the approval itself asks afresh and checks again).
    pub async fn staffing(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
    ) -> Result<Staffing, BookingError> {
        let appointment = self.find(caller, id).await?;
        let identity = |err| unavailable("the identity service", err);
        let Some(doctor) = self
            .peers
            .doctor_cached(appointment.doctor_id, caller.call)
            .await
            .map_err(identity)?
        else {
            return Ok(Staffing::default());
        };
        let rooms = self
            .peers
            .rooms_of(doctor.department_id, caller.call)
            .await
            .map_err(identity)?;
        let nurses = self
            .peers
            .nurses_of(doctor.department_id, caller.call)
            .await
            .map_err(identity)?;
        let (busy_rooms, busy_nurses) =
            repo::assigned_during(&self.pool, id, appointment.starts_at, appointment.ends_at)
                .await?;
        Ok(Staffing {
            rooms: rooms
                .into_iter()
                .filter(|room| !busy_rooms.contains(&room.id))
                .collect(),
            nurses: nurses
                .into_iter()
                .filter(|nurse| !busy_nurses.contains(&nurse.id))
                .collect(),
        })
    }

    /// Approval: the room and nurse must belong to the doctor's department and be free then;
    /// the payment is captured; the appointment is SCHEDULED. The capture runs while the
    /// appointment's row is locked and its new state written but not committed, so a room or
    /// nurse taken in the meantime is refused before any money moves, and a refused capture
    /// changes nothing.
    pub async fn approve(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
        room_id: RoomId,
        nurse_id: NurseId,
    ) -> Result<AppointmentRow, BookingError> {
        let current = self.find(caller, id).await?;
        if current.status != Status::Paid {
            return Err(BookingError::WrongState(current.status));
        }
        let identity = |err| unavailable("the identity service", err);
        let doctor = self
            .peers
            .doctor(current.doctor_id, caller.call)
            .await
            .map_err(identity)?
            .ok_or(BookingError::DoctorNotFound)?;
        let room = self
            .peers
            .room(room_id, caller.call)
            .await
            .map_err(identity)?
            .ok_or(BookingError::InvalidRoom("room_id: no such room"))?;
        if room.department_id != doctor.department_id {
            return Err(BookingError::InvalidRoom(
                "room_id: the room belongs to another department than the doctor's",
            ));
        }
        let nurse = self
            .peers
            .person(nurse_id.into(), caller.call)
            .await
            .map_err(identity)?
            .filter(|person| person.is_active("NURSE"))
            .ok_or(BookingError::InvalidNurse("nurse_id: not an active nurse"))?;
        if nurse.nurse.map(|profile| profile.department_id) != Some(doctor.department_id) {
            return Err(BookingError::InvalidNurse(
                "nurse_id: the nurse works in another department than the doctor",
            ));
        }
        if let Some(overlap) = repo::assignment_conflict(
            &self.pool,
            id,
            room_id,
            nurse_id,
            current.starts_at,
            current.ends_at,
        )
        .await?
        {
            return Err(repo::WriteError::Overlap(overlap).into());
        }

        let mut tx = self.pool.begin().await?;
        let locked = Self::lock_for(&mut tx, &caller, id).await?;
        if locked.status != Status::Paid {
            return Err(BookingError::WrongState(locked.status));
        }
        let payment_id = locked
            .payment_id
            .ok_or(BookingError::WrongState(locked.status))?;
        let scheduled = repo::change_status(
            &mut tx,
            &locked,
            Status::Scheduled,
            Change {
                assignment: Some((room_id, nurse_id)),
                actor: Some(caller.id),
                ..Change::default()
            },
        )
        .await?;
        let captured = self
            .peers
            .capture_payment(id, payment_id, caller.call)
            .await
            .map_err(payment_error)?;
        // A card saved for a visit far ahead is charged once it is authorised.
        let charge_at = (captured.status != "succeeded")
            .then_some(captured.authorize_at)
            .flatten();
        let event = AppointmentScheduledV1 {
            appointment: scheduled.reference(),
            charge_at,
        };
        announce(&mut tx, &event, &caller.events()).await?;
        tx.commit().await?;
        Ok(scheduled)
    }

    /// Rejection of a paid request; the authorisation is voided on the event.
    pub async fn reject(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
        reason: &str,
    ) -> Result<AppointmentRow, BookingError> {
        let mut tx = self.pool.begin().await?;
        let current = Self::lock_for(&mut tx, &caller, id).await?;
        if !current.status.may_become(Status::Rejected) {
            return Err(BookingError::WrongState(current.status));
        }
        let rejected = repo::change_status(
            &mut tx,
            &current,
            Status::Rejected,
            Change {
                reason: Some(reason),
                actor: Some(caller.id),
                ..Change::default()
            },
        )
        .await?;
        let event = AppointmentRejectedV1 {
            appointment: rejected.reference(),
        };
        announce(&mut tx, &event, &caller.events()).await?;
        tx.commit().await?;
        Ok(rejected)
    }

    /// Cancellation: a patient their own, until the cutoff once it is paid; an admin any
    /// time. The payment is voided or refunded on the event.
    pub async fn cancel(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
        reason: &str,
    ) -> Result<AppointmentRow, BookingError> {
        if !matches!(caller.actor, Actor::Patient | Actor::Admin) {
            return Err(BookingError::Forbidden);
        }
        let mut tx = self.pool.begin().await?;
        let current = Self::lock_for(&mut tx, &caller, id).await?;
        if !current.status.may_become(Status::Cancelled) {
            return Err(BookingError::WrongState(current.status));
        }
        // A waitlist's offer is turned down (by its patient) or withdrawn (by the clinic):
        // the slot passes to the next in line.
        if current.status == Status::Offered {
            let how = match caller.actor {
                Actor::Patient => Closing::Declined,
                _ => Closing::Withdrawn,
            };
            let closed = close_offer(
                &mut tx,
                &current,
                how,
                Some(caller.id),
                (self.zone, Utc::now()),
                &caller.events(),
            )
            .await?;
            tx.commit().await?;
            return Ok(closed);
        }
        // An unpaid hold costs nobody anything; a paid booking keeps to the policy.
        if caller.actor == Actor::Patient
            && current.status != Status::Pending
            && !self
                .policy
                .patient_may_change(current.starts_at, Utc::now())
        {
            return Err(BookingError::TooLate);
        }
        let reason = if reason.is_empty() {
            match caller.actor {
                Actor::Patient => "cancelled by the patient",
                _ => "cancelled by the clinic",
            }
        } else {
            reason
        };
        let cancelled = cancel_locked(
            &mut tx,
            &current,
            reason,
            caller.actor,
            Some(caller.id),
            &caller.events(),
        )
        .await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    /// Moves a paid or scheduled booking to another free slot of the same doctor, keeping
    /// its payment (and its room and nurse, which must be free then too).
    pub async fn reschedule(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
        starts_at: chrono::DateTime<Utc>,
    ) -> Result<AppointmentRow, BookingError> {
        if !matches!(caller.actor, Actor::Patient | Actor::Admin) {
            return Err(BookingError::Forbidden);
        }
        let now = Utc::now();
        let current = self.find(caller, id).await?;
        if !current.status.may_reschedule() {
            return Err(BookingError::WrongState(current.status));
        }
        if caller.actor == Actor::Patient && !self.policy.patient_may_change(current.starts_at, now)
        {
            return Err(BookingError::TooLate);
        }
        let slot = self.check_slot(current.doctor_id, starts_at, now).await?;
        if slot.starts_at == current.starts_at {
            return Ok(current);
        }
        let Some(guard) = self.lock_slot(current.doctor_id, slot.starts_at).await? else {
            return Err(BookingError::SlotTaken);
        };
        let moved = async {
            let mut tx = self.pool.begin().await?;
            let locked = Self::lock_for(&mut tx, &caller, id).await?;
            if !locked.status.may_reschedule() {
                return Err(BookingError::WrongState(locked.status));
            }
            let moved = repo::move_to(&mut tx, &locked, &slot, caller.id).await?;
            let event = AppointmentRescheduledV1 {
                appointment: moved.reference(),
                previous_starts_at: locked.starts_at,
                previous_ends_at: locked.ends_at,
            };
            announce(&mut tx, &event, &caller.events()).await?;
            tx.commit().await?;
            Ok(moved)
        }
        .await;
        release(guard).await;
        moved
    }

    /// The visit took place (`attended`) or the patient did not come: its doctor or nurse,
    /// or an admin, once it has started.
    pub async fn close_visit(
        &self,
        caller: Caller<'_>,
        id: AppointmentId,
        attended: bool,
    ) -> Result<AppointmentRow, BookingError> {
        let mut tx = self.pool.begin().await?;
        let current = Self::lock_for(&mut tx, &caller, id).await?;
        if caller.actor == Actor::Patient {
            return Err(BookingError::Forbidden);
        }
        if current.status != Status::Scheduled {
            return Err(BookingError::WrongState(current.status));
        }
        if current.starts_at > Utc::now() {
            return Err(BookingError::NotStarted);
        }
        let to = if attended {
            Status::Completed
        } else {
            Status::NoShow
        };
        let closed = repo::change_status(
            &mut tx,
            &current,
            to,
            Change {
                actor: Some(caller.id),
                ..Change::default()
            },
        )
        .await?;
        let appointment = closed.reference();
        if attended {
            announce(
                &mut tx,
                &AppointmentCompletedV1 { appointment },
                &caller.events(),
            )
            .await?;
        } else {
            announce(
                &mut tx,
                &AppointmentNoShowV1 { appointment },
                &caller.events(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(closed)
    }
}

/// The payments service authorised the card (or saved it, for a visit booked far ahead, to
/// authorise it at `authorize_at`): a PENDING appointment becomes PAID. One that is no
/// longer pending (its hold ran out, say) stays as it is; the payments service voids the
/// payment on that appointment's own event.
pub async fn mark_paid(
    conn: &mut PgConnection,
    (appointment_id, payment_id): (AppointmentId, PaymentId),
    authorize_at: Option<chrono::DateTime<Utc>>,
    context: &EventContext,
) -> anyhow::Result<Handled> {
    let Some(current) = repo::lock(conn, appointment_id).await? else {
        return Ok(Handled::Skipped("no such appointment".to_owned()));
    };
    if current.status != Status::Pending {
        return Ok(Handled::Skipped(format!(
            "the appointment is {}, not PENDING",
            current.status
        )));
    }
    let paid = repo::change_status(
        conn,
        &current,
        Status::Paid,
        Change {
            payment_id: Some(payment_id),
            ..Change::default()
        },
    )
    .await
    .map_err(anyhow::Error::from)?;
    polyclinic_events::outbox::enqueue(
        conn,
        crate::SERVICE,
        &AppointmentPaidV1 {
            appointment: paid.reference(),
            authorize_at,
        },
        context,
    )
    .await?;
    Ok(Handled::Done)
}

/// The payment can no longer be taken (its authorisation lapsed, or the patient gave no
/// other card after a refusal): the appointment is cancelled and its slot freed.
pub async fn cancel_lapsed(
    conn: &mut PgConnection,
    appointment_id: AppointmentId,
    context: &EventContext,
) -> anyhow::Result<Handled> {
    let Some(current) = repo::lock(conn, appointment_id).await? else {
        return Ok(Handled::Skipped("no such appointment".to_owned()));
    };
    if !current.status.is_active() {
        return Ok(Handled::Skipped(format!(
            "the appointment is already {}",
            current.status
        )));
    }
    cancel_locked(
        conn,
        &current,
        "the card could not be charged: its authorisation lapsed, or no card was given after a refusal",
        Actor::System,
        None,
        context,
    )
    .await?;
    Ok(Handled::Done)
}

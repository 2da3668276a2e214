//! Reserving a slot: the slot checked against the doctor's calendar, a PENDING appointment
//! holding it, and the payment the patient confirms with their card.

use chrono::{DateTime, Utc};
use polyclinic_contracts::appointments::{AppointmentCancelledV1, AppointmentReservedV1};
use polyclinic_contracts::{DoctorId, PatientId};

use super::{Booking, BookingError, Caller, announce, payment_error, release, unavailable};
use crate::domain::appointment::{Actor, Status};
use crate::peers::Payment;
use crate::repo::appointments::{self as repo, AppointmentRow, Change, NewAppointment};

/// What a reservation asks for, already parsed.
#[derive(Debug, Clone)]
pub struct ReserveRequest {
    pub doctor_id: DoctorId,
    pub starts_at: DateTime<Utc>,
    pub reason: String,
    pub notes: String,
    /// Set by an admin booking on a patient's behalf; a patient books for themself.
    pub patient_id: Option<PatientId>,
}

/// A held slot and the payment that will pay for it.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub appointment: AppointmentRow,
    pub payment: Payment,
}

impl Booking {
    /// Holds the slot for the patient and sets up its payment.
    pub async fn reserve(
        &self,
        caller: Caller<'_>,
        request: ReserveRequest,
    ) -> Result<Reservation, BookingError> {
        let now = Utc::now();
        let patient_id = self.patient_of(caller, request.patient_id).await?;
        let doctor = self
            .peers
            .doctor_cached(request.doctor_id, caller.call)
            .await
            .map_err(|err| unavailable("the identity service", err))?
            .ok_or(BookingError::DoctorNotFound)?;
        let slot = self
            .check_slot(request.doctor_id, request.starts_at, now)
            .await?;

        let Some(guard) = self.lock_slot(request.doctor_id, slot.starts_at).await? else {
            return Err(BookingError::SlotTaken);
        };
        let written = async {
            let mut tx = self.pool.begin().await?;
            repo::lock_patient(&mut tx, patient_id).await?;
            let pending = repo::pending_count(&mut tx, patient_id).await?;
            if pending >= self.policy.max_pending {
                return Err(BookingError::PendingLimit(pending));
            }
            let new = NewAppointment {
                patient_id,
                doctor_id: request.doctor_id,
                starts_at: slot.starts_at,
                ends_at: slot.ends_at,
                reason: request.reason.clone(),
                notes: request.notes.clone(),
                fee: doctor.consultation_fee.clone(),
                hold_expires_at: now + self.policy.hold,
                buffers: slot.buffers,
                created_by: caller.id,
            };
            let appointment = repo::insert(&mut tx, &new, Status::Pending).await?;
            let reserved = AppointmentReservedV1 {
                appointment: appointment.reference(),
                hold_expires_at: new.hold_expires_at,
            };
            announce(&mut tx, &reserved, &caller.events()).await?;
            tx.commit().await?;
            Ok(appointment)
        }
        .await;
        // Committed or not, the database decides from here on.
        release(guard).await;
        let appointment = written?;

        self.fund(caller, appointment).await
    }

    /// Sets up the payment of a freshly held reservation. Without a payment the patient
    /// cannot pay: the slot is freed at once rather than left to run out, and the event lets
    /// the payments service void an intent made after all.
    async fn fund(
        &self,
        caller: Caller<'_>,
        appointment: AppointmentRow,
    ) -> Result<Reservation, BookingError> {
        match self.peers.create_payment(appointment.id, caller.call).await {
            Ok(payment) => {
                repo::set_payment(&self.pool, appointment.id, payment.id).await?;
                let appointment = AppointmentRow {
                    payment_id: Some(payment.id),
                    ..appointment
                };
                Ok(Reservation {
                    appointment,
                    payment,
                })
            }
            Err(err) => {
                let failure = payment_error(err);
                self.abandon(caller, &appointment).await?;
                Err(failure)
            }
        }
    }

    /// The patient a reservation is for: the caller themself, or the active patient an admin
    /// names.
    async fn patient_of(
        &self,
        caller: Caller<'_>,
        requested: Option<PatientId>,
    ) -> Result<PatientId, BookingError> {
        match caller.actor {
            Actor::Patient => match requested {
                None => Ok(caller.id.into()),
                Some(id) if id == caller.id => Ok(caller.id.into()),
                Some(_) => Err(BookingError::PatientNotYours(
                    "patients book for themselves; leave patient_id out",
                )),
            },
            Actor::Admin => {
                let id = requested.ok_or(BookingError::PatientNotYours(
                    "patient_id: an admin books for a patient, and says which",
                ))?;
                let person = self
                    .peers
                    .person(id.into(), caller.call)
                    .await
                    .map_err(|err| unavailable("the identity service", err))?;
                match person {
                    Some(person) if person.is_active("PATIENT") => Ok(id),
                    _ => Err(BookingError::PatientNotFound(
                        "patient_id: not an active patient",
                    )),
                }
            }
            _ => Err(BookingError::Forbidden),
        }
    }

    /// Cancels a reservation whose payment could not be set up.
    async fn abandon(
        &self,
        caller: Caller<'_>,
        appointment: &AppointmentRow,
    ) -> Result<(), BookingError> {
        let reason = "the payment could not be set up";
        let mut tx = self.pool.begin().await?;
        let Some(current) = repo::lock(&mut tx, appointment.id).await? else {
            return Ok(());
        };
        if current.status != Status::Pending {
            return Ok(());
        }
        let cancelled = repo::change_status(
            &mut tx,
            &current,
            Status::Cancelled,
            Change {
                reason: Some(reason),
                actor: Some(caller.id),
                ..Change::default()
            },
        )
        .await?;
        let event = AppointmentCancelledV1 {
            appointment: cancelled.reference(),
            cancelled_by: Actor::System.as_str().to_owned(),
            previous_status: Status::Pending,
        };
        announce(&mut tx, &event, &caller.events()).await?;
        tx.commit().await?;
        Ok(())
    }
}

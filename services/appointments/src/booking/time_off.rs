//! Doctors' time off. Time off over booked appointments cancels them: the patient and the
//! doctor learn it from the event, and the payment is voided or refunded.

use chrono::Utc;
use polyclinic_contracts::DoctorId;

use super::lifecycle::cancel_locked;
use super::waitlist::{Closing, close_offer};
use super::{Booking, BookingError, Caller};
use crate::domain::appointment::Status;
use crate::domain::schedule::Unavailability;
use crate::repo::appointments::{self as repo, AppointmentRow};
use crate::repo::schedules::{self, TimeOff};

impl Booking {
    /// Records time off for `doctor_id` and cancels the active appointments it covers.
    pub async fn add_time_off(
        &self,
        caller: Caller<'_>,
        doctor_id: DoctorId,
        rule: &Unavailability,
        reason: &str,
    ) -> Result<(TimeOff, Vec<AppointmentRow>), BookingError> {
        let mut tx = self.pool.begin().await?;
        let entry =
            schedules::insert_time_off(&mut tx, doctor_id.into(), rule, reason, caller.id).await?;
        let booked = repo::lock_active_from(&mut tx, doctor_id, Utc::now()).await?;
        let why = if reason.is_empty() {
            "the doctor is not available then".to_owned()
        } else {
            format!("the doctor is not available then: {reason}")
        };
        let mut cancelled = Vec::new();
        for appointment in booked
            .iter()
            .filter(|appointment| rule.covers_instant(appointment.starts_at, self.zone))
        {
            // A waitlist's offer in that time is withdrawn; its patient stays in line.
            if appointment.status == Status::Offered {
                close_offer(
                    &mut tx,
                    appointment,
                    Closing::Withdrawn,
                    Some(caller.id),
                    (self.zone, Utc::now()),
                    &caller.events(),
                )
                .await?;
                continue;
            }
            cancelled.push(
                cancel_locked(
                    &mut tx,
                    appointment,
                    &why,
                    caller.actor,
                    Some(caller.id),
                    &caller.events(),
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok((entry, cancelled))
    }
}

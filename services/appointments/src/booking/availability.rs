//! A doctor's slots over some days: the calendar (weekly template and time off) laid over
//! the bookings. What the REST availability route and FHIR's `Slot` both answer.

use chrono::{DateTime, NaiveDate, Utc};

use super::Booking;
use crate::domain::schedule::{Calendar, Slot, SlotState, mark_taken, span};
use crate::repo::appointments as repo;
use crate::repo::schedules;
use polyclinic_contracts::DoctorId;

impl Booking {
    /// `doctor_id`'s free and taken slots on the local dates `from..=to`. Past slots and
    /// those inside the booking notice are left out; so is everything past the end of the
    /// calendar. The caller checks that the doctor exists.
    pub async fn slots(
        &self,
        doctor_id: DoctorId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<(Slot, SlotState)>> {
        self.slots_at(doctor_id, from, to, Utc::now()).await
    }

    /// [`Booking::slots`] as of `now`.
    pub(crate) async fn slots_at(
        &self,
        doctor_id: DoctorId,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<(Slot, SlotState)>> {
        let (template, rules) = schedules::calendar_parts(&self.pool, doctor_id.into()).await?;
        let calendar = Calendar {
            template: &template,
            unavailability: &rules,
            zone: self.zone,
        };
        let slots = calendar.offered(from, to, now, self.policy.notice);
        // Only the bookings over the time these slots keep: one day's read stays one day's
        // work however full the doctor's calendar is around it.
        let Some((window_start, window_end)) = span(&slots) else {
            return Ok(Vec::new());
        };
        let busy = repo::busy(&self.pool, doctor_id, window_start, window_end).await?;
        Ok(mark_taken(slots, &busy))
    }
}

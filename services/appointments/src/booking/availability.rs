//! A doctor's slots over some days: the calendar (weekly template and time off) laid over
//! the bookings. What the REST availability route and FHIR's `Slot` both answer.

use chrono::{DateTime, Days, NaiveDate, Utc};

use super::Booking;
use crate::domain::schedule::{Calendar, Slot, SlotState};
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
        // Wide enough for every slot of the local dates, whatever the offset.
        let window_start = from
            .checked_sub_days(Days::new(1))
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        let window_end = to
            .checked_add_days(Days::new(2))
            .and_then(|date| date.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc());
        let Some((window_start, window_end)) = window_start.zip(window_end) else {
            // The very end of the calendar: no slot starts there.
            return Ok(Vec::new());
        };
        let busy = repo::busy(&self.pool, doctor_id, window_start, window_end).await?;
        Ok(calendar.availability(&busy, from, to, now, self.policy.notice))
    }
}

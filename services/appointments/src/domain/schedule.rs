//! Doctors' bookable time: a weekly template in the clinic's timezone, minus unavailability,
//! expanded into slots per date.
//!
//! Slots are laid out in local time (08:00, 09:00, ...) and stored and compared as UTC
//! instants. A template may set buffers: minutes kept free before and after every visit
//! (to prepare the room, write notes). The day is then cut into steps of buffer before,
//! visit and buffer after, so that on an unchanged template neighbouring visits never
//! collide; a visit's buffers still block whatever else overlaps them (a visit booked under
//! an earlier template, another slot length), which the database enforces too. On a daylight-saving change day a local start that does not exist (spring
//! forward) offers no slot, and one that exists twice (fall back) is offered once, at its
//! first occurrence; a slot lasts its length in real time either way.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
    Weekday,
};
use chrono_tz::Tz;

/// Opening hours of one weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayHours {
    start: NaiveTime,
    end: NaiveTime,
    slot_minutes: u32,
}

impl DayHours {
    /// Hours from `start` to `end` cut into slots of `slot_minutes` (5 to 240); a remainder
    /// shorter than a slot is not offered.
    pub fn parse(start: NaiveTime, end: NaiveTime, slot_minutes: u32) -> Result<Self, String> {
        if !(5..=240).contains(&slot_minutes) {
            return Err("slot length must be 5 to 240 minutes".to_owned());
        }
        if end <= start {
            return Err("the day must end after it starts".to_owned());
        }
        if end - start < Duration::minutes(i64::from(slot_minutes)) {
            return Err("the hours must hold at least one slot".to_owned());
        }
        Ok(Self {
            start,
            end,
            slot_minutes,
        })
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    pub fn slot_minutes(&self) -> u32 {
        self.slot_minutes
    }

    /// The local start times of the day's visits, each with `buffers` around it inside
    /// the opening hours.
    pub fn slot_starts(&self, buffers: Buffers) -> impl Iterator<Item = NaiveTime> + '_ {
        // Counted in minutes from the day's start, so that a slot ending at midnight cannot
        // wrap around to 00:00 and start the day over.
        let open = (self.end - self.start).num_minutes();
        let step = i64::from(buffers.step(self.slot_minutes));
        let before = i64::from(buffers.before);
        (0..open / step).map(move |n| self.start + Duration::minutes(n * step + before))
    }

    /// Whether the hours hold at least one visit with its buffers.
    fn holds_one(&self, buffers: Buffers) -> bool {
        self.end - self.start >= Duration::minutes(i64::from(buffers.step(self.slot_minutes)))
    }
}

/// Minutes kept free before and after every visit of a doctor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffers {
    pub before: u32,
    pub after: u32,
}

impl Buffers {
    /// The most a buffer may be.
    pub const MAX_MINUTES: u32 = 120;

    /// Buffers of `before` and `after` minutes, each 0 to [`Buffers::MAX_MINUTES`].
    pub fn parse(before: u32, after: u32) -> Result<Self, String> {
        if before > Self::MAX_MINUTES || after > Self::MAX_MINUTES {
            return Err(format!("a buffer is 0 to {} minutes", Self::MAX_MINUTES));
        }
        Ok(Self { before, after })
    }

    /// The minutes one visit of `slot_minutes` takes with its buffers.
    fn step(self, slot_minutes: u32) -> u32 {
        self.before + slot_minutes + self.after
    }

    /// The time a visit from `starts_at` to `ends_at` keeps from others.
    pub fn around(
        self,
        starts_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            starts_at - Duration::minutes(i64::from(self.before)),
            ends_at + Duration::minutes(i64::from(self.after)),
        )
    }
}

/// Which weekdays a doctor works and when, and the buffers around each visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyTemplate {
    days: BTreeMap<u32, DayHours>,
    buffers: Buffers,
}

impl WeeklyTemplate {
    /// The clinic's default: Monday to Friday, 08:00 to 17:00, 60-minute slots (the
    /// original's nine fixed periods).
    pub fn clinic_default() -> Self {
        let hours = DayHours {
            start: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(NaiveTime::MIN),
            slot_minutes: 60,
        };
        let weekdays = [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ];
        Self {
            days: weekdays
                .into_iter()
                .map(|day| (day.num_days_from_monday(), hours))
                .collect(),
            buffers: Buffers::default(),
        }
    }

    /// A template from the hours of the days worked, without buffers.
    pub fn from_days(days: impl IntoIterator<Item = (Weekday, DayHours)>) -> Self {
        Self {
            days: days
                .into_iter()
                .map(|(day, hours)| (day.num_days_from_monday(), hours))
                .collect(),
            buffers: Buffers::default(),
        }
    }

    /// The template with `buffers` around every visit; refused when a day's hours cannot
    /// hold one visit with them (the weekday is named).
    pub fn with_buffers(self, buffers: Buffers) -> Result<Self, (Weekday, String)> {
        for (day, hours) in &self.days {
            if !hours.holds_one(buffers) {
                let weekday =
                    Weekday::try_from(u8::try_from(*day).unwrap_or(0)).unwrap_or(Weekday::Mon);
                return Err((
                    weekday,
                    "the hours must hold at least one slot with its buffers".to_owned(),
                ));
            }
        }
        Ok(Self { buffers, ..self })
    }

    pub fn hours(&self, day: Weekday) -> Option<&DayHours> {
        self.days.get(&day.num_days_from_monday())
    }

    pub fn buffers(&self) -> Buffers {
        self.buffers
    }
}

/// Time a doctor does not work beyond the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailability {
    /// The whole of one date.
    Day(NaiveDate),
    /// Some slots of one date, by local start time.
    Slots {
        date: NaiveDate,
        starts: Vec<NaiveTime>,
    },
    /// Every week on this weekday.
    Weekday(Weekday),
}

impl Unavailability {
    /// Whether the slot starting at local `start` on `date` is off.
    pub fn covers(&self, date: NaiveDate, start: NaiveTime) -> bool {
        match self {
            Unavailability::Day(day) => *day == date,
            Unavailability::Slots { date: day, starts } => *day == date && starts.contains(&start),
            Unavailability::Weekday(weekday) => date.weekday() == *weekday,
        }
    }

    /// Whether an appointment starting at `starts_at` falls in this time off, read in `zone`.
    pub fn covers_instant(&self, starts_at: DateTime<Utc>, zone: Tz) -> bool {
        let local = starts_at.with_timezone(&zone).naive_local();
        self.covers(local.date(), local.time())
    }
}

/// One bookable period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The start in the clinic's local time, as patients read it.
    pub local_start: NaiveDateTime,
    /// The time kept free around the visit, which a booking of it keeps too.
    pub buffers: Buffers,
}

impl Slot {
    /// The time the visit keeps from others: itself and its buffers.
    pub fn blocked(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        self.buffers.around(self.starts_at, self.ends_at)
    }
}

/// The time `slots` keep with their buffers, from the first one's start to the last one's
/// end: the only bookings that can take one of them overlap it.
pub fn span(slots: &[Slot]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = slots.iter().map(|slot| slot.blocked().0).min()?;
    let end = slots.iter().map(|slot| slot.blocked().1).max()?;
    Some((start, end))
}

/// Each of `slots`, free or taken by one of `busy` (the UTC ranges active appointments keep,
/// buffers included): a slot is taken when it or its buffers overlap one. Free/busy only:
/// nothing says who booked.
pub fn mark_taken(
    slots: Vec<Slot>,
    busy: &[(DateTime<Utc>, DateTime<Utc>)],
) -> Vec<(Slot, SlotState)> {
    slots
        .into_iter()
        .map(|slot| {
            let (from, until) = slot.blocked();
            let taken = busy
                .iter()
                .any(|(start, end)| *start < until && from < *end);
            let state = if taken {
                SlotState::Taken
            } else {
                SlotState::Free
            };
            (slot, state)
        })
        .collect()
}

/// The first real instant of a local time: `None` in a spring-forward gap.
fn first_instant(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => Some(instant.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// A doctor's calendar: the weekly template and unavailability, read in the clinic's zone.
#[derive(Debug, Clone, Copy)]
pub struct Calendar<'a> {
    pub template: &'a WeeklyTemplate,
    pub unavailability: &'a [Unavailability],
    pub zone: Tz,
}

impl Calendar<'_> {
    /// The slots of `date`.
    pub fn slots_on(&self, date: NaiveDate) -> Vec<Slot> {
        slots_on(self.template, self.unavailability, self.zone, date)
    }

    /// The slots from `from` to `to` (inclusive local dates) that start at or after
    /// `now + notice`, in order.
    pub fn offered(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
        notice: Duration,
    ) -> Vec<Slot> {
        let earliest = now + notice;
        from.iter_days()
            .take_while(|date| *date <= to)
            .flat_map(|date| self.slots_on(date))
            .filter(|slot| slot.starts_at >= earliest)
            .collect()
    }

    /// The slot that starts exactly at `starts_at`, if the calendar offers it and it is far
    /// enough ahead.
    pub fn slot_at(
        &self,
        starts_at: DateTime<Utc>,
        now: DateTime<Utc>,
        notice: Duration,
    ) -> Result<Slot, SlotError> {
        let date = starts_at.with_timezone(&self.zone).date_naive();
        let slot = self
            .slots_on(date)
            .into_iter()
            .find(|slot| slot.starts_at == starts_at)
            .ok_or(SlotError::NotASlot)?;
        if slot.starts_at < now + notice {
            return Err(SlotError::TooSoon);
        }
        Ok(slot)
    }
}

fn slots_on(
    template: &WeeklyTemplate,
    unavailability: &[Unavailability],
    zone: Tz,
    date: NaiveDate,
) -> Vec<Slot> {
    let Some(hours) = template.hours(date.weekday()) else {
        return Vec::new();
    };
    let length = Duration::minutes(i64::from(hours.slot_minutes));
    let buffers = template.buffers;
    hours
        .slot_starts(buffers)
        .filter(|start| !unavailability.iter().any(|rule| rule.covers(date, *start)))
        .filter_map(|start| {
            let local_start = date.and_time(start);
            let starts_at = first_instant(zone, local_start)?;
            Some(Slot {
                starts_at,
                ends_at: starts_at + length,
                local_start,
                buffers,
            })
        })
        .collect()
}

/// Whether a slot can be booked or is booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    Free,
    Taken,
}

/// Why a requested start is not a bookable slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("the doctor has no slot starting then")]
    NotASlot,
    #[error("that slot is in the past or too soon to book")]
    TooSoon,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(hour: u32, minute: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(hour, minute, 0).unwrap()
    }

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn calendar<'a>(
        template: &'a WeeklyTemplate,
        rules: &'a [Unavailability],
        zone: Tz,
    ) -> Calendar<'a> {
        Calendar {
            template,
            unavailability: rules,
            zone,
        }
    }

    fn night_shift() -> WeeklyTemplate {
        let hours = DayHours::parse(time(0, 0), time(6, 0), 60).unwrap();
        WeeklyTemplate::from_days([Weekday::Sun].map(|day| (day, hours)))
    }

    #[test]
    fn the_default_week_is_nine_hourly_slots_monday_to_friday_in_the_clinics_zone() {
        let template = WeeklyTemplate::clinic_default();
        let monday =
            calendar(&template, &[], chrono_tz::Europe::Berlin).slots_on(date(2026, 1, 12));
        assert_eq!(monday.len(), 9);
        assert_eq!(
            monday[0].starts_at,
            utc("2026-01-12T07:00:00Z"),
            "08:00 CET"
        );
        assert_eq!(monday[8].ends_at, utc("2026-01-12T16:00:00Z"), "17:00 CET");
        assert_eq!(
            monday[0].local_start,
            date(2026, 1, 12).and_time(time(8, 0))
        );
        let summer =
            calendar(&template, &[], chrono_tz::Europe::Berlin).slots_on(date(2026, 7, 13));
        assert_eq!(
            summer[0].starts_at,
            utc("2026-07-13T06:00:00Z"),
            "08:00 CEST"
        );
        assert!(
            slots_on(&template, &[], chrono_tz::Europe::Berlin, date(2026, 1, 17)).is_empty(),
            "Saturday"
        );
    }

    #[test]
    fn on_the_spring_forward_day_the_missing_local_hour_offers_no_slot() {
        // Europe/Berlin skips from 02:00 to 03:00 on 2026-03-29.
        let slots = slots_on(
            &night_shift(),
            &[],
            chrono_tz::Europe::Berlin,
            date(2026, 3, 29),
        );
        let starts: Vec<u32> = slots
            .iter()
            .map(|slot| {
                slot.local_start
                    .time()
                    .format("%H")
                    .to_string()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert_eq!(starts, [0, 1, 3, 4, 5]);
        assert_eq!(slots[1].starts_at, utc("2026-03-29T00:00:00Z"), "01:00 CET");
        assert_eq!(
            slots[2].starts_at,
            utc("2026-03-29T01:00:00Z"),
            "03:00 CEST"
        );
        assert!(
            slots
                .iter()
                .all(|slot| slot.ends_at - slot.starts_at == Duration::hours(1))
        );
    }

    #[test]
    fn on_the_fall_back_day_the_repeated_local_hour_is_offered_once() {
        // Europe/Berlin goes back from 03:00 to 02:00 on 2026-10-25.
        let slots = slots_on(
            &night_shift(),
            &[],
            chrono_tz::Europe::Berlin,
            date(2026, 10, 25),
        );
        assert_eq!(slots.len(), 6);
        assert_eq!(
            slots[2].starts_at,
            utc("2026-10-25T00:00:00Z"),
            "02:00 CEST, the first 02:00"
        );
        assert_eq!(slots[3].starts_at, utc("2026-10-25T02:00:00Z"), "03:00 CET");
        let mut instants: Vec<_> = slots.iter().map(|slot| slot.starts_at).collect();
        instants.dedup();
        assert_eq!(instants.len(), 6, "no two slots at one instant");
    }

    #[test]
    fn unavailability_removes_days_slots_and_weekdays() {
        let template = WeeklyTemplate::clinic_default();
        let zone = chrono_tz::America::New_York;
        let monday = date(2026, 2, 2);
        let rules = [
            Unavailability::Slots {
                date: monday,
                starts: vec![time(9, 0), time(13, 0)],
            },
            Unavailability::Day(date(2026, 2, 3)),
            Unavailability::Weekday(Weekday::Fri),
        ];
        let doctor = calendar(&template, &rules, zone);
        assert_eq!(doctor.slots_on(monday).len(), 7);
        assert!(doctor.slots_on(date(2026, 2, 3)).is_empty());
        assert!(doctor.slots_on(date(2026, 2, 6)).is_empty());
        assert_eq!(doctor.slots_on(date(2026, 2, 4)).len(), 9);
    }

    #[test]
    fn availability_marks_taken_slots_and_hides_past_ones_and_those_inside_the_notice() {
        let template = WeeklyTemplate::clinic_default();
        let zone = chrono_tz::UTC;
        let busy = [(utc("2026-02-02T10:00:00Z"), utc("2026-02-02T11:00:00Z"))];
        let now = utc("2026-02-02T08:30:00Z");
        let slots = mark_taken(
            calendar(&template, &[], zone).offered(
                date(2026, 2, 2),
                date(2026, 2, 3),
                now,
                Duration::hours(1),
            ),
            &busy,
        );
        assert_eq!(
            slots[0].0.starts_at,
            utc("2026-02-02T10:00:00Z"),
            "08:00 past, 09:00 inside the notice"
        );
        assert_eq!(slots[0].1, SlotState::Taken);
        assert_eq!(slots[1].1, SlotState::Free);
        assert_eq!(slots.len(), 7 + 9);
    }

    #[test]
    fn a_requested_start_must_be_a_slot_of_the_template_and_far_enough_ahead() {
        let template = WeeklyTemplate::clinic_default();
        let zone = chrono_tz::Europe::Berlin;
        let doctor = calendar(&template, &[], zone);
        let now = utc("2026-02-01T12:00:00Z");
        let notice = Duration::hours(2);
        assert!(
            doctor
                .slot_at(utc("2026-02-02T07:00:00Z"), now, notice)
                .is_ok()
        );
        assert_eq!(
            doctor.slot_at(utc("2026-02-02T07:30:00Z"), now, notice),
            Err(SlotError::NotASlot)
        );
        assert_eq!(
            doctor.slot_at(utc("2026-02-02T17:00:00Z"), now, notice),
            Err(SlotError::NotASlot),
            "after hours"
        );
        assert_eq!(
            doctor.slot_at(utc("2026-02-01T13:00:00Z"), now, notice),
            Err(SlotError::NotASlot),
            "Sunday"
        );
        let monday_now = utc("2026-02-02T06:30:00Z");
        assert_eq!(
            doctor.slot_at(utc("2026-02-02T07:00:00Z"), monday_now, notice),
            Err(SlotError::TooSoon)
        );
    }

    #[test]
    fn a_day_from_midnight_to_midnight_has_its_slots_once() {
        let hours = DayHours::parse(time(0, 0), time(23, 0), 60).unwrap();
        assert_eq!(hours.slot_starts(Buffers::default()).count(), 23);
        let late =
            DayHours::parse(time(22, 0), NaiveTime::from_hms_opt(23, 59, 0).unwrap(), 60).unwrap();
        assert_eq!(
            late.slot_starts(Buffers::default()).collect::<Vec<_>>(),
            [time(22, 0)]
        );
    }

    #[test]
    fn day_hours_refuse_nonsense() {
        assert!(DayHours::parse(time(9, 0), time(8, 0), 30).is_err());
        assert!(DayHours::parse(time(9, 0), time(9, 20), 30).is_err());
        assert!(DayHours::parse(time(9, 0), time(12, 0), 0).is_err());
        let odd = DayHours::parse(time(9, 0), time(10, 50), 30).unwrap();
        assert_eq!(
            odd.slot_starts(Buffers::default()).count(),
            3,
            "a 20-minute remainder is not a slot"
        );
    }

    #[test]
    fn buffers_space_the_visits_of_a_day_and_keep_their_time_from_others() {
        let hours = DayHours::parse(time(8, 0), time(12, 0), 45).unwrap();
        let buffers = Buffers::parse(5, 10).unwrap();
        let template = WeeklyTemplate::from_days([(Weekday::Mon, hours)])
            .with_buffers(buffers)
            .unwrap();
        let doctor = calendar(&template, &[], chrono_tz::UTC);
        let monday = date(2026, 2, 2);
        let starts: Vec<NaiveTime> = doctor
            .slots_on(monday)
            .iter()
            .map(|slot| slot.local_start.time())
            .collect();
        // Steps of 5 + 45 + 10 minutes from 08:00: four fit before 12:00.
        assert_eq!(starts, [time(8, 5), time(9, 5), time(10, 5), time(11, 5)]);
        let first = doctor.slots_on(monday)[0];
        assert_eq!(
            first.blocked(),
            (utc("2026-02-02T08:00:00Z"), utc("2026-02-02T09:00:00Z"))
        );

        // A visit kept from an earlier template (09:00 to 09:45, no buffers) takes the 09:05
        // slot; the 08:05 one keeps until 09:00, which only touches it.
        let busy = [(utc("2026-02-02T09:00:00Z"), utc("2026-02-02T09:45:00Z"))];
        let now = utc("2026-02-01T00:00:00Z");
        let states: Vec<SlotState> =
            mark_taken(doctor.offered(monday, monday, now, Duration::zero()), &busy)
                .into_iter()
                .map(|(_, state)| state)
                .collect();
        assert_eq!(
            states,
            [
                SlotState::Free,
                SlotState::Taken,
                SlotState::Free,
                SlotState::Free
            ]
        );
        let late_busy = [(utc("2026-02-02T08:55:00Z"), utc("2026-02-02T09:00:00Z"))];
        let states: Vec<SlotState> = mark_taken(
            doctor.offered(monday, monday, now, Duration::zero()),
            &late_busy,
        )
        .into_iter()
        .map(|(_, state)| state)
        .collect();
        assert_eq!(
            states[0],
            SlotState::Taken,
            "another visit inside the 08:05 slot's buffer after takes it"
        );

        // The bookings that matter to the day's slots are those over the time the slots
        // keep: the first one's buffer before to the last one's buffer after.
        let slots = doctor.offered(monday, monday, now, Duration::zero());
        assert_eq!(
            span(&slots),
            Some((utc("2026-02-02T08:00:00Z"), utc("2026-02-02T12:00:00Z")))
        );
        assert_eq!(span(&[]), None, "a day off asks for no bookings");

        assert!(Buffers::parse(121, 0).is_err());
        let tight = DayHours::parse(time(8, 0), time(9, 0), 60).unwrap();
        assert!(
            WeeklyTemplate::from_days([(Weekday::Tue, tight)])
                .with_buffers(Buffers::parse(0, 5).unwrap())
                .is_err(),
            "an hour holds no 60-minute visit with 5 minutes after it"
        );
    }
}

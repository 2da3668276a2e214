//! Waitlists: patients waiting for a slot with a doctor, or with any doctor of a
//! specialization, within a range of dates and a window of the day. When a matching slot
//! frees, the first patient in line (first come, first served) is offered it: the slot is
//! held for them for a while, and they claim it to book it like any reservation.

use chrono::{Duration, NaiveDate, NaiveTime};
use polyclinic_contracts::DoctorId;

use crate::domain::schedule::Slot;

/// Whom a patient waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Doctor(DoctorId),
    /// Any doctor whose specialization is this (compared without regard to case).
    Specialization(String),
}

/// When a patient can come: local dates `from..=to`, and on each a window of the day in
/// which the whole visit must fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    from: NaiveDate,
    to: NaiveDate,
    earliest: NaiveTime,
    latest: NaiveTime,
}

/// Why a waitlist window is refused, by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowError {
    pub field: &'static str,
    pub message: String,
}

impl Window {
    /// A window from `from` to `to` (local dates, at most `max_days` apart, not before
    /// `today` nor more than a year after it), between `earliest` and `latest` each day.
    pub fn parse(
        from: NaiveDate,
        to: NaiveDate,
        earliest: NaiveTime,
        latest: NaiveTime,
        today: NaiveDate,
        max_days: u32,
    ) -> Result<Self, WindowError> {
        let refuse = |field, message: &str| {
            Err(WindowError {
                field,
                message: message.to_owned(),
            })
        };
        if from < today {
            return refuse("from", "the range cannot start in the past");
        }
        if to < from {
            return refuse("to", "the range must end on or after its first day");
        }
        if (to - from).num_days() >= i64::from(max_days) {
            return Err(WindowError {
                field: "to",
                message: format!("a range covers at most {max_days} days"),
            });
        }
        if (to - today).num_days() > 366 {
            return refuse("to", "the range must end within a year");
        }
        if latest <= earliest {
            return refuse("latest", "the window must end after it starts");
        }
        Ok(Self {
            from,
            to,
            earliest,
            latest,
        })
    }

    /// A window as stored (checked when it was made).
    pub fn stored(from: NaiveDate, to: NaiveDate, earliest: NaiveTime, latest: NaiveTime) -> Self {
        Self {
            from,
            to,
            earliest,
            latest,
        }
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }

    pub fn earliest(&self) -> NaiveTime {
        self.earliest
    }

    pub fn latest(&self) -> NaiveTime {
        self.latest
    }

    /// Whether the whole of `slot` (local time) falls within the window.
    pub fn fits(&self, slot: &Slot) -> bool {
        let date = slot.local_start.date();
        let start = slot.local_start.time();
        let length = slot.ends_at - slot.starts_at;
        // The visit must end on its own day, by `latest`.
        let ends = slot.local_start + length;
        (self.from..=self.to).contains(&date)
            && start >= self.earliest
            && ends.date() == date
            && ends.time() <= self.latest
    }

    /// Whether the two windows share a day and a time of day.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.from <= other.to
            && other.from <= self.to
            && self.earliest < other.latest
            && other.earliest < self.latest
    }

    /// Whether the range is over on `today`.
    pub fn is_over(&self, today: NaiveDate) -> bool {
        self.to < today
    }
}

/// Where a waitlist entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EntryStatus {
    /// In line.
    Waiting,
    /// A slot is held for the patient to claim.
    Offered,
    /// The patient claimed an offer: done.
    Booked,
    /// The range ended without a claimed offer.
    Ended,
    /// The patient left the waitlist.
    Left,
}

impl EntryStatus {
    pub const ALL: [EntryStatus; 5] = [
        EntryStatus::Waiting,
        EntryStatus::Offered,
        EntryStatus::Booked,
        EntryStatus::Ended,
        EntryStatus::Left,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryStatus::Waiting => "WAITING",
            EntryStatus::Offered => "OFFERED",
            EntryStatus::Booked => "BOOKED",
            EntryStatus::Ended => "ENDED",
            EntryStatus::Left => "LEFT",
        }
    }

    /// Whether the entry is still in line (waiting, or holding an offer).
    pub fn is_active(self) -> bool {
        matches!(self, EntryStatus::Waiting | EntryStatus::Offered)
    }
}

impl TryFrom<String> for EntryStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        EntryStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown waitlist entry status {text}"))
    }
}

/// What became of an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OfferStatus {
    /// Held for the patient until it expires.
    Open,
    Claimed,
    /// It lapsed unclaimed: the slot passed to the next in line.
    Expired,
    /// The patient turned it down.
    Declined,
    /// The clinic took the slot back (the doctor's time off), or the patient left the line.
    Withdrawn,
}

impl OfferStatus {
    pub const ALL: [OfferStatus; 5] = [
        OfferStatus::Open,
        OfferStatus::Claimed,
        OfferStatus::Expired,
        OfferStatus::Declined,
        OfferStatus::Withdrawn,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OfferStatus::Open => "OPEN",
            OfferStatus::Claimed => "CLAIMED",
            OfferStatus::Expired => "EXPIRED",
            OfferStatus::Declined => "DECLINED",
            OfferStatus::Withdrawn => "WITHDRAWN",
        }
    }
}

impl TryFrom<String> for OfferStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        OfferStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown offer status {text}"))
    }
}

/// The waitlist's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitlistPolicy {
    /// How long an offer holds its slot.
    pub offer: Duration,
    /// Entries a patient may hold in line at once.
    pub max_entries: i64,
    /// The longest range an entry may cover, in days.
    pub max_range_days: u32,
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDateTime, Utc};

    use super::*;
    use crate::domain::schedule::Buffers;

    fn date(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn time(text: &str) -> NaiveTime {
        NaiveTime::parse_from_str(text, "%H:%M").unwrap()
    }

    fn slot(local: &str, minutes: i64) -> Slot {
        let local_start: NaiveDateTime = local.parse().unwrap();
        let starts_at: DateTime<Utc> = local_start.and_utc();
        Slot {
            starts_at,
            ends_at: starts_at + Duration::minutes(minutes),
            local_start,
            buffers: Buffers::default(),
        }
    }

    #[test]
    fn a_window_takes_whole_visits_within_its_dates_and_hours() {
        let window = Window::parse(
            date("2027-03-01"),
            date("2027-03-05"),
            time("09:00"),
            time("12:00"),
            date("2027-02-20"),
            90,
        )
        .unwrap();
        assert!(window.fits(&slot("2027-03-01T09:00:00", 60)));
        assert!(window.fits(&slot("2027-03-05T11:00:00", 60)));
        assert!(
            !window.fits(&slot("2027-03-05T11:30:00", 60)),
            "ends after noon"
        );
        assert!(
            !window.fits(&slot("2027-03-03T08:30:00", 60)),
            "starts too early"
        );
        assert!(
            !window.fits(&slot("2027-03-06T09:00:00", 60)),
            "after the range"
        );
        assert!(
            !window.fits(&slot("2027-02-28T09:00:00", 60)),
            "before the range"
        );
        let night = Window::parse(
            date("2027-03-01"),
            date("2027-03-01"),
            time("22:00"),
            time("23:59"),
            date("2027-02-20"),
            90,
        )
        .unwrap();
        assert!(
            !night.fits(&slot("2027-03-01T23:30:00", 60)),
            "runs past midnight"
        );
    }

    #[test]
    fn a_window_must_be_ahead_ordered_and_not_too_long() {
        let today = date("2027-02-20");
        let parse = |from, to, earliest, latest| {
            Window::parse(
                date(from),
                date(to),
                time(earliest),
                time(latest),
                today,
                30,
            )
        };
        assert_eq!(
            parse("2027-02-19", "2027-02-25", "09:00", "10:00")
                .unwrap_err()
                .field,
            "from"
        );
        assert_eq!(
            parse("2027-02-25", "2027-02-24", "09:00", "10:00")
                .unwrap_err()
                .field,
            "to"
        );
        assert_eq!(
            parse("2027-02-20", "2027-03-22", "09:00", "10:00")
                .unwrap_err()
                .field,
            "to"
        );
        assert_eq!(
            parse("2027-02-20", "2027-02-21", "10:00", "10:00")
                .unwrap_err()
                .field,
            "latest"
        );
        assert!(
            parse("2027-02-20", "2027-03-21", "09:00", "10:00").is_ok(),
            "30 days"
        );
    }

    #[test]
    fn windows_overlap_when_they_share_a_day_and_an_hour() {
        let today = date("2027-02-20");
        let window = |from, to, earliest, latest| {
            Window::parse(
                date(from),
                date(to),
                time(earliest),
                time(latest),
                today,
                90,
            )
            .unwrap()
        };
        let morning = window("2027-03-01", "2027-03-10", "08:00", "12:00");
        assert!(morning.overlaps(&window("2027-03-10", "2027-03-12", "11:00", "13:00")));
        assert!(!morning.overlaps(&window("2027-03-11", "2027-03-12", "08:00", "12:00")));
        assert!(!morning.overlaps(&window("2027-03-01", "2027-03-12", "12:00", "13:00")));
        assert!(morning.is_over(date("2027-03-11")));
        assert!(!morning.is_over(date("2027-03-10")));
    }
}

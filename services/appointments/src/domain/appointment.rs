//! The appointment's lifecycle: statuses, the moves between them, and the booking policy.
//!
//!     PENDING -> PAID -> SCHEDULED -> COMPLETED | NO_SHOW
//!     PENDING -> EXPIRED;  PAID -> REJECTED
//!     PENDING | PAID | SCHEDULED -> CANCELLED
//!     OFFERED (a waitlist's offer) -> PENDING (claimed) | EXPIRED | CANCELLED (declined)

use chrono::{DateTime, Duration, Utc};
use polyclinic_http::text::Rule;

pub use polyclinic_contracts::appointments::AppointmentStatus as Status;

/// The lifecycle's rules on a status.
pub trait Lifecycle: Copy {
    /// Whether the appointment occupies its slot (the exclusion constraint's statuses).
    fn is_active(self) -> bool;
    /// Whether the lifecycle allows moving from `self` to `to`.
    fn may_become(self, to: Status) -> bool;
    /// Whether a booking in this status can move to another slot.
    fn may_reschedule(self) -> bool;
}

impl Lifecycle for Status {
    fn is_active(self) -> bool {
        matches!(
            self,
            Status::Offered | Status::Pending | Status::Paid | Status::Scheduled
        )
    }

    fn may_become(self, to: Status) -> bool {
        use Status::*;
        matches!(
            (self, to),
            (Offered, Pending | Expired | Cancelled)
                | (Pending, Paid | Expired | Cancelled)
                | (Paid, Scheduled | Rejected | Cancelled)
                | (Scheduled, Completed | NoShow | Cancelled)
        )
    }

    fn may_reschedule(self) -> bool {
        matches!(self, Status::Paid | Status::Scheduled)
    }
}

/// Who made a change, as events and history name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Patient,
    Admin,
    Doctor,
    Nurse,
    /// A job or an event of another service.
    System,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Patient => "PATIENT",
            Actor::Admin => "ADMIN",
            Actor::Doctor => "DOCTOR",
            Actor::Nurse => "NURSE",
            Actor::System => "SYSTEM",
        }
    }
}

/// The booking rules of the clinic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a reservation holds its slot unpaid.
    pub hold: Duration,
    /// How soon a slot may be booked at the earliest.
    pub notice: Duration,
    /// How long before the start a patient may still cancel or reschedule.
    pub cancellation_cutoff: Duration,
    /// Unpaid reservations a patient may hold at once.
    pub max_pending: i64,
}

impl Policy {
    /// Whether a patient may still cancel or move an appointment that starts at `starts_at`.
    pub fn patient_may_change(&self, starts_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now + self.cancellation_cutoff <= starts_at
    }
}

polyclinic_http::text_kind!(
    /// Why a patient comes, or why something was cancelled: optional free text.
    Reason = Rule::paragraphs(0, 500), "At most 500 characters (line breaks allowed)."
);
polyclinic_http::text_kind!(
    /// A reason that must be given.
    RequiredReason = Rule::paragraphs(1, 500), "1 to 500 characters (line breaks allowed)."
);
polyclinic_http::text_kind!(
    /// What the doctor should know.
    Notes = Rule::paragraphs(0, 2000), "At most 2000 characters (line breaks allowed)."
);

/// Free text a patient or an admin gives (reasons, notes), trimmed and bounded.
pub fn parse_text(text: Option<&str>, max_chars: usize) -> Result<String, String> {
    let text = text.unwrap_or("");
    Rule::paragraphs(0, max_chars).check(text)?;
    Ok(text.trim().to_owned())
}

/// A reason that must be given (a rejection).
pub fn parse_required_text(text: Option<&str>, max_chars: usize) -> Result<String, String> {
    let text = text.unwrap_or("");
    Rule::paragraphs(1, max_chars).check(text)?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_lifecycles_moves_are_allowed() {
        use Status::*;
        assert!(Pending.may_become(Paid));
        assert!(Pending.may_become(Expired));
        assert!(Paid.may_become(Scheduled));
        assert!(Paid.may_become(Rejected));
        assert!(Scheduled.may_become(Completed));
        assert!(Scheduled.may_become(Cancelled));
        assert!(!Pending.may_become(Scheduled), "approval needs a payment");
        assert!(Offered.may_become(Pending), "a claimed offer");
        assert!(Offered.may_become(Expired));
        assert!(
            !Offered.may_become(Paid),
            "a claim pays like any reservation"
        );
        assert!(Offered.is_active(), "an offer holds its slot");
        assert!(!Pending.may_become(Rejected));
        assert!(!Scheduled.may_become(Expired));
        assert!(!Completed.may_become(Cancelled));
        for terminal in [Completed, NoShow, Expired, Rejected, Cancelled] {
            assert!(!terminal.is_active());
            assert!(Status::ALL.iter().all(|to| !terminal.may_become(*to)));
        }
    }

    #[test]
    fn statuses_read_back_from_their_names() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("no_show"), Some(Status::NoShow));
        assert_eq!(Status::parse("BOOKED"), None);
    }

    #[test]
    fn a_patient_may_change_an_appointment_until_the_cutoff() {
        let policy = Policy {
            hold: Duration::minutes(10),
            notice: Duration::minutes(60),
            cancellation_cutoff: Duration::hours(24),
            max_pending: 3,
        };
        let starts = DateTime::parse_from_rfc3339("2027-02-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(policy.patient_may_change(starts, starts - Duration::hours(24)));
        assert!(!policy.patient_may_change(starts, starts - Duration::hours(23)));
    }

    #[test]
    fn texts_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(parse_text(Some("  back pain "), 20).unwrap(), "back pain");
        assert_eq!(parse_text(None, 20).unwrap(), "");
        assert!(parse_text(Some(&"x".repeat(21)), 20).is_err());
        assert!(parse_text(Some("bell\u{7}"), 20).is_err());
        assert!(parse_required_text(Some("   "), 20).is_err());
    }
}

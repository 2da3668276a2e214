//! Events of the appointments service, on `polyclinic.appointments`, keyed by appointment id.
//! Each carries the appointment as it is after the change ([`AppointmentRef`]), so consumers
//! (notifications, payments) need not ask for it. Events carry ids and codes only: the free
//! text people write (a cancellation's or a rejection's reason may say why someone is ill)
//! stays with the appointment, for those who may read it there.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, Topic};

/// Where an appointment is in its lifecycle, as the API and the events name it. The moves
/// between statuses are the appointments service's rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppointmentStatus {
    /// A freed slot held for the first patient on its waitlist until they claim it or the
    /// offer lapses.
    Offered,
    /// The slot is held while the card is authorised.
    Pending,
    /// The card is authorised; waiting for an admin's approval.
    Paid,
    /// Approved: room and nurse assigned, payment captured.
    Scheduled,
    Completed,
    NoShow,
    /// The hold ran out unpaid.
    Expired,
    Rejected,
    Cancelled,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 9] = [
        AppointmentStatus::Offered,
        AppointmentStatus::Pending,
        AppointmentStatus::Paid,
        AppointmentStatus::Scheduled,
        AppointmentStatus::Completed,
        AppointmentStatus::NoShow,
        AppointmentStatus::Expired,
        AppointmentStatus::Rejected,
        AppointmentStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentStatus::Offered => "OFFERED",
            AppointmentStatus::Pending => "PENDING",
            AppointmentStatus::Paid => "PAID",
            AppointmentStatus::Scheduled => "SCHEDULED",
            AppointmentStatus::Completed => "COMPLETED",
            AppointmentStatus::NoShow => "NO_SHOW",
            AppointmentStatus::Expired => "EXPIRED",
            AppointmentStatus::Rejected => "REJECTED",
            AppointmentStatus::Cancelled => "CANCELLED",
        }
    }

    /// The status of a name, in any case.
    pub fn parse(text: &str) -> Option<AppointmentStatus> {
        AppointmentStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

impl std::fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads a stored status (`#[sqlx(try_from = "String")]`).
impl TryFrom<String> for AppointmentStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        AppointmentStatus::parse(&text).ok_or_else(|| format!("unknown appointment status {text}"))
    }
}

/// What every appointment event says about the appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppointmentRef {
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Assigned at approval.
    pub room_id: Option<Uuid>,
    /// Assigned at approval.
    pub nurse_id: Option<Uuid>,
    /// The payment, once it exists.
    pub payment_id: Option<Uuid>,
    /// The fee, in minor units.
    pub amount: i64,
    pub currency: String,
    /// Its status after the change (absent from events written before it was carried).
    #[serde(default)]
    pub status: Option<AppointmentStatus>,
    /// Raised by every change of its status or time: a later event about the appointment
    /// carries a higher revision (calendars read it as the iCalendar `SEQUENCE`).
    #[serde(default)]
    pub revision: i32,
}

macro_rules! appointment_event {
    ($(#[$doc:meta])* $name:ident, $type:literal { $($(#[$field_doc:meta])* $field:ident: $kind:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            #[serde(flatten)]
            pub appointment: AppointmentRef,
            $($(#[$field_doc])* pub $field: $kind,)*
        }

        impl Event for $name {
            const TYPE: &'static str = $type;
            const TOPIC: Topic = Topic::Appointments;

            fn subject(&self) -> String {
                self.appointment.appointment_id.to_string()
            }
        }
    };
}

appointment_event!(
    /// A slot is held for a patient while the card is authorised.
    AppointmentReservedV1, "polyclinic.appointment.reserved.v1" {
        hold_expires_at: DateTime<Utc>,
    }
);
appointment_event!(
    /// A freed slot is held for the first patient in line on a waitlist, until
    /// `offer_expires_at`; they claim it to book it.
    AppointmentOfferedV1, "polyclinic.appointment.offered.v1" {
        /// The waitlist entry it answers.
        waitlist_entry_id: Uuid,
        offer_expires_at: DateTime<Utc>,
    }
);
appointment_event!(
    /// The patient claimed the offer: the slot is held while the card is authorised, as for
    /// any reservation.
    AppointmentClaimedV1, "polyclinic.appointment.claimed.v1" {
        waitlist_entry_id: Uuid,
        hold_expires_at: DateTime<Utc>,
    }
);
appointment_event!(
    /// The offer closed unclaimed: it lapsed, the patient declined it, or the clinic took
    /// the slot back (the doctor's time off); the slot passes to the next patient in line.
    AppointmentOfferExpiredV1, "polyclinic.appointment.offer_expired.v1" {
        waitlist_entry_id: Uuid,
        /// `EXPIRED`, `DECLINED` or `WITHDRAWN`.
        outcome: String,
    }
);
appointment_event!(
    /// The card is authorised (or, for a visit booked far ahead, saved): the appointment
    /// waits for an admin's approval.
    AppointmentPaidV1, "polyclinic.appointment.paid.v1" {
        /// When a saved card is to be authorised; absent when it is authorised already.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        authorize_at: Option<DateTime<Utc>>,
    }
);
appointment_event!(
    /// Approved: room and nurse assigned, payment captured (or, for a visit booked far
    /// ahead, captured once the saved card is authorised at `charge_at`).
    AppointmentScheduledV1, "polyclinic.appointment.scheduled.v1" {
        /// When the payment is taken, if not at the approval.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        charge_at: Option<DateTime<Utc>>,
    }
);
appointment_event!(
    /// An admin turned the paid request down; the authorisation is voided.
    AppointmentRejectedV1, "polyclinic.appointment.rejected.v1" {}
);
appointment_event!(
    /// Cancelled by the patient, an admin, the doctor's unavailability or the platform; the
    /// payment is voided or refunded as its state requires.
    AppointmentCancelledV1, "polyclinic.appointment.cancelled.v1" {
        /// `PATIENT`, `ADMIN`, `DOCTOR` (time off) or `SYSTEM` (a lapsed authorisation).
        cancelled_by: String,
        /// The status it had: `PENDING`, `PAID` or `SCHEDULED`.
        previous_status: AppointmentStatus,
    }
);
appointment_event!(
    /// The hold ran out before the card was authorised; the slot is free again.
    AppointmentExpiredV1, "polyclinic.appointment.expired.v1" {}
);
appointment_event!(
    /// Moved to another slot of the same doctor, keeping its payment.
    AppointmentRescheduledV1, "polyclinic.appointment.rescheduled.v1" {
        previous_starts_at: DateTime<Utc>,
        previous_ends_at: DateTime<Utc>,
    }
);
appointment_event!(
    /// The visit took place.
    AppointmentCompletedV1, "polyclinic.appointment.completed.v1" {}
);
appointment_event!(
    /// The patient did not come.
    AppointmentNoShowV1, "polyclinic.appointment.no_show.v1" {}
);
appointment_event!(
    /// The visit is about 24 hours away.
    AppointmentReminderV1, "polyclinic.appointment.reminder.v1" {}
);

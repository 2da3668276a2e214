//! Events of the payments service, on `polyclinic.payments`, keyed by payment id. Each
//! names the appointment it pays for, which is what most consumers act on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, Topic};

/// What every payment event says about the payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentRef {
    pub payment_id: Uuid,
    pub appointment_id: Uuid,
    pub patient_id: Uuid,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
}

macro_rules! payment_event {
    ($(#[$doc:meta])* $name:ident, $type:literal { $($(#[$field_doc:meta])* $field:ident: $kind:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            #[serde(flatten)]
            pub payment: PaymentRef,
            $($(#[$field_doc])* pub $field: $kind,)*
        }

        impl Event for $name {
            const TYPE: &'static str = $type;
            const TOPIC: Topic = Topic::Payments;

            fn subject(&self) -> String {
                self.payment.payment_id.to_string()
            }
        }
    };
}

payment_event!(
    /// The card is authorised for the amount: the appointment is paid, pending approval.
    PaymentAuthorizedV1, "polyclinic.payment.authorized.v1" {}
);
payment_event!(
    /// The card is saved for a visit booked further ahead than an authorisation lives: the
    /// appointment is paid for (pending approval), and the card is authorised off-session at
    /// `authorize_at`.
    PaymentCardSavedV1, "polyclinic.payment.card_saved.v1" { authorize_at: DateTime<Utc> }
);
payment_event!(
    /// The saved card was refused when it was authorised without the patient (`reason`:
    /// `card_declined` or `authentication_required`): the patient gives another card by
    /// `deadline`, or the payment is canceled and the visit with it.
    PaymentActionRequiredV1, "polyclinic.payment.action_required.v1" {
        reason: String,
        deadline: DateTime<Utc>,
        /// When the visit starts.
        visit_starts_at: Option<DateTime<Utc>>,
    }
);
payment_event!(
    /// Money was taken: `captured` of the authorised amount.
    PaymentCapturedV1, "polyclinic.payment.captured.v1" { captured: i64 }
);
payment_event!(
    /// The authorisation was voided before capture.
    PaymentVoidedV1, "polyclinic.payment.voided.v1" {}
);
payment_event!(
    /// Money went back: `refunded` now, `refunded_total` in all.
    PaymentRefundedV1, "polyclinic.payment.refunded.v1" { refunded: i64, refunded_total: i64 }
);
payment_event!(
    /// A card was declined; the payment stays open for another.
    PaymentFailedV1, "polyclinic.payment.failed.v1" { reason: String }
);
payment_event!(
    /// The payment can no longer be taken: the authorisation lapsed (the provider cancels
    /// uncaptured payments after 7 days), or no card was given by the deadline after a
    /// refused authorisation.
    PaymentExpiredV1, "polyclinic.payment.expired.v1" {}
);

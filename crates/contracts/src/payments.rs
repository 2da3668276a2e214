//! Events of the payments service, on `polyclinic.payments`, keyed by payment id. Each
//! names the appointment it pays for, which is what most consumers act on.

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
    /// The authorisation lapsed (the provider cancels uncaptured payments after 7 days).
    PaymentExpiredV1, "polyclinic.payment.expired.v1" {}
);

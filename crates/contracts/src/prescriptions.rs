//! Events of the prescriptions service, on `polyclinic.prescriptions`. They name people and
//! ids only: clinical content never travels on the bus.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, Topic};

/// A doctor issued a prescription for a patient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrescriptionIssuedV1 {
    pub prescription_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub issued_at: DateTime<Utc>,
}

impl Event for PrescriptionIssuedV1 {
    const TYPE: &'static str = "polyclinic.prescription.issued.v1";
    const TOPIC: Topic = Topic::Prescriptions;

    fn subject(&self) -> String {
        self.prescription_id.to_string()
    }
}

/// A prescription ended before its time: cancelled, or stopped by the doctor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrescriptionCancelledV1 {
    pub prescription_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    /// `CANCELLED` or `STOPPED` (the doctor's reason stays with the prescription).
    pub status: String,
}

impl Event for PrescriptionCancelledV1 {
    const TYPE: &'static str = "polyclinic.prescription.cancelled.v1";
    const TOPIC: Topic = Topic::Prescriptions;

    fn subject(&self) -> String {
        self.prescription_id.to_string()
    }
}

/// What every refill event says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefillRef {
    pub refill_id: Uuid,
    pub prescription_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
}

macro_rules! refill_event {
    ($(#[$doc:meta])* $name:ident, $type:literal { $($field:ident: $kind:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            #[serde(flatten)]
            pub refill: RefillRef,
            $(pub $field: $kind,)*
        }

        impl Event for $name {
            const TYPE: &'static str = $type;
            const TOPIC: Topic = Topic::Prescriptions;

            /// Keyed by the prescription, so its refills stay in order.
            fn subject(&self) -> String {
                self.refill.prescription_id.to_string()
            }
        }
    };
}

refill_event!(
    /// A patient asked for a refill; it waits in the prescribing doctor's queue.
    RefillRequestedV1, "polyclinic.refill.requested.v1" {}
);
refill_event!(
    /// The doctor approved a refill.
    RefillApprovedV1, "polyclinic.refill.approved.v1" { refills_left: i16 }
);
refill_event!(
    /// The doctor declined a refill (the reason stays with the refill).
    RefillDeclinedV1, "polyclinic.refill.declined.v1" {}
);

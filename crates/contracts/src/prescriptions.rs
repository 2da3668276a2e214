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

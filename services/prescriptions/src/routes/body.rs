//! The prescriptions service's answers: built from the stored rows, so a column added to a
//! table is not answered until a body says so.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::prescription::{Item, Status};
use crate::repo::prescriptions::{PrescriptionRow, RefillRow};

/// A prescription and its items.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Prescription {
    pub id: Uuid,
    pub record_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub appointment_id: Uuid,
    pub status: Status,
    pub status_reason: Option<String>,
    pub issued_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub refills_allowed: i16,
    pub refills_left: i16,
    /// Why the doctor prescribed despite an allergy on the record.
    pub allergy_override_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub items: Vec<Item>,
}

impl From<PrescriptionRow> for Prescription {
    fn from(row: PrescriptionRow) -> Self {
        Self {
            id: row.id,
            record_id: row.record_id,
            patient_id: row.patient_id,
            doctor_id: row.doctor_id,
            appointment_id: row.appointment_id,
            status: row.status,
            status_reason: row.status_reason,
            issued_on: row.issued_on,
            valid_until: row.valid_until,
            refills_allowed: row.refills_allowed,
            refills_left: row.refills_left,
            allergy_override_reason: row.allergy_override_reason,
            created_at: row.created_at,
            updated_at: row.updated_at,
            items: row.items,
        }
    }
}

/// A refill request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Refill {
    pub id: Uuid,
    pub prescription_id: Uuid,
    /// `REQUESTED`, `APPROVED` or `DECLINED`.
    pub status: String,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
}

impl From<RefillRow> for Refill {
    fn from(row: RefillRow) -> Self {
        Self {
            id: row.id,
            prescription_id: row.prescription_id,
            status: row.status,
            reason: row.reason,
            requested_at: row.requested_at,
            decided_at: row.decided_at,
            patient_id: row.patient_id,
            doctor_id: row.doctor_id,
        }
    }
}

//! The appointment as the API answers it: what the stored row holds, minus nothing but the
//! storage. Kept apart from `repo`'s row so a column can change without changing the API,
//! and the API without a migration.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::appointment::Status;
use polyclinic_contracts::Money;

use crate::repo::appointments::AppointmentRow;

/// An appointment.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Appointment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub room_id: Option<Uuid>,
    pub nurse_id: Option<Uuid>,
    pub status: Status,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub reason: String,
    pub notes: String,
    /// The doctor's fee when it was booked.
    pub fee: Money,
    /// Until when a PENDING reservation holds its slot.
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub payment_id: Option<Uuid>,
    /// Why it was rejected or cancelled.
    pub status_reason: Option<String>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Raised by every change of its status or time (calendars' `SEQUENCE`).
    pub revision: i32,
}

impl From<AppointmentRow> for Appointment {
    fn from(row: AppointmentRow) -> Self {
        let fee = row.fee();
        Self {
            id: row.id.into(),
            patient_id: row.patient_id.into(),
            doctor_id: row.doctor_id.into(),
            room_id: row.room_id.map(Uuid::from),
            nurse_id: row.nurse_id.map(Uuid::from),
            status: row.status,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            reason: row.reason,
            notes: row.notes,
            fee,
            hold_expires_at: row.hold_expires_at,
            payment_id: row.payment_id.map(Uuid::from),
            status_reason: row.status_reason,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_at: row.updated_at,
            revision: row.revision,
        }
    }
}

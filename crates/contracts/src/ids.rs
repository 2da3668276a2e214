//! Typed ids: a patient's id cannot be passed where a doctor's is wanted. They are UUIDs on
//! the wire (`#[serde(transparent)]`) and in PostgreSQL (`#[sqlx(transparent)]`), so a
//! stored row reads straight into them, and they compare with the bare [`Uuid`] a token or
//! a path carries.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl PartialEq<Uuid> for $name {
            fn eq(&self, other: &Uuid) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

typed_id! {
    /// A patient (a user of role PATIENT).
    PatientId;
    /// A doctor (a user of role DOCTOR).
    DoctorId;
    /// A nurse (a user of role NURSE).
    NurseId;
    /// A room of a department.
    RoomId;
    /// An appointment.
    AppointmentId;
    /// A payment.
    PaymentId;
    /// A prescription.
    PrescriptionId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_are_plain_uuids_on_the_wire() {
        let id = Uuid::now_v7();
        let patient = PatientId(id);
        assert_eq!(
            serde_json::to_string(&patient).unwrap(),
            format!("\"{id}\"")
        );
        let back: PatientId = serde_json::from_str(&format!("\"{id}\"")).unwrap();
        assert_eq!(back, patient);
        assert!(patient == id);
        assert_eq!(patient.to_string(), id.to_string());
    }
}

//! Who asks, in which role, and how far they may see into a patient's record: the patient
//! their own, a doctor or nurse while they care for the patient (asked of the appointments
//! service), admins no clinical content. Every access is a row of the audit trail.

use polyclinic_client::CallContext;
use polyclinic_http::ApiError;
use uuid::Uuid;

use crate::AppState;
use crate::repo::audit::{Access, Outcome};

/// The role a person acts in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acting {
    Patient,
    Doctor,
    Nurse,
    Admin,
}

impl Acting {
    pub fn as_str(self) -> &'static str {
        match self {
            Acting::Patient => "PATIENT",
            Acting::Doctor => "DOCTOR",
            Acting::Nurse => "NURSE",
            Acting::Admin => "ADMIN",
        }
    }
}

/// Who asks, and what their calls to other services carry.
#[derive(Debug, Clone, Copy)]
pub struct Viewer<'a> {
    pub id: Uuid,
    pub acting: Acting,
    pub subject: &'a str,
    pub request_id: &'a str,
    pub call: CallContext<'a>,
}

impl Viewer<'_> {
    /// Whether the viewer is `patient_id`, signed in as a patient.
    pub fn is_patient(&self, patient_id: Uuid) -> bool {
        self.acting == Acting::Patient && self.id == patient_id
    }

    /// Whether the viewer is `doctor_id`, signed in as a doctor: a doctor whose role was
    /// taken away keeps the id but no longer the prescriptions written under it.
    pub fn is_doctor(&self, doctor_id: Uuid) -> bool {
        self.acting == Acting::Doctor && self.id == doctor_id
    }
}

/// What a viewer may do with a patient's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    None,
    Read,
    /// Read, and record vitals (the nurse of one of the patient's appointments).
    ReadAndVitals,
    /// Read and write every kind (a doctor of one of the patient's appointments).
    Full,
}

impl AppState {
    /// The viewer's access to `patient_id`'s record.
    pub async fn level(
        &self,
        viewer: &Viewer<'_>,
        patient_id: Uuid,
    ) -> Result<Level, CareTeamUnavailable> {
        let care = |level| async move {
            match self
                .care
                .cares_for(viewer.id, patient_id, viewer.call)
                .await
            {
                Ok(true) => Ok(level),
                Ok(false) => Ok(Level::None),
                Err(err) => {
                    tracing::warn!(error = %err, "the appointments service could not be asked");
                    Err(CareTeamUnavailable)
                }
            }
        };
        match viewer.acting {
            Acting::Patient if viewer.is_patient(patient_id) => Ok(Level::Read),
            Acting::Doctor => care(Level::Full).await,
            Acting::Nurse => care(Level::ReadAndVitals).await,
            // Admins read no clinical content.
            Acting::Patient | Acting::Admin => Ok(Level::None),
        }
    }

    /// Appends an access of `viewer` to the trail on its own.
    pub async fn audit(
        &self,
        viewer: &Viewer<'_>,
        action: &str,
        patient_id: Option<Uuid>,
        entry_id: Option<Uuid>,
        outcome: Outcome,
    ) -> anyhow::Result<()> {
        crate::repo::audit::record(
            &self.pool,
            &Access {
                actor_id: viewer.subject,
                actor_role: viewer.acting.as_str(),
                action,
                patient_id,
                record_id: None,
                entry_id,
                request_id: Some(viewer.request_id),
                outcome,
            },
        )
        .await
    }
}

/// The trail row of an allowed access by `viewer`, for a write's own transaction.
pub fn allowed<'a>(
    viewer: &Viewer<'a>,
    action: &'a str,
    patient_id: Uuid,
    record_id: Option<Uuid>,
    entry_id: Option<Uuid>,
) -> Access<'a> {
    Access {
        actor_id: viewer.subject,
        actor_role: viewer.acting.as_str(),
        action,
        patient_id: Some(patient_id),
        record_id,
        entry_id,
        request_id: Some(viewer.request_id),
        outcome: Outcome::Allowed,
    }
}

/// The appointments service could not say whether the viewer cares for the patient.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the appointments service is unavailable")]
pub struct CareTeamUnavailable;

impl From<CareTeamUnavailable> for ApiError {
    fn from(_: CareTeamUnavailable) -> Self {
        ApiError::dependency_unavailable(
            "The appointments service is unavailable; please try again.",
        )
    }
}

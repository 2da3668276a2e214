//! Who cares for a patient, asked of the appointments service with the caller's own token:
//! a doctor or nurse with a SCHEDULED or COMPLETED appointment with the patient. Answers are
//! reused for 30 seconds. The prescriptions service asks it before any record is read, the
//! identity service before a patient's profile is shown to a carer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{CallContext, ClientError, ServiceClient};
use polyclinic_contracts::appointments::AppointmentStatus;
use reqwest::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<serde_json::Value>,
}

/// An appointment as a prescription needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct Appointment {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub status: AppointmentStatus,
}

impl Appointment {
    /// Whether it makes its doctor and nurse the patient's carers: scheduled or completed.
    pub fn makes_carers(&self) -> bool {
        CARING.contains(&self.status)
    }
}

/// The statuses of an appointment that make its doctor and nurse the patient's carers.
const CARING: [AppointmentStatus; 2] = [AppointmentStatus::Scheduled, AppointmentStatus::Completed];

#[derive(Debug)]
pub struct CareTeam {
    client: ServiceClient,
    appointments: String,
    answers: Mutex<HashMap<(Uuid, Uuid), (Instant, bool)>>,
}

impl CareTeam {
    pub fn new(client: ServiceClient, appointments_url: &str) -> Self {
        Self {
            client,
            appointments: appointments_url.trim_end_matches('/').to_owned(),
            answers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the calling doctor or nurse (`caller`, whose token `call` carries) has a
    /// scheduled or completed appointment with `patient`.
    pub async fn cares_for(
        &self,
        caller: Uuid,
        patient: Uuid,
        call: CallContext<'_>,
    ) -> Result<bool, ClientError> {
        let cached = self.answers.lock().ok().and_then(|answers| {
            answers
                .get(&(caller, patient))
                .filter(|(at, _)| at.elapsed() < TTL)
                .map(|(_, answer)| *answer)
        });
        if let Some(answer) = cached {
            return Ok(answer);
        }
        let mut answer = false;
        for status in CARING {
            let url = format!(
                "{}/api/appointments/mine?patient_id={patient}&status={status}&limit=1",
                self.appointments
            );
            let page: Page = self.client.get_json(&url, call).await?;
            if !page.items.is_empty() {
                answer = true;
                break;
            }
        }
        if let Ok(mut answers) = self.answers.lock() {
            answers.retain(|_, (at, _)| at.elapsed() < TTL);
            answers.insert((caller, patient), (Instant::now(), answer));
        }
        Ok(answer)
    }

    /// The appointment, if the caller may see it.
    pub async fn appointment(
        &self,
        id: Uuid,
        call: CallContext<'_>,
    ) -> Result<Option<Appointment>, ClientError> {
        let url = format!("{}/api/appointments/{id}", self.appointments);
        match self.client.get_json(&url, call).await {
            Ok(appointment) => Ok(Some(appointment)),
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

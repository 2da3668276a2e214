//! The services this one calls: identity (doctors' fees and departments, rooms, nurses,
//! patients) and payments (creating and capturing a booking's payment). Calls carry the
//! caller's token, request id and trace context.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use polyclinic_client::{CallContext, ClientError, ServiceClient};
use polyclinic_contracts::{AppointmentId, DoctorId, Money, NurseId, PaymentId, RoomId};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

/// A doctor as the public directory shows them.
#[derive(Debug, Clone, Deserialize)]
pub struct Doctor {
    pub id: DoctorId,
    pub department_id: Uuid,
    #[serde(default)]
    pub specialization: String,
    pub consultation_fee: Money,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Room {
    pub id: RoomId,
    pub department_id: Uuid,
    pub name: String,
}

/// A nurse as the staff directory lists them.
#[derive(Debug, Clone, Deserialize)]
pub struct Nurse {
    pub id: NurseId,
    pub first_name: String,
    pub last_name: String,
}

/// A page of a cursor-paged list.
#[derive(Debug, Deserialize)]
struct Listing<T> {
    items: Vec<T>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// A department has a few dozen nurses at most; this bounds a runaway listing.
const MAX_PAGES: usize = 20;

/// What approval and booking on behalf need to know of a person.
#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    pub id: Uuid,
    /// `ADMIN`, `DOCTOR`, `NURSE` or `PATIENT`.
    pub role: String,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    #[serde(default)]
    pub nurse: Option<NurseProfile>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NurseProfile {
    pub department_id: Uuid,
}

impl Person {
    pub fn is_active(&self, role: &str) -> bool {
        self.role == role && self.status == "ACTIVE"
    }
}

/// The part of a payment a booking keeps.
#[derive(Debug, Clone, Deserialize)]
pub struct Payment {
    pub id: PaymentId,
    pub status: String,
    pub client_secret: Option<String>,
    /// A visit booked far ahead: when its saved card is authorised (and a capture asked for
    /// before then is taken).
    #[serde(default)]
    pub authorize_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// How long the directory's answer about a doctor is reused (availability, and the fee of a
/// reservation: a new fee applies to bookings within this long).
const DOCTOR_TTL: Duration = Duration::from_secs(30);

/// The identity and payments services.
pub struct Peers {
    client: ServiceClient,
    identity: String,
    payments: String,
    doctors: Mutex<HashMap<DoctorId, (Instant, Option<Doctor>)>>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("identity", &self.identity)
            .field("payments", &self.payments)
            .finish()
    }
}

/// `None` for a 404, the value otherwise.
fn found<T>(result: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => Ok(None),
        Err(err) => Err(err),
    }
}

impl Peers {
    pub fn new(client: ServiceClient, identity_url: &str, payments_url: &str) -> Self {
        Self {
            client,
            identity: identity_url.trim_end_matches('/').to_owned(),
            payments: payments_url.trim_end_matches('/').to_owned(),
            doctors: Mutex::new(HashMap::new()),
        }
    }

    /// The doctor as the directory shows them now; `None` if there is no active doctor.
    pub async fn doctor(
        &self,
        id: DoctorId,
        context: CallContext<'_>,
    ) -> Result<Option<Doctor>, ClientError> {
        let url = format!("{}/api/doctors/{id}", self.identity);
        let doctor = found(self.client.get_json::<Doctor>(&url, context).await)?;
        if let Ok(mut cache) = self.doctors.lock() {
            cache.insert(id, (Instant::now(), doctor.clone()));
        }
        Ok(doctor)
    }

    /// The directory's doctors whose specialization contains `specialization` (any case).
    pub async fn doctors_specialized_in(
        &self,
        specialization: &str,
        context: CallContext<'_>,
    ) -> Result<Vec<Doctor>, ClientError> {
        let query =
            serde_urlencoded::to_string([("specialization", specialization)]).unwrap_or_default();
        let url = format!("{}/api/doctors?{query}", self.identity);
        self.client.get_json(&url, context).await
    }

    /// Like [`Peers::doctor`], reusing an answer up to 30 seconds old.
    pub async fn doctor_cached(
        &self,
        id: DoctorId,
        context: CallContext<'_>,
    ) -> Result<Option<Doctor>, ClientError> {
        let cached = self.doctors.lock().ok().and_then(|cache| {
            cache
                .get(&id)
                .filter(|(at, _)| at.elapsed() < DOCTOR_TTL)
                .map(|(_, doctor)| doctor.clone())
        });
        match cached {
            Some(doctor) => Ok(doctor),
            None => self.doctor(id, context).await,
        }
    }

    pub async fn room(
        &self,
        id: RoomId,
        context: CallContext<'_>,
    ) -> Result<Option<Room>, ClientError> {
        found(
            self.client
                .get_json(&format!("{}/api/rooms/{id}", self.identity), context)
                .await,
        )
    }

    /// The rooms of a department.
    pub async fn rooms_of(
        &self,
        department_id: Uuid,
        context: CallContext<'_>,
    ) -> Result<Vec<Room>, ClientError> {
        let url = format!("{}/api/rooms?department_id={department_id}", self.identity);
        self.client.get_json(&url, context).await
    }

    /// The active nurses of a department, every page of the directory's listing.
    pub async fn nurses_of(
        &self,
        department_id: Uuid,
        context: CallContext<'_>,
    ) -> Result<Vec<Nurse>, ClientError> {
        let first = format!(
            "{}/api/users?role=NURSE&status=ACTIVE&department_id={department_id}&limit=100",
            self.identity
        );
        let mut nurses = Vec::new();
        let mut url = first.clone();
        for _ in 0..MAX_PAGES {
            let page: Listing<Nurse> = self.client.get_json(&url, context).await?;
            nurses.extend(page.items);
            match page.next_cursor {
                Some(cursor) => url = format!("{first}&cursor={cursor}"),
                None => break,
            }
        }
        Ok(nurses)
    }

    pub async fn person(
        &self,
        id: Uuid,
        context: CallContext<'_>,
    ) -> Result<Option<Person>, ClientError> {
        found(
            self.client
                .get_json(&format!("{}/api/users/{id}", self.identity), context)
                .await,
        )
    }

    /// Asks for the payment of `appointment_id`; the payments service prices it from the
    /// appointment itself. The key is derived from the appointment, so a retry never makes a
    /// second payment.
    pub async fn create_payment(
        &self,
        appointment_id: AppointmentId,
        context: CallContext<'_>,
    ) -> Result<Payment, ClientError> {
        let url = format!("{}/api/payments", self.payments);
        let body = json!({ "appointment_id": appointment_id });
        let key = format!("appointment-{appointment_id}-payment");
        let answer = self
            .client
            .post_idempotent(&url, context, Some(&body), &key)
            .await?;
        serde_json::from_value(answer).map_err(|err| ClientError::Unreadable {
            url,
            reason: err.to_string(),
        })
    }

    /// A payment as its patient (or an admin) reads it, with the client secret the card is
    /// confirmed with.
    pub async fn payment(
        &self,
        payment_id: PaymentId,
        context: CallContext<'_>,
    ) -> Result<Payment, ClientError> {
        let url = format!("{}/api/payments/{payment_id}", self.payments);
        self.client.get_json(&url, context).await
    }

    /// Captures the whole authorisation of `payment_id` for `appointment_id`'s approval.
    pub async fn capture_payment(
        &self,
        appointment_id: AppointmentId,
        payment_id: PaymentId,
        context: CallContext<'_>,
    ) -> Result<Payment, ClientError> {
        let url = format!("{}/api/payments/{payment_id}/capture", self.payments);
        let key = format!("appointment-{appointment_id}-capture");
        let answer = self
            .client
            .post_idempotent(&url, context, None, &key)
            .await?;
        serde_json::from_value(answer).map_err(|err| ClientError::Unreadable {
            url,
            reason: err.to_string(),
        })
    }
}

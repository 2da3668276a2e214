//! The parts of the API's answers that the pages show. These are the web app's own types,
//! decoded from the gateway's JSON like any client would: a field the API adds does not
//! break them.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Fees come as the platform's one money object.
pub use polyclinic_contracts::Money;

#[derive(Debug, Clone, Deserialize)]
pub struct Doctor {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub specialization: String,
    pub years_of_experience: i64,
    pub department_id: String,
    pub department_name: String,
    pub consultation_fee: Money,
}

impl Doctor {
    pub fn name(&self) -> String {
        format!("Dr {} {}", self.first_name, self.last_name)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Appointment {
    pub id: String,
    pub patient_id: String,
    pub doctor_id: String,
    pub room_id: Option<String>,
    pub status: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: String,
    pub fee: Money,
    pub hold_expires_at: Option<DateTime<Utc>>,
    pub payment_id: Option<String>,
    pub status_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Slot {
    pub starts_at: DateTime<Utc>,
    pub local_date: NaiveDate,
    pub local_time: String,
    pub state: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Availability {
    pub slots: Vec<Slot>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Payment {
    pub id: String,
    pub appointment_id: String,
    pub patient_id: String,
    pub amount: i64,
    pub currency: String,
    pub status: String,
    pub provider: String,
    pub amount_captured: i64,
    pub amount_refunded: i64,
    pub created_at: DateTime<Utc>,
    /// A visit booked far ahead: when its saved card is authorised.
    #[serde(default)]
    pub authorize_at: Option<DateTime<Utc>>,
    /// After a refused authorisation: by when another card must be given.
    #[serde(default)]
    pub card_deadline: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InboxItem {
    pub id: String,
    pub subject: String,
    pub body_text: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Inbox {
    pub items: Vec<InboxItem>,
    pub unread_count: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub entries: Vec<Value>,
    pub prescriptions: Vec<Prescription>,
    /// What the patient reported (unconfirmed by the care team).
    #[serde(default)]
    pub declared: Declared,
}

/// What a patient declared to their record.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Declared {
    pub allergies: Vec<DeclaredAllergy>,
    pub blood_type: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeclaredAllergy {
    pub substance: String,
}

impl Declared {
    /// The declared substances, for a page to list.
    pub fn substances(&self) -> Vec<String> {
        self.allergies
            .iter()
            .map(|allergy| allergy.substance.clone())
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Prescription {
    pub id: String,
    pub patient_id: String,
    pub doctor_id: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub issued_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub refills_allowed: i64,
    pub refills_left: i64,
    pub allergy_override_reason: Option<String>,
    pub items: Vec<PrescriptionItem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PrescriptionItem {
    pub medication: String,
    pub strength: String,
    pub form: String,
    pub dose: String,
    pub route: String,
    pub frequency: String,
    pub duration: String,
    pub quantity: i64,
    #[serde(default)]
    pub instructions: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Refill {
    pub id: String,
    pub prescription_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub patient_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AccessLogRow {
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_role: String,
    pub action: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimeOff {
    pub id: String,
    pub kind: String,
    pub on_date: Option<NaiveDate>,
    pub weekday: Option<i64>,
    #[serde(default)]
    pub slot_starts: Vec<String>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Person {
    pub id: String,
    pub role: String,
    pub status: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Person {
    pub fn name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Department {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Room {
    pub department_id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Schedule {
    pub custom: bool,
    pub days: Vec<ScheduleDay>,
    #[serde(default)]
    pub buffer_before_minutes: u32,
    #[serde(default)]
    pub buffer_after_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScheduleDay {
    pub weekday: u32,
    pub starts_at: String,
    pub ends_at: String,
    pub slot_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub event_type: String,
    pub recipient_email: String,
    pub template: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetter {
    pub id: String,
    pub service: String,
    pub consumer: String,
    pub event_type: String,
    pub error: String,
    pub attempts: i64,
    pub replayed_at: Option<DateTime<Utc>>,
    pub replay_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetters {
    pub items: Vec<DeadLetter>,
    #[serde(default)]
    pub unreachable: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusReport {
    pub gateway_version: String,
    pub upstreams: Vec<Upstream>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Upstream {
    pub service: String,
    pub status: String,
    pub version: Option<String>,
    pub latency_ms: i64,
    #[serde(default)]
    pub failing: Vec<String>,
}

/// A SMART app an administrator registered.
#[derive(Debug, Clone, Deserialize)]
pub struct SmartApp {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub confidential: bool,
    pub scopes: Vec<String>,
    pub status: String,
}

/// An app a person allowed.
#[derive(Debug, Clone, Deserialize)]
pub struct AppGrant {
    pub id: String,
    pub app_name: String,
    pub scopes: Vec<String>,
    pub granted_at: DateTime<Utc>,
}

/// A slot a waitlist holds for its patient.
#[derive(Debug, Clone, Deserialize)]
pub struct WaitlistOffer {
    pub appointment_id: String,
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A place in a waitlist.
#[derive(Debug, Clone, Deserialize)]
pub struct WaitlistEntry {
    pub id: String,
    pub patient_id: String,
    pub doctor_id: Option<String>,
    pub specialization: Option<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub earliest: String,
    pub latest: String,
    pub status: String,
    pub position: Option<i64>,
    pub offer: Option<WaitlistOffer>,
    pub joined_at: DateTime<Utc>,
}

/// Whether the person has a calendar feed (its URL is shown only when made).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FeedStatus {
    pub active: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub last_read_at: Option<DateTime<Utc>>,
}

//! Events of the identity service, on `polyclinic.identity`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Event, Topic};

/// A person got an account: a patient registered or an admin created staff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRegisteredV1 {
    pub user_id: Uuid,
    /// `ADMIN`, `DOCTOR`, `NURSE` or `PATIENT`.
    pub role: String,
    pub registered_at: DateTime<Utc>,
}

impl Event for UserRegisteredV1 {
    const TYPE: &'static str = "polyclinic.identity.user.registered.v1";
    const TOPIC: Topic = Topic::Identity;

    fn subject(&self) -> String {
        self.user_id.to_string()
    }
}

/// An account was deactivated: its logins ended and its tokens are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDeactivatedV1 {
    pub user_id: Uuid,
    pub deactivated_at: DateTime<Utc>,
}

impl Event for UserDeactivatedV1 {
    const TYPE: &'static str = "polyclinic.identity.user.deactivated.v1";
    const TOPIC: Topic = Topic::Identity;

    fn subject(&self) -> String {
        self.user_id.to_string()
    }
}

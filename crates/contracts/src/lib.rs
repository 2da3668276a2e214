//! The events services exchange: one payload type per event, versioned in its type name
//! (`polyclinic.<aggregate>.<what happened>.v<N>`). A new version is a new type; consumers
//! keep handling the old one until no producer writes it.
//!
//! It also holds the vocabulary every service shares: [`Money`], the typed ids
//! ([`PatientId`], [`AppointmentId`], ...), the appointment's status.
//!
//! Shared contracts only: no behaviour, no domain rules. Each producing service has its own
//! topic ([`Topic`]), and each event is keyed by its aggregate id ([`Event::subject`]) so
//! one aggregate's events stay in order.

pub mod appointments;
pub mod identity;
mod ids;
mod money;
pub mod payments;
pub mod prescriptions;

pub use ids::{AppointmentId, DoctorId, NurseId, PatientId, PaymentId, PrescriptionId, RoomId};
pub use money::Money;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One topic per producing service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Identity,
    Appointments,
    Payments,
    Prescriptions,
}

impl Topic {
    pub const ALL: [Topic; 4] = [
        Topic::Identity,
        Topic::Appointments,
        Topic::Payments,
        Topic::Prescriptions,
    ];

    /// The topic's name on every bus: `polyclinic.<service>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Identity => "polyclinic.identity",
            Topic::Appointments => "polyclinic.appointments",
            Topic::Payments => "polyclinic.payments",
            Topic::Prescriptions => "polyclinic.prescriptions",
        }
    }

    pub fn parse(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|topic| topic.as_str() == name)
    }
}

/// An event payload.
pub trait Event: Serialize + DeserializeOwned {
    /// The CloudEvents `type`, such as `polyclinic.identity.user.registered.v1`.
    const TYPE: &'static str;
    /// The topic it is published on.
    const TOPIC: Topic;
    /// The aggregate it is about: the CloudEvents `subject` and the bus key.
    fn subject(&self) -> String;
}

//! The names of the platform's services.

use std::fmt;

/// One of the platform's services. The gateway and the web app keep no tables; every other
/// service owns one PostgreSQL schema named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Gateway,
    Identity,
    Appointments,
    Payments,
    Notifications,
    Prescriptions,
    Web,
}

impl Service {
    /// Every service, in start-up order.
    pub const ALL: [Service; 7] = [
        Service::Identity,
        Service::Appointments,
        Service::Payments,
        Service::Notifications,
        Service::Prescriptions,
        Service::Gateway,
        Service::Web,
    ];

    /// The lowercase name used in configuration keys, logs, metrics and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Gateway => "gateway",
            Service::Identity => "identity",
            Service::Appointments => "appointments",
            Service::Payments => "payments",
            Service::Notifications => "notifications",
            Service::Prescriptions => "prescriptions",
            Service::Web => "web",
        }
    }

    /// The PostgreSQL schema the service owns, if it keeps data.
    pub fn schema(self) -> Option<&'static str> {
        match self {
            Service::Gateway => None,
            other => Some(other.as_str()),
        }
    }

    /// Whether the service takes part in the event backbone (an outbox, consumers): every
    /// service with a schema but the web app, whose schema holds only its sessions.
    pub fn has_events(self) -> bool {
        !matches!(self, Service::Gateway | Service::Web)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

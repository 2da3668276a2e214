//! The scopes of the platform's own service clients: what each service's client
//! credentials may do, and so what a stolen service secret is worth. A route that admits
//! service tokens names its scope (`Require<AdminOr<scopes::PaymentsRefund>>`), the issuer
//! grants each client the scopes of [`granted_to`], and nothing else passes.
//!
//! The built-in provider writes them into the token's `scope` claim (space-separated, RFC
//! 9068); Keycloak does the same from the realm's client scopes
//! (`deploy/keycloak/polyclinic-realm.json` assigns the same sets).

use polyclinic_config::Service;

use crate::Scope;

macro_rules! scopes {
    ($($(#[$doc:meta])* $name:ident = $text:literal;)*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl Scope for $name {
                const NAME: &'static str = $text;
            }
        )*
        /// Every scope there is.
        pub const ALL: &[&str] = &[$($text),*];
    };
}

scopes! {
    /// The identity service's feed of ended logins and deactivated users, which every
    /// token verifier polls.
    RevocationsRead = "revocations:read";
    /// A user's profile by id (to address an email).
    UsersRead = "users:read";
    /// A room or a department by id (to say where a visit is).
    RoomsRead = "rooms:read";
    /// An appointment by id.
    AppointmentsRead = "appointments:read";
    /// Creating the payment of an appointment.
    PaymentsCreate = "payments:create";
    /// Capturing an authorised payment.
    PaymentsCapture = "payments:capture";
    /// Voiding an authorisation.
    PaymentsVoid = "payments:void";
    /// Refunding a captured payment.
    PaymentsRefund = "payments:refund";
    /// Each service's consumer outcomes and dead letters.
    EventsRead = "events:read";
    /// Replaying a dead letter.
    EventsReplay = "events:replay";
    /// Declaring what a patient reported about their health (allergies, blood type) to
    /// their medical record.
    RecordsDeclare = "records:declare";
}

/// The scopes `service`'s own client is granted: exactly what its work calls. Every
/// service that verifies tokens polls the revocation feed (the identity service reads its
/// own from its tables); the appointments service creates, captures and voids the payments
/// of its appointments; the notifications service reads the people and rooms its emails
/// name; the identity service hands what patients declare to their records. The web app
/// acts only for the person signed in, so it has no client.
pub fn granted_to(service: Service) -> &'static [&'static str] {
    match service {
        Service::Web => &[],
        Service::Identity => &[RecordsDeclare::NAME],
        Service::Notifications => &[RevocationsRead::NAME, UsersRead::NAME, RoomsRead::NAME],
        Service::Appointments => &[
            RevocationsRead::NAME,
            PaymentsCreate::NAME,
            PaymentsCapture::NAME,
            PaymentsVoid::NAME,
        ],
        Service::Gateway | Service::Payments | Service::Prescriptions => &[RevocationsRead::NAME],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_granted_scope_exists_and_notifications_cannot_move_money() {
        for service in Service::ALL {
            for scope in granted_to(service) {
                assert!(ALL.contains(scope), "{service}: {scope}");
            }
        }
        let notifications = granted_to(Service::Notifications);
        assert!(
            !notifications
                .iter()
                .any(|scope| scope.starts_with("payments:"))
        );
    }
}

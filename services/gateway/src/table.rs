//! The gateway's route table: which service answers a route, and the coarse role rule the
//! gateway applies before forwarding. Services still decide ownership; a route missing here
//! is not reachable through the gateway (the identity service's revocation feed, for one).

use axum::routing::MethodFilter;
use polyclinic_auth::Role;
use polyclinic_config::Service;

/// Who may pass the gateway on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a token, if sent, is passed on unchecked for the service to judge.
    Public,
    /// A payment provider's signed callback (the service checks the signature): anyone,
    /// counted against the webhook budget rather than the anonymous visitors' one.
    Webhook,
    /// A calendar feed, whose secret URL is its credential: anyone, counted against the
    /// anonymous budget of their address and a budget of the feed's own.
    Feed,
    /// Any valid token.
    Authenticated,
    /// A valid token with one of these roles.
    Roles(&'static [Role]),
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: MethodFilter,
    /// The method's name, for messages and documentation.
    pub verb: &'static str,
    pub path: &'static str,
    pub service: Service,
    pub access: Access,
}

const ADMIN: Access = Access::Roles(&[Role::Admin]);
const STAFF: Access = Access::Roles(&[Role::Admin, Role::Doctor, Role::Nurse]);
const PERSON: Access = Access::Roles(&[Role::Admin, Role::Doctor, Role::Nurse, Role::Patient]);
const PATIENT_OR_ADMIN: Access = Access::Roles(&[Role::Patient, Role::Admin]);
const DOCTOR_OR_ADMIN: Access = Access::Roles(&[Role::Doctor, Role::Admin]);
const CARE_OR_ADMIN: Access = Access::Roles(&[Role::Doctor, Role::Nurse, Role::Admin]);
const CARE: Access = Access::Roles(&[Role::Doctor, Role::Nurse]);
const DOCTOR: Access = Access::Roles(&[Role::Doctor]);
const PATIENT: Access = Access::Roles(&[Role::Patient]);
const PAYERS: Access = Access::Roles(&[Role::Patient, Role::Admin, Role::Service]);

macro_rules! rules {
    ($($method:ident $path:literal => $service:ident, $access:expr;)*) => {
        &[$(Rule { method: MethodFilter::$method, verb: stringify!($method), path: $path, service: Service::$service, access: $access }),*]
    };
}

/// Every route the gateway forwards.
pub const TABLE: &[Rule] = rules! {
    // identity: tokens and accounts
    GET "/api/auth/.well-known/openid-configuration" => Identity, Access::Public;
    GET "/api/auth/jwks" => Identity, Access::Public;
    POST "/api/auth/token" => Identity, Access::Public;
    POST "/api/auth/revoke" => Identity, Access::Public;
    GET "/api/auth/authorize" => Identity, Access::Public;
    POST "/api/auth/authorize" => Identity, Access::Public;
    GET "/api/auth/userinfo" => Identity, PERSON;
    GET "/fhir/.well-known/smart-configuration" => Identity, Access::Public;
    POST "/api/smart/apps" => Identity, ADMIN;
    GET "/api/smart/apps" => Identity, ADMIN;
    GET "/api/smart/apps/{client_id}" => Identity, ADMIN;
    POST "/api/smart/apps/{client_id}/disable" => Identity, ADMIN;
    POST "/api/smart/apps/{client_id}/revoke-grants" => Identity, ADMIN;
    GET "/api/smart/grants/mine" => Identity, PERSON;
    DELETE "/api/smart/grants/{id}" => Identity, PERSON;
    POST "/api/users/patients" => Identity, Access::Public;
    POST "/api/users/staff" => Identity, ADMIN;
    GET "/api/users/me" => Identity, PERSON;
    PATCH "/api/users/me" => Identity, PERSON;
    POST "/api/users/me/password" => Identity, PERSON;
    GET "/api/users" => Identity, ADMIN;
    GET "/api/users/{id}" => Identity, Access::Authenticated;
    PATCH "/api/users/{id}" => Identity, PERSON;
    DELETE "/api/users/{id}" => Identity, PERSON;
    POST "/api/users/{id}/password" => Identity, ADMIN;
    GET "/api/doctors" => Identity, Access::Public;
    GET "/api/doctors/{id}" => Identity, Access::Public;
    POST "/api/departments" => Identity, ADMIN;
    GET "/api/departments" => Identity, STAFF;
    GET "/api/departments/{id}" => Identity, STAFF;
    PATCH "/api/departments/{id}" => Identity, ADMIN;
    DELETE "/api/departments/{id}" => Identity, ADMIN;
    GET "/api/departments/{id}/staff" => Identity, STAFF;
    GET "/api/departments/{id}/rooms" => Identity, STAFF;
    POST "/api/rooms" => Identity, ADMIN;
    GET "/api/rooms" => Identity, STAFF;
    GET "/api/rooms/{id}" => Identity, STAFF;
    PATCH "/api/rooms/{id}" => Identity, ADMIN;
    DELETE "/api/rooms/{id}" => Identity, ADMIN;

    // appointments: schedules and bookings
    GET "/api/doctors/{id}/availability" => Appointments, Access::Public;
    GET "/api/doctors/{id}/schedule" => Appointments, DOCTOR_OR_ADMIN;
    PUT "/api/doctors/{id}/schedule" => Appointments, DOCTOR_OR_ADMIN;
    POST "/api/doctors/{id}/unavailability" => Appointments, DOCTOR_OR_ADMIN;
    GET "/api/doctors/{id}/unavailability" => Appointments, DOCTOR_OR_ADMIN;
    DELETE "/api/doctors/{id}/unavailability/{uid}" => Appointments, DOCTOR_OR_ADMIN;
    POST "/api/appointments" => Appointments, PATIENT_OR_ADMIN;
    GET "/api/appointments" => Appointments, ADMIN;
    GET "/api/appointments/mine" => Appointments, PERSON;
    GET "/api/appointments/queue" => Appointments, ADMIN;
    GET "/api/appointments/{id}" => Appointments, PERSON;
    GET "/api/appointments/{id}/staffing" => Appointments, ADMIN;
    POST "/api/appointments/{id}/approve" => Appointments, ADMIN;
    POST "/api/appointments/{id}/reject" => Appointments, ADMIN;
    POST "/api/appointments/{id}/cancel" => Appointments, PATIENT_OR_ADMIN;
    POST "/api/appointments/{id}/reschedule" => Appointments, PATIENT_OR_ADMIN;
    POST "/api/appointments/{id}/complete" => Appointments, CARE_OR_ADMIN;
    POST "/api/appointments/{id}/no-show" => Appointments, CARE_OR_ADMIN;
    POST "/api/appointments/{id}/claim" => Appointments, PATIENT;
    POST "/api/waitlist" => Appointments, PATIENT;
    GET "/api/waitlist" => Appointments, ADMIN;
    GET "/api/waitlist/mine" => Appointments, PATIENT;
    DELETE "/api/waitlist/{id}" => Appointments, PATIENT_OR_ADMIN;

    // payments
    POST "/api/payments" => Payments, PAYERS;
    GET "/api/payments" => Payments, ADMIN;
    GET "/api/payments/mine" => Payments, PERSON;
    GET "/api/payments/{id}" => Payments, PERSON;
    POST "/api/payments/{id}/confirm" => Payments, PATIENT_OR_ADMIN;
    POST "/api/payments/{id}/capture" => Payments, ADMIN;
    POST "/api/payments/{id}/cancel" => Payments, ADMIN;
    POST "/api/payments/{id}/refund" => Payments, ADMIN;
    POST "/api/payments/webhooks/stripe" => Payments, Access::Webhook;

    // notifications and the event log
    GET "/api/notifications/me" => Notifications, PERSON;
    POST "/api/notifications/{id}/read" => Notifications, PERSON;
    GET "/api/notifications" => Notifications, ADMIN;
    POST "/api/notifications/{id}/resend" => Notifications, ADMIN;
    GET "/api/events" => Notifications, ADMIN;
    GET "/api/events/dead-letters" => Notifications, ADMIN;
    POST "/api/events/dead-letters/{id}/replay" => Notifications, ADMIN;

    // calendar feeds (notifications)
    GET "/api/calendar/feed" => Notifications, PERSON;
    POST "/api/calendar/feed" => Notifications, PERSON;
    DELETE "/api/calendar/feed" => Notifications, PERSON;
    GET "/calendar/{file}" => Notifications, Access::Feed;

    // medical records and prescriptions
    GET "/api/records/{patient_id}" => Prescriptions, PERSON;
    POST "/api/records/{patient_id}/entries" => Prescriptions, CARE;
    GET "/api/records/{patient_id}/entries/{entry_id}/versions" => Prescriptions, PERSON;
    GET "/api/records/{patient_id}/access-log" => Prescriptions, PATIENT_OR_ADMIN;
    POST "/api/prescriptions" => Prescriptions, DOCTOR;
    GET "/api/prescriptions/mine" => Prescriptions, PERSON;
    GET "/api/prescriptions/{id}" => Prescriptions, PERSON;
    POST "/api/prescriptions/{id}/cancel" => Prescriptions, DOCTOR;
    POST "/api/prescriptions/{id}/stop" => Prescriptions, DOCTOR;
    POST "/api/prescriptions/{id}/refills" => Prescriptions, PATIENT;
    GET "/api/refills/queue" => Prescriptions, DOCTOR;
    POST "/api/refills/{id}/approve" => Prescriptions, DOCTOR;
    POST "/api/refills/{id}/decline" => Prescriptions, DOCTOR;
    GET "/api/audit" => Prescriptions, ADMIN;

    // FHIR R4, by resource type (the gateway itself answers `/fhir/metadata`)
    GET "/fhir/Patient" => Identity, PERSON;
    GET "/fhir/Patient/{id}" => Identity, PERSON;
    GET "/fhir/Practitioner" => Identity, Access::Public;
    GET "/fhir/Practitioner/{id}" => Identity, Access::Public;
    GET "/fhir/PractitionerRole" => Identity, Access::Public;
    GET "/fhir/PractitionerRole/{id}" => Identity, Access::Public;
    GET "/fhir/Organization" => Identity, Access::Public;
    GET "/fhir/Organization/{id}" => Identity, Access::Public;
    GET "/fhir/Location" => Identity, STAFF;
    GET "/fhir/Location/{id}" => Identity, STAFF;
    GET "/fhir/Schedule" => Appointments, Access::Public;
    GET "/fhir/Schedule/{id}" => Appointments, Access::Public;
    GET "/fhir/Slot" => Appointments, Access::Public;
    GET "/fhir/Slot/{id}" => Appointments, Access::Public;
    GET "/fhir/Appointment" => Appointments, PERSON;
    GET "/fhir/Appointment/{id}" => Appointments, PERSON;
    PATCH "/fhir/Appointment/{id}" => Appointments, PATIENT_OR_ADMIN;
    POST "/fhir/Appointment/$find" => Appointments, Access::Public;
    POST "/fhir/Appointment/$hold" => Appointments, PATIENT_OR_ADMIN;
    POST "/fhir/Appointment/$book" => Appointments, PATIENT_OR_ADMIN;
    POST "/fhir/Appointment/{id}/$cancel" => Appointments, PATIENT_OR_ADMIN;
    GET "/fhir/MedicationRequest" => Prescriptions, PERSON;
    GET "/fhir/MedicationRequest/{id}" => Prescriptions, PERSON;
    GET "/fhir/AllergyIntolerance" => Prescriptions, PERSON;
    GET "/fhir/AllergyIntolerance/{id}" => Prescriptions, PERSON;
    GET "/fhir/Condition" => Prescriptions, PERSON;
    GET "/fhir/Condition/{id}" => Prescriptions, PERSON;
    GET "/fhir/Observation" => Prescriptions, PERSON;
    GET "/fhir/Observation/{id}" => Prescriptions, PERSON;
    GET "/fhir/AuditEvent" => Prescriptions, PERSON;
    GET "/fhir/AuditEvent/{id}" => Prescriptions, PERSON;
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_and_method_appears_twice() {
        for (index, rule) in TABLE.iter().enumerate() {
            let duplicate = TABLE[index + 1..]
                .iter()
                .any(|other| other.method == rule.method && other.path == rule.path);
            assert!(
                !duplicate,
                "{:?} {} is listed twice",
                rule.method, rule.path
            );
        }
    }

    #[test]
    fn every_fhir_resource_type_is_forwarded_to_its_owner_with_its_audience() {
        use polyclinic_fhir::capability::{Audience, SUPPORTED};
        let access = |audience| match audience {
            Audience::Public => Access::Public,
            Audience::People => PERSON,
            Audience::Staff => STAFF,
            Audience::PatientsAndAdmins => PATIENT_OR_ADMIN,
        };
        let mut listed = 0;
        for support in SUPPORTED {
            let resource_type = support.resource_type;
            let mut interactions = vec![
                ("GET", format!("/fhir/{resource_type}"), support.audience),
                (
                    "GET",
                    format!("/fhir/{resource_type}/{{id}}"),
                    support.audience,
                ),
            ];
            interactions.extend(
                support
                    .patch
                    .map(|audience| ("PATCH", format!("/fhir/{resource_type}/{{id}}"), audience)),
            );
            interactions.extend(
                support
                    .operations
                    .iter()
                    .map(|operation| ("POST", operation.path(resource_type), operation.audience)),
            );
            for (verb, path, audience) in interactions {
                let rule = TABLE
                    .iter()
                    .find(|rule| rule.path == path && rule.verb == verb)
                    .unwrap_or_else(|| panic!("{verb} {path} is not forwarded"));
                assert_eq!(rule.service, support.service, "{verb} {path}");
                assert_eq!(rule.access, access(audience), "{verb} {path}");
                listed += 1;
            }
        }
        let fhir_rows = TABLE
            .iter()
            .filter(|rule| rule.path.starts_with("/fhir/") && !rule.path.contains("/.well-known/"))
            .count();
        assert_eq!(fhir_rows, listed, "a FHIR row the statement does not list");
    }

    #[test]
    fn the_revocation_feed_is_not_reachable_from_outside() {
        assert!(TABLE.iter().all(|rule| !rule.path.contains("revocations")));
    }
}

#[cfg(test)]
mod readme {
    use super::TABLE;

    #[test]
    fn the_readme_shows_every_gateway_route() {
        let readme = include_str!("../../../README.md");
        for rule in TABLE {
            let row = format!("| {} | `{}` | {} |", rule.verb, rule.path, rule.service);
            assert!(
                readme.contains(&row),
                "README.md lacks the gateway route {row}"
            );
        }
    }
}

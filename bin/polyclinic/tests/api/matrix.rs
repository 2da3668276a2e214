//! The role-by-route matrix: every route the gateway forwards, called through the gateway by
//! every kind of caller, against one table of expected answers. A route added to the gateway
//! without a row here fails the test, as does any answer that differs from its row.
//!
//! Reads name objects of the first patient and the first doctor, so ownership shows: the
//! other patient and the other doctor get 404 where the owner gets 200. Writes name ids that
//! do not exist (and bodies that do not validate), so that they change nothing: who may
//! write shows as 404 or 422, who may not as 401 or 403.

use std::collections::BTreeMap;

use polyclinic_gateway::table::TABLE;
use polyclinic_testing::{Service, TestPlatform};
use reqwest::Method;
use serde_json::json;

/// Callers, in the order of each row's answers.
const CALLERS: [&str; 7] = [
    "anonymous",
    "patient",
    "other patient",
    "doctor",
    "other doctor",
    "nurse",
    "admin",
];

/// Route -> the status each caller gets, in the order of [`CALLERS`]: anonymous, patient,
/// other patient, doctor, other doctor, nurse, admin. 401: no token; 403: the role may not;
/// 404: not there, or not yours (never telling which); 422: allowed, the body is not valid;
/// 415: the route takes a form; 400: a FHIR search that must name its patient, schedule or
/// doctor, a FHIR operation's body that is not a Parameters resource (a patch's: not an
/// array), or a doctor's waitlist asked for without naming the doctor. A calendar feed's
/// URL with a secret that is none is 404 to everyone; making, reading and ending one's own
/// feed is open to every person. The Stripe webhook is 404 `webhooks_not_configured`: this platform has no webhook
/// secret (its signature checks are tested in the payments service).
#[rustfmt::skip]
const EXPECTED: &[(&str, [u16; 7])] = &[
    ("DELETE /api/calendar/feed", [401, 204, 204, 204, 204, 204, 204]),
    ("DELETE /api/departments/{id}", [401, 403, 403, 403, 403, 403, 404]),
    ("DELETE /api/doctors/{id}/unavailability/{uid}", [401, 403, 403, 404, 404, 403, 404]),
    ("DELETE /api/rooms/{id}", [401, 403, 403, 403, 403, 403, 404]),
    ("DELETE /api/users/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("DELETE /api/waitlist/{id}", [401, 404, 404, 403, 403, 403, 404]),
    ("GET /api/appointments", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/appointments/mine", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /api/appointments/queue", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/appointments/{id}", [401, 200, 404, 200, 404, 404, 200]),
    ("GET /api/appointments/{id}/staffing", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/audit", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/calendar/feed", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /api/auth/.well-known/openid-configuration", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /api/auth/jwks", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /api/departments", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /api/departments/{id}", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /api/departments/{id}/rooms", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /api/departments/{id}/staff", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /api/doctors", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /api/doctors/{id}", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /api/doctors/{id}/availability", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /api/doctors/{id}/schedule", [401, 403, 403, 200, 404, 403, 200]),
    ("GET /api/doctors/{id}/unavailability", [401, 403, 403, 200, 404, 403, 200]),
    ("GET /api/events", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/events/dead-letters", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/notifications", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/notifications/me", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /api/payments", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/payments/mine", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /api/payments/{id}", [401, 200, 404, 404, 404, 404, 200]),
    ("GET /api/prescriptions/mine", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /api/prescriptions/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /api/records/{patient_id}", [401, 200, 404, 404, 404, 404, 404]),
    ("GET /api/records/{patient_id}/access-log", [401, 200, 404, 403, 403, 403, 200]),
    ("GET /api/records/{patient_id}/entries/{entry_id}/versions", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /api/refills/queue", [401, 403, 403, 200, 200, 403, 403]),
    ("GET /api/rooms", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /api/rooms/{id}", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /api/users", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/users/me", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /api/users/{id}", [401, 200, 404, 404, 404, 404, 200]),
    ("GET /api/waitlist", [401, 403, 403, 403, 403, 403, 400]),
    ("GET /api/waitlist/mine", [401, 200, 200, 403, 403, 403, 403]),
    ("GET /calendar/{file}", [404, 404, 404, 404, 404, 404, 404]),
    ("PATCH /api/departments/{id}", [401, 403, 403, 403, 403, 403, 404]),
    ("PATCH /api/rooms/{id}", [401, 403, 403, 403, 403, 403, 404]),
    ("PATCH /api/users/me", [401, 200, 200, 200, 200, 200, 200]),
    ("PATCH /api/users/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("POST /api/appointments", [401, 422, 422, 403, 403, 403, 422]),
    ("POST /api/appointments/{id}/approve", [401, 403, 403, 403, 403, 403, 422]),
    ("POST /api/appointments/{id}/claim", [401, 404, 404, 403, 403, 403, 403]),
    ("POST /api/appointments/{id}/cancel", [401, 404, 404, 403, 403, 403, 404]),
    ("POST /api/appointments/{id}/complete", [401, 403, 403, 404, 404, 404, 404]),
    ("POST /api/appointments/{id}/no-show", [401, 403, 403, 404, 404, 404, 404]),
    ("POST /api/appointments/{id}/reject", [401, 403, 403, 403, 403, 403, 422]),
    ("POST /api/appointments/{id}/reschedule", [401, 422, 422, 403, 403, 403, 422]),
    ("POST /api/auth/revoke", [415, 415, 415, 415, 415, 415, 415]),
    ("POST /api/calendar/feed", [401, 201, 201, 201, 201, 201, 201]),
    ("POST /api/auth/token", [415, 415, 415, 415, 415, 415, 415]),
    ("POST /api/departments", [401, 403, 403, 403, 403, 403, 422]),
    ("POST /api/doctors/{id}/unavailability", [401, 403, 403, 404, 404, 403, 422]),
    ("POST /api/events/dead-letters/{id}/replay", [401, 403, 403, 403, 403, 403, 404]),
    ("POST /api/notifications/{id}/read", [401, 404, 404, 404, 404, 404, 404]),
    ("POST /api/notifications/{id}/resend", [401, 403, 403, 403, 403, 403, 404]),
    ("POST /api/payments", [401, 422, 422, 403, 403, 403, 422]),
    ("POST /api/payments/webhooks/stripe", [404, 404, 404, 404, 404, 404, 404]),
    ("POST /api/payments/{id}/cancel", [401, 403, 403, 403, 403, 403, 404]),
    ("POST /api/payments/{id}/capture", [401, 403, 403, 403, 403, 403, 404]),
    ("POST /api/payments/{id}/confirm", [401, 422, 422, 403, 403, 403, 422]),
    ("POST /api/payments/{id}/refund", [401, 403, 403, 403, 403, 403, 404]),
    ("POST /api/prescriptions", [401, 403, 403, 422, 422, 403, 403]),
    ("POST /api/prescriptions/{id}/cancel", [401, 403, 403, 422, 422, 403, 403]),
    ("POST /api/prescriptions/{id}/refills", [401, 404, 404, 403, 403, 403, 403]),
    ("POST /api/prescriptions/{id}/stop", [401, 403, 403, 422, 422, 403, 403]),
    ("POST /api/records/{patient_id}/entries", [401, 403, 403, 422, 422, 422, 403]),
    ("POST /api/refills/{id}/approve", [401, 403, 403, 404, 404, 403, 403]),
    ("POST /api/refills/{id}/decline", [401, 403, 403, 422, 422, 403, 403]),
    ("POST /api/rooms", [401, 403, 403, 403, 403, 403, 422]),
    ("POST /api/users/me/password", [401, 422, 422, 422, 422, 422, 422]),
    ("POST /api/users/patients", [422, 422, 422, 422, 422, 422, 422]),
    ("POST /api/users/staff", [401, 403, 403, 403, 403, 403, 422]),
    ("POST /api/users/{id}/password", [401, 403, 403, 403, 403, 403, 422]),
    ("POST /api/waitlist", [401, 422, 422, 403, 403, 403, 403]),
    ("PUT /api/doctors/{id}/schedule", [401, 403, 403, 404, 404, 403, 422]),
    ("DELETE /api/smart/grants/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /api/auth/authorize", [400, 400, 400, 400, 400, 400, 400]),
    ("GET /api/auth/userinfo", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /api/smart/apps", [401, 403, 403, 403, 403, 403, 200]),
    ("GET /api/smart/apps/{client_id}", [401, 403, 403, 403, 403, 403, 404]),
    ("GET /api/smart/grants/mine", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/.well-known/smart-configuration", [200, 200, 200, 200, 200, 200, 200]),
    ("POST /api/auth/authorize", [415, 415, 415, 415, 415, 415, 415]),
    ("POST /api/smart/apps", [401, 403, 403, 403, 403, 403, 422]),
    ("POST /api/smart/apps/{client_id}/disable", [401, 403, 403, 403, 403, 403, 404]),
    ("POST /api/smart/apps/{client_id}/revoke-grants", [401, 403, 403, 403, 403, 403, 404]),
    ("PATCH /fhir/Appointment/{id}", [401, 400, 400, 403, 403, 403, 400]),
    ("POST /fhir/Appointment/$book", [401, 400, 400, 403, 403, 403, 400]),
    ("POST /fhir/Appointment/$find", [400, 400, 400, 400, 400, 400, 400]),
    ("POST /fhir/Appointment/$hold", [401, 400, 400, 403, 403, 403, 400]),
    ("POST /fhir/Appointment/{id}/$cancel", [401, 400, 400, 403, 403, 403, 400]),
    ("GET /fhir/AllergyIntolerance", [401, 400, 400, 400, 400, 400, 400]),
    ("GET /fhir/AllergyIntolerance/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /fhir/Appointment", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/Appointment/{id}", [401, 200, 404, 200, 404, 404, 200]),
    ("GET /fhir/AuditEvent", [401, 200, 200, 404, 404, 404, 200]),
    ("GET /fhir/AuditEvent/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /fhir/Condition", [401, 400, 400, 400, 400, 400, 400]),
    ("GET /fhir/Condition/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /fhir/Location", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /fhir/Location/{id}", [401, 403, 403, 200, 200, 200, 200]),
    ("GET /fhir/MedicationRequest", [401, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/MedicationRequest/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /fhir/Observation", [401, 400, 400, 400, 400, 400, 400]),
    ("GET /fhir/Observation/{id}", [401, 404, 404, 404, 404, 404, 404]),
    ("GET /fhir/Organization", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/Organization/{id}", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/Patient", [401, 200, 200, 400, 400, 400, 200]),
    ("GET /fhir/Patient/{id}", [401, 200, 404, 404, 404, 404, 200]),
    ("GET /fhir/Practitioner", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/Practitioner/{id}", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/PractitionerRole", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/PractitionerRole/{id}", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/Schedule", [400, 400, 400, 400, 400, 400, 400]),
    ("GET /fhir/Schedule/{id}", [200, 200, 200, 200, 200, 200, 200]),
    ("GET /fhir/Slot", [400, 400, 400, 400, 400, 400, 400]),
    ("GET /fhir/Slot/{id}", [404, 404, 404, 404, 404, 404, 404]),
];

#[tokio::test]
async fn every_route_answers_every_kind_of_caller_as_the_matrix_says() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (patient, patient_token) = platform
        .register_patient("matrix-owner@patients.example")
        .await;
    let (_, other_patient_token) = platform
        .register_patient("matrix-other@patients.example")
        .await;
    let (_, other_doctor_token) = platform
        .create_staff(
            &clinic.admin,
            "DOCTOR",
            "matrix-other-doctor@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    let slot = platform.free_slots(&clinic.doctor_id, None).await[3].clone();
    let reserved = platform
        .reserve(&patient_token, &clinic.doctor_id, &slot)
        .await;
    let patient_id = patient["id"].as_str().unwrap().to_owned();
    let appointment_id = reserved["id"].as_str().unwrap().to_owned();
    let payment_id = reserved["payment"]["id"].as_str().unwrap().to_owned();
    let missing = uuid::Uuid::now_v7().to_string();

    let tokens: [Option<&str>; 7] = [
        None,
        Some(&patient_token),
        Some(&other_patient_token),
        Some(&clinic.doctor),
        Some(&other_doctor_token),
        Some(&clinic.nurse),
        Some(&clinic.admin),
    ];
    let mut observed: BTreeMap<String, [u16; 7]> = BTreeMap::new();
    for rule in TABLE {
        let route = format!("{} {}", rule.verb, rule.path);
        let reading = rule.verb == "GET";
        // Reads look at the owner's things; writes at things that do not exist.
        let id_for = |segment: &str| -> String {
            let owned = match (segment, rule.path) {
                _ if !reading => None,
                ("{id}", path) if path.starts_with("/api/appointments/") => Some(&appointment_id),
                ("{id}", path) if path.starts_with("/api/payments/") => Some(&payment_id),
                ("{id}", path) if path.starts_with("/api/users/") => Some(&patient_id),
                ("{id}", path) if path.starts_with("/api/doctors/") => Some(&clinic.doctor_id),
                ("{id}", path) if path.starts_with("/api/departments/") => {
                    Some(&clinic.department_id)
                }
                ("{id}", path) if path.starts_with("/api/rooms/") => Some(&clinic.room_id),
                ("{patient_id}", _) => Some(&patient_id),
                ("{id}", path) if path.starts_with("/fhir/Patient/") => Some(&patient_id),
                ("{id}", path) if path.starts_with("/fhir/Appointment/") => Some(&appointment_id),
                ("{id}", path)
                    if path.starts_with("/fhir/Practitioner")
                        || path.starts_with("/fhir/Schedule/") =>
                {
                    Some(&clinic.doctor_id)
                }
                ("{id}", path) if path.starts_with("/fhir/Organization/") => {
                    Some(&clinic.department_id)
                }
                ("{id}", path) if path.starts_with("/fhir/Location/") => Some(&clinic.room_id),
                _ => None,
            };
            owned.cloned().unwrap_or_else(|| missing.clone())
        };
        let path: String = rule
            .path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    id_for(segment)
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(rule.verb.as_bytes()).unwrap();
        let body = (!reading && rule.verb != "DELETE").then(|| json!({}));
        let mut answers = [0u16; 7];
        for (answer, token) in answers.iter_mut().zip(tokens) {
            let reply = platform
                .call(method.clone(), &path, token, body.clone())
                .await;
            *answer = reply.status.as_u16();
        }
        observed.insert(route, answers);
    }

    let expected: BTreeMap<String, [u16; 7]> = EXPECTED
        .iter()
        .map(|(route, answers)| ((*route).to_owned(), *answers))
        .collect();
    let table: String = observed
        .iter()
        .map(|(route, answers)| format!("    (\"{route}\", {answers:?}),\n"))
        .collect();
    let differences: Vec<String> = observed
        .iter()
        .filter(|(route, answers)| expected.get(*route) != Some(answers))
        .map(|(route, answers)| {
            let wanted = expected.get(route);
            let who: Vec<String> = CALLERS
                .iter()
                .enumerate()
                .filter(|(n, _)| wanted.is_none_or(|wanted| wanted[*n] != answers[*n]))
                .map(|(n, caller)| format!("{caller}: {}", answers[n]))
                .collect();
            format!("{route}: {wanted:?} expected, got {}", who.join(", "))
        })
        .chain(
            expected
                .keys()
                .filter(|route| !observed.contains_key(*route))
                .map(|route| format!("{route}: in the matrix, not in the gateway's table")),
        )
        .collect();
    assert!(
        differences.is_empty(),
        "{} route(s) differ from the matrix:\n{}\n\nobserved:\n{table}",
        differences.len(),
        differences.join("\n")
    );
}

//! Who may call what, decided by the services themselves (called directly, not through the
//! gateway): every route of the appointments and payments services for every kind of caller,
//! and 404 for every by-id route asked about someone else's appointment or payment.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::booking::{id, slot};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Patient,
    OtherPatient,
    Doctor,
    OtherDoctor,
    Nurse,
    OtherNurse,
    Admin,
}

const EVERYONE: [Who; 8] = [
    Who::Anonymous,
    Who::Patient,
    Who::OtherPatient,
    Who::Doctor,
    Who::OtherDoctor,
    Who::Nurse,
    Who::OtherNurse,
    Who::Admin,
];

/// What a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Past the role and ownership checks (whatever the route then answers).
    Passes,
    Unauthenticated,
    Forbidden,
    /// 404, as if the thing did not exist.
    Hidden,
}

use Outcome::*;

/// The expected outcome of each caller, in the order of [`EVERYONE`].
type Row = (Method, &'static str, Option<Value>, [Outcome; 8]);

fn outcome(status: StatusCode) -> Outcome {
    match status {
        StatusCode::UNAUTHORIZED => Unauthenticated,
        StatusCode::FORBIDDEN => Forbidden,
        StatusCode::NOT_FOUND => Hidden,
        _ => Passes,
    }
}

#[tokio::test]
async fn every_appointments_and_payments_route_admits_exactly_the_right_callers() {
    let platform = crate::booking::platform(crate::booking::Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let admin = clinic.admin.clone();
    let (_, patient) = platform.register_patient("owner@clinic.example").await;
    let (_, other_patient) = platform.register_patient("nosy@clinic.example").await;
    let (_, other_doctor) = platform
        .create_staff(
            &admin,
            "DOCTOR",
            "dr.other@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    let (_, other_nurse) = platform
        .create_staff(
            &admin,
            "NURSE",
            "n.other@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    let starts_at = slot(&platform, &clinic, 2, 0).await;
    let booked = platform
        .paid_appointment(&patient, &clinic.doctor_id, &starts_at)
        .await;
    assert_eq!(
        platform.approve(&clinic, id(&booked)).await.status,
        StatusCode::OK
    );
    let appointment = id(&booked).to_owned();
    let payment = booked["payment_id"].as_str().unwrap().to_owned();
    let doctor = clinic.doctor_id.clone();
    let token = |who: Who| -> Option<&str> {
        match who {
            Who::Anonymous => None,
            Who::Patient => Some(&patient),
            Who::OtherPatient => Some(&other_patient),
            Who::Doctor => Some(&clinic.doctor),
            Who::OtherDoctor => Some(&other_doctor),
            Who::Nurse => Some(&clinic.nurse),
            Who::OtherNurse => Some(&other_nurse),
            Who::Admin => Some(&admin),
        }
    };
    // The week the clinic set up already: putting it again changes nothing.
    let week = json!({"days": (1..=7).map(|day| json!({"weekday": day, "starts_at": "00:00", "ends_at": "23:00", "slot_minutes": 60})).collect::<Vec<_>>()});
    // A body that fails validation: who passes the checks gets 422, and nothing changes.
    let too_long = json!({"reason": "x".repeat(501)});
    let u = Unauthenticated;
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        //                                                             anon      patient  other    doctor   other-dr nurse    other-n  admin
        (Method::GET, "/api/doctors/{doctor}/availability", None,             [Passes, Passes, Passes, Passes, Passes, Passes, Passes, Passes]),
        (Method::GET, "/api/doctors/{doctor}/schedule", None,                 [u, Forbidden, Forbidden, Passes, Hidden, Forbidden, Forbidden, Passes]),
        (Method::PUT, "/api/doctors/{doctor}/schedule", Some(week.clone()), [u, Forbidden, Forbidden, Passes, Hidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/doctors/{doctor}/unavailability", Some(json!({"kind": "never"})), [u, Forbidden, Forbidden, Passes, Hidden, Forbidden, Forbidden, Passes]),
        (Method::GET, "/api/doctors/{doctor}/unavailability", None,           [u, Forbidden, Forbidden, Passes, Hidden, Forbidden, Forbidden, Passes]),
        (Method::DELETE, "/api/doctors/{doctor}/unavailability/{missing}", None, [u, Forbidden, Forbidden, Passes, Hidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/appointments", Some(json!({"doctor_id": doctor})), [u, Passes, Passes, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::GET, "/api/appointments", None,                              [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::GET, "/api/appointments/mine", None,                         [u, Passes, Passes, Passes, Passes, Passes, Passes, Passes]),
        (Method::GET, "/api/appointments/queue", None,                        [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::GET, "/api/appointments/{appointment}", None,                [u, Passes, Hidden, Passes, Hidden, Passes, Hidden, Passes]),
        (Method::POST, "/api/appointments/{appointment}/approve", Some(json!({})), [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/appointments/{appointment}/reject", Some(too_long.clone()), [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/appointments/{appointment}/cancel", Some(too_long.clone()), [u, Passes, Passes, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/appointments/{appointment}/reschedule", Some(json!({})), [u, Passes, Passes, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/appointments/{appointment}/complete", None,      [u, Forbidden, Forbidden, Passes, Hidden, Passes, Hidden, Passes]),
        (Method::POST, "/api/appointments/{appointment}/no-show", None,       [u, Forbidden, Forbidden, Passes, Hidden, Passes, Hidden, Passes]),
        (Method::POST, "/api/payments", Some(json!({"appointment_id": "nope"})), [u, Passes, Passes, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::GET, "/api/payments", None,                                  [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::GET, "/api/payments/mine", None,                             [u, Passes, Passes, Passes, Passes, Passes, Passes, Passes]),
        (Method::GET, "/api/payments/{payment}", None,                        [u, Passes, Hidden, Hidden, Hidden, Hidden, Hidden, Passes]),
        (Method::POST, "/api/payments/{payment}/confirm", Some(json!({"payment_method": "pm_card_visa"})), [u, Passes, Hidden, Hidden, Hidden, Hidden, Hidden, Passes]),
        (Method::POST, "/api/payments/{payment}/capture", Some(json!({"amount": 0})), [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/payments/{payment}/cancel", Some(json!({"unexpected": true})), [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
        (Method::POST, "/api/payments/{payment}/refund", Some(json!({"amount": 0})), [u, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Forbidden, Passes]),
    ];
    let mut wrong = Vec::new();
    for (method, template, body, expected) in &rows {
        let path = template
            .replace("{doctor}", &doctor)
            .replace("{appointment}", &appointment)
            .replace("{payment}", &payment)
            .replace("{missing}", &uuid::Uuid::now_v7().to_string());
        let service = if path.starts_with("/api/payments") {
            Service::Payments
        } else {
            Service::Appointments
        };
        for (who, expected) in EVERYONE.iter().zip(expected) {
            let reply = platform
                .call_service(service, method.clone(), &path, token(*who), body.clone())
                .await;
            // Time off that does not exist is a 404 of its own, past the checks.
            let got = match reply.code() {
                "unavailability_not_found" => Passes,
                _ => outcome(reply.status),
            };
            assert_ne!(
                reply.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {template} as {who:?}: {:?}",
                reply.body
            );
            if got != *expected {
                wrong.push(format!(
                    "{method} {template} as {who:?}: expected {expected:?}, got {} {:?}",
                    reply.status, reply.body["code"]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Nothing the matrix sent changed the appointment or its payment.
    let after = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{appointment}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(after.body["status"], "SCHEDULED");
    let paid = platform
        .book(
            Method::GET,
            &format!("/api/payments/{payment}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (
            paid.body["status"].as_str(),
            paid.body["amount_refunded"].as_i64()
        ),
        (Some("succeeded"), Some(0))
    );
}

#[tokio::test]
async fn another_patients_appointment_is_404_on_every_by_id_route_and_stays_untouched() {
    let platform = TestPlatform::start(&[
        Service::Identity,
        Service::Appointments,
        Service::Payments,
        Service::Gateway,
    ])
    .await;
    let clinic = platform.clinic().await;
    let (_, owner) = platform.register_patient("mine@clinic.example").await;
    let (_, stranger) = platform.register_patient("theirs@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 2, 0).await;
    let free = slot(&platform, &clinic, 2, 1).await;
    let booked = platform
        .paid_appointment(&owner, &clinic.doctor_id, &starts_at)
        .await;
    let appointment = id(&booked);
    let payment = booked["payment_id"].as_str().unwrap();

    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/appointments/{appointment}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/appointments/{appointment}/cancel"),
            Some(json!({"reason": "mine now"})),
        ),
        (
            Method::POST,
            format!("/api/appointments/{appointment}/reschedule"),
            Some(json!({"starts_at": free})),
        ),
        (Method::GET, format!("/api/payments/{payment}"), None),
        (
            Method::POST,
            format!("/api/payments/{payment}/confirm"),
            Some(json!({"payment_method": "pm_card_visa"})),
        ),
    ] {
        let reply = platform
            .book(method.clone(), &path, Some(&stranger), body)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {:?}",
            reply.body
        );
    }
    let mine = platform
        .book(Method::GET, "/api/appointments/mine", Some(&stranger), None)
        .await;
    assert!(mine.body["items"].as_array().unwrap().is_empty());
    let untouched = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{appointment}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(untouched.body["status"], "PAID");
    assert_eq!(untouched.body["starts_at"], booked["starts_at"]);
}

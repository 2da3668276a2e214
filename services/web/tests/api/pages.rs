//! Pages whose content depends on the clinic's state, checked over HTTP.

use polyclinic_testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{page, sign_in};

#[tokio::test]
async fn the_approval_pickers_offer_only_rooms_and_nurses_free_at_that_time() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    // A second doctor in the same department, working the same hours.
    let second_id = platform
        .another_doctor(&clinic, "second.doctor@clinic.example")
        .await;
    let spare_room = platform.another_room(&clinic, "Spare room").await;
    let spare_nurse = platform
        .another_nurse(&clinic, "second.nurse@clinic.example")
        .await;

    // Two paid requests for the same hour with the two doctors; the first is approved with
    // the clinic's room and its only nurse.
    let slot = platform.free_slots(&clinic.doctor_id, None).await[0].clone();
    let (_, first_patient) = platform
        .register_patient("first.patient@example.test")
        .await;
    let (_, second_patient) = platform
        .register_patient("second.patient@example.test")
        .await;
    let first = platform
        .paid_appointment(&first_patient, &clinic.doctor_id, &slot)
        .await;
    let waiting = platform
        .paid_appointment(&second_patient, &second_id, &slot)
        .await;
    let approved = platform
        .approve(&clinic, first["id"].as_str().unwrap())
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);

    let admin = sign_in(&platform, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let (status, html) = page(&platform, &admin, "/admin/queue").await;
    assert_eq!(status, StatusCode::OK);
    let waiting_id = waiting["id"].as_str().unwrap();
    assert!(html.contains(waiting_id), "the waiting request is listed");
    assert!(
        html.contains(&format!("value=\"{spare_room}\"")),
        "the free room is offered"
    );
    assert!(
        !html.contains(&format!("value=\"{}\"", clinic.room_id)),
        "the booked room is not offered"
    );
    assert!(
        html.contains(&format!("value=\"{spare_nurse}\"")),
        "the free nurse is offered"
    );
    assert!(
        !html.contains(&format!("value=\"{}\"", clinic.nurse_id)),
        "the booked nurse is not offered"
    );

    // Once the spare room is taken too, no room is left for that hour.
    let (_, third_patient) = platform
        .register_patient("third.patient@example.test")
        .await;
    let third_id = platform
        .another_doctor(&clinic, "third.doctor@clinic.example")
        .await;
    let third_id = third_id.as_str();
    let taken = platform
        .paid_appointment(&third_patient, third_id, &slot)
        .await;
    let approve = platform
        .book(
            Method::POST,
            &format!(
                "/api/appointments/{}/approve",
                taken["id"].as_str().unwrap()
            ),
            Some(&clinic.admin),
            Some(json!({"room_id": spare_room, "nurse_id": spare_nurse})),
        )
        .await;
    assert_eq!(approve.status, StatusCode::OK, "{:?}", approve.body);
    let (_, html) = page(&platform, &admin, "/admin/queue").await;
    assert!(html.contains("No room of the department is free at this time."));
    assert!(
        !html.contains(&format!("/admin/appointments/{waiting_id}/approve")),
        "nothing to approve with"
    );
}

#[tokio::test]
async fn each_role_sees_only_its_own_screens() {
    let platform = TestPlatform::start(&[
        Service::Identity,
        Service::Appointments,
        Service::Payments,
        Service::Notifications,
        Service::Prescriptions,
        Service::Gateway,
        Service::Web,
    ])
    .await;
    let clinic = platform.clinic().await;
    platform.register_patient("role.patient@example.test").await;
    let cases = [
        (
            "role.patient@example.test",
            "patient passphrase",
            "/appointments",
            ["/admin/queue", "/doctor", "/nurse", "/doctor/refills"],
        ),
        (
            clinic.doctor_email.as_str(),
            "staff passphrase",
            "/doctor",
            ["/admin/users", "/record", "/nurse", "/book?doctor_id=x"],
        ),
        (
            clinic.nurse_email.as_str(),
            "staff passphrase",
            "/nurse",
            [
                "/admin/payments",
                "/doctor",
                "/record",
                "/doctor/unavailability",
            ],
        ),
        (
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
            "/admin/queue",
            ["/doctor", "/nurse", "/record", "/doctor/refills"],
        ),
    ];
    for (email, password, home, others) in cases {
        let cookie = sign_in(&platform, email, password).await;
        let (status, _) = page(&platform, &cookie, home).await;
        assert_eq!(status, StatusCode::OK, "{email} on {home}");
        for other in others {
            let (status, html) = page(&platform, &cookie, other).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{email} on {other}");
            assert!(html.contains("Not available to you"));
        }
    }
}

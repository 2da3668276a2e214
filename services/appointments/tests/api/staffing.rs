//! `GET /api/appointments/{id}/staffing`: what an approval may choose, decided here rather
//! than by each client.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::Value;

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn staffing_offers_the_departments_rooms_and_nurses_that_no_overlapping_visit_holds() {
    let platform = TestPlatform::start(&[
        Service::Identity,
        Service::Appointments,
        Service::Payments,
        Service::Gateway,
    ])
    .await;
    let clinic = platform.clinic().await;
    let second_id = platform
        .another_doctor(&clinic, "staffing.doctor@clinic.example")
        .await;
    let spare_room = platform.another_room(&clinic, "Spare room").await;
    let spare_nurse = platform
        .another_nurse(&clinic, "staffing.nurse@clinic.example")
        .await;

    let slot = platform.free_slots(&clinic.doctor_id, None).await[0].clone();
    let (_, first_patient) = platform
        .register_patient("staffing.first@example.test")
        .await;
    let (_, second_patient) = platform
        .register_patient("staffing.second@example.test")
        .await;
    let first = platform
        .paid_appointment(&first_patient, &clinic.doctor_id, &slot)
        .await;
    let waiting = platform
        .paid_appointment(&second_patient, &second_id, &slot)
        .await;
    let waiting_id = waiting["id"].as_str().unwrap();
    let staffing = |id: String| {
        let platform = &platform;
        let admin = clinic.admin.clone();
        async move {
            platform
                .call(
                    Method::GET,
                    &format!("/api/appointments/{id}/staffing"),
                    Some(&admin),
                    None,
                )
                .await
        }
    };

    // Before any approval every room and nurse of the department is free.
    let before = staffing(waiting_id.to_owned()).await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.body);
    let rooms = ids(&before.body["rooms"]);
    let nurses = ids(&before.body["nurses"]);
    assert!(rooms.contains(&clinic.room_id) && rooms.contains(&spare_room));
    assert!(nurses.contains(&clinic.nurse_id) && nurses.contains(&spare_nurse));
    assert!(
        before.body["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|room| room["name"] == "Spare room"),
        "rooms carry their names"
    );

    // The first visit takes the clinic's room and nurse for that hour.
    let approved = platform
        .approve(&clinic, first["id"].as_str().unwrap())
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{:?}", approved.body);
    let after = staffing(waiting_id.to_owned()).await;
    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(ids(&after.body["rooms"]), vec![spare_room.clone()]);
    assert_eq!(ids(&after.body["nurses"]), vec![spare_nurse.clone()]);

    // The approved visit itself still sees its own room and nurse as free for it.
    let own = staffing(first["id"].as_str().unwrap().to_owned()).await;
    assert!(ids(&own.body["rooms"]).contains(&clinic.room_id));

    // An appointment that does not exist is a 404 problem; a patient may not ask.
    let missing = staffing(uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["code"], "appointment_not_found");
    let refused = platform
        .call(
            Method::GET,
            &format!("/api/appointments/{waiting_id}/staffing"),
            Some(&second_patient),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

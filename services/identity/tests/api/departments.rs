//! Departments and rooms.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn a_department_with_staff_or_rooms_cannot_be_deleted_and_an_empty_one_can() {
    let platform = TestPlatform::start(&[Service::Identity, Service::Gateway]).await;
    let admin = platform.admin_token().await;
    let department = platform.create_department(&admin, "Oncology").await;
    let id = department["id"].as_str().unwrap();
    let room = platform
        .call(
            Method::POST,
            "/api/rooms",
            Some(&admin),
            Some(json!({"department_id": id, "name": "O-101"})),
        )
        .await;
    assert_eq!(room.status, StatusCode::CREATED);

    let refused = platform
        .call(
            Method::DELETE,
            &format!("/api/departments/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "department_not_empty");

    let rooms = platform
        .call(
            Method::GET,
            &format!("/api/departments/{id}/rooms"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        rooms.body.as_array().unwrap().len(),
        1,
        "nothing was cascaded"
    );

    let room_id = room.body["id"].as_str().unwrap();
    assert_eq!(
        platform
            .call(
                Method::DELETE,
                &format!("/api/rooms/{room_id}"),
                Some(&admin),
                None
            )
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    platform
        .create_staff(&admin, "NURSE", "onc-nurse@clinic.example", Some(id))
        .await;
    let still_refused = platform
        .call(
            Method::DELETE,
            &format!("/api/departments/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        still_refused.status,
        StatusCode::CONFLICT,
        "a nurse still works there"
    );

    let empty = platform.create_department(&admin, "Closing").await;
    let empty_id = empty["id"].as_str().unwrap();
    let deleted = platform
        .call(
            Method::DELETE,
            &format!("/api/departments/{empty_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = platform
        .call(
            Method::GET,
            &format!("/api/departments/{empty_id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn department_and_room_names_are_unique_case_insensitively() {
    let platform = TestPlatform::start(&[Service::Identity]).await;
    let admin = platform.admin_token().await;
    let department = platform.create_department(&admin, "Radiology").await;
    let duplicate = platform
        .call(
            Method::POST,
            "/api/departments",
            Some(&admin),
            Some(json!({"name": "RADIOLOGY"})),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    let id = department["id"].as_str().unwrap();
    for name in ["R-1", "r-1"] {
        let reply = platform
            .call(
                Method::POST,
                "/api/rooms",
                Some(&admin),
                Some(json!({"department_id": id, "name": name})),
            )
            .await;
        let expected = if name == "R-1" {
            StatusCode::CREATED
        } else {
            StatusCode::CONFLICT
        };
        assert_eq!(reply.status, expected);
    }
    let orphan = platform
        .call(
            Method::POST,
            "/api/rooms",
            Some(&admin),
            Some(json!({"department_id": uuid::Uuid::now_v7(), "name": "X"})),
        )
        .await;
    assert_eq!(
        (orphan.status, orphan.code()),
        (StatusCode::NOT_FOUND, "unknown_department")
    );
}

//! Prescriptions: the allergy check, refills through the doctor's queue, ending them, and
//! who may call what.

use polyclinic_testing::Service;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::access::{call, setting};

fn item(medication: &str) -> Value {
    json!({"medication": medication, "strength": "500 mg", "form": "tablet", "dose": "1 tablet", "route": "oral",
           "frequency": "every 8 hours", "duration": "7 days", "quantity": 21})
}

async fn outbox_types(platform: &polyclinic_testing::TestPlatform) -> Vec<String> {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    sqlx::query_scalar("select event_type from prescriptions.outbox order by seq")
        .fetch_all(&pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_prescription_naming_an_allergy_is_refused_unless_the_doctor_overrides_with_a_reason() {
    let (platform, clinic, patient, token, appointment) = setting().await;
    let allergy = json!({"kind": "ALLERGY", "substance": "Penicillin", "reaction": "hives", "severity": "SEVERE"});
    let noted = call(
        &platform,
        Method::POST,
        &format!("/api/records/{patient}/entries"),
        Some(&clinic.doctor),
        Some(allergy),
    )
    .await;
    assert_eq!(noted.status, StatusCode::CREATED);
    let body = json!({"appointment_id": appointment["id"], "items": [item("Penicillin V")]});
    let refused = call(
        &platform,
        Method::POST,
        "/api/prescriptions",
        Some(&clinic.doctor),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "allergy_conflict")
    );
    assert_eq!(refused.body["conflicts"], json!(["Penicillin"]));

    let mut confirmed = body.clone();
    confirmed["allergy_override_reason"] = json!("tolerated under supervision in 2024");
    let issued = call(
        &platform,
        Method::POST,
        "/api/prescriptions",
        Some(&clinic.doctor),
        Some(confirmed),
    )
    .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    assert_eq!(issued.body["status"], "ACTIVE");
    assert_eq!(
        issued.body["allergy_override_reason"],
        "tolerated under supervision in 2024"
    );
    assert_eq!(issued.body["patient_id"].as_str(), Some(patient.as_str()));
    let fine = call(
        &platform,
        Method::POST,
        "/api/prescriptions",
        Some(&clinic.doctor),
        Some(json!({"appointment_id": appointment["id"], "items": [item("Ibuprofen")]})),
    )
    .await;
    assert_eq!(fine.status, StatusCode::CREATED);
    assert!(fine.body["allergy_override_reason"].is_null());
    assert_eq!(
        outbox_types(&platform).await,
        [
            "polyclinic.prescription.issued.v1",
            "polyclinic.prescription.issued.v1"
        ]
    );

    let mine = call(
        &platform,
        Method::GET,
        "/api/prescriptions/mine",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(mine.body.as_array().unwrap().len(), 2);
    let one = call(
        &platform,
        Method::GET,
        &format!("/api/prescriptions/{}", issued.body["id"].as_str().unwrap()),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(one.body["items"][0]["medication"], "Penicillin V");
}

#[tokio::test]
async fn refills_go_through_the_prescribing_doctors_queue() {
    let (platform, clinic, _, token, appointment) = setting().await;
    let prescribe = |refills: i64| json!({"appointment_id": appointment["id"], "items": [item("Salbutamol")], "refills_allowed": refills});
    let once = call(
        &platform,
        Method::POST,
        "/api/prescriptions",
        Some(&clinic.doctor),
        Some(prescribe(1)),
    )
    .await;
    let id = once.body["id"].as_str().unwrap().to_owned();
    let request = call(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{id}/refills"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(request.status, StatusCode::CREATED, "{:?}", request.body);
    let twice = call(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{id}/refills"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "refill_pending")
    );
    let queue = call(
        &platform,
        Method::GET,
        "/api/refills/queue",
        Some(&clinic.doctor),
        None,
    )
    .await;
    assert_eq!(queue.body.as_array().unwrap().len(), 1);
    let refill = queue.body[0]["id"].as_str().unwrap().to_owned();
    let (_, other_doctor) = platform
        .create_staff(
            &clinic.admin,
            "DOCTOR",
            "dr.nope@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    let not_theirs = call(
        &platform,
        Method::POST,
        &format!("/api/refills/{refill}/approve"),
        Some(&other_doctor),
        None,
    )
    .await;
    assert_eq!(not_theirs.status, StatusCode::NOT_FOUND);
    let approved = call(
        &platform,
        Method::POST,
        &format!("/api/refills/{refill}/approve"),
        Some(&clinic.doctor),
        None,
    )
    .await;
    assert_eq!(
        (approved.status, approved.body["status"].as_str()),
        (StatusCode::OK, Some("APPROVED"))
    );
    let after = call(
        &platform,
        Method::GET,
        &format!("/api/prescriptions/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(after.body["refills_left"], 0);
    let none_left = call(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{id}/refills"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (none_left.status, none_left.code()),
        (StatusCode::CONFLICT, "no_refill_possible")
    );

    let twice_allowed = call(
        &platform,
        Method::POST,
        "/api/prescriptions",
        Some(&clinic.doctor),
        Some(prescribe(2)),
    )
    .await;
    let second = twice_allowed.body["id"].as_str().unwrap().to_owned();
    let asked = call(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{second}/refills"),
        Some(&token),
        None,
    )
    .await;
    let refill = asked.body["id"].as_str().unwrap();
    let no_reason = call(
        &platform,
        Method::POST,
        &format!("/api/refills/{refill}/decline"),
        Some(&clinic.doctor),
        Some(json!({"reason": " "})),
    )
    .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let declined = call(
        &platform,
        Method::POST,
        &format!("/api/refills/{refill}/decline"),
        Some(&clinic.doctor),
        Some(json!({"reason": "please come in for a review"})),
    )
    .await;
    assert_eq!(
        (
            declined.body["status"].as_str(),
            declined.body["reason"].as_str()
        ),
        (Some("DECLINED"), Some("please come in for a review"))
    );

    let stopped = call(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{second}/stop"),
        Some(&clinic.doctor),
        Some(json!({"reason": "side effects"})),
    )
    .await;
    assert_eq!(
        (
            stopped.body["status"].as_str(),
            stopped.body["status_reason"].as_str()
        ),
        (Some("STOPPED"), Some("side effects"))
    );
    let again = call(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{second}/cancel"),
        Some(&clinic.doctor),
        Some(json!({"reason": "twice"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        outbox_types(&platform).await,
        [
            "polyclinic.prescription.issued.v1",
            "polyclinic.refill.requested.v1",
            "polyclinic.refill.approved.v1",
            "polyclinic.prescription.issued.v1",
            "polyclinic.refill.requested.v1",
            "polyclinic.refill.declined.v1",
            "polyclinic.prescription.cancelled.v1",
        ]
    );
}

#[tokio::test]
async fn empty_or_foreign_prescriptions_are_refused_and_nothing_is_stored() {
    let (platform, clinic, _, token, appointment) = setting().await;
    let (_, other_doctor) = platform
        .create_staff(
            &clinic.admin,
            "DOCTOR",
            "dr.far@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    for (who, body, status) in [
        (
            &clinic.doctor,
            json!({"appointment_id": appointment["id"], "items": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &clinic.doctor,
            json!({"appointment_id": appointment["id"], "items": [{"medication": "x"}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &clinic.doctor,
            json!({"appointment_id": appointment["id"], "items": [item(&"x".repeat(201))]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &clinic.doctor,
            json!({"appointment_id": appointment["id"], "items": [item("Ibuprofen")], "refills_allowed": 99}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &clinic.doctor,
            json!({"appointment_id": uuid::Uuid::now_v7(), "items": [item("Ibuprofen")]}),
            StatusCode::NOT_FOUND,
        ),
        (
            &other_doctor,
            json!({"appointment_id": appointment["id"], "items": [item("Ibuprofen")]}),
            StatusCode::NOT_FOUND,
        ),
        (
            &token,
            json!({"appointment_id": appointment["id"], "items": [item("Ibuprofen")]}),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let reply = call(
            &platform,
            Method::POST,
            "/api/prescriptions",
            Some(who),
            Some(body.clone()),
        )
        .await;
        assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
        if status == StatusCode::NOT_FOUND {
            // Another doctor's appointment reads exactly like one that does not exist.
            assert_eq!(reply.code(), "unknown_appointment");
        }
    }
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let stored: i64 = sqlx::query_scalar("select count(*) from prescriptions.prescriptions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn every_prescriptions_route_admits_exactly_the_right_callers() {
    let (platform, clinic, patient, token, appointment) = setting().await;
    let issued = call(&platform, Method::POST, "/api/prescriptions", Some(&clinic.doctor), Some(json!({"appointment_id": appointment["id"], "items": [item("Ibuprofen")], "refills_allowed": 3}))).await;
    let prescription = issued.body["id"].as_str().unwrap().to_owned();
    let entry = call(
        &platform,
        Method::POST,
        &format!("/api/records/{patient}/entries"),
        Some(&clinic.doctor),
        Some(crate::access::diagnosis()),
    )
    .await;
    let entry = entry.body["id"].as_str().unwrap().to_owned();
    let (_, other_patient) = platform.register_patient("nosy@clinic.example").await;
    let (_, other_doctor) = platform
        .create_staff(
            &clinic.admin,
            "DOCTOR",
            "dr.x@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    let callers: [(&str, Option<&str>); 7] = [
        ("anonymous", None),
        ("patient", Some(&token)),
        ("other patient", Some(&other_patient)),
        ("doctor", Some(&clinic.doctor)),
        ("other doctor", Some(&other_doctor)),
        ("nurse", Some(&clinic.nurse)),
        ("admin", Some(&clinic.admin)),
    ];
    // 2: passes (whatever the route then says), 0: 401, 3: 403, 4: 404.
    #[rustfmt::skip]
    let rows: Vec<(Method, String, Option<Value>, [u8; 7])> = vec![
        (Method::GET, format!("/api/records/{patient}"), None,                               [0, 2, 4, 2, 4, 2, 4]),
        (Method::POST, format!("/api/records/{patient}/entries"), Some(json!({"kind": "VITALS", "pulse_bpm": 70})), [0, 3, 3, 2, 4, 2, 4]),
        (Method::GET, format!("/api/records/{patient}/entries/{entry}/versions"), None,       [0, 2, 4, 2, 4, 2, 4]),
        (Method::GET, format!("/api/records/{patient}/access-log"), None,                     [0, 2, 4, 3, 3, 3, 2]),
        (Method::POST, "/api/prescriptions".to_owned(), Some(json!({"appointment_id": appointment["id"], "items": []})), [0, 3, 3, 2, 2, 3, 3]),
        (Method::GET, "/api/prescriptions/mine".to_owned(), None,                             [0, 2, 2, 2, 2, 2, 2]),
        (Method::GET, format!("/api/prescriptions/{prescription}"), None,                     [0, 2, 4, 2, 4, 2, 4]),
        (Method::POST, format!("/api/prescriptions/{prescription}/cancel"), Some(json!({"reason": ""})), [0, 3, 3, 2, 4, 3, 3]),
        (Method::POST, format!("/api/prescriptions/{prescription}/stop"), Some(json!({"reason": ""})), [0, 3, 3, 2, 4, 3, 3]),
        (Method::POST, format!("/api/prescriptions/{prescription}/refills"), None,            [0, 2, 4, 3, 3, 3, 3]),
        (Method::GET, "/api/refills/queue".to_owned(), None,                                  [0, 3, 3, 2, 2, 3, 3]),
        (Method::POST, format!("/api/refills/{}/approve", uuid::Uuid::now_v7()), None,        [0, 3, 3, 4, 4, 3, 3]),
        (Method::POST, format!("/api/refills/{}/decline", uuid::Uuid::now_v7()), Some(json!({"reason": "no"})), [0, 3, 3, 4, 4, 3, 3]),
        (Method::GET, "/api/audit".to_owned(), None,                                          [0, 3, 3, 3, 3, 3, 2]),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, expected) in &rows {
        for ((who, token), expected) in callers.iter().zip(expected) {
            let reply = platform
                .call_service(
                    Service::Prescriptions,
                    method.clone(),
                    path,
                    *token,
                    body.clone(),
                )
                .await;
            assert_ne!(
                reply.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{method} {path} as {who}: {:?}",
                reply.body
            );
            let got = match reply.status {
                StatusCode::UNAUTHORIZED => 0,
                StatusCode::FORBIDDEN => 3,
                StatusCode::NOT_FOUND => 4,
                _ => 2,
            };
            if got != *expected {
                wrong.push(format!(
                    "{method} {path} as {who}: expected {expected}, got {} {:?}",
                    reply.status, reply.body["code"]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn a_prescription_past_its_validity_is_completed_once_with_its_audit_row() {
    let (platform, clinic, _, token, appointment) = setting().await;
    let issued = call(&platform, Method::POST, "/api/prescriptions", Some(&clinic.doctor), Some(json!({"appointment_id": appointment["id"], "items": [item("Ibuprofen")], "refills_allowed": 1}))).await;
    let id = issued.body["id"].as_str().unwrap().to_owned();
    let pool = polyclinic_db::pool(&platform.config, Service::Prescriptions).unwrap();
    let today = chrono::Utc::now().date_naive();
    assert_eq!(
        polyclinic_prescriptions::complete_expired(&pool, today)
            .await
            .unwrap(),
        0,
        "still valid"
    );
    let later = today + chrono::Duration::days(31);
    assert_eq!(
        polyclinic_prescriptions::complete_expired(&pool, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        polyclinic_prescriptions::complete_expired(&pool, later)
            .await
            .unwrap(),
        0,
        "once"
    );
    let done = call(
        &platform,
        Method::GET,
        &format!("/api/prescriptions/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(done.body["status"], "COMPLETED");
    let refill = call(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{id}/refills"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        refill.status,
        StatusCode::CONFLICT,
        "a completed prescription is not refilled"
    );
    let rows = crate::access::audit_rows(&platform).await;
    assert!(
        rows.iter()
            .any(|(actor, action, _)| actor == "polyclinic-prescriptions"
                && action == "prescription.complete")
    );
}

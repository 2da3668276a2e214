//! Entries: typed, checked, never deleted; a correction keeps the version it replaces.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::access::{call, diagnosis, setting};

#[tokio::test]
async fn a_correction_is_a_new_version_and_the_previous_one_stays_readable() {
    let (platform, clinic, patient, token, _) = setting().await;
    let entries = format!("/api/records/{patient}/entries");
    let first = call(
        &platform,
        Method::POST,
        &entries,
        Some(&clinic.doctor),
        Some(diagnosis()),
    )
    .await;
    let first_id = first.body["id"].as_str().unwrap().to_owned();
    let corrected = call(
        &platform,
        Method::POST,
        &entries,
        Some(&clinic.doctor),
        Some(json!({"kind": "DIAGNOSIS", "icd10_code": "J45.41", "description": "Moderate persistent asthma", "corrects": first_id})),
    )
    .await;
    assert_eq!(
        corrected.status,
        StatusCode::CREATED,
        "{:?}",
        corrected.body
    );
    assert_eq!(
        (
            corrected.body["version"].as_i64(),
            corrected.body["previous_id"].as_str()
        ),
        (Some(2), Some(first_id.as_str()))
    );

    let record = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&token),
        None,
    )
    .await;
    let current = record.body["entries"].as_array().unwrap();
    assert_eq!(current.len(), 1, "only the latest version is current");
    assert_eq!(current[0]["icd10_code"], "J45.41");
    let versions = call(
        &platform,
        Method::GET,
        &format!("{entries}/{first_id}/versions"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(versions.status, StatusCode::OK);
    let codes: Vec<&str> = versions
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["icd10_code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["J45.909", "J45.41"], "history is readable");
    assert_eq!(versions.body[0]["corrected_by"], corrected.body["id"]);

    let again = call(
        &platform,
        Method::POST,
        &entries,
        Some(&clinic.doctor),
        Some(json!({"kind": "DIAGNOSIS", "icd10_code": "J45", "description": "x", "corrects": first_id})),
    )
    .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "entry_corrected")
    );
    let other_kind = call(
        &platform,
        Method::POST,
        &entries,
        Some(&clinic.doctor),
        Some(json!({"kind": "ALLERGY", "substance": "latex", "severity": "MILD", "corrects": corrected.body["id"]})),
    )
    .await;
    assert_eq!(other_kind.status, StatusCode::UNPROCESSABLE_ENTITY);
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let kept: i64 = sqlx::query_scalar("select count(*) from prescriptions.entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 2, "nothing deleted");
}

#[tokio::test]
async fn malformed_codes_impossible_vitals_and_huge_texts_are_refused_and_nothing_is_stored() {
    let (platform, clinic, patient, _, _) = setting().await;
    let entries = format!("/api/records/{patient}/entries");
    for (body, status) in [
        (
            json!({"kind": "DIAGNOSIS", "icd10_code": "asthma", "description": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "DIAGNOSIS", "icd10_code": "J45", "description": "x".repeat(2001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "VITALS", "pulse_bpm": 900}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "VITALS", "systolic_mmhg": 70, "diastolic_mmhg": 90}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"kind": "VITALS"}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"kind": "NOTE", "plan": "x".repeat(10_001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"kind": "NOTE"}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"kind": "ALLERGY", "substance": "latex", "severity": "DEADLY"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "HOROSCOPE"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"kind": "DIAGNOSIS", "icd10_code": "J45", "description": "x", "corrects": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let reply = call(
            &platform,
            Method::POST,
            &entries,
            Some(&clinic.doctor),
            Some(body.clone()),
        )
        .await;
        assert_eq!(reply.status, status, "{body}: {:?}", reply.body);
    }
    let malformed = platform
        .client()
        .post(platform.url(polyclinic_testing::Service::Gateway, &entries))
        .bearer_auth(&clinic.doctor)
        .header("content-type", "application/json")
        .body("{\"kind\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let stored: i64 = sqlx::query_scalar("select count(*) from prescriptions.entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

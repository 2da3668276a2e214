//! Who may read and write a patient's record, and the audit trail of every attempt.

use polyclinic_testing::{Clinic, Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A platform, its clinic, and a patient with a SCHEDULED appointment with the clinic's
/// doctor and nurse (returned with the patient's id and token).
pub async fn setting() -> (TestPlatform, Clinic, String, String, Value) {
    let platform = TestPlatform::start(&[
        Service::Identity,
        Service::Appointments,
        Service::Payments,
        Service::Prescriptions,
        Service::Gateway,
    ])
    .await;
    let clinic = platform.clinic().await;
    let (patient, token) = platform.register_patient("patient@clinic.example").await;
    let starts_at = platform.free_slots(&clinic.doctor_id, None).await[1].clone();
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts_at)
        .await;
    let approved = platform
        .approve(&clinic, paid["id"].as_str().unwrap())
        .await;
    assert_eq!(approved.status, StatusCode::OK);
    (
        platform,
        clinic,
        patient["id"].as_str().unwrap().to_owned(),
        token,
        approved.body,
    )
}

pub async fn call(
    platform: &TestPlatform,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> polyclinic_testing::Reply {
    platform
        .call_service(
            platform.entry(Service::Prescriptions),
            method,
            path,
            token,
            body,
        )
        .await
}

pub fn diagnosis() -> Value {
    json!({"kind": "DIAGNOSIS", "icd10_code": "J45.909", "description": "Asthma, uncomplicated"})
}

pub async fn audit_rows(platform: &TestPlatform) -> Vec<(String, String, String)> {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let rows =
        sqlx::query_as("select actor_id, action, outcome from prescriptions.audit_log order by id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn the_doctor_of_a_completed_appointment_writes_and_another_doctor_gets_404_in_the_trail() {
    let (platform, clinic, patient, _, appointment) = setting().await;
    // The visit took place.
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    sqlx::query("update appointments.appointments set starts_at = starts_at - interval '3 days', ends_at = ends_at - interval '3 days'")
        .execute(&pool)
        .await
        .unwrap();
    let completed = platform
        .book(
            Method::POST,
            &format!(
                "/api/appointments/{}/complete",
                appointment["id"].as_str().unwrap()
            ),
            Some(&clinic.doctor),
            None,
        )
        .await;
    assert_eq!(completed.body["status"], "COMPLETED");

    let path = format!("/api/records/{patient}/entries");
    let written = call(
        &platform,
        Method::POST,
        &path,
        Some(&clinic.doctor),
        Some(diagnosis()),
    )
    .await;
    assert_eq!(written.status, StatusCode::CREATED, "{:?}", written.body);
    assert_eq!(written.body["kind"], "DIAGNOSIS");
    assert_eq!(written.body["version"], 1);
    let record = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&clinic.doctor),
        None,
    )
    .await;
    assert_eq!(record.status, StatusCode::OK);
    assert_eq!(record.body["entries"][0]["icd10_code"], "J45.909");

    let (other, other_token) = platform
        .create_staff(
            &clinic.admin,
            "DOCTOR",
            "dr.other@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    let read = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(
        (read.status, read.code()),
        (StatusCode::NOT_FOUND, "record_not_found")
    );
    let write = call(
        &platform,
        Method::POST,
        &path,
        Some(&other_token),
        Some(diagnosis()),
    )
    .await;
    assert_eq!(write.status, StatusCode::NOT_FOUND);
    let other_id = other["id"].as_str().unwrap();
    let denied: Vec<_> = audit_rows(&platform)
        .await
        .into_iter()
        .filter(|(actor, _, _)| actor == other_id)
        .collect();
    assert_eq!(
        denied,
        [
            (
                other_id.to_owned(),
                "record.read".to_owned(),
                "denied".to_owned()
            ),
            (
                other_id.to_owned(),
                "entry.write".to_owned(),
                "denied".to_owned()
            )
        ]
    );
    let search = platform
        .call(
            Method::GET,
            &format!("/api/audit?actor_id={other_id}&outcome=denied"),
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(search.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_nurse_of_the_appointment_reads_and_records_vitals_but_cannot_prescribe_or_diagnose() {
    let (platform, clinic, patient, _, appointment) = setting().await;
    let path = format!("/api/records/{patient}/entries");
    let vitals = json!({"kind": "VITALS", "systolic_mmhg": 128, "diastolic_mmhg": 82, "pulse_bpm": 71, "temperature_c": 36.8});
    let recorded = call(
        &platform,
        Method::POST,
        &path,
        Some(&clinic.nurse),
        Some(vitals),
    )
    .await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{:?}", recorded.body);
    assert_eq!(recorded.body["temperature_c"], 36.8);
    assert_eq!(recorded.body["author_role"], "NURSE");
    let read = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&clinic.nurse),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    let diagnose = call(
        &platform,
        Method::POST,
        &path,
        Some(&clinic.nurse),
        Some(diagnosis()),
    )
    .await;
    assert_eq!(
        diagnose.status,
        StatusCode::NOT_FOUND,
        "a nurse records vitals only"
    );
    let prescribe = call(
        &platform,
        Method::POST,
        "/api/prescriptions",
        Some(&clinic.nurse),
        Some(json!({"appointment_id": appointment["id"], "items": []})),
    )
    .await;
    assert_eq!(prescribe.status, StatusCode::FORBIDDEN);
    let (_, other_nurse) = platform
        .create_staff(
            &clinic.admin,
            "NURSE",
            "n.other@clinic.example",
            Some(&clinic.department_id),
        )
        .await;
    let stranger = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&other_nurse),
        None,
    )
    .await;
    assert_eq!(
        stranger.status,
        StatusCode::NOT_FOUND,
        "only the nurse of the patient's appointment"
    );
}

#[tokio::test]
async fn a_patient_reads_only_their_own_record_and_an_admin_reads_no_clinical_content() {
    let (platform, clinic, patient, token, _) = setting().await;
    let written = call(
        &platform,
        Method::POST,
        &format!("/api/records/{patient}/entries"),
        Some(&clinic.doctor),
        Some(diagnosis()),
    )
    .await;
    assert_eq!(written.status, StatusCode::CREATED);
    let own = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body["entries"].as_array().unwrap().len(), 1);
    let write_own = call(
        &platform,
        Method::POST,
        &format!("/api/records/{patient}/entries"),
        Some(&token),
        Some(diagnosis()),
    )
    .await;
    assert_eq!(
        write_own.status,
        StatusCode::FORBIDDEN,
        "patients do not write records"
    );

    let (other_patient, other_token) = platform.register_patient("other@clinic.example").await;
    let theirs = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let admin = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}"),
        Some(&clinic.admin),
        None,
    )
    .await;
    assert_eq!(
        admin.status,
        StatusCode::NOT_FOUND,
        "admins read no clinical content"
    );

    // Who accessed the record: the patient sees it, and so does an admin; nobody else.
    let log = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}/access-log"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(log.status, StatusCode::OK);
    let actors: Vec<&str> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["actor_role"].as_str().unwrap())
        .collect();
    assert!(
        actors.contains(&"DOCTOR") && actors.contains(&"PATIENT") && actors.contains(&"ADMIN"),
        "{actors:?}"
    );
    let admin_log = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}/access-log"),
        Some(&clinic.admin),
        None,
    )
    .await;
    assert_eq!(admin_log.status, StatusCode::OK);
    let snooping = call(
        &platform,
        Method::GET,
        &format!("/api/records/{patient}/access-log"),
        Some(&other_token),
        None,
    )
    .await;
    assert_eq!(snooping.status, StatusCode::NOT_FOUND);
    let _ = other_patient;
}

#[tokio::test]
async fn every_access_is_one_audit_row_the_trail_refuses_changes_and_verify_finds_an_altered_row() {
    let (platform, clinic, patient, token, _) = setting().await;
    let before = audit_rows(&platform).await.len();
    let record = format!("/api/records/{patient}");
    call(
        &platform,
        Method::POST,
        &format!("{record}/entries"),
        Some(&clinic.doctor),
        Some(diagnosis()),
    )
    .await;
    call(&platform, Method::GET, &record, Some(&clinic.doctor), None).await;
    call(&platform, Method::GET, &record, Some(&token), None).await;
    call(&platform, Method::GET, &record, Some(&clinic.admin), None).await;
    call(
        &platform,
        Method::GET,
        "/api/prescriptions/mine",
        Some(&token),
        None,
    )
    .await;
    let rows = audit_rows(&platform).await;
    assert_eq!(
        rows.len() - before,
        5,
        "one row per access, the refused one and the list read too: {rows:?}"
    );
    assert_eq!(
        rows.iter()
            .filter(|(_, _, outcome)| outcome == "denied")
            .count(),
        1
    );

    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    for statement in [
        "update prescriptions.audit_log set outcome = 'allowed'",
        "delete from prescriptions.audit_log",
        "truncate prescriptions.audit_log",
    ] {
        let refused = sqlx::query(statement).execute(&pool).await.unwrap_err();
        assert!(
            refused.to_string().contains("append-only"),
            "{statement}: {refused}"
        );
    }
    let intact = polyclinic_prescriptions::verify_audit(&platform.config)
        .await
        .unwrap();
    assert_eq!((intact.rows as usize, intact.broken_at), (rows.len(), None));

    // Someone with the rights to switch the triggers off rewrites a refusal as allowed.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("alter table prescriptions.audit_log disable trigger audit_log_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    let altered: i64 = sqlx::query_scalar("update prescriptions.audit_log set outcome = 'allowed' where outcome = 'denied' returning id")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query("alter table prescriptions.audit_log enable trigger audit_log_append_only")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let broken = polyclinic_prescriptions::verify_audit(&platform.config)
        .await
        .unwrap();
    assert_eq!(broken.broken_at, Some(altered));
}

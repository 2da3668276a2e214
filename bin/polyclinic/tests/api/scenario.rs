//! A day at the clinic, driven over HTTP through the gateway only, as real clients would:
//! an admin sets the clinic up, patients register and book, cards are authorised, bookings
//! are approved, rejected, moved and cancelled, the care team records vitals, diagnoses and
//! prescribes, a refill is asked for and approved. At the end every service's state and every
//! email is checked. Run on both buses and both lock backends.

use std::collections::BTreeMap;
use std::time::Duration;

use mail_parser::MessageParser;
use polyclinic_config::{EmailTransport, LockBackend};
use polyclinic_testing::{Service, SmtpSink, TestPlatform, use_kafka};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

struct Staff {
    id: String,
    token: String,
}

async fn staff(
    platform: &TestPlatform,
    admin: &str,
    role: &str,
    name: &str,
    department: &str,
) -> Staff {
    let email = format!("{name}@day.example");
    let (user, token) = platform
        .create_staff(admin, role, &email, Some(department))
        .await;
    Staff {
        id: user["id"].as_str().unwrap().to_owned(),
        token,
    }
}

async fn ok(
    platform: &TestPlatform,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Value {
    let reply = platform.call(method.clone(), path, Some(token), body).await;
    assert!(
        reply.status.is_success(),
        "{method} {path}: {} {:?}",
        reply.status,
        reply.body
    );
    reply.body
}

async fn a_day_at_the_clinic(kafka: bool, locks: LockBackend) {
    let sink = SmtpSink::start().await;
    let platform = TestPlatform::start_with(&Service::ALL, |config, _| {
        config.email.transport = EmailTransport::Smtp;
        config.email.smtp_url = Some(format!("smtp://{}?tls=none", sink.address()));
        config.locks = locks;
        if kafka {
            use_kafka(config);
        }
    })
    .await;
    let admin = platform.admin_token().await;

    // The admin sets the clinic up.
    let mut departments = Vec::new();
    for name in ["Cardiology", "Dermatology"] {
        departments.push(
            platform.create_department(&admin, name).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut rooms = Vec::new();
    for (name, department) in [("C-1", &departments[0]), ("D-1", &departments[1])] {
        let room = ok(
            &platform,
            Method::POST,
            "/api/rooms",
            &admin,
            Some(json!({"name": name, "department_id": department})),
        )
        .await;
        rooms.push(room["id"].as_str().unwrap().to_owned());
    }
    let cardiologist = staff(&platform, &admin, "DOCTOR", "cardiologist", &departments[0]).await;
    let dermatologist = staff(
        &platform,
        &admin,
        "DOCTOR",
        "dermatologist",
        &departments[1],
    )
    .await;
    let cardio_nurse = staff(&platform, &admin, "NURSE", "cardio-nurse", &departments[0]).await;
    let derma_nurse = staff(&platform, &admin, "NURSE", "derma-nurse", &departments[1]).await;
    for doctor in [&cardiologist, &dermatologist] {
        let days: Vec<Value> = (1..=7).map(|day| json!({"weekday": day, "starts_at": "00:00", "ends_at": "23:00", "slot_minutes": 60})).collect();
        ok(
            &platform,
            Method::PUT,
            &format!("/api/doctors/{}/schedule", doctor.id),
            &doctor.token,
            Some(json!({ "days": days })),
        )
        .await;
    }
    let mut patients = Vec::new();
    for name in ["ada", "bob", "cy"] {
        let (user, token) = platform
            .register_patient(&format!("{name}@day.example"))
            .await;
        patients.push((user["id"].as_str().unwrap().to_owned(), token));
    }
    let (ada, bob, cy) = (&patients[0], &patients[1], &patients[2]);
    let slots = |doctor: &str| {
        let path = format!(
            "/api/doctors/{doctor}/availability?from={}",
            (chrono::Utc::now() + chrono::Duration::days(2)).date_naive()
        );
        let platform = &platform;
        async move {
            let reply = platform.call(Method::GET, &path, None, None).await;
            reply.body["slots"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["state"] == "free")
                .map(|s| s["starts_at"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let cardio_slots = slots(&cardiologist.id).await;
    let derma_slots = slots(&dermatologist.id).await;

    // Ada books the cardiologist, pays, is approved.
    let visit = platform
        .paid_appointment(&ada.1, &cardiologist.id, &cardio_slots[0])
        .await;
    let visit_id = visit["id"].as_str().unwrap().to_owned();
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{visit_id}/approve"),
        &admin,
        Some(json!({"room_id": rooms[0], "nurse_id": cardio_nurse.id})),
    )
    .await;
    // Bob's request is rejected.
    let rejected = platform
        .paid_appointment(&bob.1, &cardiologist.id, &cardio_slots[1])
        .await;
    let rejected_id = rejected["id"].as_str().unwrap().to_owned();
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{rejected_id}/reject"),
        &admin,
        Some(json!({"reason": "please see your GP first"})),
    )
    .await;
    // Cy books the dermatologist, moves it, is approved, then cancels in time.
    let moved = platform
        .paid_appointment(&cy.1, &dermatologist.id, &derma_slots[0])
        .await;
    let moved_id = moved["id"].as_str().unwrap().to_owned();
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{moved_id}/reschedule"),
        &cy.1,
        Some(json!({"starts_at": derma_slots[2]})),
    )
    .await;
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{moved_id}/approve"),
        &admin,
        Some(json!({"room_id": rooms[1], "nurse_id": derma_nurse.id})),
    )
    .await;
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{moved_id}/cancel"),
        &cy.1,
        Some(json!({"reason": "travelling"})),
    )
    .await;
    // A room of another department and a busy nurse are refused.
    let wrong = platform
        .paid_appointment(&bob.1, &cardiologist.id, &cardio_slots[3])
        .await;
    let wrong_room = platform
        .call(
            Method::POST,
            &format!(
                "/api/appointments/{}/approve",
                wrong["id"].as_str().unwrap()
            ),
            Some(&admin),
            Some(json!({"room_id": rooms[1], "nurse_id": cardio_nurse.id})),
        )
        .await;
    assert_eq!(
        (wrong_room.status, wrong_room.code()),
        (StatusCode::CONFLICT, "invalid_room")
    );
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{}/cancel", wrong["id"].as_str().unwrap()),
        &admin,
        Some(json!({"reason": "duplicate request"})),
    )
    .await;

    // The care team at work on Ada's visit.
    ok(
        &platform,
        Method::POST,
        &format!("/api/records/{}/entries", ada.0),
        &cardio_nurse.token,
        Some(
            json!({"kind": "VITALS", "systolic_mmhg": 135, "diastolic_mmhg": 85, "pulse_bpm": 78}),
        ),
    )
    .await;
    ok(&platform, Method::POST, &format!("/api/records/{}/entries", ada.0), &cardiologist.token, Some(json!({"kind": "DIAGNOSIS", "icd10_code": "I10", "description": "Essential hypertension"}))).await;
    let prescription = ok(
        &platform,
        Method::POST,
        "/api/prescriptions",
        &cardiologist.token,
        Some(json!({"appointment_id": visit_id, "refills_allowed": 1, "items": [{"medication": "Ramipril", "strength": "5 mg", "form": "tablet",
            "dose": "1 tablet", "route": "oral", "frequency": "once daily", "duration": "30 days", "quantity": 30}]})),
    )
    .await;
    let prescription_id = prescription["id"].as_str().unwrap();
    ok(
        &platform,
        Method::POST,
        &format!("/api/prescriptions/{prescription_id}/refills"),
        &ada.1,
        None,
    )
    .await;
    let queue = ok(
        &platform,
        Method::GET,
        "/api/refills/queue",
        &cardiologist.token,
        None,
    )
    .await;
    ok(
        &platform,
        Method::POST,
        &format!("/api/refills/{}/approve", queue[0]["id"].as_str().unwrap()),
        &cardiologist.token,
        None,
    )
    .await;

    // Every email, to the right people, once: 8 welcomes, Ada's approved visit (4), Bob's
    // rejection (2) and his withdrawn request (3), Cy's booking, move, approval and
    // cancellation (9, her nurse told of the cancellation too), the prescription and its
    // refill (3).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sink.received().len() < 29 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for received in sink.received() {
        let message = MessageParser::default().parse(&received.data).unwrap();
        assert!(message.body_text(0).is_some() && message.body_html(0).is_some());
        got.entry(received.to[0].clone())
            .or_default()
            .push(message.subject().unwrap_or("").to_owned());
    }
    let count = |to: &str, starts: &str| {
        got.get(to).map_or(0, |subjects| {
            subjects.iter().filter(|s| s.starts_with(starts)).count()
        })
    };
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 29, "{got:#?}");
    for to in got.keys() {
        assert_eq!(count(to, "Welcome to Polyclinic"), 1, "{to}");
    }
    assert_eq!(got.len(), 8, "nobody else got email");
    for (to, starts, times) in [
        ("ada@day.example", "Payment authorised", 1),
        ("ada@day.example", "Confirmed:", 1),
        ("ada@day.example", "A new prescription", 1),
        ("ada@day.example", "Your refill was approved", 1),
        ("cardiologist@day.example", "New appointment:", 1),
        ("cardiologist@day.example", "Refill request", 1),
        ("cardiologist@day.example", "Cancelled:", 1),
        ("cardio-nurse@day.example", "Assigned:", 1),
        ("bob@day.example", "Payment authorised", 2),
        ("bob@day.example", "Your appointment request", 1),
        ("bob@day.example", "Cancelled:", 1),
        ("cy@day.example", "Payment authorised", 1),
        ("cy@day.example", "Moved:", 1),
        ("cy@day.example", "Confirmed:", 1),
        ("cy@day.example", "Cancelled:", 1),
        ("dermatologist@day.example", "Moved:", 1),
        ("dermatologist@day.example", "New appointment:", 1),
        ("dermatologist@day.example", "Cancelled:", 1),
        ("derma-nurse@day.example", "Assigned:", 1),
        ("derma-nurse@day.example", "Cancelled:", 1),
    ] {
        assert_eq!(count(to, starts), times, "{to}: {starts}: {got:#?}");
    }

    // Every service's final state.
    let status_of = |id: String| {
        let platform = &platform;
        let admin = admin.clone();
        async move {
            platform
                .call(
                    Method::GET,
                    &format!("/api/appointments/{id}"),
                    Some(&admin),
                    None,
                )
                .await
                .body["status"]
                .clone()
        }
    };
    assert_eq!(status_of(visit_id.clone()).await, "SCHEDULED");
    assert_eq!(status_of(rejected_id).await, "REJECTED");
    assert_eq!(status_of(moved_id).await, "CANCELLED");
    let payments = ok(
        &platform,
        Method::GET,
        "/api/payments?limit=100",
        &admin,
        None,
    )
    .await;
    let mut settled: Vec<(String, i64, i64)> = payments["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["status"].as_str().unwrap().to_owned(),
                p["amount_captured"].as_i64().unwrap(),
                p["amount_refunded"].as_i64().unwrap(),
            )
        })
        .collect();
    settled.sort();
    assert_eq!(
        settled,
        [
            ("canceled".to_owned(), 0, 0),
            ("canceled".to_owned(), 0, 0),
            ("succeeded".to_owned(), 6000, 0),
            ("succeeded".to_owned(), 6000, 6000)
        ],
        "captured for the visit, voided for the rejection and the withdrawal, refunded for the cancellation"
    );
    let record = ok(
        &platform,
        Method::GET,
        &format!("/api/records/{}", ada.0),
        &ada.1,
        None,
    )
    .await;
    assert_eq!(record["entries"].as_array().unwrap().len(), 2);
    assert_eq!(record["prescriptions"][0]["refills_left"], 0);
    let inbox = ok(
        &platform,
        Method::GET,
        "/api/notifications/me",
        &ada.1,
        None,
    )
    .await;
    assert_eq!(inbox["unread_count"], 5);
    let access = ok(
        &platform,
        Method::GET,
        &format!("/api/records/{}/access-log", ada.0),
        &ada.1,
        None,
    )
    .await;
    let roles: std::collections::BTreeSet<&str> = access
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["actor_role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["DOCTOR", "NURSE", "PATIENT"].into_iter().collect());
    let failed = ok(
        &platform,
        Method::GET,
        "/api/notifications?status=FAILED",
        &admin,
        None,
    )
    .await;
    assert!(failed["items"].as_array().unwrap().is_empty());
    let letters = ok(
        &platform,
        Method::GET,
        "/api/events/dead-letters",
        &admin,
        None,
    )
    .await;
    assert!(
        letters["items"].as_array().unwrap().is_empty()
            && letters["unreachable"].as_array().unwrap().is_empty()
    );
}

#[tokio::test]
async fn a_day_at_the_clinic_on_the_postgres_bus_with_advisory_locks() {
    a_day_at_the_clinic(false, LockBackend::Postgres).await;
}

#[tokio::test]
async fn a_day_at_the_clinic_on_the_postgres_bus_with_redis_locks() {
    a_day_at_the_clinic(false, LockBackend::Redis).await;
}

#[tokio::test]
async fn a_day_at_the_clinic_on_the_kafka_bus_with_advisory_locks() {
    a_day_at_the_clinic(true, LockBackend::Postgres).await;
}

#[tokio::test]
async fn a_day_at_the_clinic_on_the_kafka_bus_with_redis_locks() {
    a_day_at_the_clinic(true, LockBackend::Redis).await;
}

//! A day at the clinic, driven over HTTP through the gateway only, as real clients would:
//! an admin sets the clinic up, patients register and book, cards are authorised, bookings
//! are approved, rejected, moved and cancelled, a cancelled slot goes to the first patient
//! on its waitlist who claims and pays it, visits three weeks ahead have their cards saved
//! and authorised two days before (one refused, and cancelled when no other card comes), the
//! care team records vitals, diagnoses and prescribes, a refill is asked for and approved,
//! and a patient's calendar feed lists her visit. At the end every service's state, every
//! email and every calendar invite is checked. Run on both buses and both lock backends;
//! the payments' card jobs run with the clock moved.

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
    // Dee waits for the dermatologist at the time Cy now holds.
    let (_, dee) = platform.register_patient("dee@day.example").await;
    let held: chrono::DateTime<chrono::Utc> = derma_slots[2].parse().unwrap();
    let hour = held.format("%H").to_string().parse::<u32>().unwrap();
    ok(
        &platform,
        Method::POST,
        "/api/waitlist",
        &dee,
        Some(json!({"doctor_id": dermatologist.id, "from": held.date_naive(), "to": held.date_naive(),
                    "earliest": format!("{hour:02}:00"), "latest": format!("{:02}:00", hour + 1)})),
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
    // The freed slot is held for Dee, who claims it, pays, and is approved.
    let offered = polyclinic_testing::eventually("Dee's offer", || async {
        let mine = platform
            .call(Method::GET, "/api/waitlist/mine", Some(&dee), None)
            .await;
        mine.body[0]["offer"]["appointment_id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let claimed = ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{offered}/claim"),
        &dee,
        None,
    )
    .await;
    let paid = platform
        .pay(
            &dee,
            claimed["payment"]["id"].as_str().unwrap(),
            "pm_card_visa",
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK, "{:?}", paid.body);
    platform.appointment_becomes(&dee, &offered, "PAID").await;
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{offered}/approve"),
        &admin,
        Some(json!({"room_id": rooms[1], "nurse_id": derma_nurse.id})),
    )
    .await;

    // Eve books three weeks ahead: her card is saved, the visit approved, and two days
    // before it the card is authorised off-session and captured. Fay's card is refused
    // then, and without another by the deadline her visit is cancelled.
    let far = (chrono::Utc::now() + chrono::Duration::days(21)).date_naive();
    let payments_pool = polyclinic_db::pool(&platform.config, Service::Payments).unwrap();
    let (ledger, _) = polyclinic_payments::ledger(&platform.config, &payments_pool).unwrap();
    let mut far_visits = Vec::new();
    for (name, hour, card) in [
        ("eve", 9, "pm_card_visa"),
        ("fay", 10, "pm_card_chargeCustomerFail"),
    ] {
        let (_, token) = platform
            .register_patient(&format!("{name}@day.example"))
            .await;
        let starts = far.and_hms_opt(hour, 0, 0).unwrap().and_utc();
        let reserved = platform
            .reserve(&token, &cardiologist.id, &starts.to_rfc3339())
            .await;
        let saved = platform
            .pay(&token, reserved["payment"]["id"].as_str().unwrap(), card)
            .await;
        assert_eq!(saved.body["status"], "card_saved", "{:?}", saved.body);
        let id = reserved["id"].as_str().unwrap().to_owned();
        platform.appointment_becomes(&token, &id, "PAID").await;
        far_visits.push((token, id, starts));
    }
    ok(
        &platform,
        Method::POST,
        &format!("/api/appointments/{}/approve", far_visits[0].1),
        &admin,
        Some(json!({"room_id": rooms[0], "nurse_id": cardio_nurse.id})),
    )
    .await;
    let two_days_before = far_visits[0].2 - chrono::Duration::hours(47);
    assert_eq!(
        ledger
            .authorize_due(two_days_before + chrono::Duration::hours(2))
            .await
            .unwrap(),
        1,
        "Eve's card; Fay's is refused"
    );
    assert_eq!(
        ledger
            .cancel_unmended(two_days_before + chrono::Duration::hours(30))
            .await
            .unwrap(),
        1
    );
    platform
        .appointment_becomes(&far_visits[1].0, &far_visits[1].1, "CANCELLED")
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

    // Every email, to the right people, once: 11 welcomes, Ada's approved visit (4), Bob's
    // rejection (2) and his withdrawn request (3), Cy's booking, move, approval and
    // cancellation (9, her nurse told of the cancellation too), Dee's offer, claim, payment
    // and approval (6), Eve's saved card and approval (4), Fay's saved card, the request for
    // another card and the cancellation (4), the prescription and its refill (3).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sink.received().len() < 46 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut invites: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for received in sink.received() {
        let message = MessageParser::default().parse(&received.data).unwrap();
        assert!(message.body_text(0).is_some() && message.body_html(0).is_some());
        let subject = message.subject().unwrap_or("").to_owned();
        // The calendar part of emails about an appointment's time.
        let method = message.parts.iter().find_map(|part| {
            use mail_parser::MimeHeaders;
            let kind = part.content_type()?;
            (kind.ctype() == "text" && kind.subtype() == Some("calendar"))
                .then(|| kind.attribute("method").unwrap_or("").to_owned())
        });
        if let Some(method) = method {
            invites
                .entry(received.to[0].clone())
                .or_default()
                .push(format!("{method} {subject}"));
        }
        got.entry(received.to[0].clone()).or_default().push(subject);
    }
    let count = |to: &str, starts: &str| {
        got.get(to).map_or(0, |subjects| {
            subjects.iter().filter(|s| s.starts_with(starts)).count()
        })
    };
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 46, "{got:#?}");
    for to in got.keys() {
        assert_eq!(count(to, "Welcome to Polyclinic"), 1, "{to}");
    }
    assert_eq!(got.len(), 11, "nobody else got email");
    for (to, starts, times) in [
        ("ada@day.example", "Payment authorised", 1),
        ("ada@day.example", "Confirmed:", 1),
        ("ada@day.example", "A new prescription", 1),
        ("ada@day.example", "Your refill was approved", 1),
        ("cardiologist@day.example", "New appointment:", 2),
        ("cardiologist@day.example", "Refill request", 1),
        ("cardiologist@day.example", "Cancelled:", 2),
        ("cardio-nurse@day.example", "Assigned:", 2),
        ("bob@day.example", "Payment authorised", 2),
        ("bob@day.example", "Your appointment request", 1),
        ("bob@day.example", "Cancelled:", 1),
        ("cy@day.example", "Payment authorised", 1),
        ("cy@day.example", "Moved:", 1),
        ("cy@day.example", "Confirmed:", 1),
        ("cy@day.example", "Cancelled:", 1),
        ("dermatologist@day.example", "Moved:", 1),
        ("dermatologist@day.example", "New appointment:", 2),
        ("dermatologist@day.example", "Cancelled:", 1),
        ("derma-nurse@day.example", "Assigned:", 2),
        ("derma-nurse@day.example", "Cancelled:", 1),
        ("dee@day.example", "A slot is free for you", 1),
        ("dee@day.example", "Claimed:", 1),
        ("dee@day.example", "Payment authorised", 1),
        ("dee@day.example", "Confirmed:", 1),
        ("eve@day.example", "Card saved", 1),
        ("eve@day.example", "Confirmed:", 1),
        ("fay@day.example", "Card saved", 1),
        ("fay@day.example", "Action needed", 1),
        ("fay@day.example", "Cancelled:", 1),
    ] {
        assert_eq!(count(to, starts), times, "{to}: {starts}: {got:#?}");
    }
    // Calendar invites rode with the emails about times: approvals and moves ask calendars
    // to add or update, cancellations of what calendars knew to remove.
    let invited = |to: &str| invites.get(to).cloned().unwrap_or_default();
    assert_eq!(invited("ada@day.example").len(), 1, "{invites:#?}");
    assert!(invited("ada@day.example")[0].starts_with("REQUEST Confirmed:"));
    let mut cy_invites = invited("cy@day.example");
    cy_invites.sort();
    assert_eq!(cy_invites.len(), 3, "{cy_invites:?}");
    assert!(
        cy_invites[0].starts_with("CANCEL Cancelled:"),
        "{cy_invites:?}"
    );
    assert!(
        invited("derma-nurse@day.example")
            .iter()
            .any(|invite| invite.starts_with("CANCEL"))
    );
    assert!(
        invited("fay@day.example")
            .iter()
            .any(|invite| invite.starts_with("CANCEL"))
    );
    assert!(
        invited("dee@day.example")
            .iter()
            .any(|invite| invite.starts_with("REQUEST Confirmed:"))
    );

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
    assert_eq!(status_of(offered.clone()).await, "SCHEDULED");
    assert_eq!(status_of(far_visits[0].1.clone()).await, "SCHEDULED");
    assert_eq!(status_of(far_visits[1].1.clone()).await, "CANCELLED");
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
            ("canceled".to_owned(), 0, 0),
            ("succeeded".to_owned(), 6000, 0),
            ("succeeded".to_owned(), 6000, 0),
            ("succeeded".to_owned(), 6000, 0),
            ("succeeded".to_owned(), 6000, 6000)
        ],
        "captured for Ada's, Dee's and Eve's visits, voided for the rejection, the withdrawal and \
         Fay's refused card, refunded for the cancellation"
    );
    // Ada's calendar feed lists her visit, and nothing clinical.
    let feed = ok(&platform, Method::POST, "/api/calendar/feed", &ada.1, None).await;
    let calendar = platform
        .client()
        .get(feed["url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        calendar.contains(&format!("UID:appointment-{visit_id}@")),
        "{calendar}"
    );
    for clinical in ["Ramipril", "hypertension", "I10"] {
        assert!(!calendar.contains(clinical), "{clinical} in the feed");
    }
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

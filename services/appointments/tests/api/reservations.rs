//! Reservations: what is refused and why, and `Idempotency-Key` on the booking routes.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::booking::{Bus, id, platform, slot};

async fn post_with_key(
    platform: &TestPlatform,
    path: &str,
    token: &str,
    key: &str,
    body: &Value,
) -> (StatusCode, Value, bool) {
    let response = platform
        .client()
        .post(platform.url(Service::Gateway, path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        replayed,
    )
}

async fn count(platform: &TestPlatform, table: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let n = sqlx::query_scalar(&format!("select count(*) from {table}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn a_retried_reservation_with_the_same_key_books_once_and_another_body_is_refused() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("retry@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 1, 0).await;
    let body = json!({"doctor_id": clinic.doctor_id, "starts_at": starts_at, "reason": "rash"});

    let (status, first, replayed) =
        post_with_key(&platform, "/api/appointments", &token, "book-1", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    let (status, again, replayed) =
        post_with_key(&platform, "/api/appointments", &token, "book-1", &body).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true));
    assert_eq!(again, first, "the stored answer, client secret included");
    let mut other = body.clone();
    other["reason"] = json!("something else");
    let (status, reused, _) =
        post_with_key(&platform, "/api/appointments", &token, "book-1", &other).await;
    assert_eq!(
        (status, reused["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("idempotency_key_reused")
        )
    );
    assert_eq!(count(&platform, "appointments.appointments").await, 1);
    assert_eq!(count(&platform, "payments.payments").await, 1);

    // Concurrent duplicates: one books, the others get the answer or are told it is in flight.
    let next =
        json!({"doctor_id": clinic.doctor_id, "starts_at": slot(&platform, &clinic, 1, 0).await});
    let url = platform.url(Service::Gateway, "/api/appointments");
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, body, token) = (
            platform.client().clone(),
            url.clone(),
            next.clone(),
            token.clone(),
        );
        racers.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .header("idempotency-key", "book-2")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                body["code"].as_str().unwrap_or("").to_owned(),
                body["id"].as_str().unwrap_or("").to_owned(),
            )
        });
    }
    let replies = racers.join_all().await;
    let ids: std::collections::BTreeSet<&str> = replies
        .iter()
        .filter(|r| r.0 == StatusCode::CREATED)
        .map(|r| r.2.as_str())
        .collect();
    assert_eq!(ids.len(), 1, "{replies:?}");
    assert!(
        replies
            .iter()
            .all(|r| r.0 == StatusCode::CREATED || r.1 == "idempotency_key_in_flight"),
        "{replies:?}"
    );
    assert_eq!(count(&platform, "appointments.appointments").await, 2);
}

#[tokio::test]
async fn a_retried_approval_captures_once() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("twice@clinic.example").await;
    let starts_at = slot(&platform, &clinic, 1, 0).await;
    let paid = platform
        .paid_appointment(&token, &clinic.doctor_id, &starts_at)
        .await;
    let path = format!("/api/appointments/{}/approve", id(&paid));
    let body = json!({"room_id": clinic.room_id, "nurse_id": clinic.nurse_id});
    let (status, first, _) =
        post_with_key(&platform, &path, &clinic.admin, "approve-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again, replayed) =
        post_with_key(&platform, &path, &clinic.admin, "approve-1", &body).await;
    assert_eq!((status, replayed), (StatusCode::OK, true));
    assert_eq!(again, first);
    let captures = count(
        &platform,
        "payments.payment_history where action = 'captured'",
    )
    .await;
    assert_eq!(captures, 1);
}

#[tokio::test]
async fn bad_reservations_get_clear_errors_and_write_nothing() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (patient, token) = platform.register_patient("bad@clinic.example").await;
    let (_, other) = platform.register_patient("someone@clinic.example").await;
    let free = slot(&platform, &clinic, 1, 0).await;
    let past = "2020-01-06T09:00:00Z";
    let cases = [
        (
            json!({"doctor_id": clinic.doctor_id}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"doctor_id": clinic.doctor_id, "starts_at": free, "fee": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"doctor_id": clinic.doctor_id, "starts_at": "tomorrow"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"doctor_id": uuid::Uuid::now_v7(), "starts_at": free}),
            StatusCode::NOT_FOUND,
            "unknown_doctor",
        ),
        (
            json!({"doctor_id": clinic.nurse_id, "starts_at": free}),
            StatusCode::NOT_FOUND,
            "unknown_doctor",
        ),
        (
            json!({"doctor_id": clinic.doctor_id, "starts_at": past}),
            StatusCode::CONFLICT,
            "slot_too_soon",
        ),
        (
            json!({"doctor_id": clinic.doctor_id, "starts_at": "2031-01-06T09:30:00Z"}),
            StatusCode::CONFLICT,
            "not_a_slot",
        ),
        (
            json!({"doctor_id": clinic.doctor_id, "starts_at": free, "reason": "x".repeat(501)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"doctor_id": clinic.doctor_id, "starts_at": free, "patient_id": patient["id"].as_str().unwrap().replace('0', "1")}),
            StatusCode::FORBIDDEN,
            "invalid_patient",
        ),
    ];
    for (body, status, code) in cases {
        let reply = platform
            .book(
                Method::POST,
                "/api/appointments",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            (reply.status, reply.code()),
            (status, code),
            "{body}: {:?}",
            reply.body
        );
    }
    let malformed = platform
        .client()
        .post(platform.url(Service::Gateway, "/api/appointments"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"doctor_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(count(&platform, "appointments.appointments").await, 0);

    // An admin books for a patient, and must say which.
    let for_nobody = platform
        .book(
            Method::POST,
            "/api/appointments",
            Some(&clinic.admin),
            Some(json!({"doctor_id": clinic.doctor_id, "starts_at": free})),
        )
        .await;
    assert_eq!(
        (for_nobody.status, for_nobody.code()),
        (StatusCode::FORBIDDEN, "invalid_patient")
    );
    let for_doctor = platform
        .book(Method::POST, "/api/appointments", Some(&clinic.admin), Some(json!({"doctor_id": clinic.doctor_id, "starts_at": free, "patient_id": clinic.doctor_id})))
        .await;
    assert_eq!(
        (for_doctor.status, for_doctor.code()),
        (StatusCode::NOT_FOUND, "invalid_patient"),
        "only patients are booked for"
    );
    let on_behalf = platform
        .book(Method::POST, "/api/appointments", Some(&clinic.admin), Some(json!({"doctor_id": clinic.doctor_id, "starts_at": free, "patient_id": patient["id"]})))
        .await;
    assert_eq!(
        on_behalf.status,
        StatusCode::CREATED,
        "{:?}",
        on_behalf.body
    );
    assert_eq!(on_behalf.body["patient_id"], patient["id"]);
    let mine = platform
        .book(Method::GET, "/api/appointments/mine", Some(&token), None)
        .await;
    assert_eq!(mine.body["items"][0]["id"], on_behalf.body["id"]);
    let taken = platform
        .book(
            Method::POST,
            "/api/appointments",
            Some(&other),
            Some(json!({"doctor_id": clinic.doctor_id, "starts_at": free})),
        )
        .await;
    assert_eq!(
        (taken.status, taken.code()),
        (StatusCode::CONFLICT, "slot_taken")
    );
}

#[tokio::test]
async fn a_patient_holds_at_most_three_unpaid_reservations() {
    let platform = platform(Bus::Postgres).await;
    let clinic = platform.clinic().await;
    let (_, token) = platform.register_patient("greedy@clinic.example").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let starts_at = slot(&platform, &clinic, 1, 0).await;
        held.push(
            platform
                .reserve(&token, &clinic.doctor_id, &starts_at)
                .await,
        );
    }
    let fourth = slot(&platform, &clinic, 1, 0).await;
    let refused = platform
        .book(
            Method::POST,
            "/api/appointments",
            Some(&token),
            Some(json!({"doctor_id": clinic.doctor_id, "starts_at": fourth})),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "pending_limit_reached")
    );

    // Paying one frees a place.
    let paid = platform
        .pay(
            &token,
            held[0]["payment"]["id"].as_str().unwrap(),
            "pm_card_visa",
        )
        .await;
    assert_eq!(paid.status, StatusCode::OK);
    platform
        .appointment_becomes(&token, id(&held[0]), "PAID")
        .await;
    platform.reserve(&token, &clinic.doctor_id, &fourth).await;

    // A declined card leaves the reservation pending, for another card.
    let declined = platform
        .pay(
            &token,
            held[1]["payment"]["id"].as_str().unwrap(),
            "pm_card_chargeDeclined",
        )
        .await;
    assert_eq!(
        (declined.status, declined.code()),
        (StatusCode::PAYMENT_REQUIRED, "card_declined")
    );
    let still = platform
        .book(
            Method::GET,
            &format!("/api/appointments/{}", id(&held[1])),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(still.body["status"], "PENDING");
}

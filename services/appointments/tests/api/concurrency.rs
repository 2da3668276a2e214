//! Many patients racing for one slot: exactly one gets it, whichever lock backend runs, and
//! with no lock at all the database's constraint alone holds.

use polyclinic_config::LockBackend;
use polyclinic_testing::{Service, TestPlatform};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::booking::slot;

async fn fifty_patients_race_for_one_slot(locks: LockBackend) {
    let platform = TestPlatform::start_with(
        &[
            Service::Identity,
            Service::Appointments,
            Service::Payments,
            Service::Gateway,
        ],
        |config, _| config.locks = locks,
    )
    .await;
    let clinic = platform.clinic().await;
    let mut tokens = Vec::new();
    for n in 0..50 {
        tokens.push(
            platform
                .register_patient(&format!("racer{n}@clinic.example"))
                .await
                .1,
        );
    }
    let starts_at = slot(&platform, &clinic, 1, 0).await;

    let url = platform.url(Service::Gateway, "/api/appointments");
    let body = json!({"doctor_id": clinic.doctor_id, "starts_at": starts_at});
    let mut racers = tokio::task::JoinSet::new();
    for token in tokens {
        let (client, url, body) = (platform.client().clone(), url.clone(), body.clone());
        racers.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["code"].as_str().unwrap_or("").to_owned())
        });
    }
    let replies = racers.join_all().await;
    let created = replies
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let taken = replies
        .iter()
        .filter(|(status, code)| *status == StatusCode::CONFLICT && code == "slot_taken")
        .count();
    assert_eq!((created, taken), (1, 49), "{replies:?}");

    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let rows: i64 = sqlx::query_scalar("select count(*) from appointments.appointments")
        .fetch_one(&pool)
        .await
        .unwrap();
    let payments: i64 = sqlx::query_scalar("select count(*) from payments.payments")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!((rows, payments), (1, 1), "one appointment, one payment");
}

#[tokio::test]
async fn fifty_patients_racing_for_one_slot_with_redis_locks_give_one_booking() {
    fifty_patients_race_for_one_slot(LockBackend::Redis).await;
}

#[tokio::test]
async fn fifty_patients_racing_for_one_slot_with_advisory_locks_give_one_booking() {
    fifty_patients_race_for_one_slot(LockBackend::Postgres).await;
}

#[tokio::test]
async fn fifty_patients_racing_for_one_slot_without_any_lock_give_one_booking() {
    fifty_patients_race_for_one_slot(LockBackend::None).await;
}

//! What the identity service announces on the event backbone.

use std::time::{Duration, Instant};

use polyclinic_testing::{Service, TestPlatform};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn logged(platform: &TestPlatform, event_type: &str, subject: &str) -> Value {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Option<Value> = sqlx::query_scalar(
            "select envelope from eventbus.events where event_type = $1 and key = $2",
        )
        .bind(event_type)
        .bind(subject)
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(envelope) = found {
            pool.close().await;
            return envelope;
        }
        assert!(
            Instant::now() < deadline,
            "{event_type} for {subject} never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn registration_and_deactivation_are_announced_with_the_request_id_as_correlation_id() {
    let platform = TestPlatform::start(&[Service::Identity, Service::Gateway]).await;
    let response = platform
        .client()
        .post(platform.url(Service::Gateway, "/api/users/patients"))
        .header("x-request-id", "registration-77")
        .json(&json!({"first_name": "Eve", "last_name": "Vent", "email": "eve@clinic.example", "password": "patient passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    let id = user["id"].as_str().unwrap();

    let registered = logged(&platform, "polyclinic.identity.user.registered.v1", id).await;
    assert_eq!(registered["specversion"], "1.0");
    assert_eq!(registered["source"], "/polyclinic/identity");
    assert_eq!(registered["subject"], id);
    assert_eq!(registered["correlationid"], "registration-77");
    assert_eq!(registered["data"]["role"], "PATIENT");

    let admin = platform.admin_token().await;
    let deleted = platform
        .call(
            reqwest::Method::DELETE,
            &format!("/api/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let deactivated = logged(&platform, "polyclinic.identity.user.deactivated.v1", id).await;
    assert_eq!(deactivated["data"]["user_id"], id);
}

//! The admins' event log: every event, the request that caused it, each consumer's outcome,
//! and dead letters with their replay.

use std::time::{Duration, Instant};

use polyclinic_testing::{Reply, Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn platform() -> TestPlatform {
    TestPlatform::start(&[Service::Identity, Service::Notifications, Service::Gateway]).await
}

async fn eventually(
    platform: &TestPlatform,
    path: &str,
    token: &str,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = platform
            .call_service(Service::Gateway, Method::GET, path, Some(token), None)
            .await;
        if done(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never got there: {:?}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_event_log_shows_a_registration_its_request_id_and_each_consumers_outcome() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let response = platform
        .client()
        .post(platform.url(Service::Gateway, "/api/users/patients"))
        .header("x-request-id", "trace-registration-1")
        .json(&json!({"first_name": "Lo", "last_name": "Gged", "email": "logged@clinic.example", "password": "patient passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let path = "/api/events?correlation_id=trace-registration-1";
    let reply = eventually(&platform, path, &admin, |reply| {
        reply.body["items"][0]["outcomes"]
            .as_array()
            .is_some_and(|outcomes| outcomes.len() >= 2)
    })
    .await;
    let event = &reply.body["items"][0];
    assert_eq!(event["type"], "polyclinic.identity.user.registered.v1");
    assert_eq!(event["topic"], "polyclinic.identity");
    assert_eq!(event["source"], "/polyclinic/identity");
    assert_eq!(event["correlation_id"], "trace-registration-1");
    let outcome_of = |consumer: &str| {
        event["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|outcome| outcome["consumer"] == consumer)
            .cloned()
            .unwrap_or_else(|| panic!("no outcome of {consumer}: {event}"))
    };
    for consumer in ["event-log", "notifications-mail"] {
        let outcome = outcome_of(consumer);
        assert_eq!(outcome["service"], "notifications");
        assert_eq!(
            outcome["outcome"], "handled",
            "{consumer}: the welcome email is written"
        );
    }

    let by_type = platform
        .call(
            Method::GET,
            "/api/events?type=polyclinic.identity.user.registered.v1",
            Some(&admin),
            None,
        )
        .await;
    assert!(
        by_type.body["items"].as_array().unwrap().len() >= 2,
        "the admin's own registration is there too"
    );
    let none = platform
        .call(
            Method::GET,
            "/api/events?type=polyclinic.nothing.v1",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(none.body["items"], json!([]));

    let (_, patient) = platform.register_patient("curious@clinic.example").await;
    let refused = platform
        .call(Method::GET, "/api/events", Some(&patient), None)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_admin_lists_dead_letters_across_services_and_replays_one() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    // An event the event-log consumer once failed on for good.
    let event_id = uuid::Uuid::now_v7();
    let envelope = json!({
        "specversion": "1.0", "id": event_id, "source": "/polyclinic/identity",
        "type": "polyclinic.identity.user.registered.v1", "subject": "someone",
        "time": "2026-11-24T10:00:00Z", "datacontenttype": "application/json",
        "data": {"user_id": uuid::Uuid::now_v7(), "role": "PATIENT", "registered_at": "2026-11-24T10:00:00Z"},
    });
    let letter = uuid::Uuid::now_v7();
    sqlx::query(
        "insert into notifications.dead_letters (id, consumer, event_id, topic, key, event_type, envelope, error, attempts)
         values ($1, 'event-log', $2, 'polyclinic.identity', 'someone', 'polyclinic.identity.user.registered.v1', $3, 'disk full', 5)",
    )
    .bind(letter)
    .bind(event_id)
    .bind(&envelope)
    .execute(&pool)
    .await
    .unwrap();

    let listed = platform
        .call(Method::GET, "/api/events/dead-letters", Some(&admin), None)
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let entry = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == json!(letter))
        .unwrap();
    let unreachable = listed.body["unreachable"].as_array().unwrap();
    assert!(
        unreachable.contains(&json!("appointments")),
        "services not running are named"
    );
    assert_eq!(entry["service"], "notifications");
    assert_eq!(entry["error"], "disk full");
    assert!(entry["replayed_at"].is_null());

    let path = format!("/api/events/dead-letters/{letter}/replay");
    let replayed = platform.call(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(
        replayed.status,
        StatusCode::NO_CONTENT,
        "{:?}",
        replayed.body
    );
    let logged: i64 =
        sqlx::query_scalar("select count(*) from notifications.event_log where event_id = $1")
            .bind(event_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(logged, 1, "the handler ran");
    let again = platform.call(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(
        again.status,
        StatusCode::NOT_FOUND,
        "a replayed letter is closed"
    );
    let unknown = platform
        .call(
            Method::POST,
            &format!("/api/events/dead-letters/{}/replay", uuid::Uuid::now_v7()),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    pool.close().await;
}

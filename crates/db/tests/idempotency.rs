//! Idempotency keys against real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use polyclinic_db::idempotency::{self, Claim};
use polyclinic_testing::TestDb;
use serde_json::json;

async fn pool(db: &TestDb) -> sqlx::PgPool {
    let pool = polyclinic_db::schema_pool(&db.url(), "payments", 4, "test").unwrap();
    sqlx::raw_sql("create schema payments")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(idempotency::TABLE_SQL)
        .execute(&pool)
        .await
        .unwrap();
    pool
}

#[tokio::test]
async fn the_same_key_and_body_replay_another_body_is_refused_and_a_running_one_is_reported() {
    let db = TestDb::create().await;
    let pool = pool(&db).await;
    let scope = "POST /api/payments/1/capture by admin-1";
    let body = idempotency::fingerprint("POST", "/api/payments/1/capture", br#"{"amount":100}"#);
    let other = idempotency::fingerprint("POST", "/api/payments/1/capture", br#"{"amount":200}"#);
    let lease = Duration::from_secs(30);

    assert_eq!(
        idempotency::claim(&pool, scope, "k1", &body, lease)
            .await
            .unwrap(),
        Claim::Proceed
    );
    assert_eq!(
        idempotency::claim(&pool, scope, "k1", &body, lease)
            .await
            .unwrap(),
        Claim::InFlight
    );
    assert_eq!(
        idempotency::claim(&pool, scope, "k1", &other, lease)
            .await
            .unwrap(),
        Claim::Mismatch
    );

    idempotency::complete(&pool, scope, "k1", 200, &json!({"captured": 100}))
        .await
        .unwrap();
    assert_eq!(
        idempotency::claim(&pool, scope, "k1", &body, lease)
            .await
            .unwrap(),
        Claim::Replay {
            status: 200,
            body: json!({"captured": 100})
        }
    );
    assert_eq!(
        idempotency::claim(&pool, scope, "k1", &other, lease)
            .await
            .unwrap(),
        Claim::Mismatch
    );
    assert_eq!(
        idempotency::claim(&pool, "another caller", "k1", &other, lease)
            .await
            .unwrap(),
        Claim::Proceed,
        "keys are per scope"
    );
}

#[tokio::test]
async fn a_failed_or_abandoned_first_attempt_lets_a_retry_proceed() {
    let db = TestDb::create().await;
    let pool = pool(&db).await;
    let body = idempotency::fingerprint("POST", "/x", b"{}");
    assert_eq!(
        idempotency::claim(&pool, "s", "released", &body, Duration::from_secs(30))
            .await
            .unwrap(),
        Claim::Proceed
    );
    idempotency::release(&pool, "s", "released").await.unwrap();
    assert_eq!(
        idempotency::claim(&pool, "s", "released", &body, Duration::from_secs(30))
            .await
            .unwrap(),
        Claim::Proceed
    );

    // A first attempt that died holds the key only for its lease.
    assert_eq!(
        idempotency::claim(&pool, "s", "abandoned", &body, Duration::from_millis(50))
            .await
            .unwrap(),
        Claim::Proceed
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(
        idempotency::claim(&pool, "s", "abandoned", &body, Duration::from_secs(30))
            .await
            .unwrap(),
        Claim::Proceed
    );
}

#[tokio::test]
async fn keys_are_kept_a_day_and_purged_after() {
    let db = TestDb::create().await;
    let pool = pool(&db).await;
    let body = idempotency::fingerprint("POST", "/x", b"{}");
    idempotency::claim(&pool, "s", "old", &body, Duration::from_secs(30))
        .await
        .unwrap();
    idempotency::claim(&pool, "s", "new", &body, Duration::from_secs(30))
        .await
        .unwrap();
    let kept_hours: f64 = sqlx::query_scalar("select extract(epoch from expires_at - created_at)::float8 / 3600 from idempotency_keys where key = 'new'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(kept_hours >= 24.0, "{kept_hours}");
    sqlx::query(
        "update idempotency_keys set expires_at = now() - interval '1 second' where key = 'old'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(idempotency::purge_expired(&pool).await.unwrap(), 1);
}

#[test]
fn keys_are_short_visible_ascii_and_services_carry_the_same_table() {
    assert!(idempotency::valid_key("3f2a-key_1"));
    assert!(!idempotency::valid_key(""));
    assert!(!idempotency::valid_key("has space"));
    assert!(!idempotency::valid_key(&"k".repeat(256)));
    for service in ["payments", "appointments"] {
        let path = format!(
            "{}/../../services/{service}/migrations/20261124120000_idempotency_keys.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            idempotency::TABLE_SQL,
            "{path}"
        );
    }
}

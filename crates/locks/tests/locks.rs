//! Both lock backends against the real servers.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::time::Duration;

use polyclinic_locks::Locks;
use polyclinic_testing::{TestDb, TestRedis};
use redis::AsyncCommands;

const TTL: Duration = Duration::from_secs(30);

async fn postgres_locks() -> (Locks, TestDb) {
    let db = TestDb::create().await;
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    (Locks::postgres(pool), db)
}

async fn redis_locks() -> (Locks, TestRedis) {
    let redis = TestRedis::new();
    let locks = Locks::redis(redis.url(), redis.prefix()).await.unwrap();
    (locks, redis)
}

async fn a_held_lock_is_refused_until_released(locks: &Locks) {
    let guard = locks
        .try_acquire("doctor:1:slot:9", TTL)
        .await
        .unwrap()
        .expect("free");
    assert!(
        locks
            .try_acquire("doctor:1:slot:9", TTL)
            .await
            .unwrap()
            .is_none(),
        "held"
    );
    assert!(
        locks
            .try_acquire("doctor:1:slot:10", TTL)
            .await
            .unwrap()
            .is_some(),
        "another key is free"
    );
    assert!(guard.release().await.unwrap(), "released by its holder");
    assert!(
        locks
            .try_acquire("doctor:1:slot:9", TTL)
            .await
            .unwrap()
            .is_some(),
        "free again"
    );
}

#[tokio::test]
async fn a_held_advisory_lock_is_refused_until_released() {
    let (locks, _db) = postgres_locks().await;
    a_held_lock_is_refused_until_released(&locks).await;
}

#[tokio::test]
async fn a_held_redis_lock_is_refused_until_released() {
    let (locks, _redis) = redis_locks().await;
    a_held_lock_is_refused_until_released(&locks).await;
}

#[tokio::test]
async fn dropping_an_advisory_guard_frees_the_lock() {
    let (locks, _db) = postgres_locks().await;
    let guard = locks.try_acquire("k", TTL).await.unwrap().unwrap();
    drop(guard);
    let again = locks
        .acquire("k", TTL, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        again.is_some(),
        "the closed connection took the lock with it"
    );
}

#[tokio::test]
async fn acquire_waits_for_a_holder_that_lets_go() {
    let (locks, _redis) = redis_locks().await;
    let guard = locks.try_acquire("k", TTL).await.unwrap().unwrap();
    let waiter = {
        let locks = locks.clone();
        tokio::spawn(async move { locks.acquire("k", TTL, Duration::from_secs(5)).await })
    };
    tokio::task::yield_now().await;
    guard.release().await.unwrap();
    assert!(waiter.await.unwrap().unwrap().is_some());
}

#[tokio::test]
async fn an_expired_redis_holder_can_neither_release_nor_extend_the_next_holders_lock() {
    let (locks, redis) = redis_locks().await;
    let mut stale = locks
        .try_acquire("k", Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();

    // Wait for Redis to expire the key (its clock, not ours, decides).
    let key = format!("{}lock:k", redis.prefix());
    let mut connection = redis.connection().await;
    while connection.exists::<_, bool>(&key).await.unwrap() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let current = locks
        .try_acquire("k", TTL)
        .await
        .unwrap()
        .expect("expired lock is free");

    assert!(
        !stale.extend(TTL).await.unwrap(),
        "the stale holder cannot extend"
    );
    assert!(
        !stale.release().await.unwrap(),
        "the stale holder cannot release"
    );
    assert!(
        locks.try_acquire("k", TTL).await.unwrap().is_none(),
        "still held by the new holder"
    );
    let ttl_ms: i64 = connection.pttl(&key).await.unwrap();
    assert!(
        ttl_ms > 1_000,
        "the new holder's TTL is intact: {ttl_ms} ms"
    );
    assert!(current.release().await.unwrap());
}

#[tokio::test]
async fn redis_locks_live_under_the_configured_prefix_and_expire() {
    let (locks, redis) = redis_locks().await;
    let mut guard = locks
        .try_acquire("room:7", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    let mut connection = redis.connection().await;
    let key = format!("{}lock:room:7", redis.prefix());
    let ttl_ms: i64 = connection.pttl(&key).await.unwrap();
    assert!((1..=10_000).contains(&ttl_ms), "a TTL is set: {ttl_ms}");

    assert!(guard.extend(Duration::from_secs(60)).await.unwrap());
    let extended_ms: i64 = connection.pttl(&key).await.unwrap();
    assert!(extended_ms > 10_000, "extended: {extended_ms}");
}

//! The backbone against real PostgreSQL: a producer schema with an outbox, a consumer schema
//! with inbox and effects, and between them the `postgres` bus's shared log or the `kafka`
//! bus, on two Kafka-protocol peers: the test broker (tansu, which takes one record per
//! batch) and librdkafka's own mock cluster, in process, which batches as Apache Kafka does.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use polyclinic_config::Service;
use polyclinic_contracts::{Event, Topic};
use polyclinic_events::{
    Bus, Consumer, ConsumerFaults, ConsumerSettings, EventContext, EventMetrics, Handled, Handlers,
    KafkaSettings, Relay, RelayFaults, RelaySettings, log, outbox,
};
use polyclinic_http::CancellationToken;
use polyclinic_testing::{TestBroker, TestDb, eventually_within};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Counted {
    key: String,
    n: i32,
}

impl Event for Counted {
    const TYPE: &'static str = "polyclinic.test.counted.v1";
    const TOPIC: Topic = Topic::Appointments;
    fn subject(&self) -> String {
        self.key.clone()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unknown {
    key: String,
}

impl Event for Unknown {
    const TYPE: &'static str = "polyclinic.test.nobody-handles-this.v1";
    const TOPIC: Topic = Topic::Appointments;
    fn subject(&self) -> String {
        self.key.clone()
    }
}

/// The consumer's state: whether events of the aggregate `poison` fail, and a gate that
/// holds the handler of the aggregate `gated` until the test opens it.
#[derive(Clone, Default)]
struct State {
    poison: Arc<AtomicBool>,
    gate: Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    reached: tokio::sync::Notify,
    opened: tokio::sync::Notify,
}

struct Bench {
    /// The mock cluster the bus is on, kept alive as long as the bench.
    _mock: Option<MockCluster<'static, DefaultProducerContext>>,
    db: TestDb,
    bus: Bus,
    producer: PgPool,
    consumer: PgPool,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Postgres,
    /// The test broker.
    Kafka,
    /// librdkafka's mock cluster.
    KafkaMock,
}

/// The test broker (`.ci/run` starts one on loopback) with topics and groups of this test's
/// own, so tests share it without seeing each other.
async fn kafka_bus() -> Bus {
    let brokers =
        std::env::var("POLYCLINIC_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let properties = std::env::var("POLYCLINIC_TEST_KAFKA_PROPERTIES")
        .unwrap_or_else(|_| "batch.num.messages=1".into())
        .split(',')
        .filter_map(|property| property.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let settings = kafka_settings(brokers, properties);
    polyclinic_events::ensure_topics(&settings, &[Topic::Appointments.as_str()])
        .await
        .unwrap();
    Bus::Kafka(settings)
}

/// A mock cluster of three brokers of this test's own, with librdkafka's default batching;
/// its topic is made through the mock's own API, as it has no CreateTopics request.
fn mock_bus() -> (Bus, MockCluster<'static, DefaultProducerContext>) {
    let mock = MockCluster::new(3).unwrap();
    let settings = KafkaSettings {
        create_topics: false,
        ..kafka_settings(mock.bootstrap_servers(), Vec::new())
    };
    mock.create_topic(&settings.topic(Topic::Appointments.as_str()), 3, 1)
        .unwrap();
    (Bus::Kafka(settings), mock)
}

fn kafka_settings(brokers: String, properties: Vec<(String, String)>) -> KafkaSettings {
    KafkaSettings {
        brokers,
        properties,
        partitions: 3,
        replication_factor: 1,
        create_topics: true,
        topic_prefix: format!("test-{}-", uuid::Uuid::new_v4().simple()),
        group_instance_id: None,
        watch: Default::default(),
    }
}

async fn schema(db: &TestDb, name: &str) -> PgPool {
    let pool = polyclinic_db::schema_pool(&db.url(), name, 10, "test").unwrap();
    sqlx::raw_sql(&format!("create schema {name}"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(polyclinic_events::SERVICE_TABLES_SQL)
        .execute(&pool)
        .await
        .unwrap();
    pool
}

async fn bench() -> Bench {
    bench_on(Kind::Postgres).await
}

/// A bench whose kafka bus is `broker`, a test broker of the test's own (to stop and freeze).
async fn bench_on_private_broker(broker: &TestBroker, properties: Vec<(String, String)>) -> Bench {
    let settings = kafka_settings(broker.address.clone(), properties);
    polyclinic_events::ensure_topics(&settings, &[Topic::Appointments.as_str()])
        .await
        .unwrap();
    Bench {
        bus: Bus::Kafka(settings),
        ..bench().await
    }
}

async fn bench_on(kind: Kind) -> Bench {
    let (bus, mock) = match kind {
        Kind::Postgres => (Bus::Postgres, None),
        Kind::Kafka => (kafka_bus().await, None),
        Kind::KafkaMock => {
            let (bus, mock) = mock_bus();
            (bus, Some(mock))
        }
    };
    let db = TestDb::create().await;
    log::ensure(&db.url()).await.unwrap();
    let producer = schema(&db, "producer").await;
    let consumer = schema(&db, "consumer").await;
    sqlx::raw_sql(
        "create table effects (
            consumer text not null, event_id uuid not null, key text not null, n integer not null,
            ord bigint generated always as identity,
            primary key (consumer, event_id))",
    )
    .execute(&consumer)
    .await
    .unwrap();
    Bench {
        _mock: mock,
        db,
        bus,
        producer,
        consumer,
    }
}

async fn record_effect(
    conn: &mut PgConnection,
    envelope: &polyclinic_events::Envelope,
    state: &State,
    consumer: &str,
) -> anyhow::Result<Handled> {
    let counted: Counted = envelope.data_as()?;
    if counted.key == "gated" {
        state.gate.reached.notify_one();
        state.gate.opened.notified().await;
    }
    if counted.key == "poison" && state.poison.load(Ordering::SeqCst) {
        anyhow::bail!("this aggregate's events cannot be handled yet");
    }
    sqlx::query("insert into effects (consumer, event_id, key, n) values ($1, $2, $3, $4)")
        .bind(consumer)
        .bind(envelope.id)
        .bind(&counted.key)
        .bind(counted.n)
        .execute(&mut *conn)
        .await?;
    Ok(Handled::Done)
}

fn consumer(pool: &PgPool, name: &'static str, state: State) -> Consumer<State> {
    consumer_on(&Bus::Postgres, pool, name, state)
}

fn consumer_on(bus: &Bus, pool: &PgPool, name: &'static str, state: State) -> Consumer<State> {
    let mut settings = ConsumerSettings::new(name, &[Topic::Appointments.as_str()]);
    settings.retry_base = Duration::from_millis(20);
    settings.max_attempts = 3;
    settings.poll_interval = Duration::from_millis(200);
    let handlers = Handlers::new().on(Counted::TYPE, move |conn, envelope, state| {
        Box::pin(record_effect(conn, envelope, state, name))
    });
    Consumer::new(
        bus,
        pool.clone(),
        settings,
        handlers,
        state,
        EventMetrics::default(),
    )
}

fn relay(pool: &PgPool) -> Relay {
    relay_on(&Bus::Postgres, pool, RelayFaults::default())
}

fn relay_on(bus: &Bus, pool: &PgPool, faults: RelayFaults) -> Relay {
    let settings = RelaySettings {
        poll_interval: Duration::from_millis(200),
        faults,
        ..RelaySettings::default()
    };
    Relay::new(
        pool.clone(),
        "producer",
        bus,
        settings,
        EventMetrics::default(),
    )
    .unwrap()
}

async fn produce(pool: &PgPool, events: &[Counted]) {
    let mut tx = pool.begin().await.unwrap();
    for event in events {
        outbox::enqueue(
            &mut tx,
            Service::Appointments,
            event,
            &EventContext::default(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn effects(pool: &PgPool, consumer: &str) -> Vec<(String, i32)> {
    sqlx::query_as("select key, n from effects where consumer = $1 order by ord")
        .bind(consumer)
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn wait_for(pool: &PgPool, consumer: &str, count: usize) {
    // Generous: the Kafka runs share two cores with everything else in CI.
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let seen: i64 = sqlx::query_scalar("select count(*) from effects where consumer = $1")
            .bind(consumer)
            .fetch_one(pool)
            .await
            .unwrap();
        if seen as usize >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{consumer} saw {seen} of {count} events"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counted(key: &str, n: i32) -> Counted {
    Counted {
        key: key.to_owned(),
        n,
    }
}

#[tokio::test]
async fn a_rolled_back_event_is_never_published_and_a_committed_one_reaches_each_group_once() {
    let bench = bench().await;
    let mut rolled_back = bench.producer.begin().await.unwrap();
    outbox::enqueue(
        &mut rolled_back,
        Service::Appointments,
        &counted("a", 0),
        &EventContext::default(),
    )
    .await
    .unwrap();
    rolled_back.rollback().await.unwrap();
    produce(&bench.producer, &[counted("b", 0)]).await;

    let relay = relay(&bench.producer);
    assert_eq!(relay.publish_pending().await.unwrap(), 1);
    assert_eq!(
        relay.publish_pending().await.unwrap(),
        0,
        "nothing is published twice"
    );

    for group in ["first", "second"] {
        let consumer = consumer(&bench.consumer, group, State::default());
        consumer.poll_once().await.unwrap();
        consumer.poll_once().await.unwrap();
        assert_eq!(
            effects(&bench.consumer, group).await,
            [("b".to_owned(), 0)],
            "{group}"
        );
    }
}

#[tokio::test]
async fn ten_thousand_events_over_a_hundred_aggregates_arrive_in_order_once_per_group() {
    let bench = bench().await;
    let shutdown = CancellationToken::new();
    relay(&bench.producer).spawn(shutdown.clone());
    consumer(&bench.consumer, "first", State::default()).spawn(shutdown.clone());
    // A second instance of the same group, and a second group.
    consumer(&bench.consumer, "first", State::default()).spawn(shutdown.clone());
    consumer(&bench.consumer, "second", State::default()).spawn(shutdown.clone());

    for n in 0..100 {
        let batch: Vec<Counted> = (0..100)
            .map(|aggregate| counted(&format!("agg-{aggregate}"), n))
            .collect();
        produce(&bench.producer, &batch).await;
    }
    for group in ["first", "second"] {
        wait_for(&bench.consumer, group, 10_000).await;
        let seen = effects(&bench.consumer, group).await;
        assert_eq!(seen.len(), 10_000, "{group}: none applied twice");
        let mut next = std::collections::HashMap::new();
        for (key, n) in seen {
            let expected = next.entry(key.clone()).or_insert(0);
            assert_eq!(n, *expected, "{group}: {key} out of order");
            *expected += 1;
        }
        assert!(
            next.values().all(|count| *count == 100),
            "{group}: none missing"
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn republishing_after_a_relay_crash_and_redelivery_after_a_consumer_crash_change_nothing() {
    let bench = bench().await;
    produce(&bench.producer, &[counted("x", 0), counted("x", 1)]).await;
    let relay = relay(&bench.producer);
    relay.publish_pending().await.unwrap();
    // A relay that published and died before marking would publish these again.
    sqlx::query("update outbox set published_at = null")
        .execute(&bench.producer)
        .await
        .unwrap();
    relay.publish_pending().await.unwrap();
    let logged: i64 = sqlx::query_scalar("select count(*) from eventbus.events")
        .fetch_one(&bench.producer)
        .await
        .unwrap();
    assert_eq!(logged, 2, "the log keeps each event once");

    let group = consumer(&bench.consumer, "group", State::default());
    group.poll_once().await.unwrap();
    // A consumer that applied its effects and died before storing its position sees the
    // same events again.
    sqlx::query("update consumer_positions set position = 0")
        .execute(&bench.consumer)
        .await
        .unwrap();
    group.poll_once().await.unwrap();
    assert_eq!(
        effects(&bench.consumer, "group").await.len(),
        2,
        "the inbox absorbed the redelivery"
    );
}

#[tokio::test]
async fn a_consumer_killed_between_its_effect_and_its_commit_applies_it_exactly_once() {
    let bench = bench().await;
    produce(&bench.producer, &[counted("k", 0)]).await;
    relay(&bench.producer).publish_pending().await.unwrap();

    let stall = Arc::new(tokio::sync::Notify::new());
    let reached = Arc::new(tokio::sync::Notify::new());
    let mut settings = ConsumerSettings::new("group", &[Topic::Appointments.as_str()]);
    settings.retry_base = Duration::from_millis(20);
    let (stall_in, reached_in) = (stall.clone(), reached.clone());
    let handlers = Handlers::new().on(Counted::TYPE, move |conn, envelope, state| {
        let (stall, reached) = (stall_in.clone(), reached_in.clone());
        Box::pin(async move {
            let outcome = record_effect(conn, envelope, state, "group").await;
            reached.notify_one();
            stall.notified().await;
            outcome
        })
    });
    let stalling = Consumer::new(
        &Bus::Postgres,
        bench.consumer.clone(),
        settings,
        handlers,
        State::default(),
        EventMetrics::default(),
    );
    let running = tokio::spawn(async move { stalling.poll_once().await });
    reached.notified().await;
    running.abort();
    let _ = running.await;

    let healthy = consumer(&bench.consumer, "group", State::default());
    healthy.poll_once().await.unwrap();
    assert_eq!(
        effects(&bench.consumer, "group").await,
        [("k".to_owned(), 0)]
    );
}

#[tokio::test]
async fn producers_go_on_while_the_log_is_unavailable_and_everything_arrives_after() {
    let bench = bench().await;
    let shutdown = CancellationToken::new();
    relay(&bench.producer).spawn(shutdown.clone());
    consumer(&bench.consumer, "group", State::default()).spawn(shutdown.clone());

    // Make the log unavailable: a session holds it exclusively.
    let mut blocker = bench.producer.begin().await.unwrap();
    sqlx::query("lock table eventbus.events in access exclusive mode")
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    for n in 0..50 {
        produce(&bench.producer, &[counted("during", n)]).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "producing did not wait for the log"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(effects(&bench.consumer, "group").await.is_empty());
    let waiting = pending(&bench.db_pool().await).await;
    assert_eq!(waiting, 50, "the events wait in the outbox");

    blocker.rollback().await.unwrap();
    wait_for(&bench.consumer, "group", 50).await;
    let seen: Vec<i32> = effects(&bench.consumer, "group")
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(seen, (0..50).collect::<Vec<_>>());
    shutdown.cancel();
}

impl Bench {
    async fn db_pool(&self) -> PgPool {
        polyclinic_db::schema_pool(&self.db.url(), "producer", 1, "test").unwrap()
    }
}

#[tokio::test]
async fn an_event_of_an_unknown_type_is_skipped_and_recorded() {
    let bench = bench().await;
    let mut tx = bench.producer.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        Service::Appointments,
        &Unknown { key: "u".into() },
        &EventContext::default(),
    )
    .await
    .unwrap();
    outbox::enqueue(
        &mut tx,
        Service::Appointments,
        &counted("u", 0),
        &EventContext::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    relay(&bench.producer).publish_pending().await.unwrap();
    consumer(&bench.consumer, "group", State::default())
        .poll_once()
        .await
        .unwrap();
    let outcomes: Vec<(String, String)> =
        sqlx::query_as("select event_type, outcome from inbox order by handled_at")
            .fetch_all(&bench.consumer)
            .await
            .unwrap();
    assert!(outcomes.contains(&(Unknown::TYPE.to_owned(), "skipped".to_owned())));
    assert_eq!(
        effects(&bench.consumer, "group").await.len(),
        1,
        "the stream went on"
    );
}

#[tokio::test]
async fn the_log_refuses_to_be_rewritten() {
    let bench = bench().await;
    produce(&bench.producer, &[counted("h", 0)]).await;
    relay(&bench.producer).publish_pending().await.unwrap();
    let rewrite = sqlx::query("update eventbus.events set key = 'other'")
        .execute(&bench.producer)
        .await;
    assert!(rewrite.unwrap_err().to_string().contains("append-only"));
}

#[test]
fn every_service_carries_the_same_backbone_tables() {
    for service in [
        "identity",
        "appointments",
        "payments",
        "notifications",
        "prescriptions",
    ] {
        let path = format!(
            "{}/../../services/{service}/migrations/20261124100000_event_backbone.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let copy = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            copy,
            polyclinic_events::SERVICE_TABLES_SQL,
            "{path} differs from crates/events/sql/service_tables.sql"
        );
    }
}

// The same suite on both buses. Each scenario runs the production loops (relay and
// consumers spawned as services spawn them) and waits for outcomes.

async fn committed_once_per_group(kind: Kind) {
    let bench = bench_on(kind).await;
    let shutdown = CancellationToken::new();
    let mut rolled_back = bench.producer.begin().await.unwrap();
    outbox::enqueue(
        &mut rolled_back,
        Service::Appointments,
        &counted("a", 0),
        &EventContext::default(),
    )
    .await
    .unwrap();
    rolled_back.rollback().await.unwrap();
    produce(&bench.producer, &[counted("b", 0)]).await;
    relay_on(&bench.bus, &bench.producer, RelayFaults::default()).spawn(shutdown.clone());
    for group in ["first", "second"] {
        consumer_on(&bench.bus, &bench.consumer, group, State::default()).spawn(shutdown.clone());
    }
    for group in ["first", "second"] {
        wait_for(&bench.consumer, group, 1).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for group in ["first", "second"] {
        assert_eq!(
            effects(&bench.consumer, group).await,
            [("b".to_owned(), 0)],
            "{kind:?} {group}"
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn postgres_bus_delivers_committed_events_once_per_group_and_rolled_back_ones_never() {
    committed_once_per_group(Kind::Postgres).await;
}

#[tokio::test]
async fn kafka_bus_delivers_committed_events_once_per_group_and_rolled_back_ones_never() {
    committed_once_per_group(Kind::Kafka).await;
}

#[tokio::test]
async fn kafka_bus_on_the_mock_cluster_delivers_committed_events_once_per_group_and_rolled_back_ones_never()
 {
    committed_once_per_group(Kind::KafkaMock).await;
}

async fn many_in_order(kind: Kind, per_aggregate: i32) {
    let bench = bench_on(kind).await;
    let shutdown = CancellationToken::new();
    relay_on(&bench.bus, &bench.producer, RelayFaults::default()).spawn(shutdown.clone());
    consumer_on(&bench.bus, &bench.consumer, "first", State::default()).spawn(shutdown.clone());
    consumer_on(&bench.bus, &bench.consumer, "first", State::default()).spawn(shutdown.clone());
    consumer_on(&bench.bus, &bench.consumer, "second", State::default()).spawn(shutdown.clone());
    for n in 0..per_aggregate {
        let batch: Vec<Counted> = (0..100)
            .map(|aggregate| counted(&format!("agg-{aggregate}"), n))
            .collect();
        produce(&bench.producer, &batch).await;
    }
    let total = 100 * per_aggregate as usize;
    for group in ["first", "second"] {
        wait_for(&bench.consumer, group, total).await;
        let seen = effects(&bench.consumer, group).await;
        assert_eq!(seen.len(), total, "{kind:?} {group}: none applied twice");
        let mut next = std::collections::HashMap::new();
        for (key, n) in seen {
            let expected = next.entry(key.clone()).or_insert(0);
            assert_eq!(n, *expected, "{kind:?} {group}: {key} out of order");
            *expected += 1;
        }
        assert!(
            next.values().all(|count| *count == per_aggregate),
            "{kind:?} {group}: none missing"
        );
    }
    shutdown.cancel();
}

#[tokio::test]
async fn kafka_bus_keeps_ten_thousand_events_over_a_hundred_aggregates_in_order_once() {
    many_in_order(Kind::Kafka, 100).await;
}

#[tokio::test]
async fn kafka_bus_on_the_mock_cluster_keeps_ten_thousand_events_over_a_hundred_aggregates_in_order_once()
 {
    many_in_order(Kind::KafkaMock, 100).await;
}

async fn crash_safe(kind: Kind) {
    let bench = bench_on(kind).await;
    let shutdown = CancellationToken::new();
    let relay_faults = RelayFaults::default();
    relay_faults
        .crash_after_publish
        .store(true, Ordering::SeqCst);
    let consumer_faults = ConsumerFaults::default();
    if matches!(kind, Kind::Kafka | Kind::KafkaMock) {
        consumer_faults
            .crash_before_offset_commit
            .store(true, Ordering::SeqCst);
    }
    produce(
        &bench.producer,
        &[counted("c", 0), counted("c", 1), counted("c", 2)],
    )
    .await;
    // The relay publishes and "dies" before marking, over and over: the bus sees the
    // batch again and again.
    relay_on(&bench.bus, &bench.producer, relay_faults.clone()).spawn(shutdown.clone());
    // The consumer applies effects and "dies" before committing its offset.
    let crashing = consumer_on(&bench.bus, &bench.consumer, "group", State::default())
        .with_faults(consumer_faults);
    crashing.spawn(shutdown.clone());
    match kind {
        // Kafka sees the batch while the relay keeps dying; the consumer applies it.
        Kind::Kafka | Kind::KafkaMock => wait_for(&bench.consumer, "group", 1).await,
        // On the postgres bus appending and marking are one transaction: a relay that dies
        // in between has published nothing.
        Kind::Postgres => {
            tokio::time::sleep(Duration::from_millis(700)).await;
            assert!(effects(&bench.consumer, "group").await.is_empty());
        }
    }
    tokio::time::sleep(Duration::from_millis(700)).await;

    relay_faults
        .crash_after_publish
        .store(false, Ordering::SeqCst);
    consumer_on(&bench.bus, &bench.consumer, "group", State::default()).spawn(shutdown.clone());
    wait_for(&bench.consumer, "group", 3).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let seen: Vec<i32> = effects(&bench.consumer, "group")
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(seen, [0, 1, 2], "{kind:?}: every effect once, in order");
    // Marked once the relay survives.
    wait_until_published(&bench.producer).await;
    shutdown.cancel();
}

async fn pending(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox where published_at is null")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_until_published(pool: &PgPool) {
    eventually_within(
        Duration::from_secs(60),
        "every outbox row published",
        || async { (pending(pool).await == 0).then_some(()) },
    )
    .await;
}

/// A consumer on a broker of its own that has just handled an event and sent its offset
/// commit to the broker, which froze (its connections open, unanswered) a moment before.
/// Returns the consumer's task and the token that stops it.
async fn committing_to_a_frozen_broker() -> (
    Bench,
    TestBroker,
    (tokio::task::JoinHandle<()>, CancellationToken),
) {
    let broker = TestBroker::start().await;
    let bench = bench_on_private_broker(&broker, Vec::new()).await;
    let relaying = CancellationToken::new();
    relay_on(&bench.bus, &bench.producer, RelayFaults::default()).spawn(relaying.clone());
    let state = State::default();
    let stopping = CancellationToken::new();
    let consuming =
        consumer_on(&bench.bus, &bench.consumer, "group", state.clone()).spawn(stopping.clone());
    produce(&bench.producer, &[counted("gated", 0)]).await;
    tokio::time::timeout(Duration::from_secs(240), state.gate.reached.notified())
        .await
        .expect("the event reached its handler");
    relaying.cancel();
    broker.signal("-STOP");
    state.gate.opened.notify_one();
    wait_for(&bench.consumer, "group", 1).await;
    (bench, broker, (consuming, stopping))
}

/// Leaving a consumer group waits for what the consumer has in flight with the broker (its
/// last offset commit), and librdkafka waits without a bound; a consumer stopping while
/// its broker does not answer must not wait with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_consumer_stops_promptly_when_its_broker_no_longer_answers() {
    let (_bench, broker, (consuming, stopping)) = committing_to_a_frozen_broker().await;
    let asked = Instant::now();
    stopping.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(20), consuming).await;
    broker.signal("-CONT");
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the consumer was still stopping {:?} after it was asked to",
        asked.elapsed()
    );
}

/// A runtime shutting down drops its tasks without polling them again: a consumer is
/// dropped then, with no chance to leave its group first, and must not hold the runtime
/// (and the process) up while its broker does not answer.
#[test]
fn a_runtime_with_a_kafka_consumer_whose_broker_no_longer_answers_shuts_down_promptly() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (bench, broker) = runtime.block_on(async {
        let (bench, broker, _running) = committing_to_a_frozen_broker().await;
        (bench, broker)
    });
    let (stopped, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(runtime);
        let _ = stopped.send(());
    });
    let shut_down = done.recv_timeout(Duration::from_secs(20));
    broker.signal("-CONT");
    assert!(
        shut_down.is_ok(),
        "the runtime was still shutting down 20 s later"
    );
    drop(bench);
}

#[tokio::test]
async fn a_relay_that_failed_lets_go_of_its_lead_so_another_instance_takes_over() {
    let bench = bench_on(Kind::KafkaMock).await;
    let shutdown = CancellationToken::new();
    consumer_on(&bench.bus, &bench.consumer, "group", State::default()).spawn(shutdown.clone());
    produce(&bench.producer, &[counted("c", 0)]).await;
    // The first instance publishes and fails before marking, again and again.
    let faults = RelayFaults::default();
    faults.crash_after_publish.store(true, Ordering::SeqCst);
    let first = CancellationToken::new();
    let failing = relay_on(&bench.bus, &bench.producer, faults).spawn(first.clone());
    wait_for(&bench.consumer, "group", 1).await;
    // It stops; its pool (the service's, still serving requests) lives on.
    first.cancel();
    failing.await.unwrap();
    assert_eq!(pending(&bench.producer).await, 1);

    // A second instance of the service, with a pool of its own, takes the lead.
    let second_pool = polyclinic_db::schema_pool(&bench.db.url(), "producer", 10, "test").unwrap();
    relay_on(&bench.bus, &second_pool, RelayFaults::default()).spawn(shutdown.clone());
    wait_until_published(&second_pool).await;
    shutdown.cancel();
}

#[tokio::test]
async fn postgres_bus_effects_stay_exactly_once_when_relay_and_consumer_die_mid_way() {
    crash_safe(Kind::Postgres).await;
}

#[tokio::test]
async fn kafka_bus_effects_stay_exactly_once_when_relay_and_consumer_die_mid_way() {
    crash_safe(Kind::Kafka).await;
}

#[tokio::test]
async fn kafka_bus_on_the_mock_cluster_effects_stay_exactly_once_when_relay_and_consumer_die_mid_way()
 {
    crash_safe(Kind::KafkaMock).await;
}

async fn poison_on(kind: Kind) {
    let bench = bench_on(kind).await;
    let state = State::default();
    state.poison.store(true, Ordering::SeqCst);
    let shutdown = CancellationToken::new();
    relay_on(&bench.bus, &bench.producer, RelayFaults::default()).spawn(shutdown.clone());
    let running =
        consumer_on(&bench.bus, &bench.consumer, "group", state.clone()).spawn(shutdown.clone());
    produce(
        &bench.producer,
        &[
            counted("poison", 0),
            counted("healthy", 0),
            counted("poison", 1),
            counted("healthy", 1),
        ],
    )
    .await;
    // The healthy aggregate is handled while poison is retried.
    wait_for(&bench.consumer, "group", 2).await;
    assert_eq!(
        effects(&bench.consumer, "group").await,
        [("healthy".to_owned(), 0), ("healthy".to_owned(), 1)],
        "{kind:?}"
    );
    // poison/1 waits behind poison/0; after poison/0's last attempt it is tried, fails as
    // well, and is dead-lettered too.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = polyclinic_events::list_dead_letters(&bench.consumer, true)
            .await
            .unwrap();
        if dead.len() == 2 {
            break dead;
        }
        assert!(Instant::now() < deadline, "{kind:?} dead letters: {dead:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        dead.iter()
            .all(|letter| letter.attempts == 3 && letter.error.contains("cannot be handled"))
    );
    let outcome: String = sqlx::query_scalar("select outcome from inbox where event_id = $1")
        .bind(dead[0].event_id)
        .fetch_one(&bench.consumer)
        .await
        .unwrap();
    assert_eq!(outcome, "dead_lettered");
    shutdown.cancel();
    running.await.unwrap();

    // The handler is fixed; an admin replays, oldest first, each once.
    state.poison.store(false, Ordering::SeqCst);
    let replayer = consumer_on(&bench.bus, &bench.consumer, "group", state.clone());
    for letter in dead.iter().rev() {
        assert_eq!(
            polyclinic_events::replay_dead_letter(&replayer, letter.id)
                .await
                .unwrap(),
            Some(Ok(()))
        );
        assert_eq!(
            polyclinic_events::replay_dead_letter(&replayer, letter.id)
                .await
                .unwrap(),
            None
        );
    }
    let poison: Vec<i32> = effects(&bench.consumer, "group")
        .await
        .into_iter()
        .filter(|(key, _)| key == "poison")
        .map(|(_, n)| n)
        .collect();
    assert_eq!(poison, [0, 1], "{kind:?}");
    assert!(
        polyclinic_events::list_dead_letters(&bench.consumer, true)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn postgres_bus_dead_letters_a_poison_event_without_holding_up_others_and_replays_it() {
    poison_on(Kind::Postgres).await;
}

#[tokio::test]
async fn kafka_bus_dead_letters_a_poison_event_without_holding_up_others_and_replays_it() {
    poison_on(Kind::Kafka).await;
}

#[tokio::test]
async fn kafka_bus_on_the_mock_cluster_dead_letters_a_poison_event_without_holding_up_others_and_replays_it()
 {
    poison_on(Kind::KafkaMock).await;
}

#[tokio::test]
async fn kafka_producers_go_on_while_the_broker_is_stopped_and_everything_arrives_after() {
    let broker = TestBroker::start().await;
    let bench =
        bench_on_private_broker(&broker, vec![("batch.num.messages".into(), "1".into())]).await;
    let shutdown = CancellationToken::new();
    relay_on(&bench.bus, &bench.producer, RelayFaults::default()).spawn(shutdown.clone());
    consumer_on(&bench.bus, &bench.consumer, "group", State::default()).spawn(shutdown.clone());
    produce(&bench.producer, &[counted("s", 0)]).await;
    wait_for(&bench.consumer, "group", 1).await;

    broker.signal("-STOP");
    let started = Instant::now();
    for n in 1..=20 {
        produce(&bench.producer, &[counted("s", n)]).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "producing did not wait for the broker"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        effects(&bench.consumer, "group").await.len(),
        1,
        "nothing moves while the broker is stopped"
    );
    let waiting = pending(&bench.producer).await;
    assert!(waiting > 0, "events wait in the outbox");

    broker.signal("-CONT");
    wait_for(&bench.consumer, "group", 21).await;
    let seen: Vec<i32> = effects(&bench.consumer, "group")
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(
        seen,
        (0..=20).collect::<Vec<_>>(),
        "everything arrived, once, in order"
    );
    shutdown.cancel();
}

/// With a linger of two seconds, a relay that enqueued one record only after the previous
/// one was acknowledged would take two seconds per event; enqueuing the whole batch before
/// waiting for the acknowledgements sends it in one linger.
#[tokio::test]
async fn the_relay_hands_the_producer_a_whole_batch_before_waiting_for_acknowledgements() {
    let (bus, _mock) = mock_bus();
    let Bus::Kafka(mut settings) = bus else {
        unreachable!("the mock is a kafka bus")
    };
    settings.properties = vec![("linger.ms".into(), "2000".into())];
    let bench = Bench {
        bus: Bus::Kafka(settings),
        ..bench_on(Kind::Postgres).await
    };
    let shutdown = CancellationToken::new();
    let batch: Vec<Counted> = (0..20).map(|n| counted(&format!("agg-{n}"), 0)).collect();
    produce(&bench.producer, &batch).await;
    let started = Instant::now();
    relay_on(&bench.bus, &bench.producer, RelayFaults::default()).spawn(shutdown.clone());
    loop {
        let left = pending(&bench.producer).await;
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{left} of 20 events still unpublished after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}

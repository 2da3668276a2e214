//! The event backbone's throughput and latency, for each bus, in one run.
//!
//! Burst: `burst` events, each committed in its own transaction by 8 concurrent producers, as
//! fast as they go; throughput is events handled per second from the first commit to the
//! last handler commit. Paced: `rate` events per second for `seconds`; latency is from the
//! event's creation in the producer's transaction to the consumer's handler, p50 and p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use polyclinic_config::Service;
use polyclinic_contracts::{Event, Topic};
use polyclinic_events::{
    Bus, Consumer, ConsumerSettings, EventContext, EventMetrics, Handled, Handlers, KafkaSettings,
    Relay, RelaySettings, ensure_topics, log, outbox,
};
use polyclinic_http::CancellationToken;
use rdkafka::mocking::MockCluster;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection, PgPool};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tick {
    key: String,
    phase: String,
}

impl Event for Tick {
    const TYPE: &'static str = "polyclinic.bench.tick.v1";
    const TOPIC: Topic = Topic::Appointments;
    fn subject(&self) -> String {
        self.key.clone()
    }
}

pub struct Options {
    pub server: String,
    pub kafka_brokers: String,
    pub kafka_properties: Vec<(String, String)>,
    pub burst: usize,
    pub rate: u32,
    pub seconds: u64,
}

pub struct Row {
    pub bus: String,
    pub burst_per_second: f64,
    pub backlog_per_second: f64,
    pub paced_rate: u32,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

async fn handle(
    conn: &mut PgConnection,
    envelope: &polyclinic_events::Envelope,
) -> anyhow::Result<Handled> {
    let tick: Tick = envelope.data_as()?;
    let latency = chrono::Utc::now() - envelope.time;
    sqlx::query("insert into effects (event_id, phase, latency_us) values ($1, $2, $3)")
        .bind(envelope.id)
        .bind(&tick.phase)
        .bind(latency.num_microseconds().unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    Ok(Handled::Done)
}

async fn fresh_database(server: &str, name: &str) -> anyhow::Result<String> {
    let mut admin = PgConnection::connect(&format!("{server}/postgres")).await?;
    sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(format!("{server}/{name}"))
}

async fn schema(url: &str, name: &str) -> anyhow::Result<PgPool> {
    let pool = polyclinic_db::schema_pool(url, name, 16, "polyclinic-bench")?;
    sqlx::raw_sql(&format!("create schema {name}"))
        .execute(&pool)
        .await?;
    sqlx::raw_sql(polyclinic_events::SERVICE_TABLES_SQL)
        .execute(&pool)
        .await?;
    Ok(pool)
}

async fn count(pool: &PgPool, phase: &str) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("select count(*) from effects where phase = $1")
            .bind(phase)
            .fetch_one(pool)
            .await?,
    )
}

async fn wait_for(pool: &PgPool, phase: &str, expected: usize) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if count(pool, phase).await? as usize >= expected {
            return Ok(Instant::now());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {expected} {phase} events arrived",
            count(pool, phase).await?
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn produce_one(pool: &PgPool, key: String, phase: &str) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    outbox::enqueue(
        &mut tx,
        Service::Appointments,
        &Tick {
            key,
            phase: phase.to_owned(),
        },
        &EventContext::default(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Measures one bus.
pub async fn measure(name: &str, options: &Options) -> anyhow::Result<Row> {
    let database = format!("polyclinic_bench_events_{}", name.replace('-', "_"));
    let url = fresh_database(&options.server, &database).await?;
    let kafka = |brokers: String, properties: Vec<(String, String)>, create_topics| KafkaSettings {
        brokers,
        properties,
        partitions: 6,
        replication_factor: 1,
        create_topics,
        topic_prefix: format!("bench-{}-", uuid::Uuid::new_v4().simple()),
        group_instance_id: None,
        watch: Default::default(),
    };
    // The mock cluster lives as long as this measurement; its topic is made through its
    // own API, as it has no CreateTopics request.
    let mut _mock = None;
    let bus = match name {
        "kafka" => {
            let settings = kafka(
                options.kafka_brokers.clone(),
                options.kafka_properties.clone(),
                true,
            );
            ensure_topics(&settings, &[Topic::Appointments.as_str()]).await?;
            Bus::Kafka(settings)
        }
        "kafka-mock" => {
            let mock = MockCluster::new(1)?;
            // The mock answers a fetch that finds nothing only after `fetch.wait.max.ms`,
            // however soon a record arrives (Apache Kafka answers as soon as one does).
            let properties = vec![("fetch.wait.max.ms".to_owned(), "5".to_owned())];
            let settings = kafka(mock.bootstrap_servers(), properties, false);
            mock.create_topic(&settings.topic(Topic::Appointments.as_str()), 6, 1)?;
            _mock = Some(mock);
            Bus::Kafka(settings)
        }
        "postgres" => {
            log::ensure(&url).await?;
            Bus::Postgres
        }
        other => anyhow::bail!("no bus `{other}` (postgres, kafka-mock, kafka)"),
    };
    let producer = schema(&url, "producer").await?;
    let consumer_pool = schema(&url, "consumer").await?;
    sqlx::raw_sql("create table effects (event_id uuid primary key, phase text not null, latency_us bigint not null)")
        .execute(&consumer_pool)
        .await?;

    let shutdown = CancellationToken::new();
    Relay::new(
        producer.clone(),
        "producer",
        &bus,
        RelaySettings::default(),
        EventMetrics::default(),
    )?
    .spawn(shutdown.clone());
    let handlers = Handlers::new().on(Tick::TYPE, |conn, envelope, _: &()| {
        Box::pin(handle(conn, envelope))
    });
    Consumer::new(
        &bus,
        consumer_pool.clone(),
        ConsumerSettings::new("bench", &[Topic::Appointments.as_str()]),
        handlers,
        (),
        EventMetrics::default(),
    )
    .spawn(shutdown.clone());

    // Ready: one event through, so that the relay leads and a Kafka consumer has joined its
    // group (a new group waits out the broker's initial rebalance delay, 3 s by default)
    // before anything is timed.
    produce_one(&producer, "aggregate-0".to_owned(), "ready").await?;
    wait_for(&consumer_pool, "ready", 1).await?;

    // Burst.
    let started = Instant::now();
    let producers = 8;
    let mut tasks = Vec::new();
    for worker in 0..producers {
        let pool = producer.clone();
        let share = options.burst / producers;
        tasks.push(tokio::spawn(async move {
            for n in 0..share {
                produce_one(
                    &pool,
                    format!("aggregate-{}", (worker * share + n) % 500),
                    "burst",
                )
                .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let burst_total = (options.burst / producers) * producers;

    let finished = wait_for(&consumer_pool, "burst", burst_total).await?;
    let burst_per_second = burst_total as f64 / (finished - started).as_secs_f64();

    // Paced.
    let total = options.rate as usize * options.seconds as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(options.rate));
    let pool = Arc::new(producer.clone());
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = tokio::task::JoinSet::new();
    for n in 0..total {
        ticker.tick().await;
        let pool = pool.clone();
        inflight.spawn(async move {
            produce_one(&pool, format!("aggregate-{}", n % 500), "paced").await
        });
        while inflight.len() > 64 {
            inflight.join_next().await;
        }
    }
    while let Some(done) = inflight.join_next().await {
        done??;
    }
    wait_for(&consumer_pool, "paced", total).await?;
    // Backlog: the same number of events already written (held back from the relay until
    // all are committed), then released at once: what the relay, the bus and the consumer
    // move when the producers are not what limits them.
    let mut tasks = Vec::new();
    for worker in 0..producers {
        let pool = producer.clone();
        let share = options.burst / producers;
        tasks.push(tokio::spawn(async move {
            for chunk in (0..share).collect::<Vec<_>>().chunks(100) {
                let mut tx = pool.begin().await?;
                let mut written = Vec::with_capacity(chunk.len());
                for n in chunk {
                    let id = outbox::enqueue(
                        &mut tx,
                        Service::Appointments,
                        &Tick {
                            key: format!("aggregate-{}", (worker * share + n) % 500),
                            phase: "backlog".to_owned(),
                        },
                        &EventContext::default(),
                    )
                    .await?;
                    written.push(id);
                }
                sqlx::query(
                    "update outbox set next_attempt_at = 'infinity' where event_id = any($1)",
                )
                .bind(&written)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let released = Instant::now();
    sqlx::query(
        "with released as (
             update outbox set next_attempt_at = now() where next_attempt_at = 'infinity'
             returning 1)
         select pg_notify('polyclinic_outbox_producer', '') from released limit 1",
    )
    .execute(&producer)
    .await?;
    let drained = wait_for(&consumer_pool, "backlog", burst_total).await?;
    let backlog_per_second = burst_total as f64 / (drained - released).as_secs_f64();

    let mut latencies: Vec<i64> =
        sqlx::query_scalar("select latency_us from effects where phase = 'paced' order by 1")
            .fetch_all(&consumer_pool)
            .await?;
    latencies.sort_unstable();
    let percentile =
        |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    let row = Row {
        bus: name.to_owned(),
        burst_per_second,
        backlog_per_second,
        paced_rate: options.rate,
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        max_ms: percentile(1.0),
    };
    shutdown.cancel();
    producer.close().await;
    consumer_pool.close().await;
    let mut admin = PgConnection::connect(&format!("{}/postgres", options.server)).await?;
    sqlx::query(&format!("drop database if exists {database} with (force)"))
        .execute(&mut admin)
        .await?;
    Ok(row)
}

/// What each row measures.
fn label(bus: &str) -> &str {
    match bus {
        "kafka-mock" => "kafka, librdkafka's mock cluster (librdkafka's batching)",
        "kafka" => "kafka, tansu (the test broker: one record per batch)",
        other => other,
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut lines = vec![
        "| bus | burst throughput (events/s) | backlog drained (events/s) | paced rate (events/s) | p50 commit to handler (ms) | p99 (ms) | max (ms) |".to_owned(),
        "|---|---:|---:|---:|---:|---:|---:|".to_owned(),
    ];
    for row in rows {
        lines.push(format!(
            "| {} | {:.0} | {:.0} | {} | {:.1} | {:.1} | {:.1} |",
            label(&row.bus),
            row.burst_per_second,
            row.backlog_per_second,
            row.paced_rate,
            row.p50_ms,
            row.p99_ms,
            row.max_ms
        ));
    }
    lines.join("\n")
}

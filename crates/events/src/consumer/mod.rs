//! Consumers: handlers per event type, run exactly once in effect.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use polyclinic_http::CancellationToken;
use sqlx::postgres::PgListener;
use sqlx::{Acquire, PgConnection, PgPool};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::kafka::{Bus, GroupMember, KafkaSettings, LEAVE_WITHIN};
use crate::log::{self, LoggedEvent};
mod retry;

pub use retry::replay_dead_letter;

use crate::{Envelope, EventMetrics, parked};

/// What a handler made of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The effect is written.
    Done,
    /// Nothing to do, for a reason recorded in the inbox (an event naming a user that does
    /// not exist, say). Not retried.
    Skipped(String),
}

/// The future a handler returns; it borrows the transaction, the envelope and the state.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<Handled>> + Send + 'a>>;

type HandlerFn<S> = Box<
    dyn for<'a> Fn(&'a mut PgConnection, &'a Envelope, &'a S) -> HandlerFuture<'a> + Send + Sync,
>;

/// Handlers by event type. A handler writes its effect through the connection it is given:
/// the consumer's transaction, which also records the event in the inbox.
pub struct Handlers<S> {
    by_type: HashMap<String, HandlerFn<S>>,
    fallback: Option<HandlerFn<S>>,
}

impl<S> Default for Handlers<S> {
    fn default() -> Self {
        Self {
            by_type: HashMap::new(),
            fallback: None,
        }
    }
}

impl<S> Handlers<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for events of `event_type`, for example
    /// `.on(UserRegisteredV1::TYPE, |tx, event, state| Box::pin(welcome(tx, event, state)))`.
    pub fn on<F>(mut self, event_type: &str, handler: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConnection, &'a Envelope, &'a S) -> HandlerFuture<'a>
            + Send
            + Sync
            + 'static,
    {
        self.by_type
            .insert(event_type.to_owned(), Box::new(handler));
        self
    }

    /// Registers `handler` for every type without a handler of its own (the event log
    /// records them all).
    pub fn otherwise<F>(mut self, handler: F) -> Self
    where
        F: for<'a> Fn(&'a mut PgConnection, &'a Envelope, &'a S) -> HandlerFuture<'a>
            + Send
            + Sync
            + 'static,
    {
        self.fallback = Some(Box::new(handler));
        self
    }

    pub(crate) fn get(&self, event_type: &str) -> Option<&HandlerFn<S>> {
        self.by_type.get(event_type).or(self.fallback.as_ref())
    }
}

/// How a consumer works.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// The consumer group: its name in the inbox, its positions, its dead letters.
    pub name: String,
    /// The service it runs in, as traces name it: the part of `name` before the first `-`
    /// unless set otherwise.
    pub service: String,
    /// The topics it reads.
    pub topics: Vec<String>,
    /// Events handled per transaction, at most: a batch of the log on the `postgres` bus,
    /// what one poll brought on the `kafka` bus.
    pub batch_size: i64,
    /// How often to look even without a notification.
    pub poll_interval: Duration,
    /// Attempts before an event is dead-lettered.
    pub max_attempts: i32,
    /// The first retry's delay; each further one doubles, up to a minute.
    pub retry_base: Duration,
}

impl ConsumerSettings {
    pub fn new(name: &str, topics: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            service: name.split('-').next().unwrap_or(name).to_owned(),
            topics: topics.iter().map(|topic| (*topic).to_owned()).collect(),
            batch_size: 200,
            poll_interval: Duration::from_secs(1),
            max_attempts: 5,
            retry_base: Duration::from_millis(500),
        }
    }

    /// [`ConsumerSettings::new`] with the retries `events.max_attempts` and
    /// `events.retry_base_ms` of `config` set.
    pub fn from_config(config: &polyclinic_config::Config, name: &str, topics: &[&str]) -> Self {
        Self {
            max_attempts: i32::try_from(config.events.max_attempts).unwrap_or(5),
            retry_base: Duration::from_millis(config.events.retry_base_ms.into()),
            ..Self::new(name, topics)
        }
    }

    pub(crate) fn backoff(&self, attempts: i32) -> Duration {
        let exponent = u32::try_from(attempts.max(1) - 1).unwrap_or(0).min(16);
        (self.retry_base * 2u32.pow(exponent)).min(Duration::from_secs(60))
    }
}

/// Test hooks that make a consumer die at the worst moments.
#[derive(Debug, Clone, Default)]
pub struct ConsumerFaults {
    /// On the `kafka` bus: stop after the handler's transaction committed and before the
    /// offset is committed, as a consumer killed at that moment would.
    pub crash_before_offset_commit: Arc<std::sync::atomic::AtomicBool>,
}

/// A consumer group member of one service.
pub struct Consumer<S> {
    pub(crate) bus: Bus,
    pub(crate) faults: ConsumerFaults,
    pub(crate) pool: PgPool,
    pub(crate) settings: ConsumerSettings,
    pub(crate) handlers: Handlers<S>,
    pub(crate) state: S,
    pub(crate) metrics: EventMetrics,
}

impl<S: Send + Sync + 'static> Consumer<S> {
    pub fn new(
        bus: &Bus,
        pool: PgPool,
        settings: ConsumerSettings,
        handlers: Handlers<S>,
        state: S,
        metrics: EventMetrics,
    ) -> Self {
        Self {
            bus: bus.clone(),
            faults: ConsumerFaults::default(),
            pool,
            settings,
            handlers,
            state,
            metrics,
        }
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Arms test hooks.
    pub fn with_faults(mut self, faults: ConsumerFaults) -> Self {
        self.faults = faults;
        self
    }

    /// Runs the stream and the retries until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        Arc::new(self).spawn_shared(shutdown)
    }

    /// Like [`Consumer::spawn`], keeping a handle for replaying dead letters.
    pub fn spawn_shared(self: Arc<Self>, shutdown: CancellationToken) -> JoinHandle<()> {
        let consumer = self;
        tokio::spawn(async move {
            let retries = tokio::spawn(consumer.clone().retry_loop(shutdown.clone()));
            match consumer.bus.clone() {
                Bus::Postgres => consumer.stream_loop(shutdown).await,
                Bus::Kafka(kafka) => consumer.kafka_loop(&kafka, shutdown).await,
            }
            retries.await.ok();
        })
    }

    /// Reads the `postgres` bus: a topic when a notification says it has new events, and
    /// every topic at least once per `poll_interval` (a notification lost with its
    /// connection, a poll that failed).
    async fn stream_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut listener: Option<PgListener> = None;
        let mut due: Vec<usize> = (0..self.settings.topics.len()).collect();
        let mut swept = tokio::time::Instant::now();
        loop {
            if listener.is_none() {
                listener = async {
                    let mut listening = PgListener::connect_with(&self.pool).await.ok()?;
                    listening.listen(log::CHANNEL).await.ok()?;
                    Some(listening)
                }
                .await;
            }
            for &topic in &due {
                if let Err(err) = self.catch_up(&self.settings.topics[topic]).await {
                    tracing::warn!(consumer = %self.settings.name, error = %format!("{err:#}"), "consuming failed; retrying");
                }
            }
            let notified = async {
                match listener.as_mut() {
                    Some(listening) => listening.recv().await.map(Some),
                    None => std::future::pending().await,
                }
            };
            let woken = tokio::select! {
                () = shutdown.cancelled() => return,
                received = notified => received.unwrap_or_else(|_| {
                    listener = None;
                    None
                }),
                () = tokio::time::sleep_until(swept + self.settings.poll_interval) => None,
            };
            let sweep = woken.is_none() || swept.elapsed() >= self.settings.poll_interval;
            due = match (woken, listener.as_mut()) {
                (Some(first), Some(listening)) if !sweep => {
                    let mut notifications = vec![first];
                    notifications.extend(std::iter::from_fn(|| listening.next_buffered()));
                    topics_named(
                        &self.settings.topics,
                        notifications
                            .iter()
                            .map(|notification| notification.payload()),
                    )
                }
                _ => {
                    swept = tokio::time::Instant::now();
                    (0..self.settings.topics.len()).collect()
                }
            };
        }
    }

    /// Handles `topic`'s events batch by batch until a batch comes back short of a full
    /// one: the log had no more when it was read, and what is appended later notifies.
    async fn catch_up(&self, topic: &str) -> anyhow::Result<()> {
        while self.poll_topic(topic).await? >= self.batch_size() {}
        Ok(())
    }

    async fn kafka_loop(self: Arc<Self>, kafka: &KafkaSettings, shutdown: CancellationToken) {
        let mut pause = Duration::from_millis(100);
        loop {
            // The topics are made sure of first: the broker may have been out of reach when
            // the service started, and a group subscribed to a missing topic learns of it
            // only at its next metadata refresh (minutes).
            let topics: Vec<&str> = self.settings.topics.iter().map(String::as_str).collect();
            let joined = match crate::ensure_topics(kafka, &topics).await {
                Ok(()) => GroupMember::join(kafka, &self.settings.name, &self.settings.topics),
                Err(err) => Err(err),
            };
            let member = match joined {
                Ok(member) => member,
                Err(err) => {
                    tracing::warn!(consumer = %self.settings.name, error = %format!("{err:#}"), "joining the Kafka group failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => None,
                    next = member.next(kafka) => Some(next),
                };
                let Some(next) = next else {
                    // Leaving at once hands this member's partitions to the others now,
                    // rather than at the group's session timeout.
                    member.leave(LEAVE_WITHIN).await;
                    return;
                };
                let handled = async {
                    // What has arrived with the first message is handled with it.
                    let mut received = vec![next?];
                    while received.len() < self.batch_size() {
                        match member.next_ready(kafka)? {
                            Some(message) => received.push(message),
                            None => break,
                        }
                    }
                    let (handled, failure) = self.clone().handle_received(received).await;
                    if self
                        .faults
                        .crash_before_offset_commit
                        .load(std::sync::atomic::Ordering::SeqCst)
                    {
                        anyhow::bail!(
                            "fault injected: the consumer died before committing its offset"
                        );
                    }
                    // What was handled is committed; a partition that failed is read again
                    // from its last committed offset after rejoining.
                    if !handled.is_empty() {
                        member.commit(&handled)?;
                    }
                    failure.map_or(Ok(()), Err)
                }
                .await;
                if let Err(err) = handled {
                    // Rejoining resumes from the last committed offset; the inbox absorbs
                    // whatever is delivered again.
                    tracing::warn!(consumer = %self.settings.name, error = %format!("{err:#}"), "consuming from Kafka failed; rejoining");
                    if self
                        .faults
                        .crash_before_offset_commit
                        .load(std::sync::atomic::Ordering::SeqCst)
                    {
                        return;
                    }
                    break;
                }
                pause = Duration::from_millis(100);
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn retry_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let tick = self
            .settings
            .retry_base
            .clamp(Duration::from_millis(10), Duration::from_millis(500));
        loop {
            loop {
                match retry::retry_due(&self).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(consumer = %self.settings.name, error = %format!("{err:#}"), "retrying parked events failed");
                        break;
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Reads and handles one batch of each topic of the `postgres` bus; returns how many
    /// events it saw.
    pub async fn poll_once(&self) -> anyhow::Result<usize> {
        anyhow::ensure!(
            matches!(self.bus, Bus::Postgres),
            "poll_once reads the postgres bus; Kafka consumers run with spawn"
        );
        let mut seen = 0;
        for topic in &self.settings.topics {
            seen += self.poll_topic(topic).await?;
        }
        Ok(seen)
    }

    /// Handles a batch without a savepoint per event, the common case; if a handler fails,
    /// the batch is rolled back and handled again with each event isolated in a savepoint, so
    /// that only the failing one is parked.
    async fn poll_topic(&self, topic: &str) -> anyhow::Result<usize> {
        match self.poll_topic_in(topic, Isolation::None).await {
            Err(err) if err.is::<HandlerFailed>() => {
                self.poll_topic_in(topic, Isolation::PerEvent).await
            }
            outcome => outcome,
        }
    }

    async fn poll_topic_in(&self, topic: &str, isolation: Isolation) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        // Locking the position row makes instances of one consumer group take turns.
        let lock = || {
            sqlx::query_scalar(
                "select position from consumer_positions where consumer = $1 and topic = $2 for update",
            )
            .bind(&self.settings.name)
            .bind(topic)
        };
        let position: i64 = match lock().fetch_optional(&mut *tx).await? {
            Some(position) => position,
            // The group's first read of the topic.
            None => {
                sqlx::query("insert into consumer_positions (consumer, topic) values ($1, $2) on conflict do nothing")
                    .bind(&self.settings.name)
                    .bind(topic)
                    .execute(&mut *tx)
                    .await?;
                lock().fetch_one(&mut *tx).await?
            }
        };
        let events = log::read_after(&mut tx, topic, position, self.settings.batch_size).await?;
        let Some(last) = events.last().map(|event| event.position) else {
            return Ok(0);
        };
        self.handle_all(&mut tx, &events, isolation).await?;
        sqlx::query(
            "update consumer_positions set position = $3, updated_at = now() where consumer = $1 and topic = $2",
        )
        .bind(&self.settings.name)
        .bind(topic)
        .bind(last)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Events handled per transaction.
    fn batch_size(&self) -> usize {
        usize::try_from(self.settings.batch_size)
            .unwrap_or(1)
            .max(1)
    }

    /// Handles what one poll of the `kafka` bus brought: in one transaction, as the
    /// postgres bus handles a batch; or, when the poll filled a whole batch (the consumer is
    /// behind), one transaction per partition, side by side. An aggregate's events share a
    /// partition, so each aggregate's stay in order, as they do across the instances of a
    /// scaled-out service. Returns the messages whose effects are committed, and a failure.
    async fn handle_received(
        self: Arc<Self>,
        received: Vec<(LoggedEvent, rdkafka::message::OwnedMessage)>,
    ) -> (Vec<rdkafka::message::OwnedMessage>, Option<anyhow::Error>) {
        let groups = if received.len() >= self.batch_size() {
            by_partition(received)
        } else {
            vec![received.into_iter().unzip()]
        };
        let mut handling = tokio::task::JoinSet::new();
        for (events, messages) in groups {
            let this = self.clone();
            handling.spawn(async move {
                let outcome = this.handle_batch(&events).await;
                (messages, outcome)
            });
        }
        let (mut handled, mut failure) = (Vec::new(), None);
        while let Some(joined) = handling.join_next().await {
            match joined {
                Ok((messages, Ok(()))) => handled.extend(messages),
                Ok((_, Err(err))) => failure = Some(err),
                Err(err) => failure = Some(err.into()),
            }
        }
        (handled, failure)
    }

    /// Handles `events` in one transaction, as [`Consumer::poll_topic`] does: without
    /// savepoints, then, if a handler fails, again with each event isolated so that only the
    /// failing one is parked.
    async fn handle_batch(&self, events: &[LoggedEvent]) -> anyhow::Result<()> {
        match self.handle_batch_in(events, Isolation::None).await {
            Err(err) if err.is::<HandlerFailed>() => {
                self.handle_batch_in(events, Isolation::PerEvent).await
            }
            outcome => outcome,
        }
    }

    async fn handle_batch_in(
        &self,
        events: &[LoggedEvent],
        isolation: Isolation,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        self.handle_all(&mut tx, events, isolation).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Handles `events` in `conn`'s transaction, each once per consumer.
    async fn handle_all(
        &self,
        conn: &mut PgConnection,
        events: &[LoggedEvent],
        isolation: Isolation,
    ) -> anyhow::Result<()> {
        let mut batch = Batch::load(conn, &self.settings.name, events).await?;
        for event in events {
            self.handle_in(conn, event, &mut batch, isolation).await?;
        }
        Ok(())
    }

    /// Handles `event` knowing which events of its batch were seen and which aggregates
    /// have parked events.
    async fn handle_in(
        &self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
        batch: &mut Batch,
        isolation: Isolation,
    ) -> anyhow::Result<()> {
        let consumer = self.settings.name.as_str();
        if batch.seen.contains(&event.event_id) {
            self.metrics.count(consumer, "duplicate");
            return Ok(());
        }
        // Marked seen before handling, so a duplicate later in the same batch is skipped.
        batch.seen.insert(event.event_id);
        if batch.parked_keys.contains(&event.key) {
            parked::park(conn, consumer, event, "waiting", None, Duration::ZERO).await?;
            self.metrics.count(consumer, "parked");
            return Ok(());
        }
        match self.run_handler_in(conn, event, isolation).await? {
            Ok(outcome) => {
                self.record(conn, event, outcome).await?;
            }
            Err(error) => {
                let delay = self.settings.backoff(1);
                parked::park(conn, consumer, event, "retrying", Some(&error), delay).await?;
                batch.parked_keys.insert(event.key.clone());
                self.metrics.count(consumer, "parked");
            }
        }
        Ok(())
    }

    /// Runs the handler inside a savepoint. The outer `Result` is for the consumer's own
    /// failures; the inner one is the handler's: its effects are rolled back and the event
    /// is to be retried.
    pub(crate) async fn run_handler(
        &self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
    ) -> anyhow::Result<Result<Handled, String>> {
        self.run_handler_in(conn, event, Isolation::PerEvent).await
    }

    /// Runs the handler in a consumer span, a child of the span that wrote the event.
    async fn run_handler_in(
        &self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
        isolation: Isolation,
    ) -> anyhow::Result<Result<Handled, String>> {
        let span = tracing::info_span!(
            "consume",
            otel.name = %format!("{} {}", self.settings.name, event.event_type),
            otel.kind = "consumer",
            consumer = %self.settings.name,
            event_type = %event.event_type,
            event_id = %event.event_id,
            error = tracing::field::Empty,
        );
        polyclinic_telemetry::continue_trace(
            &span,
            &self.settings.service,
            crate::envelope::trace_headers_of(&event.envelope),
        );
        let outcome = self
            .run_handler_untraced(conn, event, isolation)
            .instrument(span.clone())
            .await;
        match &outcome {
            Ok(Ok(_)) => {}
            Ok(Err(message)) => {
                span.record("error", message.as_str());
            }
            Err(err) => {
                span.record("error", format!("{err:#}").as_str());
            }
        }
        outcome
    }

    async fn run_handler_untraced(
        &self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
        isolation: Isolation,
    ) -> anyhow::Result<Result<Handled, String>> {
        let envelope: Envelope = match serde_json::from_value(event.envelope.clone()) {
            Ok(envelope) => envelope,
            Err(err) => return Ok(Err(format!("malformed envelope: {err}"))),
        };
        let Some(handler) = self.handlers.get(&event.event_type) else {
            self.metrics.count(&self.settings.name, "unknown_type");
            return Ok(Ok(Handled::Skipped(format!(
                "no handler for {}",
                event.event_type
            ))));
        };
        if isolation == Isolation::None {
            return match handler(conn, &envelope, &self.state).await {
                Ok(outcome) => {
                    self.observe_delivery(&envelope);
                    Ok(Ok(outcome))
                }
                // The whole batch is rolled back and handled again, isolated.
                Err(_) => Err(anyhow::Error::new(HandlerFailed)),
            };
        }
        let mut savepoint = conn.begin().await?;
        match handler(&mut savepoint, &envelope, &self.state).await {
            Ok(outcome) => {
                savepoint.commit().await?;
                self.observe_delivery(&envelope);
                Ok(Ok(outcome))
            }
            Err(err) => {
                savepoint.rollback().await?;
                Ok(Err(format!("{err:#}")))
            }
        }
    }

    fn observe_delivery(&self, envelope: &Envelope) {
        let age = Utc::now() - envelope.time;
        self.metrics
            .commit_to_handler
            .observe(age.num_microseconds().unwrap_or(0) as f64 / 1e6);
    }

    /// Writes the inbox row for a handled or skipped event.
    pub(crate) async fn record(
        &self,
        conn: &mut PgConnection,
        event: &LoggedEvent,
        outcome: Handled,
    ) -> anyhow::Result<()> {
        let (label, detail) = match outcome {
            Handled::Done => ("handled", None),
            Handled::Skipped(reason) => ("skipped", Some(reason)),
        };
        sqlx::query(
            "insert into inbox (consumer, event_id, event_type, outcome, detail) values ($1, $2, $3, $4, $5)
             on conflict (consumer, event_id) do nothing",
        )
        .bind(&self.settings.name)
        .bind(event.event_id)
        .bind(&event.event_type)
        .bind(label)
        .bind(detail)
        .execute(&mut *conn)
        .await?;
        self.metrics.count(&self.settings.name, label);
        Ok(())
    }
}

/// What a batch of events needs to know up front, in two queries instead of two per event:
/// which of them this consumer has already handled, and which aggregates have parked events.
pub(crate) struct Batch {
    seen: std::collections::HashSet<uuid::Uuid>,
    parked_keys: std::collections::HashSet<String>,
}

impl Batch {
    pub(crate) async fn load(
        conn: &mut PgConnection,
        consumer: &str,
        events: &[LoggedEvent],
    ) -> anyhow::Result<Self> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|event| event.event_id).collect();
        let keys: Vec<&str> = events.iter().map(|event| event.key.as_str()).collect();
        let seen: Vec<uuid::Uuid> = sqlx::query_scalar(
            "select event_id from inbox where consumer = $1 and event_id = any($2)",
        )
        .bind(consumer)
        .bind(&ids)
        .fetch_all(&mut *conn)
        .await?;
        let parked_keys: Vec<String> = sqlx::query_scalar(
            "select distinct key from parked_events where consumer = $1 and key = any($2)",
        )
        .bind(consumer)
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self {
            seen: seen.into_iter().collect(),
            parked_keys: parked_keys.into_iter().collect(),
        })
    }
}

/// Whether each handler runs in a savepoint of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    None,
    PerEvent,
}

/// A handler failed in a batch run without savepoints.
#[derive(Debug, thiserror::Error)]
#[error("a handler failed; the batch is handled again with each event isolated")]
struct HandlerFailed;

/// Splits what one poll brought by partition, each partition's messages in their order.
/// The indexes of the `topics` that notifications with `payloads` name (all of them when
/// one names no topic).
fn topics_named<'a>(topics: &[String], payloads: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
    let mut named = vec![false; topics.len()];
    for payload in payloads {
        match log::notified_topics(payload) {
            None => named.fill(true),
            Some(notified) => {
                for topic in notified {
                    if let Some(index) = topics.iter().position(|own| own == topic) {
                        named[index] = true;
                    }
                }
            }
        }
    }
    (0..named.len()).filter(|&index| named[index]).collect()
}

fn by_partition(
    received: Vec<(LoggedEvent, rdkafka::message::OwnedMessage)>,
) -> Vec<(Vec<LoggedEvent>, Vec<rdkafka::message::OwnedMessage>)> {
    use rdkafka::Message as _;
    let mut partitions: Vec<((String, i32), Vec<LoggedEvent>, Vec<_>)> = Vec::new();
    for (event, message) in received {
        let at = (message.topic().to_owned(), message.partition());
        match partitions
            .iter_mut()
            .find(|(partition, _, _)| *partition == at)
        {
            Some((_, events, messages)) => {
                events.push(event);
                messages.push(message);
            }
            None => partitions.push((at, vec![event], vec![message])),
        }
    }
    partitions
        .into_iter()
        .map(|(_, events, messages)| (events, messages))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::topics_named;

    #[test]
    fn a_notification_wakes_the_topics_it_names_and_one_naming_none_wakes_all() {
        let topics = vec![
            "polyclinic.identity".to_owned(),
            "polyclinic.appointments".to_owned(),
            "polyclinic.payments".to_owned(),
        ];
        assert_eq!(
            topics_named(&topics, ["polyclinic.appointments"]),
            [1],
            "a busy topic's events leave the others asleep"
        );
        assert_eq!(
            topics_named(
                &topics,
                [
                    "polyclinic.payments,polyclinic.prescriptions",
                    "polyclinic.identity"
                ]
            ),
            [0, 2],
            "every notification buffered counts; topics not read are ignored"
        );
        assert!(topics_named(&topics, ["polyclinic.prescriptions"]).is_empty());
        assert_eq!(
            topics_named(&topics, ["polyclinic.identity", ""]),
            [0, 1, 2],
            "a notification that names no topic may be for any"
        );
    }
}

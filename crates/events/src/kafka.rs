//! The `kafka` bus: one topic per producing service, keyed by aggregate id; an idempotent
//! producer with `acks=all`; consumer groups that handle what each poll brings in one
//! transaction (a full batch: one per partition, side by side) and commit the offsets only
//! after it has committed. Uses librdkafka (through `rdkafka`), the client Kafka users trust.
//! Every librdkafka property can be set with `kafka.properties`; TLS (with a CA of the
//! cluster's own and client certificates) and SASL (PLAIN, SCRAM-SHA-256/512,
//! OAUTHBEARER through an OpenID Connect token endpoint) come from `kafka.security_protocol`,
//! `kafka.ssl_*` and `kafka.sasl_*`.
//!
//! Every client of one bus shares a [`ConnectionWatch`]: the TLS and authentication failures
//! librdkafka reports (which do not heal by waiting, unlike a broker that is away) fail the
//! service's readiness with the broker's own words, while the outbox keeps the events.

use std::future::Future as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use polyclinic_config::{Config, KafkaConfig};
use polyclinic_http::Check;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{CommitMode, Consumer as _, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, config::FromClientConfigAndContext};

use crate::log::LoggedEvent;

/// What the Kafka bus needs to know.
#[derive(Clone, Default)]
pub struct KafkaSettings {
    pub brokers: String,
    /// librdkafka properties, in order (a later one wins): the connection's security from
    /// the configuration, then `kafka.properties`.
    pub properties: Vec<(String, String)>,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Whether [`ensure_topics`] creates missing topics (`kafka.create_topics`).
    pub create_topics: bool,
    pub topic_prefix: String,
    /// `group.instance.id` of every group this process joins; `None`: dynamic membership.
    pub group_instance_id: Option<String>,
    /// What this bus's clients last heard of their connection.
    pub watch: ConnectionWatch,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords, key passwords and client secrets are among the properties.
        let properties: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(name, value)| {
                let secret = name.contains("password") || name.contains("secret");
                (name.as_str(), if secret { "***" } else { value.as_str() })
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("properties", &properties)
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

impl KafkaSettings {
    pub fn from_config(config: &KafkaConfig) -> Self {
        let mut properties = config.security_properties();
        properties.extend(
            config
                .properties
                .iter()
                .filter_map(|property| property.split_once('='))
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned())),
        );
        Self {
            brokers: config.brokers.clone(),
            properties,
            partitions: i32::try_from(config.partitions).unwrap_or(1),
            replication_factor: i32::try_from(config.replication_factor).unwrap_or(1),
            create_topics: config.create_topics,
            topic_prefix: config.topic_prefix.clone(),
            group_instance_id: Some(config.group_instance_id.trim().to_owned())
                .filter(|id| !id.is_empty()),
            watch: ConnectionWatch::default(),
        }
    }

    /// A client of this bus, reporting to its watch.
    fn create<T>(&self, config: &ClientConfig) -> rdkafka::error::KafkaResult<T>
    where
        T: FromClientConfigAndContext<BusContext>,
    {
        config.create_with_context(BusContext {
            watch: self.watch.clone(),
        })
    }

    /// The broker-side name of `topic`.
    pub fn topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (name, value) in &self.properties {
            config.set(name, value);
        }
        config
    }
}

/// Which bus a relay publishes to and a consumer reads from.
#[derive(Debug, Clone)]
pub enum Bus {
    Postgres,
    Kafka(KafkaSettings),
}

impl Bus {
    pub fn from_config(config: &Config) -> Self {
        match config.event_bus {
            polyclinic_config::EventBus::Postgres => Bus::Postgres,
            polyclinic_config::EventBus::Kafka => {
                Bus::Kafka(KafkaSettings::from_config(&config.kafka))
            }
        }
    }
}

/// A connection failure that waiting does not heal: the TLS handshake or the SASL
/// authentication failed (a wrong CA, an expired certificate, a wrong password).
#[derive(Debug, Clone)]
struct Failure {
    code: RDKafkaErrorCode,
    reason: String,
}

/// The last TLS or authentication failure any client of one bus reported, until a client
/// reaches the brokers again.
#[derive(Debug, Clone, Default)]
pub struct ConnectionWatch {
    failure: Arc<Mutex<Option<Failure>>>,
}

impl ConnectionWatch {
    fn report(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        let Ok(mut failure) = self.failure.lock() else {
            return;
        };
        match code {
            Some(code @ (RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication)) => {
                // librdkafka reports on every reconnection attempt; say it once per change.
                if failure.as_ref().is_none_or(|known| known.reason != reason) {
                    tracing::error!(code = ?code, %reason, "cannot connect to Kafka");
                }
                *failure = Some(Failure {
                    code,
                    reason: reason.to_owned(),
                });
            }
            _ => tracing::warn!(error = %error, %reason, "Kafka client error"),
        }
    }

    fn reached(&self) {
        if let Ok(mut failure) = self.failure.lock()
            && failure.take().is_some()
        {
            tracing::info!("connected to Kafka again");
        }
    }

    fn failure(&self) -> Option<Failure> {
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }
}

/// The context of every client of the bus: errors go to the bus's watch and the log.
pub(crate) struct BusContext {
    watch: ConnectionWatch,
}

impl ClientContext for BusContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        // librdkafka's own log (raise it with `kafka.properties = ["debug=broker,security"]`).
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility, message, "librdkafka"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility, message, "librdkafka"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility, message, "librdkafka");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility, message, "librdkafka"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.watch.report(&error, reason);
    }
}

impl ConsumerContext for BusContext {}

/// Readiness of the Kafka bus: the brokers' metadata within a second and a half. A TLS or
/// authentication failure makes the service unready, naming the brokers and the error; a
/// broker that is merely away does not (events wait in the outbox, as on any outage).
pub fn kafka_readiness_check(settings: &KafkaSettings) -> anyhow::Result<Check> {
    let probe: FutureProducer<BusContext> = settings
        .create(&settings.client_config())
        .context("creating the Kafka readiness client")?;
    let (brokers, watch) = (settings.brokers.clone(), settings.watch.clone());
    Ok(Check::new("kafka", move || {
        let (probe, brokers, watch) = (probe.clone(), brokers.clone(), watch.clone());
        async move {
            let fetched = tokio::task::spawn_blocking(move || {
                probe
                    .client()
                    .fetch_metadata(None, Duration::from_millis(1500))
                    .map(|metadata| metadata.brokers().len())
            })
            .await
            .map_err(|err| err.to_string())?;
            match fetched {
                Ok(count) => {
                    watch.reached();
                    Ok(Some(format!("{count} brokers answer")))
                }
                Err(err) => match watch.failure() {
                    Some(failure) => Err(format!(
                        "cannot connect to the Kafka brokers {brokers} ({:?}): {}",
                        failure.code, failure.reason
                    )),
                    None => Ok(Some(format!(
                        "no Kafka broker answers at {brokers} ({err}): events wait in the outbox"
                    ))),
                },
            }
        }
    }))
}

/// Creates the topics that do not exist yet (brokers that auto-create are not relied on),
/// unless the settings leave that to the cluster's operators.
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[&str]) -> anyhow::Result<()> {
    if !settings.create_topics {
        return Ok(());
    }
    let admin: AdminClient<BusContext> = settings
        .create(&settings.client_config())
        .context("creating the Kafka admin client")?;
    let names: Vec<String> = topics.iter().map(|topic| settings.topic(topic)).collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                settings.partitions,
                TopicReplication::Fixed(settings.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(15)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .context("creating Kafka topics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            // Managed clusters with ACLs often refuse CreateTopics to applications, the
            // operators having created the topics: go on; a topic that is missing after all
            // shows as publish errors and a growing outbox, never as a lost event.
            Err((
                topic,
                code @ (RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed),
            )) => {
                tracing::warn!(%topic, ?code, "not allowed to create Kafka topics: assuming the cluster's operators created them");
            }
            Err((topic, code)) => anyhow::bail!("creating Kafka topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// The relay's producer: idempotent, `acks=all`.
pub struct Publisher {
    producer: FutureProducer<BusContext>,
    settings: KafkaSettings,
    /// The topics exist (made sure of before the first publish).
    topics_ready: std::sync::atomic::AtomicBool,
}

impl Publisher {
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        let mut config = settings.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000");
        // Configured properties win over these defaults.
        for (name, value) in &settings.properties {
            config.set(name, value);
        }
        Ok(Self {
            producer: settings
                .create(&config)
                .context("creating the Kafka producer")?,
            settings: settings.clone(),
            topics_ready: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Publishes `events` in order; returns how many of them, from the first, were acknowledged.
    /// Every record is handed to the producer before any acknowledgement is awaited, so a
    /// batch leaves in as few requests as librdkafka's batching makes (`send` would enqueue
    /// each record only when awaited: one linger and one round trip per event).
    pub(crate) async fn publish(&self, events: &[LoggedEvent]) -> (usize, Option<anyhow::Error>) {
        let prepared: Vec<(String, String)> = events
            .iter()
            .map(|event| {
                (
                    self.settings.topic(&event.topic),
                    event.envelope.to_string(),
                )
            })
            .collect();
        let mut deliveries = Vec::with_capacity(events.len());
        let mut refused = None;
        for (event, (topic, payload)) in events.iter().zip(&prepared) {
            let headers = OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some("application/cloudevents+json; charset=utf-8"),
            });
            let record = FutureRecord::to(topic)
                .key(&event.key)
                .payload(payload)
                .headers(headers);
            match self.enqueue(record).await {
                Ok(delivery) => deliveries.push(delivery),
                Err(err) => {
                    // The rest waits for the next round, behind this one.
                    refused = Some(err);
                    break;
                }
            }
        }
        let mut acknowledged = 0;
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => acknowledged += 1,
                Ok(Err((err, _))) => {
                    return (
                        acknowledged,
                        Some(anyhow::Error::new(err).context("publishing to Kafka")),
                    );
                }
                Err(_) => {
                    return (
                        acknowledged,
                        Some(anyhow::anyhow!(
                            "publishing to Kafka: the producer dropped a delivery"
                        )),
                    );
                }
            }
        }
        if refused.is_none() {
            self.settings.watch.reached();
        }
        (acknowledged, refused)
    }

    /// Hands `record` to the producer's queue, waiting (up to the 30 s a send may take)
    /// while the queue is full.
    async fn enqueue(
        &self,
        mut record: FutureRecord<'_, String, String>,
    ) -> anyhow::Result<DeliveryFuture> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if tokio::time::Instant::now() < deadline =>
                {
                    record = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((err, _)) => {
                    return Err(anyhow::Error::new(err).context("publishing to Kafka"));
                }
            }
        }
    }

    /// Creates the bus's topics unless this publisher already has (see [`ensure_topics`]).
    pub(crate) async fn ensure_topics(&self) -> anyhow::Result<()> {
        if self.topics_ready.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let topics: Vec<&str> = polyclinic_contracts::Topic::ALL
            .iter()
            .map(|topic| topic.as_str())
            .collect();
        ensure_topics(&self.settings, &topics).await?;
        self.topics_ready
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

/// How long a consumer that is stopping waits for the broker to hear that it leaves its
/// group; past it the service stops anyway, and the group notices at its session timeout.
pub(crate) const LEAVE_WITHIN: Duration = Duration::from_secs(5);

/// A consumer group member.
///
/// Leaving the group is librdkafka's close, which rdkafka runs when the consumer is dropped:
/// it polls on the dropping thread until the broker has answered, without a bound. On the
/// async runtime that would stall a worker (and a runtime shutting down, whose other tasks
/// may be what reaches the broker) for as long as the broker is away. So a member is closed
/// on a thread of its own: [`GroupMember::leave`] waits for it up to a bound, and a member
/// dropped otherwise (a rejoin, a cancelled task) hands the close over without waiting.
pub(crate) struct GroupMember {
    /// `None` once the close has been handed over.
    consumer: Option<StreamConsumer<BusContext>>,
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        drop(self.close_elsewhere());
    }
}

impl GroupMember {
    pub(crate) fn join(
        settings: &KafkaSettings,
        group: &str,
        topics: &[String],
    ) -> anyhow::Result<Self> {
        let mut config = settings.client_config();
        config
            .set("group.id", settings.topic(group))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        // With static membership a restarted process takes its partitions back at once, and
        // librdkafka's 45 s session outlasts a pause (a long GC-free stall, a frozen VM)
        // without a rebalance; a member that is gone for good is replaced after it.
        if let Some(instance) = &settings.group_instance_id {
            config.set("group.instance.id", instance);
        }
        for (name, value) in &settings.properties {
            config.set(name, value);
        }
        let consumer: StreamConsumer<BusContext> = settings
            .create(&config)
            .context("creating the Kafka consumer")?;
        let names: Vec<String> = topics.iter().map(|topic| settings.topic(topic)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .context("subscribing to Kafka topics")?;
        Ok(Self {
            consumer: Some(consumer),
        })
    }

    /// Leaves the group, waiting at most `within` for the broker to hear of it.
    pub(crate) async fn leave(mut self, within: Duration) {
        let Some(closed) = self.close_elsewhere() else {
            return;
        };
        if tokio::time::timeout(within, closed).await.is_err() {
            tracing::warn!(
                within_secs = within.as_secs_f64(),
                "the Kafka broker did not hear this consumer leave its group in time; stopping without it"
            );
        }
    }

    /// Hands the consumer to a thread of its own to close; what is returned resolves once it
    /// has closed.
    fn close_elsewhere(&mut self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let consumer = self.consumer.take()?;
        let (closed, done) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("kafka-leave".to_owned())
            .spawn(move || {
                drop(consumer);
                // Nobody may be waiting any more.
                let _ = closed.send(());
            });
        match spawned {
            Ok(_) => Some(done),
            Err(err) => {
                // The consumer went down with the refused closure, closed on this thread.
                tracing::warn!(error = %err, "no thread to close the Kafka consumer on; closed in place");
                None
            }
        }
    }

    fn consumer(&self) -> anyhow::Result<&StreamConsumer<BusContext>> {
        self.consumer
            .as_ref()
            .context("the Kafka consumer has left its group")
    }

    /// The next message as a log event (topic without the prefix), and a way to commit it.
    pub(crate) async fn next(
        &self,
        settings: &KafkaSettings,
    ) -> anyhow::Result<(LoggedEvent, rdkafka::message::OwnedMessage)> {
        let message = self
            .consumer()?
            .recv()
            .await
            .context("reading from Kafka")?
            .detach();
        Ok(received(settings, message))
    }

    /// The next message if librdkafka has fetched one already, without waiting for one.
    pub(crate) fn next_ready(
        &self,
        settings: &KafkaSettings,
    ) -> anyhow::Result<Option<(LoggedEvent, rdkafka::message::OwnedMessage)>> {
        // Polled once: a message in the local queue comes back at once, otherwise nothing
        // (the waker is never woken; the next receive registers its own).
        let mut receive = std::pin::pin!(self.consumer()?.recv());
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        match receive.as_mut().poll(&mut context) {
            std::task::Poll::Ready(message) => Ok(Some(received(
                settings,
                message.context("reading from Kafka")?.detach(),
            ))),
            std::task::Poll::Pending => Ok(None),
        }
    }

    /// Commits the offsets after `messages` (the furthest of each partition), once their
    /// effects are committed. The commit is sent without waiting for the broker's answer:
    /// one that is lost (a crash, a rebalance) only has the messages delivered again, and
    /// the inbox knows them.
    pub(crate) fn commit(&self, messages: &[rdkafka::message::OwnedMessage]) -> anyhow::Result<()> {
        let mut furthest: std::collections::BTreeMap<(&str, i32), i64> = Default::default();
        for message in messages {
            let offset = furthest
                .entry((message.topic(), message.partition()))
                .or_insert(message.offset());
            *offset = (*offset).max(message.offset());
        }
        let mut offsets = rdkafka::TopicPartitionList::new();
        for ((topic, partition), offset) in furthest {
            offsets.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset + 1))?;
        }
        self.consumer()?
            .commit(&offsets, CommitMode::Async)
            .context("committing Kafka offsets")?;
        Ok(())
    }
}

/// A message as a log event (its topic without the bus's prefix).
fn received(
    settings: &KafkaSettings,
    message: rdkafka::message::OwnedMessage,
) -> (LoggedEvent, rdkafka::message::OwnedMessage) {
    let topic = message
        .topic()
        .strip_prefix(&settings.topic_prefix)
        .unwrap_or(message.topic())
        .to_owned();
    let envelope: serde_json::Value = serde_json::from_slice(message.payload().unwrap_or_default())
        .unwrap_or_else(|err| serde_json::json!({ "malformed": err.to_string() }));
    let event = LoggedEvent {
        position: message.offset(),
        event_id: envelope["id"]
            .as_str()
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .unwrap_or_default(),
        topic,
        key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
        event_type: envelope["type"].as_str().unwrap_or_default().to_owned(),
        envelope,
    };
    (event, message)
}

//! The `kafka` bus: one topic per producing service, keyed by aggregate id; an idempotent
//! producer with `acks=all`; consumer groups that commit offsets only after the handler's
//! transaction has committed. Uses librdkafka (through `rdkafka`), the client Kafka users
//! trust. Every librdkafka property can be set with `kafka.properties`.

use std::time::Duration;

use anyhow::Context;
use polyclinic_config::{Config, KafkaConfig};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer as _, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::log::LoggedEvent;

/// What the Kafka bus needs to know.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
    pub partitions: i32,
    pub replication_factor: i32,
    pub topic_prefix: String,
    /// `group.instance.id` of every group this process joins; `None`: dynamic membership.
    pub group_instance_id: Option<String>,
}

impl KafkaSettings {
    pub fn from_config(config: &KafkaConfig) -> Self {
        Self {
            brokers: config.brokers.clone(),
            properties: config
                .properties
                .iter()
                .filter_map(|property| property.split_once('='))
                .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                .collect(),
            partitions: i32::try_from(config.partitions).unwrap_or(1),
            replication_factor: i32::try_from(config.replication_factor).unwrap_or(1),
            topic_prefix: config.topic_prefix.clone(),
            group_instance_id: Some(config.group_instance_id.trim().to_owned())
                .filter(|id| !id.is_empty()),
        }
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

/// Creates the topics that do not exist yet (brokers that auto-create are not relied on).
pub async fn ensure_topics(settings: &KafkaSettings, topics: &[&str]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = settings
        .client_config()
        .create()
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
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(15)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .context("creating Kafka topics")?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating Kafka topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// The relay's producer: idempotent, `acks=all`.
pub struct Publisher {
    producer: FutureProducer,
    settings: KafkaSettings,
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
            producer: config.create().context("creating the Kafka producer")?,
            settings: settings.clone(),
        })
    }

    /// Publishes `events` in order; returns how many of them, from the first, were acknowledged.
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
        for (event, (topic, payload)) in events.iter().zip(&prepared) {
            let headers = OwnedHeaders::new().insert(Header {
                key: "content-type",
                value: Some("application/cloudevents+json; charset=utf-8"),
            });
            let record = FutureRecord::to(topic)
                .key(&event.key)
                .payload(payload)
                .headers(headers);
            deliveries.push(self.producer.send(record, Duration::from_secs(30)));
        }
        let mut acknowledged = 0;
        for delivery in deliveries {
            match delivery.await {
                Ok(_) => acknowledged += 1,
                Err((err, _)) => {
                    return (
                        acknowledged,
                        Some(anyhow::Error::new(err).context("publishing to Kafka")),
                    );
                }
            }
        }
        (acknowledged, None)
    }
}

/// A consumer group member.
pub(crate) struct GroupMember {
    consumer: StreamConsumer,
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
        let consumer: StreamConsumer = config.create().context("creating the Kafka consumer")?;
        let names: Vec<String> = topics.iter().map(|topic| settings.topic(topic)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .context("subscribing to Kafka topics")?;
        Ok(Self { consumer })
    }

    /// The next message as a log event (topic without the prefix), and a way to commit it.
    pub(crate) async fn next(
        &self,
        settings: &KafkaSettings,
    ) -> anyhow::Result<(LoggedEvent, rdkafka::message::OwnedMessage)> {
        let message = self
            .consumer
            .recv()
            .await
            .context("reading from Kafka")?
            .detach();
        let topic = message
            .topic()
            .strip_prefix(&settings.topic_prefix)
            .unwrap_or(message.topic())
            .to_owned();
        let envelope: serde_json::Value =
            serde_json::from_slice(message.payload().unwrap_or_default())
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
        Ok((event, message))
    }

    /// Commits the offset after `message`, once its effects are committed.
    pub(crate) fn commit(&self, message: &rdkafka::message::OwnedMessage) -> anyhow::Result<()> {
        let mut offsets = rdkafka::TopicPartitionList::new();
        offsets.add_partition_offset(
            message.topic(),
            message.partition(),
            rdkafka::Offset::Offset(message.offset() + 1),
        )?;
        self.consumer
            .commit(&offsets, CommitMode::Sync)
            .context("committing a Kafka offset")?;
        Ok(())
    }
}

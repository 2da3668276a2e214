//! The event backbone: how a service announces what happened, and how others learn it once.
//!
//! - [`Envelope`]: CloudEvents 1.0 in JSON (`id` UUIDv7, `source`, `type`, `subject` = the
//!   aggregate id, `time`, `data`, plus the W3C `traceparent`, `tracestate` and `baggage`, and
//!   `correlationid`).
//! - [`outbox::enqueue`]: writes an event in the caller's open transaction, next to the
//!   change it announces. Rolled back together, committed together.
//! - [`Relay`]: publishes pending outbox rows in order (woken by `LISTEN/NOTIFY`, polling as
//!   a fallback), one leader per service schema at a time, and purges old published rows.
//! - The `postgres` bus ([`log`]): a shared append-only log in the `eventbus` schema.
//! - [`Consumer`]: reads a bus, runs plain async handlers per event type inside a
//!   transaction that also writes the inbox row (so a redelivered event changes nothing),
//!   parks failing events for retries with backoff without holding up other aggregates, and
//!   dead-letters them after the last attempt.

pub mod api;
mod backbone;
mod consumer;
mod envelope;
mod kafka;
pub mod log;
mod metrics;
pub mod outbox;
mod parked;
mod relay;
pub mod service;

pub use backbone::Backbone;
pub use consumer::{
    Consumer, ConsumerFaults, ConsumerSettings, Handled, HandlerFuture, Handlers,
    replay_dead_letter,
};
pub use envelope::{Envelope, EventContext};
pub use kafka::{Bus, ConnectionWatch, KafkaSettings, ensure_topics, kafka_readiness_check};
pub use metrics::EventMetrics;
pub use parked::{DeadLetter, list_dead_letters};
pub use relay::{Relay, RelayFaults, RelaySettings, readiness_check};
pub use service::ServiceRoutes;

/// The backbone's tables in a service schema; each service carries an identical copy of this
/// file among its own migrations.
pub const SERVICE_TABLES_SQL: &str = include_str!("../sql/service_tables.sql");

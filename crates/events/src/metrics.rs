//! The backbone's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ConsumerLabels {
    pub consumer: String,
    pub outcome: String,
}

/// Handles to the backbone's metrics of one service.
#[derive(Clone)]
pub struct EventMetrics {
    /// Age of the oldest unpublished outbox row (0 when none).
    pub(crate) relay_lag: Gauge<f64, AtomicU64>,
    pub(crate) published: Counter,
    pub(crate) consumed: Family<ConsumerLabels, Counter>,
    pub(crate) commit_to_handler: Histogram,
}

impl Default for EventMetrics {
    fn default() -> Self {
        Self {
            relay_lag: Gauge::default(),
            published: Counter::default(),
            consumed: Family::default(),
            commit_to_handler: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        }
    }
}

impl EventMetrics {
    /// Adds these metrics to `registry` (the one a service's `/metrics` exposes).
    pub fn register(&self, registry: &mut Registry) {
        let metrics = self;
        registry.register_with_unit(
            "outbox_oldest_unpublished_age",
            "Age of the oldest event not yet published by the relay",
            Unit::Seconds,
            metrics.relay_lag.clone(),
        );
        registry.register(
            "outbox_published",
            "Events the relay published",
            metrics.published.clone(),
        );
        registry.register(
            "events_consumed",
            "Events consumed, by consumer and outcome (handled, skipped, unknown_type, parked, dead_lettered)",
            metrics.consumed.clone(),
        );
        registry.register_with_unit(
            "event_delivery_latency",
            "Time from an event's creation to its handler's commit",
            Unit::Seconds,
            metrics.commit_to_handler.clone(),
        );
    }

    pub(crate) fn count(&self, consumer: &str, outcome: &str) {
        self.consumed
            .get_or_create(&ConsumerLabels {
                consumer: consumer.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

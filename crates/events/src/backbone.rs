//! What every service with a schema runs: its relay onto the configured bus, its consumers,
//! and the backbone's metrics and readiness detail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use polyclinic_config::{Config, Service};
use polyclinic_http::{CancellationToken, Check, ServiceApp};
use sqlx::PgPool;
use tokio::task::JoinHandle;

use crate::{
    Bus, Consumer, EventMetrics, Relay, RelaySettings, kafka_readiness_check, log, readiness_check,
};

/// A service's part of the event backbone.
pub struct Backbone {
    pool: PgPool,
    metrics: EventMetrics,
    bus: Bus,
    /// On the Kafka bus: whether the brokers can be reached.
    kafka_check: Option<Check>,
    shutdown: CancellationToken,
    /// The relay and the consumers, waited for at shutdown by [`Backbone::serve`].
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Backbone {
    /// Makes sure the bus is ready (the shared log, or the Kafka topics) and starts the relay
    /// of `service`'s outbox.
    pub async fn start(
        config: &Config,
        service: Service,
        pool: &PgPool,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let schema = service.schema().ok_or_else(|| {
            anyhow::anyhow!("the {service} service keeps no data and publishes no events")
        })?;
        let bus = Bus::from_config(config);
        match &bus {
            // Without migrations at start, `polyclinic migrate` created the log.
            Bus::Postgres if config.migrate_on_start => log::ensure(&config.database_url).await?,
            Bus::Postgres => {}
            // The relay and each consumer make sure of their topics before they use them,
            // retrying until the brokers can be reached: a service starts (and serves, its
            // events waiting in the outbox) while Kafka is out of reach.
            Bus::Kafka(_) => {}
        }
        let metrics = EventMetrics::default();
        let relay = Relay::new(
            pool.clone(),
            schema,
            &bus,
            RelaySettings::default(),
            metrics.clone(),
        )?
        .spawn(shutdown.clone());
        let kafka_check = match &bus {
            Bus::Kafka(kafka) => Some(kafka_readiness_check(kafka)?),
            Bus::Postgres => None,
        };
        Ok(Self {
            pool: pool.clone(),
            metrics,
            bus,
            kafka_check,
            shutdown: shutdown.clone(),
            tasks: Mutex::new(vec![relay]),
        })
    }

    /// Runs `consumer` until shutdown.
    pub fn run<S: Send + Sync + 'static>(&self, consumer: Arc<Consumer<S>>) {
        let running = consumer.spawn_shared(self.shutdown.clone());
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(running);
    }

    /// Serves `router` on `listener` until shutdown (see [`polyclinic_http::serve`]), and
    /// waits as long for the relay and the consumers to finish what they were doing (a batch
    /// in flight; leaving the Kafka group, which hands the service's partitions to its other
    /// instances at once): at most `grace` after shutdown began for each, side by side, so
    /// that the service closes its database pool after them and a broker that is away
    /// never holds it up.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        router: polyclinic_http::axum::Router,
        grace: Duration,
    ) -> std::io::Result<()> {
        let serving = async {
            let served =
                polyclinic_http::serve(listener, router, self.shutdown.clone(), grace).await;
            if served.is_err() {
                // The service is going down: so is its backbone, rather than waiting for a
                // shutdown that nobody may ask for.
                self.shutdown.cancel();
            }
            served
        };
        let (served, ()) = tokio::join!(serving, self.stopped(grace));
        served
    }

    async fn stopped(&self, within: Duration) {
        self.shutdown.cancelled().await;
        let running = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let finished = async {
            for task in running {
                // A task that panicked has stopped as well.
                let _ = task.await;
            }
        };
        if tokio::time::timeout(within, finished).await.is_err() {
            tracing::warn!(
                within_secs = within.as_secs(),
                "the event backbone's work outlived the shutdown grace period"
            );
        }
    }

    /// The bus this service's consumers read.
    pub fn bus(&self) -> &Bus {
        &self.bus
    }

    /// The metrics consumers of this service count into.
    pub fn metrics(&self) -> &EventMetrics {
        &self.metrics
    }

    /// Adds the backbone's metrics and readiness detail to the service's router.
    pub fn attach(&self, mut app: ServiceApp) -> ServiceApp {
        self.metrics.register(app.registry_mut());
        let app = app.check(readiness_check(&self.pool));
        match &self.kafka_check {
            Some(check) => app.check(check.clone()),
            None => app,
        }
    }
}

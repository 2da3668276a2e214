//! What every service with a schema runs: its relay onto the configured bus, and the
//! backbone's metrics and readiness detail.

use polyclinic_config::{Config, Service};
use polyclinic_http::{CancellationToken, Check, ServiceApp};
use sqlx::PgPool;

use crate::{Bus, EventMetrics, Relay, RelaySettings, kafka_readiness_check, log, readiness_check};

/// A service's part of the event backbone.
pub struct Backbone {
    pool: PgPool,
    metrics: EventMetrics,
    bus: Bus,
    /// On the Kafka bus: whether the brokers can be reached.
    kafka_check: Option<Check>,
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
        Relay::new(
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
        })
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

//! What every service with a schema runs: its relay onto the configured bus, and the
//! backbone's metrics and readiness detail.

use polyclinic_config::{Config, Service};
use polyclinic_contracts::Topic;
use polyclinic_http::{CancellationToken, ServiceApp};
use sqlx::PgPool;

use crate::{Bus, EventMetrics, Relay, RelaySettings, ensure_topics, log, readiness_check};

/// A service's part of the event backbone.
pub struct Backbone {
    pool: PgPool,
    metrics: EventMetrics,
    bus: Bus,
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
            Bus::Kafka(kafka) => {
                let topics: Vec<&str> = Topic::ALL.iter().map(|topic| topic.as_str()).collect();
                ensure_topics(kafka, &topics).await?;
            }
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
        Ok(Self {
            pool: pool.clone(),
            metrics,
            bus,
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
        app.check(readiness_check(&self.pool))
    }
}

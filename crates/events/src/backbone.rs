//! What every service with a schema runs: the shared log, its relay, and their metrics.

use polyclinic_config::{Config, Service};
use polyclinic_http::{CancellationToken, ServiceApp};
use sqlx::PgPool;

use crate::{EventMetrics, Relay, RelaySettings, log, readiness_check};

/// A service's part of the event backbone.
pub struct Backbone {
    pool: PgPool,
    metrics: EventMetrics,
}

impl Backbone {
    /// Makes sure the shared log exists and starts the relay of `service`'s outbox.
    pub async fn start(
        config: &Config,
        service: Service,
        pool: &PgPool,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Self> {
        let schema = service.schema().ok_or_else(|| {
            anyhow::anyhow!("the {service} service keeps no data and publishes no events")
        })?;
        log::ensure(config.database_url_for(service)).await?;
        let metrics = EventMetrics::default();
        Relay::new(
            pool.clone(),
            schema,
            RelaySettings::default(),
            metrics.clone(),
        )
        .spawn(shutdown.clone());
        Ok(Self {
            pool: pool.clone(),
            metrics,
        })
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

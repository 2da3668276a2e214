//! Services started in process on port 0.

use std::time::{Duration, Instant};

use polyclinic_config::{Config, Service};
use polyclinic_http::CancellationToken;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{TestDb, TestRedis};

/// Running services and the database behind them. Dropping it stops the services and
/// drops the database.
pub struct TestPlatform {
    pub config: Config,
    client: reqwest::Client,
    shutdown: CancellationToken,
    running: Option<JoinHandle<anyhow::Result<()>>>,
    db: TestDb,
    redis: TestRedis,
    services: Vec<Service>,
}

impl TestPlatform {
    /// Starts `services` against a fresh database and waits until each is ready.
    pub async fn start(services: &[Service]) -> Self {
        Self::start_with(services, |_, _| {}).await
    }

    /// Like [`TestPlatform::start`], letting the test adjust the configuration first.
    pub async fn start_with(
        services: &[Service],
        customize: impl FnOnce(&mut Config, &TestDb),
    ) -> Self {
        let mut platform = Self::launch_with(services, customize).await;
        for &service in services {
            platform.wait_until_ready(service).await;
        }
        platform
    }

    /// Like [`TestPlatform::start_with`], without waiting for the services to be ready (for
    /// tests of a service that cannot be).
    pub async fn launch_with(
        services: &[Service],
        customize: impl FnOnce(&mut Config, &TestDb),
    ) -> Self {
        // `POLYCLINIC_TEST_LOG=info` (any tracing filter) shows the services' logs.
        if let Ok(filter) = std::env::var("POLYCLINIC_TEST_LOG") {
            let log = polyclinic_config::LogConfig {
                format: polyclinic_config::LogFormat::Pretty,
                filter,
            };
            polyclinic_telemetry::init(&log).ok();
        }
        let db = TestDb::create().await;
        let redis = TestRedis::new();
        let mut config = Config {
            database_url: db.url(),
            redis_url: redis.url().to_owned(),
            redis_key_prefix: redis.prefix().to_owned(),
            ..Config::default()
        };
        config.http.shutdown_grace_secs = 5;
        config.admin.password = Some(crate::ADMIN_PASSWORD.to_owned());
        config.auth.revocation_poll_secs = 1;
        config.auth.jwks_refetch_interval_secs = 1;
        // Tests send many requests from one address; the rate-limit test lowers these.
        config.rate_limit.anonymous_per_minute = 100_000;
        config.rate_limit.user_per_minute = 100_000;

        let mut listeners = Vec::new();
        for &service in &Service::ALL {
            if !services.contains(&service) {
                continue;
            }
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binding port 0");
            let address = listener.local_addr().expect("a bound address");
            let settings = config.service_mut(service);
            settings.port = address.port();
            settings.url = Some(format!("http://{address}"));
            listeners.push((service, listener));
        }
        // Clients reach the platform at its gateway, when it runs: the issuer, the FHIR
        // base and every link the platform hands out name it.
        if let Some(gateway) = config.gateway.url.clone() {
            config.public_url = gateway;
        }
        customize(&mut config, &db);

        let shutdown = CancellationToken::new();
        let running = tokio::spawn(polyclinic_platform::run(
            config.clone(),
            listeners,
            shutdown.clone(),
        ));
        Self {
            config,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            shutdown,
            running: Some(running),
            db,
            redis,
            services: services.to_vec(),
        }
    }

    /// Waits until `service` answers its readiness probe with 200 (30 s at most).
    pub async fn wait_until_ready(&mut self, service: Service) {
        let url = self.url(service, "/health/ready");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = self.client.get(&url).send().await
                && response.status().is_success()
            {
                return;
            }
            if self.running.as_ref().is_some_and(JoinHandle::is_finished) {
                let outcome = self.running.take().expect("checked above").await;
                panic!("the platform stopped while starting: {outcome:?}");
            }
            assert!(
                Instant::now() < deadline,
                "{service} did not become ready within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The URL of `path` on `service`.
    pub fn url(&self, service: Service, path: &str) -> String {
        format!("{}{path}", self.config.service_url(service))
    }

    /// A client with a 30 s timeout.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `GET path` on `service`.
    pub async fn get(&self, service: Service, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(service, path))
            .send()
            .await
            .expect("the service answers")
    }

    /// Whether `service` runs in this platform.
    pub fn runs(&self, service: Service) -> bool {
        self.services.contains(&service)
    }

    /// The test database.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// The test's Redis key prefix.
    pub fn redis(&self) -> &TestRedis {
        &self.redis
    }

    /// Stops every service gracefully and returns how the platform ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.running.take() {
            Some(running) => running.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

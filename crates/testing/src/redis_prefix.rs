//! A Redis key prefix per test on the shared server.

/// A unique key prefix; every key under it is deleted when this value is dropped.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    prefix: String,
}

impl TestRedis {
    pub fn new() -> Self {
        Self {
            url: std::env::var("POLYCLINIC_TEST_REDIS")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
            prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection to the server, for tests that inspect keys.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .expect("a valid Redis URL")
            .get_multiplexed_async_connection()
            .await
            .expect("Redis must run on POLYCLINIC_TEST_REDIS (default 127.0.0.1:6379)")
    }
}

impl Default for TestRedis {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        // As for the database: Drop cannot block the test's runtime, so a thread cleans up.
        let cleaned = std::thread::spawn(move || {
            let mut connection = redis::Client::open(url)?.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut connection)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(&keys).query::<()>(&mut connection)?;
            }
            anyhow::Ok(())
        })
        .join();
        if !matches!(cleaned, Ok(Ok(()))) {
            eprintln!("warning: could not delete the test's Redis keys");
        }
    }
}

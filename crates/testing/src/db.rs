//! A fresh PostgreSQL database per test.

use polyclinic_db::sqlx::{self, Connection, PgConnection};

fn server_url() -> String {
    std::env::var("POLYCLINIC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// A database created for one test and dropped (with its connections) when this value is.
#[derive(Debug)]
pub struct TestDb {
    name: String,
    server: String,
}

impl TestDb {
    /// Creates an empty database with a unique name.
    pub async fn create() -> Self {
        let server = server_url();
        let name = format!("polyclinic_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("PostgreSQL must run on POLYCLINIC_TEST_POSTGRES (default 127.0.0.1:5432)");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .expect("creating the test database");
        conn.close().await.ok();
        Self { name, server }
    }

    /// The database's URL.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server, self.name)
    }

    /// The database's URL with another host and port, for reaching it through a proxy.
    pub fn url_via(&self, address: std::net::SocketAddr) -> String {
        let user = self
            .server
            .split_once("://")
            .and_then(|(_, rest)| rest.rsplit_once('@'))
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!("postgres://{user}{address}/{}", self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = format!("{}/postgres", self.server);
        let statement = format!("drop database if exists {} with (force)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on; a short-lived
        // thread with its own runtime does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                sqlx::query(&statement).execute(&mut conn).await?;
                conn.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

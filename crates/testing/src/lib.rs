//! The shared test harness.
//!
//! [`TestPlatform`] starts one, several or all services in process, each on port 0, exactly
//! as `polyclinic all` does, against the machine's real PostgreSQL with a fresh database
//! per test ([`TestDb`], dropped afterwards). [`TcpProxy`] sits between a service and a
//! dependency so a test can cut the connection and restore it.
//!
//! Redis is shared too: each test gets its own key prefix ([`TestRedis`]), whose keys are
//! deleted afterwards.
//!
//! Environment: `POLYCLINIC_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`)
//! names the server the test databases are created on, `POLYCLINIC_TEST_REDIS` (default
//! `redis://127.0.0.1:6379`) the Redis server. `POLYCLINIC_TEST_LOG` (a tracing filter such
//! as `info`) shows the services' logs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a harness that cannot set up should fail the test loudly"
)]

mod api;
mod broker;
mod clinic;
mod db;
mod platform;
mod proxy;
mod redis_prefix;
pub mod scale;
mod smtp;

pub use api::{Reply, Tokens};
pub use broker::{TestBroker, TestCa};
pub use clinic::{Clinic, eventually, eventually_within, use_kafka};
pub use db::TestDb;
pub use platform::TestPlatform;
pub use polyclinic_config::{Config, Service};
pub use proxy::TcpProxy;
pub use redis_prefix::TestRedis;
pub use smtp::{Received, SmtpSink};

/// The first administrator's email in every test platform.
pub const ADMIN_EMAIL: &str = "admin@polyclinic.local";
/// The first administrator's password in every test platform.
pub const ADMIN_PASSWORD: &str = "harness first passphrase";

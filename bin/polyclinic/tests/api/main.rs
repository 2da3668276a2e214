//! The whole platform, started as `polyclinic all` starts it, against real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod abuse;
mod attacks;
mod cli;
mod deploy;
mod docs;
mod fhir;
mod health;
mod inventory;
mod kafka_tls;
mod matrix;
mod private_postgres;
mod query_plans;
mod scenario;
mod smart;
mod traces;

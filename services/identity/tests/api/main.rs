//! The identity service and the gateway in front of it, on real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod departments;
mod events;
mod forged;
mod keycloak;
mod login;
mod tokens;
mod users;

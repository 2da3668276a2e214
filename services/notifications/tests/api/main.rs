//! The notifications service with identity and the gateway, on real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod calendar;
mod event_log;
mod mail;

//! The appointments service against real peers: the identity and payments services, the
//! gateway, PostgreSQL, Redis and both event buses.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod booking;
mod buffers;
mod concurrency;
mod constraints;
mod far_ahead;
mod jobs;
mod reservations;
mod roles;
mod schedules;
mod staffing;
mod waitlist;

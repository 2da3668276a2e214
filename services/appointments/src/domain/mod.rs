//! The appointments service's types and rules: no HTTP, no SQL.

pub mod appointment;
pub mod schedule;
pub mod waitlist;

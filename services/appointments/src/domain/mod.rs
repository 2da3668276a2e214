//! The appointments service's types and rules: no HTTP, no SQL.

pub mod schedule;

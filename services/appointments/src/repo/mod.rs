//! SQL of the `appointments` schema, one file per aggregate.

pub mod appointments;
pub mod schedules;
pub mod waitlist;

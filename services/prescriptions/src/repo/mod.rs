//! SQL of the `prescriptions` schema, one file per aggregate.

pub mod prescriptions;
pub mod records;

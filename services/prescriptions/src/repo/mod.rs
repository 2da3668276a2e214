//! SQL of the `prescriptions` schema, one file per aggregate.

pub mod audit;
pub mod prescriptions;
pub mod records;

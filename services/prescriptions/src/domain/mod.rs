//! The prescriptions service's types and rules: no HTTP, no SQL.

pub mod entry;
pub mod prescription;

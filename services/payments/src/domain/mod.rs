//! The payments service's types and rules: no HTTP, no SQL.

pub mod intent;
pub mod webhook;

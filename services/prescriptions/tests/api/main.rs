//! The prescriptions service against a real appointments service (which decides who cares
//! for whom), identity, the gateway and PostgreSQL, with real tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod access;
mod prescribing;
mod records;

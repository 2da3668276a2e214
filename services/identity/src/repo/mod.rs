//! SQL, one file per aggregate. Every function takes the pool or an open transaction.

pub mod departments;
pub mod doctors;
pub mod handoffs;
pub mod keys;
pub mod sessions;
pub mod smart;
pub mod throttle;
pub mod users;

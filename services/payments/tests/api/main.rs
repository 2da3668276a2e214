//! The payments service's parts against real peers: the Stripe client against an in-test
//! server that speaks Stripe's wire format.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod ledger;
mod routes;
mod simulated;
mod stripe;
mod webhooks;

//! The SQL of the `payments` schema: stored rows and the queries on them. No rules live
//! here; the ledger decides, these read and write.

pub mod payments;
pub mod webhooks;

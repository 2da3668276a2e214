//! SQL of the notifications service.

pub mod events;
pub mod notifications;

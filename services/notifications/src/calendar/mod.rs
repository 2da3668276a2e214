//! Calendars: appointments as iCalendar events in emails and in the feeds people subscribe
//! to. [`ics`] writes the format; [`visits`] keeps this service's view of every appointment
//! from the appointments service's events (the `notifications-calendar` consumer); [`feeds`]
//! makes, rotates and serves each person's private feed.

pub mod feeds;
mod ics;
pub mod visits;

pub use ics::{Method, Party, Standing, Visit, feed, invite, uid, uid_domain};

//! The admin's screens: the approval queue (room and nurse pickers list only the free ones),
//! all appointments and payments with filters, capture and refund, users and staff, departments
//! and rooms, doctors' weekly schedules and waitlists, failed emails and dead-lettered events,
//! the SMART apps people may sign in to, and the platform's status.
//!
//! One module per resource; every handler takes `Signed<Admins>`.

mod appointments;
mod apps;
mod deliveries;
mod departments;
mod payments;
mod queue;
mod schedules;
mod users;
mod waitlist;

use axum::Router;
use axum::routing::{get, post};
use serde_json::Value;

use crate::WebState;
use crate::api::ApiFailure;
use crate::page::{PageResult, WebError, see_other};
use crate::session::Session;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/admin", get(|| async { see_other("/admin/queue") }))
        .route("/admin/queue", get(queue::queue))
        .route("/admin/appointments/{id}/approve", post(queue::approve))
        .route("/admin/appointments/{id}/reject", post(queue::reject))
        .route("/admin/appointments", get(appointments::appointments))
        .route("/admin/payments", get(payments::payments))
        .route("/admin/payments/{id}/capture", post(payments::capture))
        .route("/admin/payments/{id}/refund", post(payments::refund))
        .route("/admin/users", get(users::users).post(users::create_staff))
        .route("/admin/users/{id}/deactivate", post(users::deactivate))
        .route(
            "/admin/departments",
            get(departments::departments).post(departments::create_department),
        )
        .route("/admin/rooms", post(departments::create_room))
        .route("/admin/schedules", get(schedules::schedules))
        .route("/admin/schedules/{id}", post(schedules::save_schedule))
        .route("/admin/waitlist", get(waitlist::waitlist))
        .route("/admin/waitlist/{id}/remove", post(waitlist::remove))
        .route("/admin/deliveries", get(deliveries::deliveries))
        .route("/admin/notifications/{id}/resend", post(deliveries::resend))
        .route("/admin/dead-letters/{id}/replay", post(deliveries::replay))
        .route("/admin/status", get(deliveries::status))
        .route("/admin/apps", get(apps::apps).post(apps::register))
        .route(
            "/admin/apps/{client_id}/revoke-grants",
            post(apps::revoke_grants),
        )
        .route("/admin/apps/{client_id}/disable", post(apps::disable))
}

/// A choice of a select box.
struct Choice {
    id: String,
    label: String,
}

/// A flash for what happened, then back to `back`. Refusals are shown, not error pages.
fn outcome(
    session: &Session,
    result: Result<Value, ApiFailure>,
    done: &str,
    back: &str,
) -> PageResult {
    match result {
        Ok(_) => session.set_flash("ok", done),
        Err(ApiFailure::Rejected(problem)) => {
            let message = match problem.code.as_str() {
                "room_taken" => {
                    "That room was just booked for the same time. Choose another.".to_owned()
                }
                "nurse_taken" => {
                    "That nurse was just booked for the same time. Choose another.".to_owned()
                }
                _ if problem.fields.is_empty() => problem.detail.clone(),
                _ => problem
                    .fields
                    .iter()
                    .map(|(field, message)| format!("{field}: {message}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            session.set_flash("error", message);
        }
        Err(other) => return Err(WebError::from_api(other, back)),
    }
    Ok(see_other(back))
}

/// `12.50` as 1250 minor units; `None` for text that is not such an amount.
fn minor_units(text: &str) -> Option<i64> {
    let text = text.trim().replace(',', ".");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty()
        || fraction.len() > 2
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let cents: i64 = format!("{fraction:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(cents)
}

#[cfg(test)]
mod tests {
    use super::minor_units;

    #[test]
    fn amounts_are_read_as_minor_units() {
        assert_eq!(minor_units("60"), Some(6000));
        assert_eq!(minor_units("12.5"), Some(1250));
        assert_eq!(minor_units("12,05"), Some(1205));
        assert_eq!(minor_units("1.234"), None);
        assert_eq!(minor_units("-3"), None);
        assert_eq!(minor_units(""), None);
    }
}

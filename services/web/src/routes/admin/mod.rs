//! The admin's screens: the approval queue (room and nurse pickers list only the free ones),
//! all appointments and payments with filters, capture and refund, users and staff, departments
//! and rooms, doctors' weekly schedules, failed emails and dead-lettered events, and the
//! platform's status.
//!
//! One module per resource; every handler takes `Signed<Admins>`.

mod appointments;
mod deliveries;
mod departments;
mod payments;
mod queue;
mod schedules;
mod users;

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
        .route("/admin/deliveries", get(deliveries::deliveries))
        .route("/admin/notifications/{id}/resend", post(deliveries::resend))
        .route("/admin/dead-letters/{id}/replay", post(deliveries::replay))
        .route("/admin/status", get(deliveries::status))
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

//! Appointments as their participants see them: the patient's list with what can be done
//! now (pay, cancel within the policy, reschedule), one appointment's page for anyone who
//! takes part in it (a stranger gets 404), and the actions behind its buttons.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;
use serde_json::json;

use super::{FormState, Id, all_pages, form_key, short};
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::{
    Signed,
    audience::{CareAndAdmins, Everyone, PatientsAndAdmins, PatientsAndCare},
};
use crate::model::{Appointment, Doctor, Payment};
use crate::page::{Layout, PageResult, WebError, render, see_other};
use crate::session::{Role, Session};
use crate::view::money;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/appointments", get(mine))
        .route("/appointments/{id}", get(detail))
        .route("/appointments/{id}/cancel", post(cancel))
        .route("/appointments/{id}/reschedule", post(reschedule))
        .route("/appointments/{id}/complete", post(complete))
        .route("/appointments/{id}/no-show", post(no_show))
}

/// What the page shows of one appointment and which of its buttons apply.
pub struct AppointmentView {
    pub id: String,
    pub when: String,
    pub doctor_id: String,
    pub doctor: String,
    pub patient_id: String,
    pub patient: String,
    pub status: String,
    pub status_reason: String,
    pub reason: String,
    pub fee: String,
    pub hold_until: String,
    pub room_id: String,
    pub can_pay: bool,
    pub can_cancel: bool,
    pub can_reschedule: bool,
    pub can_close: bool,
    /// What the patient should know of the payment (a saved card, a refused one).
    pub payment_note: String,
    /// The idempotency key of this rendering's action forms.
    pub key: String,
}

impl AppointmentView {
    pub fn new(
        state: &WebState,
        appointment: &Appointment,
        doctors: &HashMap<String, String>,
        role: Role,
    ) -> Self {
        let status = appointment.status.as_str();
        let active = matches!(status, "OFFERED" | "PENDING" | "PAID" | "SCHEDULED");
        // The same rule the appointments service applies; it has the last word.
        let before_cutoff =
            appointment.starts_at - Utc::now() > chrono::Duration::hours(state.cutoff_hours);
        let patient_may =
            role == Role::Patient && (matches!(status, "OFFERED" | "PENDING") || before_cutoff);
        Self {
            id: appointment.id.clone(),
            when: state.clinic.time(&appointment.starts_at),
            doctor_id: appointment.doctor_id.clone(),
            doctor: doctors
                .get(&appointment.doctor_id)
                .cloned()
                .unwrap_or_else(|| format!("Doctor {}", short(&appointment.doctor_id))),
            patient_id: appointment.patient_id.clone(),
            patient: format!("Patient {}", short(&appointment.patient_id)),
            status: appointment.status.clone(),
            status_reason: appointment.status_reason.clone().unwrap_or_default(),
            reason: appointment.reason.clone(),
            fee: money(appointment.fee.amount, &appointment.fee.currency),
            hold_until: match (status, appointment.hold_expires_at) {
                ("PENDING" | "OFFERED", Some(at)) => state.clinic.clock(&at),
                _ => String::new(),
            },
            room_id: appointment.room_id.clone().unwrap_or_default(),
            can_pay: role == Role::Patient && status == "PENDING",
            can_cancel: active && (patient_may || role == Role::Admin),
            can_reschedule: matches!(status, "PAID" | "SCHEDULED")
                && (role == Role::Admin || (role == Role::Patient && before_cutoff)),
            can_close: status == "SCHEDULED"
                && appointment.starts_at <= Utc::now()
                && matches!(role, Role::Doctor | Role::Nurse | Role::Admin),
            payment_note: String::new(),
            key: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Adds what the patient should know of the payment: a card saved for a visit far
    /// ahead, or a refused authorisation (then the pay button asks for another card).
    pub fn with_payment(mut self, state: &WebState, payment: &Payment) -> Self {
        if payment.status == "requires_payment_method"
            && let Some(deadline) = payment.card_deadline
        {
            self.payment_note = format!(
                "Your card was refused when it was authorised. Please give another card by {}, or the appointment is cancelled.",
                state.clinic.time(&deadline)
            );
            self.can_pay = true;
        } else if payment.status == "card_saved"
            && let Some(at) = payment.authorize_at
        {
            self.payment_note = format!(
                "Your card is saved; it is authorised on {}, two days before the visit.",
                state.clinic.time(&at)
            );
        }
        self
    }
}

/// Doctors' names by id, from the public directory.
pub async fn doctor_names(state: &WebState, session: &Session) -> HashMap<String, String> {
    let doctors: Vec<Doctor> = state
        .gateway
        .get_as(session, "/api/doctors")
        .await
        .unwrap_or_default();
    doctors
        .into_iter()
        .map(|doctor| (doctor.id.clone(), doctor.name()))
        .collect()
}

#[derive(Template)]
#[template(path = "my_appointments.html")]
struct MinePage {
    l: Layout,
    sections: Vec<(&'static str, Vec<AppointmentView>)>,
}

async fn mine(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<PatientsAndCare>,
) -> PageResult {
    if user.role != Role::Patient {
        return Ok(see_other(user.role.home()));
    }
    let mut items: Vec<Appointment> =
        all_pages(&state, &session, "/api/appointments/mine?limit=100", 20)
            .await
            .map_err(|failure| WebError::from_api(failure, "/appointments"))?;
    let doctors = doctor_names(&state, &session).await;
    items.sort_by_key(|appointment| std::cmp::Reverse(appointment.starts_at));
    let now = Utc::now();
    let (upcoming, past): (Vec<_>, Vec<_>) = items.iter().partition(|appointment| {
        appointment.ends_at > now
            && matches!(
                appointment.status.as_str(),
                "OFFERED" | "PENDING" | "PAID" | "SCHEDULED"
            )
    });
    let view = |list: Vec<&Appointment>| {
        list.into_iter()
            .map(|appointment| AppointmentView::new(&state, appointment, &doctors, Role::Patient))
            .collect()
    };
    let mut upcoming: Vec<AppointmentView> = view(upcoming);
    upcoming.reverse();
    Ok(render(&MinePage {
        l: Layout::new(&session, "My appointments", "/appointments"),
        sections: vec![("Upcoming", upcoming), ("Past and closed", view(past))],
    }))
}

#[derive(Template)]
#[template(path = "appointment.html")]
struct DetailPage {
    l: Layout,
    a: AppointmentView,
    role: &'static str,
}

async fn detail(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Everyone>,
    Id(id): Id,
) -> PageResult {
    let here = format!("/appointments/{id}");
    let appointment: Appointment = state
        .gateway
        .get(&session, &format!("/api/appointments/{id}"))
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    let doctors = doctor_names(&state, &session).await;
    let mut view = AppointmentView::new(&state, &appointment, &doctors, user.role);
    if user.role == Role::Patient
        && let Some(payment_id) = &appointment.payment_id
        && let Ok(payment) = state
            .gateway
            .get::<Payment>(&session, &format!("/api/payments/{payment_id}"))
            .await
    {
        view = view.with_payment(&state, &payment);
    }
    Ok(render(&DetailPage {
        l: Layout::new(&session, "Appointment", ""),
        a: view,
        role: user.role.label(),
    }))
}

/// Where a participant goes back to after an action.
fn back(session: &Session, id: &str) -> String {
    match session.user.as_ref().map(|user| user.role) {
        Some(Role::Admin) => "/admin/appointments".to_owned(),
        _ => format!("/appointments/{id}"),
    }
}

/// Runs one lifecycle action and reports it as a message on the next page.
async fn act(
    state: &WebState,
    session: &Session,
    id: &str,
    action: &str,
    f: &FormState,
    body: serde_json::Value,
    done: &str,
) -> PageResult {
    let back = back(session, id);
    let key = form_key(f);
    match state
        .gateway
        .post_once(
            session,
            &format!("/api/appointments/{id}/{action}"),
            &body,
            &key,
        )
        .await
    {
        Ok(_) => session.set_flash("ok", done),
        Err(ApiFailure::Rejected(problem)) if problem.status != StatusCode::NOT_FOUND => {
            let message = match problem.code.as_str() {
                "cancellation_cutoff_passed" => format!(
                    "It is less than {} hours before the appointment; please call the clinic.",
                    state.cutoff_hours
                ),
                "slot_taken" => "That time was just taken. Please choose another.".to_owned(),
                _ => problem.detail.clone(),
            };
            session.set_flash("error", message);
        }
        Err(other) => return Err(WebError::from_api(other, &back)),
    }
    Ok(see_other(&back))
}

async fn cancel(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<PatientsAndAdmins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    let body = match f.opt("reason") {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    act(
        &state,
        &session,
        &id,
        "cancel",
        &f,
        body,
        "The appointment is cancelled; any payment is released or refunded.",
    )
    .await
}

async fn reschedule(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<PatientsAndAdmins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    act(
        &state,
        &session,
        &id,
        "reschedule",
        &f,
        json!({ "starts_at": f.v("starts_at") }),
        "The appointment is moved.",
    )
    .await
}

async fn complete(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<CareAndAdmins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    close_visit(
        &state,
        &session,
        &id,
        pairs,
        "complete",
        "Marked as completed.",
    )
    .await
}

async fn no_show(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<CareAndAdmins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    close_visit(
        &state,
        &session,
        &id,
        pairs,
        "no-show",
        "Marked as a no-show.",
    )
    .await
}

/// Ends a visit that took place (or did not): its doctor, its nurse or an admin.
async fn close_visit(
    state: &WebState,
    session: &Session,
    id: &str,
    pairs: Vec<(String, String)>,
    action: &str,
    done: &str,
) -> PageResult {
    let f = FormState::new(pairs);
    act(state, session, id, action, &f, json!({}), done).await
}

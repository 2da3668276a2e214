//! The approval queue: paid requests, each with the rooms and nurses the appointments
//! service says are free for it, approved or rejected from here.

use askama::Template;
use axum::Form;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

use super::super::appointments::AppointmentView;
use super::super::{FormState, Id, Page, form_key};
use super::{Choice, outcome};
use crate::WebState;
use crate::guard::{Signed, audience::Admins};
use crate::model::{Appointment, Doctor};
use crate::page::{Layout, PageResult, WebError, render, see_other};
use crate::session::Role;

struct QueueItem {
    a: AppointmentView,
    rooms: Vec<Choice>,
    nurses: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "admin_queue.html")]
struct QueuePage {
    l: Layout,
    items: Vec<QueueItem>,
}

/// What the appointments service offers an approval: the free rooms and nurses.
#[derive(Deserialize)]
struct Staffing {
    rooms: Vec<RoomChoice>,
    nurses: Vec<NurseChoice>,
}

#[derive(Deserialize)]
struct RoomChoice {
    id: String,
    name: String,
}

#[derive(Deserialize)]
struct NurseChoice {
    id: String,
    first_name: String,
    last_name: String,
}

pub(super) async fn queue(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
) -> PageResult {
    let here = "/admin/queue";
    let fail = |failure| WebError::from_api(failure, here);
    let waiting: Page<Appointment> = state
        .gateway
        .get(&session, "/api/appointments/queue?limit=100")
        .await
        .map_err(fail)?;
    let directory: Vec<Doctor> = state
        .gateway
        .get_as(&session, "/api/doctors")
        .await
        .map_err(fail)?;
    let names: HashMap<String, String> =
        directory.iter().map(|d| (d.id.clone(), d.name())).collect();
    let mut items = Vec::new();
    for appointment in &waiting.items {
        let staffing: Staffing = state
            .gateway
            .get(
                &session,
                &format!("/api/appointments/{}/staffing", appointment.id),
            )
            .await
            .map_err(fail)?;
        items.push(QueueItem {
            a: AppointmentView::new(&state, appointment, &names, Role::Admin),
            rooms: staffing
                .rooms
                .into_iter()
                .map(|room| Choice {
                    id: room.id,
                    label: room.name,
                })
                .collect(),
            nurses: staffing
                .nurses
                .into_iter()
                .map(|nurse| Choice {
                    id: nurse.id,
                    label: format!("{} {}", nurse.first_name, nurse.last_name),
                })
                .collect(),
        });
    }
    Ok(render(&QueuePage {
        l: Layout::new(&session, "Approvals", here),
        items,
    }))
}

pub(super) async fn approve(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    if f.v("room_id").is_empty() || f.v("nurse_id").is_empty() {
        session.set_flash("error", "Choose a room and a nurse to approve.");
        return Ok(see_other("/admin/queue"));
    }
    let body = json!({ "room_id": f.v("room_id"), "nurse_id": f.v("nurse_id") });
    outcome(
        &session,
        state
            .gateway
            .post_once(
                &session,
                &format!("/api/appointments/{id}/approve"),
                &body,
                &form_key(&f),
            )
            .await,
        "Approved: the payment is captured and the patient is told.",
        "/admin/queue",
    )
}

pub(super) async fn reject(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    if f.v("reason").is_empty() {
        session.set_flash("error", "Give the patient a reason for the rejection.");
        return Ok(see_other("/admin/queue"));
    }
    outcome(
        &session,
        state
            .gateway
            .post_once(
                &session,
                &format!("/api/appointments/{id}/reject"),
                &json!({ "reason": f.v("reason") }),
                &form_key(&f),
            )
            .await,
        "Rejected: the card authorisation is released and the patient is told.",
        "/admin/queue",
    )
}

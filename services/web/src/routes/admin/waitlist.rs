//! Each doctor's waitlist: the patients in line for them (by name, or by their
//! specialization) in order, with the slot held for each, if any.

use askama::Template;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::super::waitlist::EntryView;
use super::super::{FormState, Id};
use super::{Choice, outcome};
use crate::WebState;
use crate::guard::{Signed, audience::Admins};
use crate::model::{Doctor, Person, WaitlistEntry};
use crate::page::{Layout, PageResult, WebError, render};

#[derive(Deserialize)]
pub(super) struct LineQuery {
    doctor_id: Option<uuid::Uuid>,
}

/// People named on one page at most (the rest by their id).
const NAMED: usize = 100;

#[derive(Template)]
#[template(path = "admin_waitlist.html")]
struct LinePage {
    l: Layout,
    doctors: Vec<Choice>,
    doctor_id: String,
    line: Vec<(EntryView, String)>,
}

pub(super) async fn waitlist(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Query(q): Query<LineQuery>,
) -> PageResult {
    let here = "/admin/waitlist";
    let directory: Vec<Doctor> = state
        .gateway
        .get(&session, "/api/doctors")
        .await
        .map_err(|failure| WebError::from_api(failure, here))?;
    let mut doctors: Vec<Choice> = directory
        .iter()
        .map(|doctor| Choice {
            id: doctor.id.clone(),
            label: doctor.name(),
        })
        .collect();
    doctors.sort_by(|a, b| a.label.cmp(&b.label));
    let doctor_id = q
        .doctor_id
        .map(|id| id.to_string())
        .or_else(|| doctors.first().map(|doctor| doctor.id.clone()))
        .unwrap_or_default();
    let mut line = Vec::new();
    if !doctor_id.is_empty() {
        let entries: Vec<WaitlistEntry> = state
            .gateway
            .get(&session, &format!("/api/waitlist?doctor_id={doctor_id}"))
            .await
            .map_err(|failure| WebError::from_api(failure, here))?;
        for (n, entry) in entries.iter().enumerate() {
            let patient = if n < NAMED {
                state
                    .gateway
                    .get::<Person>(&session, &format!("/api/users/{}", entry.patient_id))
                    .await
                    .map(|person| person.name())
                    .unwrap_or_else(|_| super::super::short(&entry.patient_id))
            } else {
                super::super::short(&entry.patient_id)
            };
            line.push((EntryView::new(&state, entry, &directory), patient));
        }
    }
    Ok(render(&LinePage {
        l: Layout::new(&session, "Waitlists", here),
        doctors,
        doctor_id,
        line,
    }))
}

/// Takes a patient out of a line (an open offer is withdrawn and passes on).
pub(super) async fn remove(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(id): Id,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    let back = match f.opt("doctor_id") {
        Some(doctor) => format!("/admin/waitlist?doctor_id={doctor}"),
        None => "/admin/waitlist".to_owned(),
    };
    let result = state
        .gateway
        .delete(&session, &format!("/api/waitlist/{id}"))
        .await;
    outcome(&session, result, "The patient is out of the line.", &back)
}

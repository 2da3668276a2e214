//! Every appointment, filtered by status, doctor and dates.

use askama::Template;
use axum::extract::{Query, State};
use chrono::NaiveDate;
use serde::Deserialize;

use super::super::appointments::{AppointmentView, doctor_names};
use super::super::{Page, query};
use super::Choice;
use crate::WebState;
use crate::guard::{Signed, audience::Admins};
use crate::model::Appointment;
use crate::page::{Layout, PageResult, WebError, render};
use crate::session::Role;
use crate::view::Clinic;

#[derive(Deserialize, Default)]
pub(super) struct AppointmentFilter {
    status: Option<String>,
    doctor_id: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    cursor: Option<uuid::Uuid>,
}

const STATUSES: [&str; 9] = [
    "OFFERED",
    "PENDING",
    "PAID",
    "SCHEDULED",
    "COMPLETED",
    "NO_SHOW",
    "EXPIRED",
    "REJECTED",
    "CANCELLED",
];

#[derive(Template)]
#[template(path = "admin_appointments.html")]
struct AppointmentsPage {
    l: Layout,
    statuses: Vec<&'static str>,
    doctors: Vec<Choice>,
    status: String,
    doctor_id: String,
    from: String,
    to: String,
    rows: Vec<AppointmentView>,
    next: Option<String>,
}

pub(super) async fn appointments(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Query(filter): Query<AppointmentFilter>,
) -> PageResult {
    let here = "/admin/appointments";
    let status = filter
        .status
        .clone()
        .filter(|s| STATUSES.contains(&s.as_str()))
        .unwrap_or_default();
    let doctor_id = filter
        .doctor_id
        .as_deref()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map(|id| id.to_string())
        .unwrap_or_default();
    let (from_day, to_day) = (
        filter.from.and_then(Clinic::plausible),
        filter.to.and_then(Clinic::plausible),
    );
    let from = from_day
        .map(|date| state.clinic.day_bounds(date, 0).0.to_rfc3339())
        .unwrap_or_default();
    let to = to_day
        .map(|date| state.clinic.day_bounds(date, 1).1.to_rfc3339())
        .unwrap_or_default();
    let cursor = filter.cursor.map(|c| c.to_string()).unwrap_or_default();
    let path = format!(
        "/api/appointments{}",
        query(&[
            ("status", &status),
            ("doctor_id", &doctor_id),
            ("from", &from),
            ("to", &to),
            ("limit", "50"),
            ("cursor", &cursor),
        ])
    );
    let page: Page<Appointment> = state
        .gateway
        .get(&session, &path)
        .await
        .map_err(|failure| WebError::from_api(failure, here))?;
    let names = doctor_names(&state, &session).await;
    let from_date = from_day.map(|d| d.to_string()).unwrap_or_default();
    let to_date = to_day.map(|d| d.to_string()).unwrap_or_default();
    let next = page.next_cursor.as_ref().map(|next| {
        format!(
            "{here}{}",
            query(&[
                ("status", &status),
                ("doctor_id", &doctor_id),
                ("from", &from_date),
                ("to", &to_date),
                ("cursor", next),
            ])
        )
    });
    let mut doctors: Vec<Choice> = names
        .iter()
        .map(|(id, name)| Choice {
            id: id.clone(),
            label: name.clone(),
        })
        .collect();
    doctors.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(render(&AppointmentsPage {
        l: Layout::new(&session, "All appointments", here),
        statuses: STATUSES.to_vec(),
        doctors,
        status,
        doctor_id,
        from: from_date,
        to: to_date,
        rows: page
            .items
            .iter()
            .map(|appointment| AppointmentView::new(&state, appointment, &names, Role::Admin))
            .collect(),
        next,
    }))
}

//! Doctors' weekly schedules.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use super::super::appointments::doctor_names;
use super::super::{FormState, Id};
use super::{Choice, outcome};
use crate::WebState;
use crate::guard::{Signed, audience::Admins};
use crate::model::Schedule;
use crate::page::{Layout, PageResult, WebError, render, see_other};
use crate::session::Session;

#[derive(Deserialize)]
pub(super) struct ScheduleQuery {
    doctor_id: Option<uuid::Uuid>,
}

struct DayRow {
    weekday: u32,
    name: &'static str,
    works: bool,
    starts_at: String,
    ends_at: String,
    slot_minutes: String,
}

#[derive(Template)]
#[template(path = "admin_schedules.html")]
struct SchedulesPage {
    l: Layout,
    doctors: Vec<Choice>,
    doctor_id: String,
    custom: bool,
    days: Vec<DayRow>,
    buffer_before: u32,
    buffer_after: u32,
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

async fn schedules_page(
    state: &WebState,
    session: &Session,
    doctor_id: Option<String>,
) -> Result<SchedulesPage, WebError> {
    let here = "/admin/schedules";
    let names = doctor_names(state, session).await;
    let mut doctors: Vec<Choice> = names
        .iter()
        .map(|(id, name)| Choice {
            id: id.clone(),
            label: name.clone(),
        })
        .collect();
    doctors.sort_by(|a, b| a.label.cmp(&b.label));
    let doctor_id = doctor_id
        .or_else(|| doctors.first().map(|d| d.id.clone()))
        .unwrap_or_default();
    let (custom, days, buffers) = if doctor_id.is_empty() {
        (false, Vec::new(), (0, 0))
    } else {
        let schedule: Schedule = state
            .gateway
            .get(session, &format!("/api/doctors/{doctor_id}/schedule"))
            .await
            .map_err(|failure| WebError::from_api(failure, here))?;
        let days = (1..=7u32)
            .map(|weekday| {
                let day = schedule.days.iter().find(|day| day.weekday == weekday);
                DayRow {
                    weekday,
                    name: WEEKDAYS[(weekday - 1) as usize],
                    works: day.is_some(),
                    starts_at: day
                        .map(|d| d.starts_at.clone())
                        .unwrap_or_else(|| "08:00".into()),
                    ends_at: day
                        .map(|d| d.ends_at.clone())
                        .unwrap_or_else(|| "17:00".into()),
                    slot_minutes: day
                        .map(|d| d.slot_minutes.to_string())
                        .unwrap_or_else(|| "30".into()),
                }
            })
            .collect();
        let buffers = (
            schedule.buffer_before_minutes,
            schedule.buffer_after_minutes,
        );
        (schedule.custom, days, buffers)
    };
    Ok(SchedulesPage {
        l: Layout::new(session, "Schedules", here),
        doctors,
        doctor_id,
        custom,
        days,
        buffer_before: buffers.0,
        buffer_after: buffers.1,
    })
}

pub(super) async fn schedules(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Query(q): Query<ScheduleQuery>,
) -> PageResult {
    Ok(render(
        &schedules_page(&state, &session, q.doctor_id.map(|id| id.to_string())).await?,
    ))
}

pub(super) async fn save_schedule(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Admins>,
    Id(doctor_id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    let mut days = Vec::new();
    for weekday in 1..=7 {
        if f.v(&format!("works_{weekday}")).is_empty() {
            continue;
        }
        let minutes = f.v(&format!("slot_{weekday}")).parse::<u32>();
        match minutes {
            Ok(minutes) => days.push(json!({
                "weekday": weekday,
                "starts_at": f.v(&format!("starts_{weekday}")),
                "ends_at": f.v(&format!("ends_{weekday}")),
                "slot_minutes": minutes,
            })),
            Err(_) => f.error(&format!("slot_{weekday}"), "Minutes as a whole number."),
        }
    }
    let minutes = |name: &str| f.v(name).parse::<u32>().unwrap_or(0);
    let (before, after) = (minutes("buffer_before"), minutes("buffer_after"));
    let back = format!("/admin/schedules?doctor_id={doctor_id}");
    if f.has_errors() {
        session.set_flash("error", "Slot lengths are whole minutes.");
        return Ok(see_other(&back));
    }
    let result = state
        .gateway
        .call(
            &session,
            Method::PUT,
            &format!("/api/doctors/{doctor_id}/schedule"),
            &json!({ "days": days, "buffer_before_minutes": before, "buffer_after_minutes": after }),
        )
        .await;
    outcome(
        &session,
        result,
        "Schedule saved. Booked appointments stay as they are.",
        &back,
    )
}

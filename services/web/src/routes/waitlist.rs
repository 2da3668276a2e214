//! The waitlist as patients use it: join a doctor's (or a specialization's) line for a
//! range of dates and hours, see the place in line, claim a slot the line offers (or turn it
//! down), leave. A claimed offer is paid like any reservation, on the pay page.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{Duration, Utc};
use serde::Deserialize;
use serde_json::json;

use super::appointments::doctor_names;
use super::{FormState, Id, form_key};
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::{Signed, audience::Patients};
use crate::model::{Appointment, Doctor, WaitlistEntry};
use crate::page::{Layout, PageResult, WebError, render, render_status, see_other};
use crate::session::Session;
use crate::view::money;

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/waitlist", get(waitlist).post(join))
        .route("/waitlist/{id}/leave", post(leave))
        .route("/appointments/{id}/claim", get(offer).post(claim))
        .route("/appointments/{id}/decline", post(decline))
}

/// One entry as the page shows it.
pub struct EntryView {
    pub id: String,
    pub target: String,
    pub dates: String,
    pub hours: String,
    pub status: String,
    pub position: String,
    /// The OFFERED appointment to claim, with its time and deadline.
    pub offer: Option<(String, String, String)>,
    pub in_line: bool,
    pub joined: String,
}

impl EntryView {
    pub fn new(state: &WebState, entry: &WaitlistEntry, doctors: &[Doctor]) -> Self {
        let target = match (&entry.doctor_id, &entry.specialization) {
            (Some(doctor), _) => doctors
                .iter()
                .find(|known| &known.id == doctor)
                .map(Doctor::name)
                .unwrap_or_else(|| "a doctor no longer listed".to_owned()),
            (None, Some(specialization)) => format!("any doctor of {specialization}"),
            (None, None) => String::new(),
        };
        Self {
            id: entry.id.clone(),
            target,
            dates: if entry.from == entry.to {
                entry.from.format("%a %-d %b %Y").to_string()
            } else {
                format!(
                    "{} to {}",
                    entry.from.format("%a %-d %b"),
                    entry.to.format("%a %-d %b %Y")
                )
            },
            hours: format!("{} to {}", entry.earliest, entry.latest),
            status: entry.status.clone(),
            position: entry
                .position
                .map(|position| position.to_string())
                .unwrap_or_default(),
            offer: entry.offer.as_ref().map(|offer| {
                (
                    offer.appointment_id.clone(),
                    state.clinic.time(&offer.starts_at),
                    state.clinic.clock(&offer.expires_at),
                )
            }),
            in_line: matches!(entry.status.as_str(), "WAITING" | "OFFERED"),
            joined: state.clinic.time(&entry.joined_at),
        }
    }
}

#[derive(Template)]
#[template(path = "waitlist.html")]
struct WaitlistPage {
    l: Layout,
    f: FormState,
    entries: Vec<EntryView>,
    doctors: Vec<(String, String)>,
    specializations: Vec<String>,
}

#[derive(Deserialize)]
struct Prefill {
    doctor_id: Option<String>,
}

async fn directory(state: &WebState, session: &Session) -> Vec<Doctor> {
    state
        .gateway
        .get_as(session, "/api/doctors")
        .await
        .unwrap_or_default()
}

async fn page(state: &WebState, session: &Session, f: FormState) -> Result<WaitlistPage, WebError> {
    let entries: Vec<WaitlistEntry> = state
        .gateway
        .get(session, "/api/waitlist/mine")
        .await
        .map_err(|failure| WebError::from_api(failure, "/waitlist"))?;
    let doctors = directory(state, session).await;
    let specializations: BTreeSet<String> = doctors
        .iter()
        .map(|doctor| doctor.specialization.clone())
        .filter(|name| !name.is_empty())
        .collect();
    Ok(WaitlistPage {
        l: Layout::new(session, "Waitlist", "/waitlist"),
        entries: entries
            .iter()
            .map(|entry| EntryView::new(state, entry, &doctors))
            .collect(),
        doctors: doctors
            .iter()
            .map(|doctor| (doctor.id.clone(), doctor.name()))
            .collect(),
        specializations: specializations.into_iter().collect(),
        f,
    })
}

async fn waitlist(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Query(prefill): Query<Prefill>,
) -> PageResult {
    let today = state.clinic.today();
    let f = FormState::default()
        .with("doctor_id", prefill.doctor_id.unwrap_or_default())
        .with("from", today.to_string())
        .with("to", (today + Duration::days(14)).to_string())
        .with("earliest", "08:00")
        .with("latest", "17:00")
        .with("idempotency_key", uuid::Uuid::new_v4().to_string());
    Ok(render(&page(&state, &session, f).await?))
}

async fn join(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    let mut body = json!({
        "from": f.v("from"), "to": f.v("to"),
        "earliest": f.v("earliest"), "latest": f.v("latest"),
    });
    match (f.opt("doctor_id"), f.opt("specialization")) {
        (Some(doctor), None) => body["doctor_id"] = json!(doctor),
        (None, Some(specialization)) => body["specialization"] = json!(specialization),
        (Some(_), Some(_)) => f.error(
            "doctor_id",
            "Choose a doctor or a specialization, not both.",
        ),
        (None, None) => f.error("doctor_id", "Choose a doctor or a specialization."),
    }
    for field in ["from", "to", "earliest", "latest"] {
        f.required(field);
    }
    if !f.has_errors() {
        match state
            .gateway
            .post_once(&session, "/api/waitlist", &body, &form_key(&f))
            .await
        {
            Ok(joined) => {
                let position = joined["position"].as_i64().unwrap_or(1);
                session.set_flash(
                    "ok",
                    format!(
                        "You are number {position} in line. When a slot that fits frees, it is held for you and you are told by email."
                    ),
                );
                return Ok(see_other("/waitlist"));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "already_waiting" => {
                    f.general = Some(
                        "You are already waiting for this doctor at overlapping times.".to_owned(),
                    )
                }
                "waitlist_limit_reached" => f.general = Some(problem.detail.clone()),
                "unknown_doctor" | "unknown_specialization" => {
                    f.error("doctor_id", "No such doctor or specialization.")
                }
                _ => f.absorb(&problem, &[("doctor_id", "doctor_id")]),
            },
            Err(other) => return Err(WebError::from_api(other, "/waitlist")),
        }
    }
    let f = f.with("idempotency_key", uuid::Uuid::new_v4().to_string());
    Ok(render_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &page(&state, &session, f).await?,
    ))
}

async fn leave(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Id(id): Id,
) -> PageResult {
    match state
        .gateway
        .delete(&session, &format!("/api/waitlist/{id}"))
        .await
    {
        Ok(_) => session.set_flash("ok", "You left the waitlist."),
        Err(ApiFailure::Rejected(problem)) => session.set_flash("error", &problem.detail),
        Err(other) => return Err(WebError::from_api(other, "/waitlist")),
    }
    Ok(see_other("/waitlist"))
}

#[derive(Template)]
#[template(path = "claim.html")]
struct OfferPage {
    l: Layout,
    id: String,
    doctor: String,
    when: String,
    fee: String,
    until: String,
    key: String,
}

/// The slot a waitlist holds for the patient: claim it, or turn it down.
async fn offer(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Id(id): Id,
) -> PageResult {
    let here = format!("/appointments/{id}/claim");
    let appointment: Appointment = state
        .gateway
        .get(&session, &format!("/api/appointments/{id}"))
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    let open = appointment.status == "OFFERED"
        && appointment
            .hold_expires_at
            .is_some_and(|until| until > Utc::now());
    if !open {
        session.set_flash(
            "error",
            "This offer is no longer open: it was claimed, turned down, or it lapsed and passed to the next patient in line.",
        );
        return Ok(see_other("/waitlist"));
    }
    let doctors = doctor_names(&state, &session).await;
    Ok(render(&OfferPage {
        l: Layout::new(&session, "A slot for you", "/waitlist"),
        doctor: doctors
            .get(&appointment.doctor_id)
            .cloned()
            .unwrap_or_default(),
        when: state.clinic.time(&appointment.starts_at),
        fee: money(appointment.fee.amount, &appointment.fee.currency),
        until: appointment
            .hold_expires_at
            .map(|at| state.clinic.clock(&at))
            .unwrap_or_default(),
        key: uuid::Uuid::new_v4().to_string(),
        id,
    }))
}

async fn claim(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    match state
        .gateway
        .post_once(
            &session,
            &format!("/api/appointments/{id}/claim"),
            &json!({}),
            &form_key(&f),
        )
        .await
    {
        Ok(_) => {
            session.set_flash("ok", "The slot is yours once your card is authorised.");
            Ok(see_other(&format!("/appointments/{id}/pay")))
        }
        Err(ApiFailure::Rejected(problem)) => {
            let message = match problem.code.as_str() {
                "offer_expired" => {
                    "Too late: the offer lapsed and passed to the next patient in line. You keep your place for other slots.".to_owned()
                }
                "pending_limit_reached" => problem.detail.clone(),
                _ => problem.detail.clone(),
            };
            session.set_flash("error", message);
            Ok(see_other("/waitlist"))
        }
        Err(other) => Err(WebError::from_api(other, "/waitlist")),
    }
}

async fn decline(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Patients>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    match state
        .gateway
        .post_once(
            &session,
            &format!("/api/appointments/{id}/cancel"),
            &json!({}),
            &form_key(&f),
        )
        .await
    {
        Ok(_) => session.set_flash(
            "ok",
            "You turned the slot down; it passes to the next patient in line. You keep your place for others.",
        ),
        Err(ApiFailure::Rejected(problem)) => session.set_flash("error", &problem.detail),
        Err(other) => return Err(WebError::from_api(other, "/waitlist")),
    }
    Ok(see_other("/waitlist"))
}

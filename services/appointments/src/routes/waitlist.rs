//! `/api/waitlist`: patients join a doctor's (or a specialization's) line for a window and
//! see their place in it; admins see each doctor's line. An offer is an OFFERED appointment:
//! `POST /api/appointments/{id}/claim` books it (cancelling it declines it).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use polyclinic_auth::Asking;
use polyclinic_auth::rules::{Admin, Patient, PatientOrAdmin};
use polyclinic_db::idempotency::Idempotent;
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails, Violations};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::appointments::ReservationBody;
use super::caller;
use super::schedules::{LocalTime, hh_mm, parse_hh_mm};
use crate::AppState;
use crate::booking::Standing;
use crate::domain::waitlist::{EntryStatus, Target, Window};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(join, doctors_line))
        .routes(routes!(my_entries))
        .routes(routes!(leave))
        .routes(routes!(claim))
}

/// Joining a waitlist: one doctor, or any doctor of a specialization (exactly one of the
/// two), the local dates, and the window of the day the whole visit must fall in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    pub doctor_id: Option<Uuid>,
    /// As the directory names it (any case).
    #[schema(min_length = 1, max_length = 100)]
    pub specialization: Option<String>,
    /// The first local date, today or later.
    pub from: NaiveDate,
    /// The last local date: on or after `from`, within `waitlist.max_range_days` of it
    /// (90 by default) and within a year of today.
    pub to: NaiveDate,
    /// The window's start, local `HH:MM`.
    #[schema(value_type = LocalTime)]
    pub earliest: String,
    /// The window's end, local `HH:MM`, after `earliest`.
    #[schema(value_type = LocalTime)]
    pub latest: String,
}

/// A slot held for the patient: claim it before `expires_at`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfferBody {
    /// The OFFERED appointment: claim it with `POST /api/appointments/{id}/claim`.
    pub appointment_id: Uuid,
    pub doctor_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A place in a waitlist.
#[derive(Debug, Serialize, ToSchema)]
pub struct WaitlistEntry {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Option<Uuid>,
    pub specialization: Option<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Local `HH:MM`.
    pub earliest: String,
    /// Local `HH:MM`.
    pub latest: String,
    pub status: EntryStatus,
    /// 1 for the first in line; absent once out of line.
    pub position: Option<i64>,
    /// The slot held for the patient now, if any.
    pub offer: Option<OfferBody>,
    pub joined_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<Standing> for WaitlistEntry {
    fn from(standing: Standing) -> Self {
        let entry = standing.entry;
        Self {
            id: entry.id,
            patient_id: entry.patient_id.into(),
            doctor_id: entry.doctor_id.map(Uuid::from),
            specialization: entry.specialization,
            from: entry.from_date,
            to: entry.to_date,
            earliest: hh_mm(entry.earliest),
            latest: hh_mm(entry.latest),
            status: entry.status,
            position: standing.position,
            offer: standing.offer.map(|offer| OfferBody {
                appointment_id: offer.appointment_id.into(),
                doctor_id: offer.doctor_id.into(),
                starts_at: offer.starts_at,
                expires_at: offer.expires_at,
            }),
            joined_at: entry.created_at,
            ended_at: entry.ended_at,
        }
    }
}

/// Parses a join request. Shape rules the schema cannot state (exactly one target, the
/// dates' order and span, the window's order) answer 422 `validation_failed`.
fn parse_join(
    body: &JoinBody,
    today: NaiveDate,
    max_days: u32,
) -> Result<(Target, Window), ApiError> {
    let mut violations = Violations::new();
    let target = match (
        body.doctor_id,
        body.specialization.as_deref().map(str::trim),
    ) {
        (Some(doctor), None) => Some(Target::Doctor(doctor.into())),
        (None, Some(name)) if (1..=100).contains(&name.chars().count()) => {
            Some(Target::Specialization(name.to_owned()))
        }
        (None, Some(_)) => {
            violations.add("specialization", "1 to 100 characters");
            None
        }
        _ => {
            violations.add(
                "doctor_id",
                "name one doctor, or a specialization, not both",
            );
            None
        }
    };
    let earliest = violations.check("earliest", parse_hh_mm(&body.earliest));
    let latest = violations.check("latest", parse_hh_mm(&body.latest));
    let window = match (earliest, latest) {
        (Some(earliest), Some(latest)) => {
            match Window::parse(body.from, body.to, earliest, latest, today, max_days) {
                Ok(window) => Some(window),
                Err(err) => {
                    violations.add(err.field, err.message);
                    None
                }
            }
        }
        _ => None,
    };
    violations.finish()?;
    target
        .zip(window)
        .ok_or_else(|| Violations::new().into_error())
}

/// Joins a waitlist (patients): when a slot that fits frees, the first patient in line is
/// offered it for `waitlist.offer_minutes` (15 by default) and told by email; a slot free
/// already is offered at once. At most `waitlist.max_entries_per_patient` entries at once
/// (409 `waitlist_limit_reached`), not twice for one doctor at overlapping times (409
/// `already_waiting`).
#[utoipa::path(post, path = "/api/waitlist", tag = "waitlist", request_body = JoinBody,
    security(("bearer" = [])),
    responses((status = 201, body = WaitlistEntry), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails),
        (status = 503, body = ProblemDetails)))]
async fn join(
    State(state): State<AppState>,
    asking: Asking<Patient>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let body: JoinBody = request.json()?;
            let today = Utc::now().with_timezone(&state.booking.zone()).date_naive();
            let (target, window) =
                parse_join(&body, today, state.booking.waitlist_policy().max_range_days)?;
            let caller = caller(&asking)?;
            let entry = state.booking.join_waitlist(caller, target, window).await?;
            let position = state.booking.position(&entry).await?;
            let standing = Standing {
                entry,
                position,
                offer: None,
            };
            Ok((StatusCode::CREATED, WaitlistEntry::from(standing)))
        })
        .await
}

/// The caller's waitlist entries, newest first, with their place in line and any open
/// offer (patients).
#[utoipa::path(get, path = "/api/waitlist/mine", tag = "waitlist", security(("bearer" = [])),
    responses((status = 200, body = Vec<WaitlistEntry>)))]
async fn my_entries(
    State(state): State<AppState>,
    asking: Asking<Patient>,
) -> Result<Json<Vec<WaitlistEntry>>, ApiError> {
    let caller = caller(&asking)?;
    let entries = state.booking.my_waitlist(caller).await?;
    Ok(Json(entries.into_iter().map(WaitlistEntry::from).collect()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LineQuery {
    /// The doctor whose line to show: those waiting for them by name, and for their
    /// specialization.
    pub doctor_id: Uuid,
}

/// A doctor's waitlist in order (admins): up to 500 entries in line, first first.
#[utoipa::path(get, path = "/api/waitlist", tag = "waitlist", params(LineQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<WaitlistEntry>), (status = 400, body = ProblemDetails),
        (status = 404, body = ProblemDetails), (status = 503, body = ProblemDetails)))]
async fn doctors_line(
    State(state): State<AppState>,
    _admin: Asking<Admin>,
    Query(query): Query<LineQuery>,
) -> Result<Json<Vec<WaitlistEntry>>, ApiError> {
    let line = state.booking.waitlist_of(query.doctor_id.into()).await?;
    Ok(Json(line.into_iter().map(WaitlistEntry::from).collect()))
}

/// Leaves a waitlist (the patient; an admin for anyone): an open offer is withdrawn and its
/// slot passes to the next in line.
#[utoipa::path(delete, path = "/api/waitlist/{id}", tag = "waitlist", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn leave(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    let caller = caller(&asking)?;
    state.booking.leave_waitlist(caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Claims a slot the waitlist offers the caller (its patient): it becomes their reservation,
/// held for the usual time while the card is authorised with the returned `client_secret`,
/// as any reservation. 409 `offer_expired` once the offer lapsed.
#[utoipa::path(post, path = "/api/appointments/{id}/claim", tag = "waitlist", security(("bearer" = [])),
    responses((status = 200, body = ReservationBody), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails), (status = 503, body = ProblemDetails)))]
async fn claim(
    State(state): State<AppState>,
    asking: Asking<Patient>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let caller = caller(&asking)?;
            let claimed = state.booking.claim(caller, id.into()).await?;
            Ok((StatusCode::OK, ReservationBody::from(claimed)))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> JoinBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_join_names_one_target_and_a_sound_window() {
        let today: NaiveDate = "2027-03-01".parse().unwrap();
        let good = body(serde_json::json!({
            "specialization": " Cardiology ", "from": "2027-03-02", "to": "2027-03-09",
            "earliest": "08:00", "latest": "12:00"}));
        let (target, _) = parse_join(&good, today, 90).unwrap();
        assert_eq!(target, Target::Specialization("Cardiology".into()));
        for wrong in [
            serde_json::json!({"from": "2027-03-02", "to": "2027-03-09", "earliest": "08:00", "latest": "12:00"}),
            serde_json::json!({"doctor_id": Uuid::nil(), "specialization": "x", "from": "2027-03-02",
                               "to": "2027-03-09", "earliest": "08:00", "latest": "12:00"}),
            serde_json::json!({"doctor_id": Uuid::nil(), "from": "2027-03-02", "to": "2027-03-09",
                               "earliest": "8:00", "latest": "12:00"}),
            serde_json::json!({"doctor_id": Uuid::nil(), "from": "2027-02-28", "to": "2027-03-09",
                               "earliest": "08:00", "latest": "12:00"}),
            serde_json::json!({"doctor_id": Uuid::nil(), "from": "2027-03-02", "to": "2027-03-09",
                               "earliest": "12:00", "latest": "08:00"}),
        ] {
            assert!(
                parse_join(&body(wrong.clone()), today, 90).is_err(),
                "{wrong}"
            );
        }
    }
}

//! `/api/doctors/{id}/...`: the doctor's weekly template, time off, and availability.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Days, NaiveDate, NaiveTime, Utc, Weekday};
use polyclinic_auth::rules::DoctorOrAdmin;
use polyclinic_auth::{Asking, RoleRule};
use polyclinic_client::CallContext;
use polyclinic_http::extract::{Json, JsonBytes, Path, Query, json_from_bytes};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails, RequestId, Violations};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::body::Appointment;
use super::caller;
use crate::AppState;
use crate::booking::Caller;
use crate::domain::appointment::{Actor, Reason, parse_text};
use crate::domain::schedule::{Buffers, DayHours, SlotState, Unavailability, WeeklyTemplate};
use crate::repo::schedules::{self, TimeOff, iso_weekday};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_schedule, put_schedule))
        .routes(routes!(add_unavailability, list_unavailability))
        .routes(routes!(remove_unavailability))
        .routes(routes!(availability))
}

fn doctor_not_found() -> ApiError {
    ApiError::not_found("doctor_not_found", "No such doctor.")
}

/// The active doctor `doctor_id` of the directory (404 for anyone else).
pub(crate) async fn known_doctor(
    state: &AppState,
    doctor_id: Uuid,
    call: CallContext<'_>,
) -> Result<crate::peers::Doctor, ApiError> {
    match state
        .booking
        .peers()
        .doctor_cached(doctor_id.into(), call)
        .await
    {
        Ok(Some(doctor)) => Ok(doctor),
        Ok(None) => Err(doctor_not_found()),
        Err(err) => {
            tracing::warn!(error = %err, "the identity service could not be asked about a doctor");
            Err(ApiError::dependency_unavailable(
                "The identity service is unavailable; please try again.",
            ))
        }
    }
}

/// The caller, if they may manage `doctor_id`'s calendar: admins, and the doctor themself.
/// Another doctor gets 404, as if there were no such doctor.
fn manager<R: RoleRule>(asking: &Asking<R>, doctor_id: Uuid) -> Result<Caller<'_>, ApiError> {
    let caller = caller(asking)?;
    match caller.actor {
        Actor::Admin => Ok(caller),
        Actor::Doctor if caller.id == doctor_id => Ok(caller),
        _ => Err(doctor_not_found()),
    }
}

pub(crate) fn hh_mm(time: NaiveTime) -> String {
    time.format("%H:%M").to_string()
}

pub(crate) fn parse_hh_mm(text: &str) -> Result<NaiveTime, String> {
    let shaped = text.len() == 5 && text.as_bytes()[2] == b':';
    NaiveTime::parse_from_str(text, "%H:%M")
        .ok()
        .filter(|_| shaped)
        .ok_or_else(|| format!("`{text}` is not a time like 08:00"))
}

fn parse_weekday(iso: u8) -> Result<Weekday, String> {
    (1..=7)
        .contains(&iso)
        .then(|| Weekday::try_from(iso - 1).ok())
        .flatten()
        .ok_or_else(|| "an ISO weekday: 1 (Monday) to 7 (Sunday)".to_owned())
}

/// The hours of one weekday.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayBody {
    /// ISO weekday: 1 is Monday, 7 is Sunday.
    #[schema(minimum = 1, maximum = 7)]
    pub weekday: u8,
    /// Local time, `HH:MM`.
    #[schema(value_type = LocalTime)]
    pub starts_at: String,
    /// Local time, `HH:MM`, after `starts_at` by at least one slot.
    #[schema(value_type = LocalTime)]
    pub ends_at: String,
    /// 5 to 240.
    #[schema(minimum = 5, maximum = 240)]
    pub slot_minutes: u32,
}

/// A doctor's weekly template in the clinic's timezone.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleBody {
    pub doctor_id: Uuid,
    /// The clinic's IANA timezone, in which the hours are read.
    pub timezone: String,
    /// False while the clinic's default week applies.
    pub custom: bool,
    pub days: Vec<DayBody>,
    /// Minutes kept free before every visit (each day is cut into steps of buffer before,
    /// visit and buffer after).
    pub buffer_before_minutes: u32,
    /// Minutes kept free after every visit.
    pub buffer_after_minutes: u32,
}

fn schedule_body(
    state: &AppState,
    doctor_id: Uuid,
    template: Option<WeeklyTemplate>,
) -> ScheduleBody {
    let custom = template.is_some();
    let template = template.unwrap_or_else(WeeklyTemplate::clinic_default);
    let days = (1..=7u8)
        .filter_map(|iso| parse_weekday(iso).ok())
        .filter_map(|day| {
            template.hours(day).map(|hours| DayBody {
                weekday: u8::try_from(iso_weekday(day)).unwrap_or(1),
                starts_at: hh_mm(hours.start()),
                ends_at: hh_mm(hours.end()),
                slot_minutes: hours.slot_minutes(),
            })
        })
        .collect();
    let buffers = template.buffers();
    ScheduleBody {
        doctor_id,
        timezone: state.booking.zone().name().to_owned(),
        custom,
        days,
        buffer_before_minutes: buffers.before,
        buffer_after_minutes: buffers.after,
    }
}

/// The doctor's weekly template (admins and the doctor).
#[utoipa::path(get, path = "/api/doctors/{id}/schedule", tag = "schedules", security(("bearer" = [])),
    responses((status = 200, body = ScheduleBody), (status = 404, body = ProblemDetails)))]
async fn get_schedule(
    State(state): State<AppState>,
    asking: Asking<DoctorOrAdmin>,
    Path(doctor_id): Path<Uuid>,
) -> Result<Json<ScheduleBody>, ApiError> {
    let caller = manager(&asking, doctor_id)?;
    known_doctor(&state, doctor_id, caller.call).await?;
    let template = schedules::find_template(&state.pool, doctor_id).await?;
    Ok(Json(schedule_body(&state, doctor_id, template)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// The days worked, each weekday at most once; days left out are not worked.
    #[schema(max_items = 7)]
    pub days: Vec<DayBody>,
    /// Minutes kept free before every visit, 0 (the default) to 120.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 120)]
    pub buffer_before_minutes: u32,
    /// Minutes kept free after every visit, 0 (the default) to 120.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 120)]
    pub buffer_after_minutes: u32,
}

/// Replaces the doctor's weekly template (admins and the doctor). Booked appointments stay,
/// and keep the buffers they were booked with. Rules the schema cannot state answer 422
/// `validation_failed`: each day ends after it starts with room for one slot and its
/// buffers, and lists its weekday once.
#[utoipa::path(put, path = "/api/doctors/{id}/schedule", tag = "schedules", request_body = ScheduleRequest,
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleBody), (status = 404, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn put_schedule(
    State(state): State<AppState>,
    asking: Asking<DoctorOrAdmin>,
    Path(doctor_id): Path<Uuid>,
    JsonBytes(body): JsonBytes,
) -> Result<Json<ScheduleBody>, ApiError> {
    // Who may comes before what was sent: another doctor learns nothing from the shape.
    let caller = manager(&asking, doctor_id)?;
    let request: ScheduleRequest = json_from_bytes(&body)?;
    let mut violations = Violations::new();
    let mut days: Vec<(Weekday, DayHours)> = Vec::new();
    if request.days.len() > 7 {
        violations.add("days", "at most one entry per weekday");
    }
    for (index, day) in request.days.iter().enumerate() {
        let field = |name: &str| format!("days[{index}].{name}");
        let weekday = violations.check(&field("weekday"), parse_weekday(day.weekday));
        let start = violations.check(&field("starts_at"), parse_hh_mm(&day.starts_at));
        let end = violations.check(&field("ends_at"), parse_hh_mm(&day.ends_at));
        if let (Some(weekday), Some(start), Some(end)) = (weekday, start, end) {
            if days.iter().any(|(seen, _)| *seen == weekday) {
                violations.add(&field("weekday"), "listed twice");
            }
            if let Some(hours) = violations.check(
                &field("hours"),
                DayHours::parse(start, end, day.slot_minutes),
            ) {
                days.push((weekday, hours));
            }
        }
    }
    let buffers = violations.check(
        "buffer_before_minutes",
        Buffers::parse(request.buffer_before_minutes, request.buffer_after_minutes),
    );
    violations.finish()?;
    let template = WeeklyTemplate::from_days(days.iter().copied())
        .with_buffers(buffers.unwrap_or_default())
        .map_err(|(day, err)| {
            let index = request
                .days
                .iter()
                .position(|body| parse_weekday(body.weekday).ok() == Some(day))
                .unwrap_or(0);
            let mut violations = Violations::new();
            violations.add(&format!("days[{index}].hours"), &err);
            violations.into_error()
        })?;
    known_doctor(&state, doctor_id, caller.call).await?;
    schedules::replace_template(&state.pool, doctor_id, &days, template.buffers()).await?;
    Ok(Json(schedule_body(&state, doctor_id, Some(template))))
}

/// A local slot start, `HH:MM`.
#[derive(Debug, Clone, Copy)]
pub struct LocalTime;

impl utoipa::PartialSchema for LocalTime {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(HH_MM))
            .description(Some("A local time, `HH:MM` (00:00 to 23:59)."))
            .into()
    }
}

impl utoipa::ToSchema for LocalTime {}

/// What `parse_hh_mm` takes.
const HH_MM: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// Time off: a whole date, some slots of a date, or a weekday every week. The reason (up
/// to 500 characters) is kept; patients whose appointments it cancels are told who
/// cancelled, never the reason.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum TimeOffRequest {
    /// A whole local date.
    Day {
        date: NaiveDate,
        #[schema(value_type = Option<Reason>)]
        reason: Option<String>,
    },
    /// Some slots of a local date.
    Slots {
        date: NaiveDate,
        /// Local slot starts, 1 to 96 of them.
        #[schema(value_type = Vec<LocalTime>, min_items = 1, max_items = 96)]
        slots: Vec<String>,
        #[schema(value_type = Option<Reason>)]
        reason: Option<String>,
    },
    /// The same weekday every week.
    Weekday {
        /// ISO weekday: 1 is Monday, 7 is Sunday.
        #[schema(minimum = 1, maximum = 7)]
        weekday: u8,
        #[schema(value_type = Option<Reason>)]
        reason: Option<String>,
    },
}

impl TimeOffRequest {
    fn parse(&self) -> Result<(Unavailability, String), ApiError> {
        let mut violations = Violations::new();
        let reason = match self {
            TimeOffRequest::Day { reason, .. }
            | TimeOffRequest::Slots { reason, .. }
            | TimeOffRequest::Weekday { reason, .. } => reason,
        };
        let reason = violations.check("reason", parse_text(reason.as_deref(), 500));
        let rule = match self {
            TimeOffRequest::Day { date, .. } => Some(Unavailability::Day(*date)),
            TimeOffRequest::Slots { date, slots, .. } => {
                if slots.is_empty() || slots.len() > 96 {
                    violations.add("slots", "1 to 96 slots");
                }
                let starts: Vec<NaiveTime> = slots
                    .iter()
                    .enumerate()
                    .filter_map(|(index, slot)| {
                        violations.check(&format!("slots[{index}]"), parse_hh_mm(slot))
                    })
                    .collect();
                Some(Unavailability::Slots {
                    date: *date,
                    starts,
                })
            }
            TimeOffRequest::Weekday { weekday, .. } => violations
                .check("weekday", parse_weekday(*weekday))
                .map(Unavailability::Weekday),
        };
        violations.finish()?;
        match (rule, reason) {
            (Some(rule), Some(reason)) => Ok((rule, reason)),
            _ => Err(Violations::new().into_error()),
        }
    }
}

/// Time off that was recorded, and the appointments it cancelled.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeOffAdded {
    #[serde(flatten)]
    pub time_off: TimeOff,
    pub cancelled_appointments: Vec<Appointment>,
}

/// Records time off (admins and the doctor). Active appointments in that time are
/// cancelled; their patients are told and their payments voided or refunded.
#[utoipa::path(post, path = "/api/doctors/{id}/unavailability", tag = "schedules", request_body = TimeOffRequest,
    security(("bearer" = [])),
    responses((status = 201, body = TimeOffAdded), (status = 404, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn add_unavailability(
    State(state): State<AppState>,
    asking: Asking<DoctorOrAdmin>,
    Path(doctor_id): Path<Uuid>,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<TimeOffAdded>), ApiError> {
    // Who may comes before what was sent: another doctor learns nothing from the shape.
    let caller = manager(&asking, doctor_id)?;
    let request: TimeOffRequest = json_from_bytes(&body)?;
    let (rule, reason) = request.parse()?;
    known_doctor(&state, doctor_id, caller.call).await?;
    let (time_off, cancelled) = state
        .booking
        .add_time_off(caller, doctor_id.into(), &rule, &reason)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TimeOffAdded {
            time_off,
            cancelled_appointments: cancelled.into_iter().map(Appointment::from).collect(),
        }),
    ))
}

/// The doctor's time off (admins and the doctor).
#[utoipa::path(get, path = "/api/doctors/{id}/unavailability", tag = "schedules", security(("bearer" = [])),
    responses((status = 200, body = Vec<TimeOff>), (status = 404, body = ProblemDetails)))]
async fn list_unavailability(
    State(state): State<AppState>,
    asking: Asking<DoctorOrAdmin>,
    Path(doctor_id): Path<Uuid>,
) -> Result<Json<Vec<TimeOff>>, ApiError> {
    manager(&asking, doctor_id)?;
    let mut conn = state.pool.acquire().await.map_err(anyhow::Error::from)?;
    Ok(Json(schedules::list_time_off(&mut conn, doctor_id).await?))
}

/// Removes time off (admins and the doctor); appointments it cancelled stay cancelled.
#[utoipa::path(delete, path = "/api/doctors/{id}/unavailability/{uid}", tag = "schedules", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ProblemDetails)))]
async fn remove_unavailability(
    State(state): State<AppState>,
    asking: Asking<DoctorOrAdmin>,
    Path((doctor_id, uid)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    manager(&asking, doctor_id)?;
    if schedules::delete_time_off(&state.pool, doctor_id, uid).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "unavailability_not_found",
            "No such time off.",
        ))
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// First local date (clinic time); default today.
    pub from: Option<NaiveDate>,
    /// Last local date, on or after `from` and at most 31 days later (else 400
    /// `invalid_range`); default six days after `from`.
    pub to: Option<NaiveDate>,
}

/// One slot: when, and whether it can be booked. Never who booked it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotBody {
    pub starts_at: chrono::DateTime<Utc>,
    pub ends_at: chrono::DateTime<Utc>,
    /// The slot's local date in the clinic's timezone.
    pub local_date: NaiveDate,
    /// The slot's local start, `HH:MM`.
    pub local_time: String,
    /// `free` or `taken`.
    pub state: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityBody {
    pub doctor_id: Uuid,
    pub timezone: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub slots: Vec<SlotBody>,
}

/// The doctor's free and taken slots per local date (anyone). Past slots and those inside
/// the booking notice are left out.
#[utoipa::path(get, path = "/api/doctors/{id}/availability", tag = "schedules", params(AvailabilityQuery),
    responses((status = 200, body = AvailabilityBody), (status = 400, body = ProblemDetails), (status = 404, body = ProblemDetails)))]
async fn availability(
    State(state): State<AppState>,
    request_id: RequestId,
    Path(doctor_id): Path<Uuid>,
    Query(query): Query<AvailabilityQuery>,
) -> Result<Json<AvailabilityBody>, ApiError> {
    let zone = state.booking.zone();
    let now = Utc::now();
    let from = query
        .from
        .unwrap_or_else(|| now.with_timezone(&zone).date_naive());
    let to = match query.to {
        Some(to) => to,
        None => from
            .checked_add_days(Days::new(6))
            .ok_or_else(invalid_range)?,
    };
    if to < from || (to - from).num_days() > 31 {
        return Err(invalid_range());
    }
    let call = CallContext {
        bearer: None,
        request_id: Some(request_id.as_str()),
        trace: Default::default(),
    };
    known_doctor(&state, doctor_id, call).await?;
    let slots = state
        .booking
        .slots(doctor_id.into(), from, to)
        .await?
        .into_iter()
        .map(|(slot, slot_state)| SlotBody {
            starts_at: slot.starts_at,
            ends_at: slot.ends_at,
            local_date: slot.local_start.date(),
            local_time: hh_mm(slot.local_start.time()),
            state: match slot_state {
                SlotState::Free => "free",
                SlotState::Taken => "taken",
            }
            .to_owned(),
        })
        .collect();
    Ok(Json(AvailabilityBody {
        doctor_id,
        timezone: zone.name().to_owned(),
        from,
        to,
        slots,
    }))
}

/// An availability range this route does not list.
fn invalid_range() -> ApiError {
    ApiError::bad_request(
        "invalid_range",
        "`to` must be on or after `from`, and at most 31 days later.",
    )
}

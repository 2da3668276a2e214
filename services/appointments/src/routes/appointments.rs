//! `/api/appointments`: reserve, read, list, and every move of the lifecycle. Mutating
//! routes accept `Idempotency-Key`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use polyclinic_auth::rules::{Admin, CareOrAdmin, PatientOrAdmin, PersonOr};
use polyclinic_auth::scopes::AppointmentsRead;
use polyclinic_auth::{Asking, Require};
use polyclinic_db::idempotency::Idempotent;
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, Page, ProblemDetails, Violations, page_limit};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::body::Appointment;
use super::caller;
use crate::AppState;
use crate::booking::{Reservation, ReserveRequest, Staffing};
use crate::domain::appointment::{
    Actor, Notes, Reason, RequiredReason, Status, parse_required_text, parse_text,
};
use crate::repo::appointments::{self as repo, Filter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reserve, list_appointments))
        .routes(routes!(my_appointments))
        .routes(routes!(approval_queue))
        .routes(routes!(get_appointment))
        .routes(routes!(staffing))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(cancel))
        .routes(routes!(reschedule))
        .routes(routes!(complete))
        .routes(routes!(no_show))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveBody {
    pub doctor_id: Uuid,
    /// The slot's start, as availability lists it.
    pub starts_at: DateTime<Utc>,
    /// Why the patient comes (up to 500 characters).
    #[schema(value_type = Option<Reason>)]
    pub reason: Option<String>,
    /// Anything the doctor should know (up to 2,000 characters).
    #[schema(value_type = Option<Notes>)]
    pub notes: Option<String>,
    /// Admins booking on a patient's behalf name the patient.
    pub patient_id: Option<Uuid>,
}

/// The payment a reservation is paid with.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentHandle {
    pub id: Uuid,
    pub status: String,
    /// For the patient's client to confirm the payment with the card.
    pub client_secret: Option<String>,
}

/// A new reservation: the appointment (PENDING until `hold_expires_at`) and its payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationBody {
    #[serde(flatten)]
    pub appointment: Appointment,
    pub payment: PaymentHandle,
}

impl From<Reservation> for ReservationBody {
    fn from(reservation: Reservation) -> Self {
        Self {
            appointment: reservation.appointment.into(),
            payment: PaymentHandle {
                id: reservation.payment.id.into(),
                status: reservation.payment.status,
                client_secret: reservation.payment.client_secret,
            },
        }
    }
}

/// Reserves a slot (a patient for themself, an admin for a patient): the appointment holds
/// the slot while the card is authorised with the returned `client_secret`.
#[utoipa::path(post, path = "/api/appointments", tag = "appointments", request_body = ReserveBody,
    security(("bearer" = [])),
    responses((status = 201, body = ReservationBody), (status = 409, body = ProblemDetails),
        (status = 422, body = ProblemDetails), (status = 503, body = ProblemDetails)))]
async fn reserve(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let request: ReserveBody = request.json()?;
            let mut violations = Violations::new();
            let reason = violations.check("reason", parse_text(request.reason.as_deref(), 500));
            let notes = violations.check("notes", parse_text(request.notes.as_deref(), 2000));
            let (Some(reason), Some(notes)) = (reason, notes) else {
                return Err(violations.into_error());
            };
            let caller = caller(&asking)?;
            let reservation = state
                .booking
                .reserve(
                    caller,
                    ReserveRequest {
                        doctor_id: request.doctor_id.into(),
                        starts_at: request.starts_at,
                        reason,
                        notes,
                        patient_id: request.patient_id.map(Into::into),
                    },
                )
                .await?;
            Ok((StatusCode::CREATED, ReservationBody::from(reservation)))
        })
        .await
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppointmentQuery {
    /// `OFFERED` (a waitlist's offer), `PENDING`, `PAID`, `SCHEDULED`, `COMPLETED`, `NO_SHOW`,
    /// `EXPIRED`, `REJECTED` or `CANCELLED`.
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    pub patient_id: Option<Uuid>,
    pub doctor_id: Option<Uuid>,
    pub nurse_id: Option<Uuid>,
    pub room_id: Option<Uuid>,
    /// Starting at or after.
    pub from: Option<DateTime<Utc>>,
    /// Starting before.
    pub to: Option<DateTime<Utc>>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

impl AppointmentQuery {
    fn filter(&self) -> Result<Filter, ApiError> {
        let status = match self.status.as_deref() {
            None => None,
            Some(text) => Some(Status::parse(text).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("status: no status is called {text}"),
                )
            })?),
        };
        Ok(Filter {
            statuses: status.into_iter().collect(),
            patient_id: self.patient_id.map(Into::into),
            doctor_id: self.doctor_id.map(Into::into),
            nurse_id: self.nurse_id.map(Into::into),
            room_id: self.room_id.map(Into::into),
            staff_id: None,
            from: self.from,
            to: self.to,
            after: self.cursor.map(Into::into),
        })
    }

    fn limit(&self) -> Result<usize, ApiError> {
        page_limit(self.limit, 50, 100)
    }
}

async fn page(
    state: &AppState,
    filter: &Filter,
    limit: usize,
) -> Result<Page<Appointment>, ApiError> {
    let items = repo::list(&state.pool, filter, limit + 1)
        .await?
        .into_iter()
        .map(Appointment::from)
        .collect();
    Ok(Page::from_overfetch(items, limit, |item: &Appointment| {
        item.id.to_string()
    }))
}

/// All appointments with filters, in booking order; narrowed to dates (`from`, `to`), in
/// the order they start (admin).
#[utoipa::path(get, path = "/api/appointments", tag = "appointments", params(AppointmentQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Appointment>)))]
async fn list_appointments(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Query(query): Query<AppointmentQuery>,
) -> Result<Json<Page<Appointment>>, ApiError> {
    Ok(Json(page(&state, &query.filter()?, query.limit()?).await?))
}

/// The caller's appointments: a patient's bookings, a doctor's or a nurse's visits (which
/// `patient_id` narrows to one patient), in booking order; narrowed to dates, in the order
/// they start.
#[utoipa::path(get, path = "/api/appointments/mine", tag = "appointments", params(AppointmentQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Appointment>)))]
async fn my_appointments(
    State(state): State<AppState>,
    asking: Asking<PersonOr<AppointmentsRead>>,
    Query(query): Query<AppointmentQuery>,
) -> Result<Json<Page<Appointment>>, ApiError> {
    let caller = caller(&asking)?;
    let mut filter = query.filter()?;
    // Checked for every caller, even one who has no appointments of their own.
    let limit = query.limit()?;
    // Whatever the query says, only the caller's own; a doctor or nurse may narrow theirs to
    // one patient (the prescriptions service asks so whether they care for that patient).
    filter.doctor_id = None;
    filter.nurse_id = None;
    match caller.actor {
        Actor::Patient => filter.patient_id = Some(caller.id.into()),
        Actor::Doctor => filter.doctor_id = Some(caller.id.into()),
        Actor::Nurse => filter.nurse_id = Some(caller.id.into()),
        Actor::Admin | Actor::System => {
            return Ok(Json(Page {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
    }
    Ok(Json(page(&state, &filter, limit).await?))
}

/// Paid appointments waiting for approval, first come first served (admin).
#[utoipa::path(get, path = "/api/appointments/queue", tag = "appointments", params(AppointmentQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Appointment>)))]
async fn approval_queue(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Query(query): Query<AppointmentQuery>,
) -> Result<Json<Page<Appointment>>, ApiError> {
    let mut filter = query.filter()?;
    filter.statuses = vec![Status::Paid];
    Ok(Json(page(&state, &filter, query.limit()?).await?))
}

/// One appointment: its patient, doctor and nurse, admins and platform services; anyone
/// else gets 404.
#[utoipa::path(get, path = "/api/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    responses((status = 200, body = Appointment), (status = 404, body = ProblemDetails)))]
async fn get_appointment(
    State(state): State<AppState>,
    asking: Asking<PersonOr<AppointmentsRead>>,
    Path(id): Path<Uuid>,
) -> Result<Json<Appointment>, ApiError> {
    let caller = caller(&asking)?;
    Ok(Json(state.booking.find(caller, id.into()).await?.into()))
}

/// A room an approval may assign.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomChoice {
    pub id: Uuid,
    pub name: String,
}

/// A nurse an approval may assign.
#[derive(Debug, Serialize, ToSchema)]
pub struct NurseChoice {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
}

/// The rooms and nurses of the doctor's department that are free for the whole visit.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffingBody {
    pub rooms: Vec<RoomChoice>,
    pub nurses: Vec<NurseChoice>,
}

impl From<Staffing> for StaffingBody {
    fn from(staffing: Staffing) -> Self {
        Self {
            rooms: staffing
                .rooms
                .into_iter()
                .map(|room| RoomChoice {
                    id: room.id.into(),
                    name: room.name,
                })
                .collect(),
            nurses: staffing
                .nurses
                .into_iter()
                .map(|nurse| NurseChoice {
                    id: nurse.id.into(),
                    first_name: nurse.first_name,
                    last_name: nurse.last_name,
                })
                .collect(),
        }
    }
}

/// The rooms and nurses an approval of this appointment may choose: those of the doctor's
/// department that no scheduled visit overlapping it holds (admin).
#[utoipa::path(get, path = "/api/appointments/{id}/staffing", tag = "appointments",
    security(("bearer" = [])),
    responses((status = 200, body = StaffingBody), (status = 404, body = ProblemDetails),
        (status = 503, body = ProblemDetails)))]
async fn staffing(
    State(state): State<AppState>,
    asking: Asking<Admin>,
    Path(id): Path<Uuid>,
) -> Result<Json<StaffingBody>, ApiError> {
    let staffing = state.booking.staffing(caller(&asking)?, id.into()).await?;
    Ok(Json(staffing.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// A room of the doctor's department, free at that time.
    pub room_id: Uuid,
    /// A nurse of the doctor's department, free at that time.
    pub nurse_id: Uuid,
}

/// Approves a paid appointment: room and nurse assigned, payment captured (admin).
#[utoipa::path(post, path = "/api/appointments/{id}/approve", tag = "appointments", request_body = ApproveBody,
    security(("bearer" = [])),
    responses((status = 200, body = Appointment), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn approve(
    State(state): State<AppState>,
    asking: Asking<Admin>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let request: ApproveBody = request.json()?;
            let caller = caller(&asking)?;
            let approved = state
                .booking
                .approve(
                    caller,
                    id.into(),
                    request.room_id.into(),
                    request.nurse_id.into(),
                )
                .await?;
            Ok((StatusCode::OK, Appointment::from(approved)))
        })
        .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    /// Why, if the canceller says (up to 500 characters).
    #[schema(value_type = Option<Reason>)]
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why the clinic cannot take the appointment (1 to 500 characters).
    #[schema(value_type = RequiredReason)]
    pub reason: Option<String>,
}

/// Rejects a paid appointment with a reason; the authorisation is voided (admin).
#[utoipa::path(post, path = "/api/appointments/{id}/reject", tag = "appointments", request_body = RejectBody,
    security(("bearer" = [])),
    responses((status = 200, body = Appointment), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn reject(
    State(state): State<AppState>,
    asking: Asking<Admin>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let request: RejectBody = request.json_or_default()?;
            let mut violations = Violations::new();
            let Some(reason) = violations.check(
                "reason",
                parse_required_text(request.reason.as_deref(), 500),
            ) else {
                return Err(violations.into_error());
            };
            let caller = caller(&asking)?;
            let rejected = state.booking.reject(caller, id.into(), &reason).await?;
            Ok((StatusCode::OK, Appointment::from(rejected)))
        })
        .await
}

/// Cancels an appointment: its patient until the cutoff before the start, an admin any
/// time. The payment is voided, or refunded once captured.
#[utoipa::path(post, path = "/api/appointments/{id}/cancel", tag = "appointments", request_body = CancelBody,
    security(("bearer" = [])),
    responses((status = 200, body = Appointment), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails)))]
async fn cancel(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let request: CancelBody = request.json_or_default()?;
            let mut violations = Violations::new();
            let Some(reason) =
                violations.check("reason", parse_text(request.reason.as_deref(), 500))
            else {
                return Err(violations.into_error());
            };
            let caller = caller(&asking)?;
            let cancelled = state.booking.cancel(caller, id.into(), &reason).await?;
            Ok((StatusCode::OK, Appointment::from(cancelled)))
        })
        .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    /// The new slot's start, a free slot of the same doctor.
    pub starts_at: DateTime<Utc>,
}

/// Moves a paid or scheduled appointment to another free slot of its doctor, keeping its
/// payment (its patient until the cutoff, an admin any time).
#[utoipa::path(post, path = "/api/appointments/{id}/reschedule", tag = "appointments", request_body = RescheduleBody,
    security(("bearer" = [])),
    responses((status = 200, body = Appointment), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn reschedule(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let request: RescheduleBody = request.json()?;
            let caller = caller(&asking)?;
            let moved = state
                .booking
                .reschedule(caller, id.into(), request.starts_at)
                .await?;
            Ok((StatusCode::OK, Appointment::from(moved)))
        })
        .await
}

async fn close_visit(
    state: AppState,
    asking: Asking<CareOrAdmin>,
    id: Uuid,
    request: Idempotent,
    attended: bool,
) -> Response {
    request
        .run(&asking.subject, || async {
            let caller = caller(&asking)?;
            let closed = state
                .booking
                .close_visit(caller, id.into(), attended)
                .await?;
            Ok((StatusCode::OK, Appointment::from(closed)))
        })
        .await
}

/// Marks a started visit COMPLETED (its doctor or nurse, or an admin).
#[utoipa::path(post, path = "/api/appointments/{id}/complete", tag = "appointments", security(("bearer" = [])),
    responses((status = 200, body = Appointment), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails)))]
async fn complete(
    State(state): State<AppState>,
    asking: Asking<CareOrAdmin>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    close_visit(state, asking, id, request, true).await
}

/// Marks a started visit NO_SHOW: the patient did not come (its doctor or nurse, or an admin).
#[utoipa::path(post, path = "/api/appointments/{id}/no-show", tag = "appointments", security(("bearer" = [])),
    responses((status = 200, body = Appointment), (status = 404, body = ProblemDetails),
        (status = 409, body = ProblemDetails)))]
async fn no_show(
    State(state): State<AppState>,
    asking: Asking<CareOrAdmin>,
    Path(id): Path<Uuid>,
    request: Idempotent,
) -> Response {
    close_visit(state, asking, id, request, false).await
}

//! `/api/prescriptions` and `/api/refills`: doctors prescribe for their patients (with the
//! allergy check), patients ask for refills, the prescribing doctor decides.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::NaiveDate;
use polyclinic_auth::rules::{Doctor, Patient, Person};
use polyclinic_http::extract::{Json, Path};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::{Prescription, Refill};
use super::{Asking, invalid};
use crate::AppState;
use crate::domain::prescription::{Item, OverrideReason, RequiredReason, Status};
use crate::prescribing::{self, Prescribe, PrescribingError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(prescribe))
        .routes(routes!(my_prescriptions))
        .routes(routes!(get_prescription))
        .routes(routes!(cancel_prescription))
        .routes(routes!(stop_prescription))
        .routes(routes!(request_refill))
        .routes(routes!(refill_queue))
        .routes(routes!(approve_refill))
        .routes(routes!(decline_refill))
}

impl From<PrescribingError> for ApiError {
    fn from(err: PrescribingError) -> Self {
        match err {
            PrescribingError::Invalid(errors) => invalid(errors),
            PrescribingError::UnknownAppointment => ApiError::not_found(
                "unknown_appointment",
                "appointment_id: not a scheduled or completed appointment of yours",
            ),
            PrescribingError::PrescriptionNotFound => {
                ApiError::not_found("prescription_not_found", "No such prescription of yours.")
            }
            PrescribingError::RefillNotFound => {
                ApiError::not_found("refill_not_found", "No such refill request for you.")
            }
            PrescribingError::AllergyConflict(conflicts) => ApiError::conflict(
                "allergy_conflict",
                format!(
                    "the patient is allergic to {}; confirm with allergy_override_reason",
                    conflicts.join(", ")
                ),
            )
            .with_extension("conflicts", serde_json::json!(conflicts)),
            PrescribingError::PrescriptionState(status) => ApiError::conflict(
                "prescription_state",
                format!("the prescription is {status}"),
            ),
            PrescribingError::NoRefillPossible => ApiError::conflict(
                "no_refill_possible",
                "Only an active, valid prescription with refills left can be refilled.",
            ),
            PrescribingError::RefillPending => ApiError::conflict(
                "refill_pending",
                "A refill of this prescription is already waiting.",
            ),
            PrescribingError::RefillState(state) => {
                ApiError::conflict("refill_state", format!("the refill is {state}"))
            }
            PrescribingError::CareTeam(unavailable) => unavailable.into(),
            PrescribingError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrescribeBody {
    /// The doctor's SCHEDULED or COMPLETED appointment with the patient.
    pub appointment_id: Uuid,
    /// 1 to 20 medications.
    #[schema(min_items = 1, max_items = 20)]
    pub items: Vec<Item>,
    /// From today to a year from now; default: 30 days from today.
    pub valid_until: Option<NaiveDate>,
    /// 0 to 12, default 0.
    #[schema(minimum = 0, maximum = 12)]
    pub refills_allowed: Option<i16>,
    /// Prescribe despite an allergy on the record, and why (at most 1000 characters).
    #[schema(value_type = Option<OverrideReason>)]
    pub allergy_override_reason: Option<String>,
}

/// Writes a prescription for the patient of one of the doctor's appointments; `valid_until`
/// lies between today and a year from now (else 422 `validation_failed`). One that names
/// a substance on the patient's allergy list is refused (409 `allergy_conflict`, listing
/// them) unless `allergy_override_reason` says why, which is kept.
#[utoipa::path(post, path = "/api/prescriptions", tag = "prescriptions", request_body = PrescribeBody,
    security(("bearer" = [])),
    responses((status = 201, body = Prescription), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn prescribe(
    State(state): State<AppState>,
    asking: Asking<Doctor>,
    Json(body): Json<PrescribeBody>,
) -> Result<(StatusCode, Json<Prescription>), ApiError> {
    let viewer = asking.viewer();
    let request = Prescribe {
        appointment_id: body.appointment_id,
        items: &body.items,
        valid_until: body.valid_until,
        refills_allowed: body.refills_allowed,
        allergy_override_reason: body.allergy_override_reason.as_deref(),
    };
    let prescription = prescribing::prescribe(&state, &viewer, request).await?;
    Ok((StatusCode::CREATED, Json(prescription.into())))
}

/// The caller's prescriptions: a patient's, or those a doctor wrote. Newest first.
#[utoipa::path(get, path = "/api/prescriptions/mine", tag = "prescriptions", security(("bearer" = [])),
    responses((status = 200, body = Vec<Prescription>)))]
async fn my_prescriptions(
    State(state): State<AppState>,
    asking: Asking<Person>,
) -> Result<Json<Vec<Prescription>>, ApiError> {
    let viewer = asking.viewer();
    let mine = prescribing::mine(&state, &viewer).await?;
    Ok(Json(mine.into_iter().map(Prescription::from).collect()))
}

/// One prescription (its patient, its doctor, the patient's care team).
#[utoipa::path(get, path = "/api/prescriptions/{id}", tag = "prescriptions", security(("bearer" = [])),
    responses((status = 200, body = Prescription), (status = 404, body = ProblemDetails)))]
async fn get_prescription(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<Uuid>,
) -> Result<Json<Prescription>, ApiError> {
    let viewer = asking.viewer();
    Ok(Json(prescribing::read(&state, &viewer, id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndReason {
    /// 1 to 500 characters.
    #[schema(value_type = RequiredReason)]
    pub reason: String,
}

/// Cancels an active prescription (its doctor), with a reason.
#[utoipa::path(post, path = "/api/prescriptions/{id}/cancel", tag = "prescriptions", request_body = EndReason,
    security(("bearer" = [])),
    responses((status = 200, body = Prescription), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn cancel_prescription(
    State(state): State<AppState>,
    asking: Asking<Doctor>,
    Path(id): Path<Uuid>,
    Json(body): Json<EndReason>,
) -> Result<Json<Prescription>, ApiError> {
    let viewer = asking.viewer();
    let ended = prescribing::end(&state, &viewer, id, &body.reason, Status::Cancelled).await?;
    Ok(Json(ended.into()))
}

/// Stops an active prescription early (its doctor), with a reason.
#[utoipa::path(post, path = "/api/prescriptions/{id}/stop", tag = "prescriptions", request_body = EndReason,
    security(("bearer" = [])),
    responses((status = 200, body = Prescription), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn stop_prescription(
    State(state): State<AppState>,
    asking: Asking<Doctor>,
    Path(id): Path<Uuid>,
    Json(body): Json<EndReason>,
) -> Result<Json<Prescription>, ApiError> {
    let viewer = asking.viewer();
    let ended = prescribing::end(&state, &viewer, id, &body.reason, Status::Stopped).await?;
    Ok(Json(ended.into()))
}

/// Asks the prescribing doctor for a refill of an active prescription with refills left
/// (its patient; one waiting request at a time).
#[utoipa::path(post, path = "/api/prescriptions/{id}/refills", tag = "refills", security(("bearer" = [])),
    responses((status = 201, body = Refill), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn request_refill(
    State(state): State<AppState>,
    asking: Asking<Patient>,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Refill>), ApiError> {
    let viewer = asking.viewer();
    let refill = prescribing::request_refill(&state, &viewer, id).await?;
    Ok((StatusCode::CREATED, Json(refill.into())))
}

/// The doctor's waiting refill requests, oldest first.
#[utoipa::path(get, path = "/api/refills/queue", tag = "refills", security(("bearer" = [])),
    responses((status = 200, body = Vec<Refill>)))]
async fn refill_queue(
    State(state): State<AppState>,
    asking: Asking<Doctor>,
) -> Result<Json<Vec<Refill>>, ApiError> {
    let viewer = asking.viewer();
    let queue = prescribing::refill_queue(&state, &viewer).await?;
    Ok(Json(queue.into_iter().map(Refill::from).collect()))
}

/// Approves a waiting refill (the prescribing doctor): one refill fewer left.
#[utoipa::path(post, path = "/api/refills/{id}/approve", tag = "refills", security(("bearer" = [])),
    responses((status = 200, body = Refill), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn approve_refill(
    State(state): State<AppState>,
    asking: Asking<Doctor>,
    Path(id): Path<Uuid>,
) -> Result<Json<Refill>, ApiError> {
    let viewer = asking.viewer();
    Ok(Json(
        prescribing::approve_refill(&state, &viewer, id)
            .await?
            .into(),
    ))
}

/// Declines a waiting refill (the prescribing doctor), with a reason.
#[utoipa::path(post, path = "/api/refills/{id}/decline", tag = "refills", request_body = EndReason,
    security(("bearer" = [])),
    responses((status = 200, body = Refill), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn decline_refill(
    State(state): State<AppState>,
    asking: Asking<Doctor>,
    Path(id): Path<Uuid>,
    Json(body): Json<EndReason>,
) -> Result<Json<Refill>, ApiError> {
    let viewer = asking.viewer();
    let refill = prescribing::decline_refill(&state, &viewer, id, &body.reason).await?;
    Ok(Json(refill.into()))
}

//! `/api/prescriptions` and `/api/refills`: doctors prescribe for their patients (with the
//! allergy check), patients ask for refills, the prescribing doctor decides.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{Duration, NaiveDate, Utc};
use polyclinic_auth::Require;
use polyclinic_auth::rules::{Doctor, Patient, Person};
use polyclinic_contracts::prescriptions::{
    PrescriptionCancelledV1, PrescriptionIssuedV1, RefillApprovedV1, RefillDeclinedV1, RefillRef,
    RefillRequestedV1,
};
use polyclinic_events::{EventContext, outbox};
use polyclinic_http::extract::{Json, Path};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails, RequestId};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Acting, Level, Viewer, allowed, invalid, viewer};
use crate::AppState;
use crate::domain::prescription::{
    Item, OverrideReason, RequiredReason, Status, allergy_conflicts, validate_items,
};
use crate::repo::audit::{self, Outcome};
use crate::repo::prescriptions::{self, NewPrescription, Prescription, Refill};
use crate::repo::records;

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

fn not_found() -> ApiError {
    ApiError::not_found("prescription_not_found", "No such prescription of yours.")
}

fn refill_not_found() -> ApiError {
    ApiError::not_found("refill_not_found", "No such refill request for you.")
}

fn context(viewer: &Viewer<'_>) -> EventContext {
    EventContext {
        correlation_id: Some(viewer.request_id.to_owned()),
        trace: viewer.call.trace.to_owned(),
    }
}

fn database(err: sqlx::Error) -> ApiError {
    ApiError::internal(err.into())
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
    principal: Require<Doctor>,
    request_id: RequestId,
    headers: HeaderMap,
    Json(body): Json<PrescribeBody>,
) -> Result<(StatusCode, Json<Prescription>), ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    let mut errors = validate_items(&body.items).err().unwrap_or_default();
    let today = Utc::now().date_naive();
    let valid_until = body.valid_until.unwrap_or(today + Duration::days(30));
    if valid_until < today || valid_until > today + Duration::days(366) {
        errors.push(("valid_until".into(), "today to a year from now".into()));
    }
    let refills = body.refills_allowed.unwrap_or(0);
    if !(0..=12).contains(&refills) {
        errors.push(("refills_allowed".into(), "0 to 12".into()));
    }
    let override_reason = body
        .allergy_override_reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if let Some(Err(message)) = body
        .allergy_override_reason
        .as_deref()
        .map(OverrideReason::check)
    {
        errors.push(("allergy_override_reason".into(), message));
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let appointment = state
        .care
        .appointment(body.appointment_id, viewer.call)
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "the appointments service could not be asked");
            ApiError::dependency_unavailable("The appointments service is unavailable.")
        })?
        .filter(|a| viewer.is_doctor(a.doctor_id) && a.makes_carers());
    let Some(appointment) = appointment else {
        state
            .audit(&viewer, "prescription.write", None, None, Outcome::Denied)
            .await?;
        return Err(ApiError::not_found(
            "unknown_appointment",
            "appointment_id: not a scheduled or completed appointment of yours",
        ));
    };
    let patient_id = appointment.patient_id;
    let mut tx = state.pool.begin().await.map_err(database)?;
    let record_id = records::ensure_record(&mut tx, patient_id)
        .await
        .map_err(database)?;
    let conflicts = allergy_conflicts(
        &body.items,
        &records::allergies(&mut tx, record_id)
            .await
            .map_err(database)?,
    );
    if !conflicts.is_empty() && override_reason.is_none() {
        return Err(ApiError::conflict(
            "allergy_conflict",
            format!(
                "the patient is allergic to {}; confirm with allergy_override_reason",
                conflicts.join(", ")
            ),
        )
        .with_extension("conflicts", serde_json::json!(conflicts)));
    }
    let prescription = prescriptions::insert(
        &mut tx,
        &NewPrescription {
            record_id,
            patient_id,
            doctor_id: viewer.id,
            appointment_id: appointment.id,
            issued_on: today,
            valid_until,
            refills_allowed: refills,
            allergy_override_reason: if conflicts.is_empty() {
                None
            } else {
                override_reason
            },
            items: &body.items,
        },
    )
    .await
    .map_err(database)?;
    audit::append(
        &mut tx,
        &allowed(
            &viewer,
            "prescription.write",
            patient_id,
            Some(record_id),
            Some(prescription.id),
        ),
    )
    .await?;
    let issued = PrescriptionIssuedV1 {
        prescription_id: prescription.id,
        patient_id,
        doctor_id: viewer.id,
        issued_at: prescription.created_at,
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &issued, &context(&viewer)).await?;
    tx.commit().await.map_err(database)?;
    Ok((StatusCode::CREATED, Json(prescription)))
}

/// The caller's prescriptions: a patient's, or those a doctor wrote. Newest first.
#[utoipa::path(get, path = "/api/prescriptions/mine", tag = "prescriptions", security(("bearer" = [])),
    responses((status = 200, body = Vec<Prescription>)))]
async fn my_prescriptions(
    State(state): State<AppState>,
    principal: Require<Person>,
    request_id: RequestId,
    headers: HeaderMap,
) -> Result<Json<Vec<Prescription>>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    let (patient, doctor) = match viewer.acting {
        Acting::Patient => (Some(viewer.id), None),
        Acting::Doctor => (None, Some(viewer.id)),
        Acting::Nurse | Acting::Admin => return Ok(Json(Vec::new())),
    };
    state
        .audit(
            &viewer,
            "prescription.list",
            patient,
            None,
            Outcome::Allowed,
        )
        .await?;
    Ok(Json(
        prescriptions::list(&state.pool, patient, doctor, 200)
            .await
            .map_err(database)?,
    ))
}

/// Loads a prescription for `viewer`: its patient, its doctor, or the patient's care team
/// may read it; anyone else gets 404 and a denied row in the trail.
async fn visible(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: Uuid,
    action: &str,
) -> Result<Prescription, ApiError> {
    let found = prescriptions::find(&state.pool, id)
        .await
        .map_err(database)?;
    let may = match &found {
        None => false,
        Some(p) if viewer.is_patient(p.patient_id) || viewer.is_doctor(p.doctor_id) => true,
        Some(p) => state.level(viewer, p.patient_id).await? != Level::None,
    };
    match found {
        Some(prescription) if may => Ok(prescription),
        found => {
            state
                .audit(
                    viewer,
                    action,
                    found.map(|p| p.patient_id),
                    Some(id),
                    Outcome::Denied,
                )
                .await?;
            Err(not_found())
        }
    }
}

/// One prescription (its patient, its doctor, the patient's care team).
#[utoipa::path(get, path = "/api/prescriptions/{id}", tag = "prescriptions", security(("bearer" = [])),
    responses((status = 200, body = Prescription), (status = 404, body = ProblemDetails)))]
async fn get_prescription(
    State(state): State<AppState>,
    principal: Require<Person>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<Prescription>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    let prescription = visible(&state, &viewer, id, "prescription.read").await?;
    state
        .audit(
            &viewer,
            "prescription.read",
            Some(prescription.patient_id),
            Some(id),
            Outcome::Allowed,
        )
        .await?;
    Ok(Json(prescription))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndReason {
    /// 1 to 500 characters.
    #[schema(value_type = RequiredReason)]
    pub reason: String,
}

async fn end(
    state: AppState,
    viewer: Viewer<'_>,
    id: Uuid,
    reason: &str,
    status: Status,
) -> Result<Json<Prescription>, ApiError> {
    let found = prescriptions::find(&state.pool, id)
        .await
        .map_err(database)?;
    let Some(current) = found.filter(|p| viewer.is_doctor(p.doctor_id)) else {
        state
            .audit(
                &viewer,
                "prescription.write",
                None,
                Some(id),
                Outcome::Denied,
            )
            .await?;
        return Err(not_found());
    };
    if let Err(message) = RequiredReason::check(reason) {
        return Err(invalid(vec![("reason".into(), message)]));
    }
    let reason = reason.trim();
    let mut tx = state.pool.begin().await.map_err(database)?;
    let Some(mut ended) = prescriptions::end(&mut tx, id, status, reason)
        .await
        .map_err(database)?
    else {
        return Err(ApiError::conflict(
            "prescription_state",
            format!("the prescription is {}", current.status),
        ));
    };
    audit::append(
        &mut tx,
        &allowed(
            &viewer,
            "prescription.write",
            current.patient_id,
            Some(current.record_id),
            Some(id),
        ),
    )
    .await?;
    let event = PrescriptionCancelledV1 {
        prescription_id: id,
        patient_id: current.patient_id,
        doctor_id: viewer.id,
        status: status.as_str().to_owned(),
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &event, &context(&viewer)).await?;
    tx.commit().await.map_err(database)?;
    ended.items = current.items;
    Ok(Json(ended))
}

/// Cancels an active prescription (its doctor), with a reason.
#[utoipa::path(post, path = "/api/prescriptions/{id}/cancel", tag = "prescriptions", request_body = EndReason,
    security(("bearer" = [])),
    responses((status = 200, body = Prescription), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn cancel_prescription(
    State(state): State<AppState>,
    principal: Require<Doctor>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(body): Json<EndReason>,
) -> Result<Json<Prescription>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    end(state, viewer, id, &body.reason, Status::Cancelled).await
}

/// Stops an active prescription early (its doctor), with a reason.
#[utoipa::path(post, path = "/api/prescriptions/{id}/stop", tag = "prescriptions", request_body = EndReason,
    security(("bearer" = [])),
    responses((status = 200, body = Prescription), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn stop_prescription(
    State(state): State<AppState>,
    principal: Require<Doctor>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(body): Json<EndReason>,
) -> Result<Json<Prescription>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    end(state, viewer, id, &body.reason, Status::Stopped).await
}

fn refill_ref(refill: &Refill) -> RefillRef {
    RefillRef {
        refill_id: refill.id,
        prescription_id: refill.prescription_id,
        patient_id: refill.patient_id,
        doctor_id: refill.doctor_id,
    }
}

/// Asks the prescribing doctor for a refill of an active prescription with refills left
/// (its patient; one waiting request at a time).
#[utoipa::path(post, path = "/api/prescriptions/{id}/refills", tag = "refills", security(("bearer" = [])),
    responses((status = 201, body = Refill), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn request_refill(
    State(state): State<AppState>,
    principal: Require<Patient>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<Refill>), ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    let found = prescriptions::find(&state.pool, id)
        .await
        .map_err(database)?;
    let Some(prescription) = found.filter(|p| viewer.is_patient(p.patient_id)) else {
        state
            .audit(&viewer, "refill.request", None, Some(id), Outcome::Denied)
            .await?;
        return Err(not_found());
    };
    if prescription.status != Status::Active
        || prescription.refills_left == 0
        || prescription.valid_until < Utc::now().date_naive()
    {
        return Err(ApiError::conflict(
            "no_refill_possible",
            "Only an active, valid prescription with refills left can be refilled.",
        ));
    }
    let mut tx = state.pool.begin().await.map_err(database)?;
    let Some(refill) = prescriptions::request_refill(&mut tx, id)
        .await
        .map_err(database)?
    else {
        return Err(ApiError::conflict(
            "refill_pending",
            "A refill of this prescription is already waiting.",
        ));
    };
    audit::append(
        &mut tx,
        &allowed(
            &viewer,
            "refill.request",
            prescription.patient_id,
            Some(prescription.record_id),
            Some(refill.id),
        ),
    )
    .await?;
    outbox::enqueue(
        &mut tx,
        crate::SERVICE,
        &RefillRequestedV1 {
            refill: refill_ref(&refill),
        },
        &context(&viewer),
    )
    .await?;
    tx.commit().await.map_err(database)?;
    Ok((StatusCode::CREATED, Json(refill)))
}

/// The doctor's waiting refill requests, oldest first.
#[utoipa::path(get, path = "/api/refills/queue", tag = "refills", security(("bearer" = [])),
    responses((status = 200, body = Vec<Refill>)))]
async fn refill_queue(
    State(state): State<AppState>,
    principal: Require<Doctor>,
    request_id: RequestId,
    headers: HeaderMap,
) -> Result<Json<Vec<Refill>>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    state
        .audit(&viewer, "refill.list", None, None, Outcome::Allowed)
        .await?;
    Ok(Json(
        prescriptions::queue(&state.pool, viewer.id)
            .await
            .map_err(database)?,
    ))
}

/// The refill, if `viewer` prescribed it.
async fn own_refill(state: &AppState, viewer: &Viewer<'_>, id: Uuid) -> Result<Refill, ApiError> {
    let mut conn = state.pool.acquire().await.map_err(database)?;
    match prescriptions::find_refill(&mut conn, id)
        .await
        .map_err(database)?
    {
        Some(refill) if viewer.is_doctor(refill.doctor_id) => Ok(refill),
        _ => {
            drop(conn);
            state
                .audit(viewer, "refill.decide", None, Some(id), Outcome::Denied)
                .await?;
            Err(refill_not_found())
        }
    }
}

/// Approves a waiting refill (the prescribing doctor): one refill fewer left.
#[utoipa::path(post, path = "/api/refills/{id}/approve", tag = "refills", security(("bearer" = [])),
    responses((status = 200, body = Refill), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn approve_refill(
    State(state): State<AppState>,
    principal: Require<Doctor>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<Refill>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    let waiting = own_refill(&state, &viewer, id).await?;
    let mut tx = state.pool.begin().await.map_err(database)?;
    let Some((refill, left)) = prescriptions::approve_refill(&mut tx, id)
        .await
        .map_err(database)?
    else {
        return Err(ApiError::conflict(
            "refill_state",
            format!("the refill is {}, or none is left", waiting.status),
        ));
    };
    audit::append(
        &mut tx,
        &allowed(&viewer, "refill.decide", refill.patient_id, None, Some(id)),
    )
    .await?;
    let event = RefillApprovedV1 {
        refill: refill_ref(&refill),
        refills_left: left,
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &event, &context(&viewer)).await?;
    tx.commit().await.map_err(database)?;
    Ok(Json(refill))
}

/// Declines a waiting refill (the prescribing doctor), with a reason.
#[utoipa::path(post, path = "/api/refills/{id}/decline", tag = "refills", request_body = EndReason,
    security(("bearer" = [])),
    responses((status = 200, body = Refill), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn decline_refill(
    State(state): State<AppState>,
    principal: Require<Doctor>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(body): Json<EndReason>,
) -> Result<Json<Refill>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    if let Err(message) = RequiredReason::check(&body.reason) {
        return Err(invalid(vec![("reason".into(), message)]));
    }
    let reason = body.reason.trim();
    let waiting = own_refill(&state, &viewer, id).await?;
    let mut tx = state.pool.begin().await.map_err(database)?;
    let Some(refill) = prescriptions::decline_refill(&mut tx, id, reason)
        .await
        .map_err(database)?
    else {
        return Err(ApiError::conflict(
            "refill_state",
            format!("the refill is {}", waiting.status),
        ));
    };
    audit::append(
        &mut tx,
        &allowed(&viewer, "refill.decide", refill.patient_id, None, Some(id)),
    )
    .await?;
    let event = RefillDeclinedV1 {
        refill: refill_ref(&refill),
    };
    outbox::enqueue(&mut tx, crate::SERVICE, &event, &context(&viewer)).await?;
    tx.commit().await.map_err(database)?;
    Ok(Json(refill))
}

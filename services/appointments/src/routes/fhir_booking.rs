//! Booking through FHIR, in the style of IHE ITI Scheduling (as Medplum offers it):
//!
//! - `POST /fhir/Appointment/$find`: free slots as `proposed` Appointments, for a
//!   practitioner or a specialty over a period (anyone, like the availability);
//! - `POST /fhir/Appointment/$hold`: the reservation hold: a `pending` Appointment holding
//!   the slot, with when the hold expires (extension `hold-expires`);
//! - `POST /fhir/Appointment/$book`: books a free slot, or returns the held Appointment
//!   named, with the payment to authorise (extensions `payment` and
//!   `payment-client-secret`): paying it and the clinic's approval make it `booked`;
//! - `POST /fhir/Appointment/{id}/$cancel`, or `PATCH /fhir/Appointment/{id}` with a JSON
//!   Patch replacing `/status` with `cancelled`.
//!
//! Each is the REST route's flow (`Booking::reserve`, `Booking::find`, `Booking::cancel`),
//! with its rules, its `Idempotency-Key` handling and its events.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{patch, post};
use chrono::{Days, Utc};
use polyclinic_auth::Asking;
use polyclinic_auth::rules::PatientOrAdmin;
use polyclinic_contracts::DoctorId;
use polyclinic_db::idempotency::Idempotent;
use polyclinic_fhir::parameters::Input;
use polyclinic_fhir::resources::{Appointment, Participant};
use polyclinic_fhir::systems::EXTENSION_BASE;
use polyclinic_fhir::types::{CodeableConcept, Extension, Reference};
use polyclinic_fhir::{Base, Bundle, Fhir, Resource, not_found};
use polyclinic_http::extract::{JsonBytes, Path};
use polyclinic_http::{ApiError, RequestId};
use serde_json::Value;
use uuid::Uuid;

use super::caller;
use super::fhir::{appointment, parse_slot_id, slot_id};
use super::schedules::known_doctor;
use crate::AppState;
use crate::booking::ReserveRequest;
use crate::domain::appointment::{Status, parse_text};
use crate::domain::schedule::SlotState;

/// The longest period one `$find` covers.
const MAX_FIND_DAYS: i64 = 31;
/// Proposals per `$find`, unless `_count` asks for fewer (or up to [`MAX_PROPOSALS`]).
const PROPOSALS: i64 = 100;
const MAX_PROPOSALS: i64 = 500;

/// The extension naming the payment of a booking.
pub fn payment_extension() -> String {
    format!("{EXTENSION_BASE}/payment")
}

/// The extension carrying the client secret the patient's card confirms the payment with.
pub fn client_secret_extension() -> String {
    format!("{EXTENSION_BASE}/payment-client-secret")
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/Appointment/$find", post(find))
        .route("/Appointment/$hold", post(hold))
        .route("/Appointment/$book", post(book))
        .route("/Appointment/{id}/$cancel", post(cancel))
        .route("/Appointment/{id}", patch(patch_status))
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameters", detail.into())
}

fn proposal(
    doctor_id: Uuid,
    specialization: &str,
    slot: &crate::domain::schedule::Slot,
) -> Appointment {
    Appointment {
        id: String::new(),
        extension: Vec::new(),
        status: "proposed",
        cancelation_reason: None,
        specialty: if specialization.is_empty() {
            Vec::new()
        } else {
            vec![CodeableConcept::text(specialization)]
        },
        start: slot.starts_at,
        end: slot.ends_at,
        minutes_duration: (slot.ends_at - slot.starts_at).num_minutes(),
        slot: vec![Reference::to("Slot", slot_id(doctor_id, slot.starts_at))],
        created: None,
        participant: vec![Participant {
            kind: Vec::new(),
            actor: Reference::to("Practitioner", doctor_id),
            required: "required",
            status: "needs-action",
        }],
    }
}

/// Free slots as proposed Appointments: of `practitioner`, or of every doctor whose
/// specialization contains `specialty`, from `start` (default now) to `end` (default a week
/// later, at most 31 days), earliest first, at most `_count` (default 100, at most 500).
async fn find(
    State(state): State<AppState>,
    request_id: RequestId,
    base: Base,
    JsonBytes(body): JsonBytes,
) -> Result<Fhir<Resource>, ApiError> {
    let input = Input::parse(
        &body,
        &["start", "end", "practitioner", "specialty", "_count"],
    )?;
    let zone = state.booking.zone();
    let start = input.instant("start", zone)?.unwrap_or_else(Utc::now);
    let end = match input.instant("end", zone)? {
        Some(end) => end,
        None => start
            .checked_add_days(Days::new(7))
            .ok_or_else(|| invalid("`start` is too far ahead."))?,
    };
    if end <= start || (end - start).num_days() > MAX_FIND_DAYS {
        return Err(invalid("`end` must follow `start` by at most 31 days."));
    }
    let count = match input.integer("_count")? {
        None => PROPOSALS,
        Some(count) if (1..=MAX_PROPOSALS).contains(&count) => count,
        Some(_) => return Err(invalid("`_count`: 1 to 500.")),
    };
    let call = polyclinic_client::CallContext {
        bearer: None,
        request_id: Some(request_id.as_str()),
        trace: Default::default(),
    };
    let doctors: Vec<(Uuid, String)> = match (
        input.reference("practitioner", "Practitioner")?,
        input.text("specialty")?,
    ) {
        (Some(doctor_id), specialty) => {
            let specialization = known_doctor(&state, doctor_id, call).await?.specialization;
            let matches = specialty.as_deref().is_none_or(|wanted| {
                specialization
                    .to_lowercase()
                    .contains(&wanted.to_lowercase())
            });
            if matches {
                vec![(doctor_id, specialization)]
            } else {
                Vec::new()
            }
        }
        (None, Some(specialty)) => state
            .booking
            .peers()
            .doctors_specialized_in(&specialty, call)
            .await
            .map_err(|_| {
                ApiError::dependency_unavailable(
                    "The identity service is unavailable; please try again.",
                )
            })?
            .into_iter()
            .map(|doctor| (Uuid::from(doctor.id), doctor.specialization))
            .collect(),
        (None, None) => return Err(invalid("Name a `practitioner` or a `specialty`.")),
    };
    let first = start.with_timezone(&zone).date_naive();
    let last = (end - chrono::Duration::seconds(1))
        .with_timezone(&zone)
        .date_naive();
    let mut proposals = Vec::new();
    for (doctor_id, specialization) in &doctors {
        let slots = state
            .booking
            .slots(DoctorId::from(*doctor_id), first, last)
            .await?;
        proposals.extend(
            slots
                .iter()
                .filter(|(slot, slot_state)| {
                    *slot_state == SlotState::Free
                        && slot.starts_at >= start
                        && slot.starts_at < end
                })
                .map(|(slot, _)| proposal(*doctor_id, specialization, slot)),
        );
    }
    proposals.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then_with(|| a.slot[0].reference.cmp(&b.slot[0].reference))
    });
    proposals.truncate(usize::try_from(count).unwrap_or(100));
    let resources = proposals.into_iter().map(Resource::from).collect();
    Ok(Fhir(Bundle::results(base.as_str(), resources).into()))
}

/// What a hold or a booking of a free slot reserves: the slot, for whom, why.
fn reserve_request(input: &Input) -> Result<ReserveRequest, ApiError> {
    let slot = input.reference_text("slot")?.ok_or_else(|| {
        invalid("Name the `slot` (`Slot/<id>`, as `$find` or a Slot search gave it).")
    })?;
    let id = slot.rsplit('/').next().unwrap_or(&slot);
    if slot.contains('/') && !slot.trim_end_matches(id).ends_with("Slot/") {
        return Err(invalid("`slot` must reference a Slot."));
    }
    let (doctor_id, starts_at) =
        parse_slot_id(id).ok_or_else(|| invalid("`slot` names no slot of this server."))?;
    let reason = parse_text(input.text("reason")?.as_deref(), 500).map_err(|message| {
        ApiError::unprocessable("invalid_parameters", format!("reason: {message}"))
    })?;
    Ok(ReserveRequest {
        doctor_id: doctor_id.into(),
        starts_at,
        reason,
        notes: String::new(),
        patient_id: input.reference("patient", "Patient")?.map(Into::into),
    })
}

/// Holds a slot: the pending Appointment, with until when it holds (`hold-expires`). Pay it
/// (see `$book`) before then, or the slot is freed.
async fn hold(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let input = Input::parse(request.body(), &["slot", "patient", "reason"])?;
            let caller = caller(&asking)?;
            let reservation = state
                .booking
                .reserve(caller, reserve_request(&input)?)
                .await?;
            Ok((
                StatusCode::CREATED,
                Resource::from(appointment(&reservation.appointment)),
            ))
        })
        .await
}

fn with_payment(
    mut booked: Appointment,
    payment_id: Uuid,
    client_secret: Option<String>,
) -> Appointment {
    booked.extension.push(Extension::string(
        &payment_extension(),
        payment_id.to_string(),
    ));
    if let Some(secret) = client_secret {
        booked
            .extension
            .push(Extension::string(&client_secret_extension(), secret));
    }
    booked
}

/// Books a free `slot` (for the caller, or an admin's `patient`), or the held `appointment`
/// named: the pending Appointment with its payment (`payment`) and the client secret the
/// card authorises it with (`payment-client-secret`).
async fn book(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let input = Input::parse(
                request.body(),
                &["appointment", "slot", "patient", "reason"],
            )?;
            let caller = caller(&asking)?;
            match input.reference("appointment", "Appointment")? {
                Some(id) => {
                    if input.reference_text("slot")?.is_some() {
                        return Err(invalid(
                            "Name either a held `appointment` or a free `slot`.",
                        ));
                    }
                    let held = state.booking.find(caller, id.into()).await?;
                    if held.status != Status::Pending {
                        return Err(ApiError::conflict(
                            "appointment_state",
                            format!(
                                "The appointment is {}; only a held (pending) one can be booked.",
                                held.status
                            ),
                        ));
                    }
                    let payment_id = held.payment_id.ok_or_else(|| {
                        ApiError::dependency_unavailable(
                            "The hold's payment is still being set up; please try again.",
                        )
                    })?;
                    let payment = state
                        .booking
                        .peers()
                        .payment(payment_id, caller.call)
                        .await
                        .map_err(|_| {
                            ApiError::dependency_unavailable(
                                "The payments service is unavailable; please try again.",
                            )
                        })?;
                    Ok((
                        StatusCode::OK,
                        Resource::from(with_payment(
                            appointment(&held),
                            payment_id.into(),
                            payment.client_secret,
                        )),
                    ))
                }
                None => {
                    let reservation = state
                        .booking
                        .reserve(caller, reserve_request(&input)?)
                        .await?;
                    Ok((
                        StatusCode::CREATED,
                        Resource::from(with_payment(
                            appointment(&reservation.appointment),
                            reservation.payment.id.into(),
                            reservation.payment.client_secret,
                        )),
                    ))
                }
            }
        })
        .await
}

async fn cancel_with(
    state: &AppState,
    asking: &Asking<PatientOrAdmin>,
    id: &str,
    reason: Option<String>,
) -> Result<(StatusCode, Resource), ApiError> {
    let id = Uuid::parse_str(id).map_err(|_| not_found("Appointment"))?;
    let reason = parse_text(reason.as_deref(), 500).map_err(|message| {
        ApiError::unprocessable("invalid_parameters", format!("reason: {message}"))
    })?;
    let caller = caller(asking)?;
    let cancelled = state.booking.cancel(caller, id.into(), &reason).await?;
    Ok((StatusCode::OK, Resource::from(appointment(&cancelled))))
}

/// Cancels the appointment (its patient until the cutoff, an admin any time), with an
/// optional `reason`; the payment is voided or refunded as with the REST route.
async fn cancel(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    Path(id): Path<String>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            let input = Input::parse(request.body(), &["reason"])?;
            cancel_with(&state, &asking, &id, input.text("reason")?).await
        })
        .await
}

/// A JSON Patch (RFC 6902) of an Appointment: replacing `/status` with `cancelled` cancels
/// it (a `cancelationReason` text may be set in the same patch); nothing else is patchable.
async fn patch_status(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    Path(id): Path<String>,
    request: Idempotent,
) -> Response {
    request
        .run(&asking.subject, || async {
            // A JSON Patch is an array, which the platform's JSON bodies (objects) are not.
            let patch: Vec<Value> = serde_json::from_slice(request.body()).map_err(|_| {
                ApiError::bad_request("malformed_json", "The body must be a JSON Patch: an array of operations.")
            })?;
            let unsupported = || {
                ApiError::unprocessable(
                    "unsupported_patch",
                    "Only cancelling is patchable: `[{\"op\": \"replace\", \"path\": \"/status\", \"value\": \"cancelled\"}]`, optionally setting `/cancelationReason` (no `test` operations: the cancellation itself checks that the appointment can be cancelled).",
                )
            };
            let mut cancels = false;
            let mut reason = None;
            for operation in &patch {
                match (operation["op"].as_str(), operation["path"].as_str()) {
                    (Some("replace" | "add"), Some("/status")) if operation["value"] == "cancelled" => {
                        cancels = true;
                    }
                    (Some("replace" | "add"), Some("/cancelationReason")) => {
                        reason = operation["value"]["text"].as_str().map(str::to_owned);
                    }
                    _ => return Err(unsupported()),
                }
            }
            if !cancels {
                return Err(unsupported());
            }
            cancel_with(&state, &asking, &id, reason).await
        })
        .await
}

//! FHIR R4 over what the appointments service owns: `Schedule` (one per doctor, its id the
//! doctor's), `Slot` (computed from the calendar and the bookings, exactly as the REST
//! availability: its id names the doctor and the start, so it is stable and can be read
//! back) and `Appointment` (with the REST API's visibility: a patient's own, a doctor's or
//! nurse's visits, all for administrators; anything else is 404).
//!
//! Status mapping: a waitlist's OFFERED slot is `proposed`, PENDING and PAID are `pending`,
//! SCHEDULED `booked`, COMPLETED
//! `fulfilled`, NO_SHOW `noshow`, and CANCELLED, EXPIRED and REJECTED `cancelled` with a
//! `cancelationReason`. The platform's own status is kept in an extension, so nothing is
//! lost in the mapping. Reasons and notes stay out: the visit's clinical content is the
//! medical record's.

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use chrono::{DateTime, Days, NaiveDateTime, Utc};
use polyclinic_auth::Asking;
use polyclinic_auth::rules::Person;
use polyclinic_client::CallContext;
use polyclinic_contracts::DoctorId;
use polyclinic_fhir::bundle::overfetched;
use polyclinic_fhir::resources::{Appointment, Participant, Schedule, Slot};
use polyclinic_fhir::search::DateRange;
use polyclinic_fhir::systems::{CANCELLATION_REASON, EXTENSION_BASE};
use polyclinic_fhir::types::{CodeableConcept, Coding, Extension, Reference};
use polyclinic_fhir::{Base, Fhir, Resource, Search, not_found, searchset};
use polyclinic_http::extract::Path;
use polyclinic_http::{ApiError, RequestId};
use uuid::Uuid;

use super::caller;
use super::schedules::known_doctor;
use crate::AppState;
use crate::domain::appointment::{Actor, Status};
use crate::domain::schedule::{Slot as CalendarSlot, SlotState};
use crate::repo::appointments::{self as repo, AppointmentRow, Filter};

const PAGE: usize = 50;
const MAX_PAGE: usize = 100;
/// The longest period one Slot search covers, as the REST availability.
const MAX_SLOT_DAYS: i64 = 31;
/// The format of a slot id's start (UTC, to the minute).
const SLOT_START: &str = "%Y%m%d%H%M";

/// The extension carrying the platform's own status of an appointment.
pub fn status_extension() -> String {
    format!("{EXTENSION_BASE}/appointment-status")
}

/// The extension carrying until when a pending appointment holds its slot.
pub fn hold_extension() -> String {
    format!("{EXTENSION_BASE}/hold-expires")
}

const PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(super::fhir_booking::router())
        .route("/Schedule", get(search_schedules))
        .route("/Schedule/{id}", get(read_schedule))
        .route("/Slot", get(search_slots))
        .route("/Slot/{id}", get(read_slot))
        .route("/Appointment", get(search_appointments))
        .route("/Appointment/{id}", get(read_appointment))
}

fn anonymous(request_id: &RequestId) -> CallContext<'_> {
    CallContext {
        bearer: None,
        request_id: Some(request_id.as_str()),
        trace: Default::default(),
    }
}

/// The slot id of `doctor_id`'s slot starting at `start`.
pub fn slot_id(doctor_id: Uuid, start: DateTime<Utc>) -> String {
    format!("{doctor_id}-{}", start.format(SLOT_START))
}

/// The doctor and the start a slot id names.
pub(crate) fn parse_slot_id(id: &str) -> Option<(Uuid, DateTime<Utc>)> {
    let (doctor, start) = id.rsplit_once('-')?;
    let doctor = Uuid::parse_str(doctor).ok()?;
    let start = NaiveDateTime::parse_from_str(start, SLOT_START)
        .ok()?
        .and_utc();
    Some((doctor, start))
}

fn schedule(doctor_id: Uuid, specialization: &str) -> Schedule {
    Schedule {
        id: doctor_id.to_string(),
        active: true,
        specialty: if specialization.is_empty() {
            Vec::new()
        } else {
            vec![CodeableConcept::text(specialization)]
        },
        actor: vec![Reference::to("Practitioner", doctor_id)],
        comment: None,
    }
}

fn slot(doctor_id: Uuid, slot: &CalendarSlot, state: SlotState) -> Slot {
    Slot {
        id: slot_id(doctor_id, slot.starts_at),
        schedule: Reference::to("Schedule", doctor_id),
        status: match state {
            SlotState::Free => "free",
            SlotState::Taken => "busy",
        },
        start: slot.starts_at,
        end: slot.ends_at,
    }
}

/// FHIR's status of a platform status.
pub fn fhir_status(status: Status) -> &'static str {
    match status {
        Status::Offered => "proposed",
        Status::Pending | Status::Paid => "pending",
        Status::Scheduled => "booked",
        Status::Completed => "fulfilled",
        Status::NoShow => "noshow",
        Status::Cancelled | Status::Expired | Status::Rejected => "cancelled",
    }
}

/// The platform statuses a FHIR status stands for.
fn statuses_of(fhir: &str) -> Option<Vec<Status>> {
    Some(match fhir {
        "proposed" => vec![Status::Offered],
        "pending" => vec![Status::Pending, Status::Paid],
        "booked" => vec![Status::Scheduled],
        "fulfilled" => vec![Status::Completed],
        "noshow" => vec![Status::NoShow],
        "cancelled" => vec![Status::Cancelled, Status::Expired, Status::Rejected],
        _ => return None,
    })
}

fn cancelation_reason(row: &AppointmentRow) -> Option<CodeableConcept> {
    let (code, display) = match row.status {
        Status::Rejected => ("prov", "Provider"),
        Status::Expired => ("oth-fin", "Financial"),
        Status::Cancelled => ("other", "Other"),
        _ => return None,
    };
    Some(CodeableConcept {
        coding: vec![Coding::new(CANCELLATION_REASON, code, Some(display))],
        text: Some(match (row.status, row.status_reason.as_deref()) {
            (Status::Expired, _) => "The hold ran out before the payment was authorised.".into(),
            (_, Some(reason)) if !reason.trim().is_empty() => reason.to_owned(),
            (Status::Rejected, _) => "Rejected by the clinic.".into(),
            _ => "Cancelled.".into(),
        }),
    })
}

/// The appointment as FHIR shows it.
pub fn appointment(row: &AppointmentRow) -> Appointment {
    let settled = !matches!(row.status, Status::Offered | Status::Pending | Status::Paid);
    let participation = |code: &str, display: &str| {
        vec![CodeableConcept::coded(Coding::new(
            PARTICIPATION,
            code,
            Some(display),
        ))]
    };
    let mut participant = vec![
        Participant {
            kind: Vec::new(),
            actor: Reference::to("Patient", row.patient_id),
            required: "required",
            status: "accepted",
        },
        Participant {
            kind: participation("PPRF", "primary performer"),
            actor: Reference::to("Practitioner", row.doctor_id),
            required: "required",
            status: if settled { "accepted" } else { "needs-action" },
        },
    ];
    if let Some(nurse) = row.nurse_id {
        participant.push(Participant {
            kind: participation("SPRF", "secondary performer"),
            actor: Reference::to("Practitioner", nurse),
            required: "required",
            status: "accepted",
        });
    }
    if let Some(room) = row.room_id {
        participant.push(Participant {
            kind: Vec::new(),
            actor: Reference::to("Location", room),
            required: "required",
            status: "accepted",
        });
    }
    let mut extension = vec![Extension::string(&status_extension(), row.status.as_str())];
    if let (Status::Pending, Some(expires)) = (row.status, row.hold_expires_at) {
        extension.push(Extension::date_time(&hold_extension(), expires));
    }
    Appointment {
        id: row.id.to_string(),
        extension,
        status: fhir_status(row.status),
        cancelation_reason: cancelation_reason(row),
        specialty: Vec::new(),
        start: row.starts_at,
        end: row.ends_at,
        minutes_duration: (row.ends_at - row.starts_at).num_minutes(),
        slot: vec![Reference::to(
            "Slot",
            slot_id(row.doctor_id.into(), row.starts_at),
        )],
        created: Some(row.created_at),
        participant,
    }
}

async fn doctor_specialization(
    state: &AppState,
    doctor_id: Uuid,
    call: CallContext<'_>,
) -> Result<String, ApiError> {
    Ok(known_doctor(state, doctor_id, call).await?.specialization)
}

async fn read_schedule(
    State(state): State<AppState>,
    request_id: RequestId,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let doctor_id = Uuid::parse_str(&id).map_err(|_| not_found("Schedule"))?;
    let specialization = doctor_specialization(&state, doctor_id, anonymous(&request_id))
        .await
        .map_err(|err| {
            if err.status().as_u16() == 404 {
                not_found("Schedule")
            } else {
                err
            }
        })?;
    Ok(Fhir(schedule(doctor_id, &specialization).into()))
}

/// The schedule of the doctor `actor` names (one doctor, one schedule).
async fn search_schedules(
    State(state): State<AppState>,
    request_id: RequestId,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["actor"])?;
    search.count(PAGE, MAX_PAGE)?;
    let doctor_id = search.reference("actor", "Practitioner")?.ok_or_else(|| {
        ApiError::bad_request(
            "schedule_search_needs_actor",
            "Name the doctor: `actor=Practitioner/<id>`.",
        )
    })?;
    let found = match doctor_specialization(&state, doctor_id, anonymous(&request_id)).await {
        Ok(specialization) => vec![schedule(doctor_id, &specialization).into()],
        Err(err) if err.status().as_u16() == 404 => Vec::new(),
        Err(err) => return Err(err),
    };
    Ok(searchset(&base, "Schedule", &search, found, None))
}

/// The calendar slots of `doctor_id` starting within `range` (at most 31 days).
async fn slots_within(
    state: &AppState,
    doctor_id: Uuid,
    range: DateRange,
) -> Result<Vec<Slot>, ApiError> {
    let zone = state.booking.zone();
    let now = Utc::now();
    let from = range.from.unwrap_or(now);
    let to = match range.to {
        Some(to) => to,
        None => from
            .checked_add_days(Days::new(7))
            .ok_or_else(invalid_period)?,
    };
    if to <= from || (to - from).num_days() > MAX_SLOT_DAYS {
        return Err(invalid_period());
    }
    let first = from.with_timezone(&zone).date_naive();
    let last = (to - chrono::Duration::seconds(1))
        .with_timezone(&zone)
        .date_naive();
    let slots = state
        .booking
        .slots(DoctorId::from(doctor_id), first, last)
        .await?;
    Ok(slots
        .iter()
        .filter(|(found, _)| found.starts_at >= from && found.starts_at < to)
        .map(|(found, slot_state)| slot(doctor_id, found, *slot_state))
        .collect())
}

fn invalid_period() -> ApiError {
    ApiError::bad_request(
        "invalid_range",
        "`start` must bound a period of at most 31 days (ge the first instant, lt the last).",
    )
}

/// A doctor's slots: `schedule` is required; `start` bounds the period (by default the
/// coming week, at most 31 days); `status` keeps only free or busy ones. Ordered by start,
/// paged by it.
async fn search_slots(
    State(state): State<AppState>,
    request_id: RequestId,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["schedule", "start", "status"])?;
    let count = search.count(PAGE, MAX_PAGE)?;
    let doctor_id = search.reference("schedule", "Schedule")?.ok_or_else(|| {
        ApiError::bad_request(
            "slot_search_needs_schedule",
            "Name the schedule: `schedule=Schedule/<id>`.",
        )
    })?;
    let status = match search.token("status")? {
        None => None,
        Some(status @ ("free" | "busy")) => Some(status),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_search",
                format!("status: slots here are free or busy, not `{other}`."),
            ));
        }
    };
    let range = search.dates("start", state.booking.zone())?;
    let after = search
        .cursor()
        .map(|cursor| {
            parse_slot_id(cursor)
                .map(|(_, start)| start)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_search",
                        "_cursor: not a cursor this server made.",
                    )
                })
        })
        .transpose()?;
    known_doctor(&state, doctor_id, anonymous(&request_id)).await?;
    let slots: Vec<Slot> = slots_within(&state, doctor_id, range)
        .await?
        .into_iter()
        .filter(|found| status.is_none_or(|status| found.status == status))
        .filter(|found| after.is_none_or(|after| found.start > after))
        .collect();
    let (page, next) = overfetched(slots, count, |found| found.id.clone());
    let resources = page.into_iter().map(Resource::from).collect();
    Ok(searchset(&base, "Slot", &search, resources, next))
}

/// A slot by its id: the doctor's slot at that start, free or busy now; 404 when the
/// calendar no longer offers it (or it has passed).
async fn read_slot(
    State(state): State<AppState>,
    request_id: RequestId,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let (doctor_id, start) = parse_slot_id(&id).ok_or_else(|| not_found("Slot"))?;
    known_doctor(&state, doctor_id, anonymous(&request_id))
        .await
        .map_err(|err| {
            if err.status().as_u16() == 404 {
                not_found("Slot")
            } else {
                err
            }
        })?;
    let range = DateRange {
        from: Some(start),
        to: start.checked_add_signed(chrono::Duration::minutes(1)),
    };
    slots_within(&state, doctor_id, range)
        .await?
        .into_iter()
        .find(|found| found.id == id)
        .map(|found| Fhir(found.into()))
        .ok_or_else(|| not_found("Slot"))
}

async fn read_appointment(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| not_found("Appointment"))?;
    let caller = caller(&asking)?;
    let row =
        state
            .booking
            .find(caller, id.into())
            .await
            .map_err(|err| match ApiError::from(err) {
                err if err.status().as_u16() == 404 => not_found("Appointment"),
                err => err,
            })?;
    Ok(Fhir(appointment(&row).into()))
}

/// The caller's appointments as REST's `mine` lists them (administrators: all), narrowed by
/// `patient`, `practitioner`, `date` and `status`; in booking order, or with `date` in the
/// order they start.
async fn search_appointments(
    State(state): State<AppState>,
    asking: Asking<Person>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["patient", "practitioner", "date", "status"])?;
    let count = search.count(PAGE, MAX_PAGE)?;
    let caller = caller(&asking)?;
    let statuses = match search.token("status")? {
        None => Vec::new(),
        Some(status) => statuses_of(status).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_search",
                format!(
                    "status: one of proposed, pending, booked, fulfilled, noshow, cancelled (not `{status}`)."
                ),
            )
        })?,
    };
    let range = search.dates("date", state.booking.zone())?;
    let mut filter = Filter {
        statuses,
        patient_id: search.reference("patient", "Patient")?.map(Into::into),
        staff_id: search.reference("practitioner", "Practitioner")?,
        from: range.from,
        to: range.to,
        after: search.cursor_id()?.map(Into::into),
        ..Filter::default()
    };
    // Whatever the search says, only what the caller may see.
    match caller.actor {
        Actor::Patient => {
            if filter
                .patient_id
                .is_some_and(|patient| patient != caller.id)
            {
                return Ok(searchset(&base, "Appointment", &search, Vec::new(), None));
            }
            filter.patient_id = Some(caller.id.into());
        }
        Actor::Doctor => filter.doctor_id = Some(caller.id.into()),
        Actor::Nurse => filter.nurse_id = Some(caller.id.into()),
        Actor::Admin | Actor::System => {}
    }
    let rows = repo::list(&state.pool, &filter, count + 1).await?;
    let (page, next) = overfetched(rows, count, |row| row.id.to_string());
    let resources = page
        .iter()
        .map(|row| Resource::from(appointment(row)))
        .collect();
    Ok(searchset(&base, "Appointment", &search, resources, next))
}

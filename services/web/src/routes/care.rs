//! The care team's screens. Doctors: today's and the week's appointments, a patient's
//! record with diagnosis, note, allergy and prescription forms (the allergy warning asks for
//! an override reason), the refill queue and time off. Nurses: their assigned appointments
//! and vitals.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{FormState, Id, Page, short};
use crate::WebState;
use crate::api::ApiFailure;
use crate::guard::{
    Signed,
    audience::{CareTeam, Doctors, Nurses, PatientsAndCare},
};
use crate::model::{Appointment, Prescription, Record, Refill, TimeOff};
use crate::page::{Layout, PageResult, WebError, render, render_status, see_other};
use crate::session::{Role, Session, User};

pub fn router() -> Router<WebState> {
    Router::new()
        .route("/doctor", get(doctor_home))
        .route("/nurse", get(nurse_home))
        .route("/patients/{id}/record", get(patient_record))
        .route("/patients/{id}/entries", post(add_entry))
        .route("/patients/{id}/prescriptions", post(prescribe))
        .route("/prescriptions/{id}", get(prescription))
        .route("/doctor/refills", get(refills))
        .route("/refills/{id}/approve", post(approve_refill))
        .route("/refills/{id}/decline", post(decline_refill))
        .route("/doctor/unavailability", get(time_off).post(add_time_off))
        .route("/doctor/unavailability/{id}/delete", post(remove_time_off))
}

/// One entry of a record, as lines of text.
pub struct EntryView {
    pub(crate) kind: String,
    pub(crate) at: String,
    pub(crate) author: String,
    pub(crate) lines: Vec<String>,
}

impl EntryView {
    pub fn new(state: &WebState, entry: &Value) -> Self {
        let text = |name: &str| entry[name].as_str().unwrap_or_default().to_owned();
        let at = entry["created_at"]
            .as_str()
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
            .map(|at| state.clinic.time(&at.with_timezone(&chrono::Utc)))
            .unwrap_or_default();
        let kind = text("kind");
        let lines = match kind.as_str() {
            "DIAGNOSIS" => vec![format!("{}: {}", text("icd10_code"), text("description"))],
            "NOTE" => [
                ("Subjective", "subjective"),
                ("Objective", "objective"),
                ("Assessment", "assessment"),
                ("Plan", "plan"),
            ]
            .into_iter()
            .filter(|(_, name)| !text(name).is_empty())
            .map(|(label, name)| format!("{label}: {}", text(name)))
            .collect(),
            "ALLERGY" => {
                let reaction = text("reaction");
                vec![format!(
                    "{} ({}){}",
                    text("substance"),
                    text("severity").to_lowercase(),
                    if reaction.is_empty() {
                        String::new()
                    } else {
                        format!(": {reaction}")
                    }
                )]
            }
            "VITALS" => VITALS
                .iter()
                .filter(|(name, _, _)| !entry[*name].is_null())
                .map(|(name, label, unit)| format!("{label}: {} {unit}", entry[*name]))
                .collect(),
            _ => Vec::new(),
        };
        Self {
            kind: match kind.as_str() {
                "DIAGNOSIS" => "Diagnosis",
                "NOTE" => "Note",
                "ALLERGY" => "Allergy",
                "VITALS" => "Vitals",
                _ => "Entry",
            }
            .to_owned(),
            at,
            author: text("author_role").to_lowercase(),
            lines,
        }
    }
}

/// Vitals: the API's field, its label and unit.
const VITALS: [(&str, &str, &str); 8] = [
    ("systolic_mmhg", "Systolic blood pressure", "mmHg"),
    ("diastolic_mmhg", "Diastolic blood pressure", "mmHg"),
    ("pulse_bpm", "Pulse", "bpm"),
    ("temperature_c", "Temperature", "°C"),
    ("respiratory_rate", "Respiratory rate", "/min"),
    ("spo2_percent", "Oxygen saturation", "%"),
    ("weight_kg", "Weight", "kg"),
    ("height_cm", "Height", "cm"),
];

pub struct PrescriptionView {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) status: String,
    pub(crate) status_reason: Option<String>,
    pub(crate) issued_on: String,
    pub(crate) valid_until: String,
    pub(crate) refills_left: i64,
    pub(crate) refills_allowed: i64,
    pub(crate) doctor: String,
    pub(crate) items: Vec<String>,
    pub(crate) override_reason: Option<String>,
    pub(crate) refillable: bool,
}

impl PrescriptionView {
    pub fn new(prescription: &Prescription, doctor: String) -> Self {
        Self {
            id: prescription.id.clone(),
            title: prescription
                .items
                .iter()
                .map(|item| item.medication.clone())
                .collect::<Vec<_>>()
                .join(", "),
            status: prescription.status.clone(),
            status_reason: prescription.status_reason.clone(),
            issued_on: prescription.issued_on.to_string(),
            valid_until: prescription.valid_until.to_string(),
            refills_left: prescription.refills_left,
            refills_allowed: prescription.refills_allowed,
            doctor,
            items: prescription
                .items
                .iter()
                .map(|item| {
                    let mut line = format!(
                        "{} {} {}: {} {} {}, for {} (quantity {})",
                        item.medication,
                        item.strength,
                        item.form,
                        item.dose,
                        item.route,
                        item.frequency,
                        item.duration,
                        item.quantity
                    );
                    if !item.instructions.is_empty() {
                        line.push_str(&format!(". {}", item.instructions));
                    }
                    line
                })
                .collect(),
            override_reason: prescription.allergy_override_reason.clone(),
            refillable: prescription.status == "ACTIVE" && prescription.refills_left > 0,
        }
    }
}

/// A row of a care-team appointment list.
struct VisitRow {
    id: String,
    when: String,
    patient_id: String,
    patient: String,
    reason: String,
    status: String,
}

fn visit_rows(state: &WebState, appointments: &[Appointment]) -> Vec<VisitRow> {
    appointments
        .iter()
        .map(|appointment| VisitRow {
            id: appointment.id.clone(),
            when: state.clinic.time(&appointment.starts_at),
            patient_id: appointment.patient_id.clone(),
            patient: format!("Patient {}", short(&appointment.patient_id)),
            reason: appointment.reason.clone(),
            status: appointment.status.clone(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "visits.html")]
struct VisitsPage {
    l: Layout,
    heading: String,
    views: Vec<(String, &'static str, bool)>,
    rows: Vec<VisitRow>,
}

#[derive(Deserialize)]
struct ViewQuery {
    view: Option<String>,
}

/// The care team's own appointments from `from` for `days` days, in time order.
async fn visits(
    state: &WebState,
    session: &Session,
    from: NaiveDate,
    days: i64,
    here: &str,
) -> Result<Vec<Appointment>, WebError> {
    let (start, end) = state.clinic.day_bounds(from, days);
    let path = format!(
        "/api/appointments/mine?limit=100&from={}&to={}",
        crate::page::encode(&start.to_rfc3339()),
        crate::page::encode(&end.to_rfc3339())
    );
    let page: Page<Appointment> = state
        .gateway
        .get(session, &path)
        .await
        .map_err(|failure| WebError::from_api(failure, here))?;
    let mut appointments: Vec<Appointment> = page
        .items
        .into_iter()
        .filter(|appointment| !matches!(appointment.status.as_str(), "EXPIRED" | "REJECTED"))
        .collect();
    appointments.sort_by_key(|appointment| appointment.starts_at);
    Ok(appointments)
}

async fn doctor_home(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Doctors>,
    Query(view): Query<ViewQuery>,
) -> PageResult {
    let week = view.view.as_deref() == Some("week");
    let today = state.clinic.today();
    let appointments = visits(&state, &session, today, if week { 7 } else { 1 }, "/doctor").await?;
    Ok(render(&VisitsPage {
        l: Layout::new(&session, "My appointments", "/doctor"),
        heading: if week {
            "This week".to_owned()
        } else {
            format!("Today, {}", today.format("%-d %b %Y"))
        },
        views: vec![
            ("/doctor".to_owned(), "Today", !week),
            ("/doctor?view=week".to_owned(), "Next 7 days", week),
        ],
        rows: visit_rows(&state, &appointments),
    }))
}

async fn nurse_home(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Nurses>,
) -> PageResult {
    let today = state.clinic.today();
    let appointments = visits(&state, &session, today, 7, "/nurse").await?;
    Ok(render(&VisitsPage {
        l: Layout::new(&session, "Assigned appointments", "/nurse"),
        heading: "Assigned to you, next 7 days".to_owned(),
        views: Vec::new(),
        rows: visit_rows(&state, &appointments),
    }))
}

struct AppointmentChoice {
    id: String,
    label: String,
}

#[derive(Template)]
#[template(path = "patient_record.html")]
struct PatientRecordPage {
    l: Layout,
    f: FormState,
    patient_id: String,
    patient: String,
    doctor: bool,
    entries: Vec<EntryView>,
    declared_allergies: Vec<String>,
    blood_type: Option<String>,
    prescriptions: Vec<PrescriptionView>,
    appointments: Vec<AppointmentChoice>,
    conflicts: Vec<String>,
    vitals: Vec<(&'static str, &'static str, &'static str)>,
}

async fn record_page(
    state: &WebState,
    session: &Session,
    user: &User,
    patient_id: &str,
    f: FormState,
    conflicts: Vec<String>,
) -> Result<PatientRecordPage, WebError> {
    let here = format!("/patients/{patient_id}/record");
    let record: Record = state
        .gateway
        .get(session, &format!("/api/records/{patient_id}"))
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    let doctor = user.role == Role::Doctor;
    let appointments = if doctor {
        let visits: Vec<Appointment> = super::all_pages(
            state,
            session,
            &format!("/api/appointments/mine?patient_id={patient_id}&limit=100"),
            10,
        )
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
        visits
            .iter()
            .filter(|appointment| matches!(appointment.status.as_str(), "SCHEDULED" | "COMPLETED"))
            .map(|appointment| AppointmentChoice {
                id: appointment.id.clone(),
                label: format!(
                    "{} ({})",
                    state.clinic.time(&appointment.starts_at),
                    appointment.status.to_lowercase()
                ),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(PatientRecordPage {
        l: Layout::new(
            session,
            format!("Record of patient {}", short(patient_id)),
            "",
        ),
        f,
        patient_id: patient_id.to_owned(),
        patient: format!("Patient {}", short(patient_id)),
        doctor,
        entries: record
            .entries
            .iter()
            .map(|entry| EntryView::new(state, entry))
            .collect(),
        declared_allergies: record.declared.substances(),
        blood_type: record.declared.blood_type.clone(),
        prescriptions: record
            .prescriptions
            .iter()
            .map(|prescription| {
                let by = if prescription.doctor_id == user.id {
                    "you".to_owned()
                } else {
                    "another doctor".to_owned()
                };
                PrescriptionView::new(prescription, by)
            })
            .collect(),
        appointments,
        conflicts,
        vitals: VITALS.to_vec(),
    })
}

async fn patient_record(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<CareTeam>,
    Id(patient_id): Id,
) -> PageResult {
    let f = FormState::default().with("idempotency_key", uuid::Uuid::new_v4().to_string());
    Ok(render(
        &record_page(&state, &session, &user, &patient_id, f, Vec::new()).await?,
    ))
}

/// Reads the form of one entry kind into the API's body, recording field errors.
fn entry_body(f: &mut FormState) -> Option<Value> {
    let kind = f.v("kind").to_owned();
    let mut body = Map::new();
    body.insert("kind".into(), Value::from(kind.as_str()));
    let mut text = |f: &mut FormState, name: &str, required: bool| {
        if required {
            f.required(name);
        }
        body.insert(name.to_owned(), Value::from(f.v(name)));
    };
    match kind.as_str() {
        "DIAGNOSIS" => {
            text(f, "icd10_code", true);
            text(f, "description", true);
        }
        "NOTE" => {
            for name in ["subjective", "objective", "assessment", "plan"] {
                text(f, name, false);
            }
            if ["subjective", "objective", "assessment", "plan"]
                .iter()
                .all(|name| f.v(name).is_empty())
            {
                f.error("subjective", "Write at least one part of the note.");
            }
        }
        "ALLERGY" => {
            text(f, "substance", true);
            text(f, "reaction", false);
            text(f, "severity", true);
        }
        "VITALS" => {
            let mut any = false;
            for (name, _, _) in VITALS {
                let Some(raw) = f.opt(name).map(str::to_owned) else {
                    continue;
                };
                let integer = !matches!(name, "temperature_c" | "weight_kg" | "height_cm");
                let number = if integer {
                    raw.parse::<i64>().ok().map(Value::from)
                } else {
                    raw.replace(',', ".").parse::<f64>().ok().map(Value::from)
                };
                match number {
                    Some(number) => {
                        body.insert(name.to_owned(), number);
                        any = true;
                    }
                    None => f.error(
                        name,
                        if integer {
                            "Enter a whole number."
                        } else {
                            "Enter a number."
                        },
                    ),
                }
            }
            if !any && !f.has_errors() {
                f.error("pulse_bpm", "Record at least one measurement.");
            }
        }
        _ => {
            f.general = Some("Choose what kind of entry to write.".to_owned());
        }
    }
    (!f.has_errors()).then_some(Value::Object(body))
}

async fn add_entry(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<CareTeam>,
    Id(patient_id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let here = format!("/patients/{patient_id}/record");
    let mut f = FormState::new(pairs);
    if let Some(body) = entry_body(&mut f) {
        match state
            .gateway
            .post(
                &session,
                &format!("/api/records/{patient_id}/entries"),
                &body,
            )
            .await
        {
            Ok(_) => {
                session.set_flash("ok", "Saved to the record.");
                return Ok(see_other(&here));
            }
            Err(ApiFailure::Rejected(problem))
                if problem.status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                f.absorb(&problem, &[]);
            }
            Err(other) => return Err(WebError::from_api(other, &here)),
        }
    }
    let page = record_page(&state, &session, &user, &patient_id, f, Vec::new()).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

/// The prescription form's fields and the API's names for them (inside `items[0]`).
const ITEM_FIELDS: [(&str, &str); 8] = [
    ("medication", "medication"),
    ("strength", "strength"),
    ("dosage_form", "form"),
    ("dose", "dose"),
    ("route", "route"),
    ("frequency", "frequency"),
    ("duration", "duration"),
    ("instructions", "instructions"),
];

async fn prescribe(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Doctors>,
    Id(patient_id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let here = format!("/patients/{patient_id}/record");
    let mut f = FormState::new(pairs);
    let mut conflicts = Vec::new();
    f.required("appointment_id");
    let mut item = Map::new();
    for (form, api) in ITEM_FIELDS {
        if form != "instructions" {
            f.required(form);
        }
        item.insert(api.to_owned(), Value::from(f.v(form)));
    }
    match f.v("quantity").parse::<i64>() {
        Ok(quantity) if quantity > 0 => {
            item.insert("quantity".into(), Value::from(quantity));
        }
        _ => f.error("quantity", "Enter how many, as a whole number above 0."),
    }
    let refills = match f.opt("refills_allowed") {
        None => 0,
        Some(text) => text.parse::<i64>().unwrap_or_else(|_| {
            f.error("refills_allowed", "Enter a whole number from 0 to 12.");
            0
        }),
    };
    if !f.has_errors() {
        let mut body = json!({
            "appointment_id": f.v("appointment_id"),
            "items": [Value::Object(item)],
            "refills_allowed": refills,
        });
        if let Some(until) = f.opt("valid_until") {
            body["valid_until"] = Value::from(until);
        }
        if let Some(reason) = f.opt("allergy_override_reason") {
            body["allergy_override_reason"] = Value::from(reason);
        }
        match state
            .gateway
            .post(&session, "/api/prescriptions", &body)
            .await
        {
            Ok(_) => {
                session.set_flash("ok", "Prescription issued. The patient is notified.");
                return Ok(see_other(&here));
            }
            Err(ApiFailure::Rejected(problem)) => match problem.code.as_str() {
                "allergy_conflict" => {
                    conflicts = problem.body["conflicts"]
                        .as_array()
                        .map(|all| {
                            all.iter()
                                .filter_map(|c| c.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    f.error(
                        "allergy_override_reason",
                        "The patient's record lists an allergy to this. To prescribe anyway, give the reason.",
                    );
                }
                "unknown_appointment" => f.error(
                    "appointment_id",
                    "Choose one of your scheduled or completed appointments with this patient.",
                ),
                _ => {
                    let mut names: Vec<(String, String)> = ITEM_FIELDS
                        .iter()
                        .map(|(form, api)| (format!("items[0].{api}"), (*form).to_owned()))
                        .collect();
                    names.push(("items[0].quantity".into(), "quantity".into()));
                    let names: Vec<(&str, &str)> = names
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    f.absorb(&problem, &names);
                }
            },
            Err(other) => return Err(WebError::from_api(other, &here)),
        }
    }
    let page = record_page(&state, &session, &user, &patient_id, f, conflicts).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[derive(Template)]
#[template(path = "prescription_page.html")]
struct PrescriptionPage {
    l: Layout,
    p: PrescriptionView,
    back: String,
}

async fn prescription(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<PatientsAndCare>,
    Id(id): Id,
) -> PageResult {
    let here = format!("/prescriptions/{id}");
    let prescription: Prescription = state
        .gateway
        .get(&session, &format!("/api/prescriptions/{id}"))
        .await
        .map_err(|failure| WebError::from_api(failure, &here))?;
    let doctor = match state
        .gateway
        .get_as::<crate::model::Doctor>(
            &session,
            &format!("/api/doctors/{}", prescription.doctor_id),
        )
        .await
    {
        Ok(doctor) => doctor.name(),
        Err(_) => "a doctor".to_owned(),
    };
    let back = match user.role {
        Role::Patient => "/record".to_owned(),
        _ => format!("/patients/{}/record", prescription.patient_id),
    };
    Ok(render(&PrescriptionPage {
        l: Layout::new(&session, "Prescription", ""),
        p: PrescriptionView::new(&prescription, doctor),
        back,
    }))
}

struct RefillRow {
    id: String,
    prescription_id: String,
    patient_id: String,
    patient: String,
    requested: String,
    status: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "refills.html")]
struct RefillsPage {
    l: Layout,
    rows: Vec<RefillRow>,
}

async fn refills(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Doctors>,
) -> PageResult {
    let queue: Vec<Refill> = state
        .gateway
        .get(&session, "/api/refills/queue")
        .await
        .map_err(|failure| WebError::from_api(failure, "/doctor/refills"))?;
    Ok(render(&RefillsPage {
        l: Layout::new(&session, "Refill requests", "/doctor/refills"),
        rows: queue
            .iter()
            .map(|refill| RefillRow {
                id: refill.id.clone(),
                prescription_id: refill.prescription_id.clone(),
                patient_id: refill.patient_id.clone(),
                patient: format!("Patient {}", short(&refill.patient_id)),
                requested: state.clinic.time(&refill.requested_at),
                status: refill.status.clone(),
                reason: refill.reason.clone().unwrap_or_default(),
            })
            .collect(),
    }))
}

async fn approve_refill(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Doctors>,
    Id(id): Id,
) -> PageResult {
    decide_refill(&state, &session, &id, "approve", json!({})).await
}

async fn decline_refill(
    State(state): State<WebState>,
    Signed { session, .. }: Signed<Doctors>,
    Id(id): Id,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let f = FormState::new(pairs);
    if f.v("reason").is_empty() {
        session.set_flash("error", "Give the patient a reason for declining.");
        return Ok(see_other("/doctor/refills"));
    }
    decide_refill(
        &state,
        &session,
        &id,
        "decline",
        json!({ "reason": f.v("reason") }),
    )
    .await
}

async fn decide_refill(
    state: &WebState,
    session: &Session,
    id: &str,
    decision: &str,
    body: Value,
) -> PageResult {
    match state
        .gateway
        .post(session, &format!("/api/refills/{id}/{decision}"), &body)
        .await
    {
        Ok(_) => session.set_flash(
            "ok",
            if decision == "approve" {
                "Refill approved."
            } else {
                "Refill declined."
            },
        ),
        Err(ApiFailure::Rejected(problem)) if problem.status != StatusCode::NOT_FOUND => {
            session.set_flash("error", problem.detail.clone())
        }
        Err(other) => return Err(WebError::from_api(other, "/doctor/refills")),
    }
    Ok(see_other("/doctor/refills"))
}

struct TimeOffRow {
    id: String,
    what: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "time_off.html")]
struct TimeOffPage {
    l: Layout,
    f: FormState,
    rows: Vec<TimeOffRow>,
}

async fn time_off_page(
    state: &WebState,
    session: &Session,
    user: &User,
    f: FormState,
) -> Result<TimeOffPage, WebError> {
    let list: Vec<TimeOff> = state
        .gateway
        .get(session, &format!("/api/doctors/{}/unavailability", user.id))
        .await
        .map_err(|failure| WebError::from_api(failure, "/doctor/unavailability"))?;
    Ok(TimeOffPage {
        l: Layout::new(session, "Unavailability", "/doctor/unavailability"),
        f,
        rows: list.iter().map(time_off_row).collect(),
    })
}

fn time_off_row(entry: &TimeOff) -> TimeOffRow {
    let what = match entry.kind.as_str() {
        "DAY" => format!(
            "The whole day {}",
            entry.on_date.map(|d| d.to_string()).unwrap_or_default()
        ),
        "WEEKDAY" => format!("Every {}", entry.weekday.map(weekday).unwrap_or("week")),
        _ => format!(
            "{} at {}",
            entry.on_date.map(|d| d.to_string()).unwrap_or_default(),
            entry
                .slot_starts
                .iter()
                .map(|s| s.trim_end_matches(":00").to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    TimeOffRow {
        id: entry.id.clone(),
        what,
        reason: entry.reason.clone(),
    }
}

fn weekday(number: i64) -> &'static str {
    match number {
        1 => "Monday",
        2 => "Tuesday",
        3 => "Wednesday",
        4 => "Thursday",
        5 => "Friday",
        6 => "Saturday",
        _ => "Sunday",
    }
}

async fn time_off(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Doctors>,
) -> PageResult {
    let f = FormState::default().with("kind", "day");
    Ok(render(&time_off_page(&state, &session, &user, f).await?))
}

async fn add_time_off(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Doctors>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> PageResult {
    let mut f = FormState::new(pairs);
    let mut body = json!({ "kind": f.v("kind"), "reason": f.v("reason") });
    match f.v("kind") {
        "day" => {
            if !f.required("date") {
                body["date"] = Value::from(f.v("date"));
            }
        }
        "slots" => {
            let slots: Vec<String> = f
                .v("slots")
                .split([',', ' '])
                .map(str::trim)
                .filter(|slot| !slot.is_empty())
                .map(str::to_owned)
                .collect();
            if !f.required("date") {
                body["date"] = Value::from(f.v("date"));
            }
            if slots.is_empty() {
                f.error("slots", "List the start times, such as 09:00, 10:00.");
            }
            body["slots"] = json!(slots);
        }
        "weekday" => match f.v("weekday").parse::<u8>() {
            Ok(day @ 1..=7) => body["weekday"] = Value::from(day),
            _ => f.error("weekday", "Choose a day of the week."),
        },
        _ => f.error("kind", "Choose what to block."),
    }
    if !f.has_errors() {
        match state
            .gateway
            .post(
                &session,
                &format!("/api/doctors/{}/unavailability", user.id),
                &body,
            )
            .await
        {
            Ok(created) => {
                let cancelled = created["cancelled_appointments"]
                    .as_array()
                    .map_or(0, Vec::len);
                session.set_flash(
                    "ok",
                    if cancelled == 0 {
                        "Time off saved.".to_owned()
                    } else {
                        format!("Time off saved; {cancelled} appointment(s) in it were cancelled and their patients told.")
                    },
                );
                return Ok(see_other("/doctor/unavailability"));
            }
            Err(ApiFailure::Rejected(problem))
                if problem.status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                f.absorb(&problem, &[]);
            }
            Err(other) => return Err(WebError::from_api(other, "/doctor/unavailability")),
        }
    }
    let page = time_off_page(&state, &session, &user, f).await?;
    Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

async fn remove_time_off(
    State(state): State<WebState>,
    Signed { session, user, .. }: Signed<Doctors>,
    Id(id): Id,
) -> PageResult {
    state
        .gateway
        .delete(
            &session,
            &format!("/api/doctors/{}/unavailability/{id}", user.id),
        )
        .await
        .map_err(|failure| WebError::from_api(failure, "/doctor/unavailability"))?;
    session.set_flash(
        "ok",
        "Time off removed. Appointments it cancelled stay cancelled.",
    );
    Ok(see_other("/doctor/unavailability"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vitals_are_read_as_numbers_and_bad_ones_named() {
        let mut f = FormState::new(vec![
            ("kind".into(), "VITALS".into()),
            ("pulse_bpm".into(), "72".into()),
            ("temperature_c".into(), "37,2".into()),
            ("spo2_percent".into(), "high".into()),
        ]);
        assert!(entry_body(&mut f).is_none());
        assert_eq!(f.e("spo2_percent"), "Enter a whole number.");

        let mut f = FormState::new(vec![
            ("kind".into(), "VITALS".into()),
            ("pulse_bpm".into(), "72".into()),
            ("temperature_c".into(), "37,2".into()),
        ]);
        let body = entry_body(&mut f).unwrap();
        assert_eq!(body["pulse_bpm"], 72);
        assert_eq!(body["temperature_c"], 37.2);
    }
}

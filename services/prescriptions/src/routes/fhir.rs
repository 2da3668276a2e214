//! FHIR R4 over the medical record: `MedicationRequest` (one per prescription item, grouped
//! by the prescription), `AllergyIntolerance` (clinician-recorded ones `confirmed`, what the
//! patient declared `unconfirmed`), `Condition` (diagnoses in ICD-10), `Observation` (vital
//! signs per the FHIR vital-signs profile) and `AuditEvent` (the record's access log).
//!
//! Every read goes through the same flows as the REST routes (`charting::read`,
//! `prescribing::read`, `charting::access_log`), so the same rules decide (the patient their
//! own, the care team while they care, administrators no clinical content) and the same
//! audit row is written. Ids: an entry's id; `<entry>-<sign>` for each vital sign of an
//! entry; `<prescription>-<position>` for an item; `<patient>-declared-<n>` for the n-th
//! allergy the patient declared.

use axum::Router;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use polyclinic_auth::rules::Person;
use polyclinic_fhir::bundle::{overfetched, page_of};
use polyclinic_fhir::resources::{
    AllergyIntolerance, AuditAgent, AuditEntity, AuditEvent, AuditSource, Component, Condition,
    DispenseRequest, Dosage, MedicationRequest, Observation, Reaction,
};
use polyclinic_fhir::search::reference_id;
use polyclinic_fhir::systems::{EXTENSION_BASE, ICD10, LOINC, PRESCRIPTION};
use polyclinic_fhir::types::{
    CodeableConcept, Coding, Count, DatePeriod, Extension, Identifier, Meta, Quantity, Reference,
};
use polyclinic_fhir::{Base, Fhir, Resource, Search, not_found, searchset};
use polyclinic_http::ApiError;
use polyclinic_http::extract::Path;
use uuid::Uuid;

use super::Asking;
use crate::AppState;
use crate::access::{Acting, Viewer};
use crate::charting::{self, Chart, LogPage, RecordsError};
use crate::domain::entry::{Content, Severity, Vitals};
use crate::domain::prescription::Status;
use crate::prescribing::{self, PrescribingError};
use crate::repo::audit::{self, AuditRow};
use crate::repo::prescriptions::PrescriptionRow;
use crate::repo::records::{self, DeclaredAllergy, Entry};

const PAGE: usize = 50;
const MAX_PAGE: usize = 100;

const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
const ALLERGY_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const AUDIT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-event-type";
const AUDIT_ACTION: &str = "urn:polyclinic:audit-action";
const VITAL_SIGNS: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/MedicationRequest", get(search_medication_requests))
        .route("/MedicationRequest/{id}", get(read_medication_request))
        .route("/AllergyIntolerance", get(search_allergies))
        .route("/AllergyIntolerance/{id}", get(read_allergy))
        .route("/Condition", get(search_conditions))
        .route("/Condition/{id}", get(read_condition))
        .route("/Observation", get(search_observations))
        .route("/Observation/{id}", get(read_observation))
        .route("/AuditEvent", get(search_audit_events))
        .route("/AuditEvent/{id}", get(read_audit_event))
}

/// A refusal of the record flows, as a read by id says it: 404 for what is not visible.
fn read_error(err: RecordsError, resource_type: &str) -> ApiError {
    match err {
        RecordsError::RecordNotFound | RecordsError::EntryNotFound => not_found(resource_type),
        other => other.into(),
    }
}

/// The patient a clinical search names; they are required (a record is one patient's).
fn patient_of(search: &Search) -> Result<Uuid, ApiError> {
    search.reference("patient", "Patient")?.ok_or_else(|| {
        ApiError::bad_request(
            "search_needs_patient",
            "Name the patient: `patient=Patient/<id>`.",
        )
    })
}

/// Pages resources kept whole (one patient's record), in id order.
fn page_resources(
    mut resources: Vec<(String, Resource)>,
    search: &Search,
) -> Result<(Vec<Resource>, Option<String>), ApiError> {
    let count = search.count(PAGE, MAX_PAGE)?;
    resources.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = page_of(resources, count, search.cursor(), |(key, _)| key.clone());
    Ok((
        page.into_iter().map(|(_, resource)| resource).collect(),
        next,
    ))
}

fn author(entry: &Entry) -> Reference {
    match entry.author_role.as_str() {
        "PATIENT" => Reference::to("Patient", entry.author_id),
        _ => Reference::to("Practitioner", entry.author_id),
    }
}

// ---- MedicationRequest ----

fn medication_status(status: Status) -> &'static str {
    match status {
        Status::Active => "active",
        Status::Completed => "completed",
        Status::Cancelled => "cancelled",
        Status::Stopped => "stopped",
    }
}

/// The resource id of `prescription`'s item at `position` (from 1), and its sort key.
fn item_id(prescription: Uuid, position: usize) -> (String, String) {
    (
        format!("{prescription}-{position}"),
        format!("{prescription}-{position:03}"),
    )
}

/// Every item of `prescription` as a MedicationRequest, with its sort key.
fn medication_requests(prescription: &PrescriptionRow) -> Vec<(String, Resource)> {
    prescription
        .items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let (id, key) = item_id(prescription.id, index + 1);
            let instruction = item.instructions.trim();
            let request = MedicationRequest {
                id,
                extension: vec![Extension::integer(
                    &format!("{EXTENSION_BASE}/refills-remaining"),
                    i64::from(prescription.refills_left),
                )],
                group_identifier: Identifier {
                    system: PRESCRIPTION.to_owned(),
                    value: prescription.id.to_string(),
                },
                status: medication_status(prescription.status),
                status_reason: prescription
                    .status_reason
                    .as_deref()
                    .filter(|reason| !reason.trim().is_empty())
                    .map(CodeableConcept::text),
                intent: "order",
                medication_codeable_concept: CodeableConcept::text(format!(
                    "{} {} {}",
                    item.medication, item.strength, item.form
                )),
                subject: Reference::to("Patient", prescription.patient_id),
                authored_on: prescription.created_at,
                requester: Reference::to("Practitioner", prescription.doctor_id),
                dosage_instruction: vec![Dosage {
                    sequence: 1,
                    text: format!(
                        "{}, {}, {}, for {}",
                        item.dose, item.route, item.frequency, item.duration
                    ),
                    patient_instruction: (!instruction.is_empty()).then(|| instruction.to_owned()),
                    route: Some(CodeableConcept::text(&item.route)),
                }],
                dispense_request: DispenseRequest {
                    validity_period: DatePeriod {
                        start: prescription.issued_on,
                        end: prescription.valid_until,
                    },
                    number_of_repeats_allowed: i64::from(prescription.refills_allowed),
                    quantity: Count {
                        value: i64::from(item.quantity),
                    },
                },
            };
            (key, request.into())
        })
        .collect()
}

fn prescribing_error(err: PrescribingError) -> ApiError {
    match err {
        PrescribingError::PrescriptionNotFound => not_found("MedicationRequest"),
        other => other.into(),
    }
}

async fn read_medication_request(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let (prescription, position) = id
        .rsplit_once('-')
        .and_then(|(prescription, position)| {
            Some((
                Uuid::parse_str(prescription).ok()?,
                position.parse::<usize>().ok()?,
            ))
        })
        .ok_or_else(|| not_found("MedicationRequest"))?;
    let found = prescribing::read(&state, &asking.viewer(), prescription)
        .await
        .map_err(prescribing_error)?;
    medication_requests(&found)
        .into_iter()
        .nth(position.wrapping_sub(1))
        .map(|(_, resource)| Fhir(resource))
        .ok_or_else(|| not_found("MedicationRequest"))
}

/// With `patient`, that patient's prescriptions (the patient, their care team); without, the
/// caller's own (a patient's, or those a doctor wrote). Paged in SQL by prescription id and
/// item position, so that every item is reached however many there are.
async fn search_medication_requests(
    State(state): State<AppState>,
    asking: Asking<Person>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["patient", "status"])?;
    let count = search.count(PAGE, MAX_PAGE)?;
    let status = match search.token("status")? {
        None => None,
        Some(text) => Some(
            [
                ("active", Status::Active),
                ("completed", Status::Completed),
                ("cancelled", Status::Cancelled),
                ("stopped", Status::Stopped),
            ]
            .into_iter()
            .find(|(known, _)| *known == text)
            .map(|(_, status)| status)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_search",
                    format!("status: one of active, completed, cancelled, stopped (not `{text}`)."),
                )
            })?,
        ),
    };
    // The cursor is the last item's sort key: `<prescription>-<position, three digits>`.
    let cursor = search.cursor();
    let from = match cursor {
        None => None,
        Some(cursor) => Some(
            cursor
                .get(..36)
                .and_then(|id| Uuid::parse_str(id).ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_search",
                        "_cursor: not a cursor this server made.",
                    )
                })?,
        ),
    };
    // Every prescription has an item: this many prescriptions hold the page and one more.
    let fetch = i64::try_from(count).unwrap_or(100) + 2;
    let prescriptions = prescribing::page(
        &state,
        &asking.viewer(),
        search.reference("patient", "Patient")?,
        status,
        from,
        fetch,
    )
    .await
    .map_err(|err| match err {
        PrescribingError::PrescriptionNotFound => ApiError::not_found(
            "record_not_found",
            "No such record of a patient you care for.",
        ),
        other => other.into(),
    })?;
    let items: Vec<(String, Resource)> = prescriptions
        .iter()
        .flat_map(medication_requests)
        .filter(|(key, _)| cursor.is_none_or(|cursor| key.as_str() > cursor))
        .collect();
    let (page, next) = overfetched(items, count, |(key, _)| key.clone());
    let resources = page.into_iter().map(|(_, resource)| resource).collect();
    Ok(searchset(
        &base,
        "MedicationRequest",
        &search,
        resources,
        next,
    ))
}

// ---- AllergyIntolerance ----

fn concept(system: &str, code: &str) -> CodeableConcept {
    CodeableConcept::coded(Coding::new(system, code, None))
}

fn recorded_allergy(patient: Uuid, entry: &Entry) -> Option<AllergyIntolerance> {
    let Content::Allergy {
        substance,
        reaction,
        severity,
    } = &entry.content
    else {
        return None;
    };
    let severity = match severity {
        Severity::Mild => "mild",
        Severity::Moderate => "moderate",
        Severity::Severe => "severe",
    };
    Some(AllergyIntolerance {
        id: entry.id.to_string(),
        clinical_status: concept(ALLERGY_CLINICAL, "active"),
        verification_status: concept(ALLERGY_VERIFICATION, "confirmed"),
        criticality: if severity == "severe" { "high" } else { "low" },
        code: CodeableConcept::text(substance),
        patient: Reference::to("Patient", patient),
        recorded_date: Some(entry.created_at),
        recorder: Some(author(entry)),
        asserter: None,
        reaction: if reaction.trim().is_empty() {
            Vec::new()
        } else {
            vec![Reaction {
                manifestation: vec![CodeableConcept::text(reaction)],
                severity: Some(severity),
            }]
        },
    })
}

fn declared_id(patient: Uuid, index: usize) -> String {
    format!("{patient}-declared-{index}")
}

fn declared_allergy(patient: Uuid, index: usize, declared: &DeclaredAllergy) -> AllergyIntolerance {
    AllergyIntolerance {
        id: declared_id(patient, index),
        clinical_status: concept(ALLERGY_CLINICAL, "active"),
        verification_status: concept(ALLERGY_VERIFICATION, "unconfirmed"),
        criticality: "unable-to-assess",
        code: CodeableConcept::text(&declared.substance),
        patient: Reference::to("Patient", patient),
        recorded_date: Some(declared.declared_at),
        recorder: None,
        asserter: Some(Reference::to("Patient", patient)),
        reaction: Vec::new(),
    }
}

fn allergies(patient: Uuid, chart: &Chart) -> Vec<(String, Resource)> {
    let recorded = chart
        .entries
        .iter()
        .filter_map(|entry| recorded_allergy(patient, entry));
    let declared = chart
        .declared
        .allergies
        .iter()
        .enumerate()
        .map(|(index, declared)| declared_allergy(patient, index, declared));
    recorded
        .chain(declared)
        .map(|allergy| (allergy.id.clone(), allergy.into()))
        .collect()
}

/// The patient whose record holds the resource `id` (an entry's id, or an id that starts
/// with the patient's).
async fn owner(state: &AppState, id: &str) -> Result<Option<Uuid>, ApiError> {
    let entry = id.get(..36).and_then(|head| Uuid::parse_str(head).ok());
    let Some(entry) = entry else {
        return Ok(None);
    };
    if id.len() > 36 && id[36..].starts_with("-declared-") {
        return Ok(Some(entry));
    }
    Ok(records::patient_of_entry(&state.pool, entry).await?)
}

/// Reads the record holding `id` (audited as any record read) and finds `id` among the
/// resources `build` makes of it.
async fn read_from_record(
    state: &AppState,
    viewer: &Viewer<'_>,
    id: &str,
    resource_type: &str,
    build: fn(Uuid, &Chart) -> Vec<(String, Resource)>,
) -> Result<Fhir<Resource>, ApiError> {
    let patient = owner(state, id)
        .await?
        .ok_or_else(|| not_found(resource_type))?;
    let chart = charting::read(state, viewer, patient)
        .await
        .map_err(|err| read_error(err, resource_type))?;
    build(patient, &chart)
        .into_iter()
        .find(|(found, resource)| resource.id() == Some(id) || found == id)
        .map(|(_, resource)| Fhir(resource))
        .ok_or_else(|| not_found(resource_type))
}

async fn read_allergy(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    read_from_record(
        &state,
        &asking.viewer(),
        &id,
        "AllergyIntolerance",
        allergies,
    )
    .await
}

async fn search_record(
    state: &AppState,
    viewer: &Viewer<'_>,
    base: &Base,
    uri: &Uri,
    resource_type: &str,
    supported: &[&str],
    build: impl Fn(Uuid, &Chart, &Search) -> Result<Vec<(String, Resource)>, ApiError>,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), supported)?;
    let patient = patient_of(&search)?;
    search.count(PAGE, MAX_PAGE)?;
    let chart = charting::read(state, viewer, patient).await?;
    let resources = build(patient, &chart, &search)?;
    let (page, next) = page_resources(resources, &search)?;
    Ok(searchset(base, resource_type, &search, page, next))
}

async fn search_allergies(
    State(state): State<AppState>,
    asking: Asking<Person>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    search_record(
        &state,
        &asking.viewer(),
        &base,
        &uri,
        "AllergyIntolerance",
        &["patient"],
        |patient, chart, _| Ok(allergies(patient, chart)),
    )
    .await
}

// ---- Condition ----

fn conditions(patient: Uuid, chart: &Chart) -> Vec<(String, Resource)> {
    chart
        .entries
        .iter()
        .filter_map(|entry| {
            let Content::Diagnosis {
                icd10_code,
                description,
            } = &entry.content
            else {
                return None;
            };
            let condition = Condition {
                id: entry.id.to_string(),
                clinical_status: concept(CONDITION_CLINICAL, "active"),
                verification_status: concept(CONDITION_VERIFICATION, "confirmed"),
                category: vec![CodeableConcept::coded(Coding::new(
                    CONDITION_CATEGORY,
                    "encounter-diagnosis",
                    Some("Encounter Diagnosis"),
                ))],
                code: CodeableConcept {
                    coding: vec![Coding::new(ICD10, icd10_code, None)],
                    text: Some(description.clone()),
                },
                subject: Reference::to("Patient", patient),
                recorded_date: entry.created_at,
                recorder: author(entry),
            };
            Some((condition.id.clone(), condition.into()))
        })
        .collect()
}

async fn read_condition(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    read_from_record(&state, &asking.viewer(), &id, "Condition", conditions).await
}

async fn search_conditions(
    State(state): State<AppState>,
    asking: Asking<Person>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    search_record(
        &state,
        &asking.viewer(),
        &base,
        &uri,
        "Condition",
        &["patient"],
        |patient, chart, _| Ok(conditions(patient, chart)),
    )
    .await
}

// ---- Observation ----

/// One vital sign: its id suffix, LOINC code and name, and its profile.
struct Sign {
    suffix: &'static str,
    loinc: &'static str,
    name: &'static str,
    profile: &'static str,
}

const BLOOD_PRESSURE: Sign = Sign {
    suffix: "bp",
    loinc: "85354-9",
    name: "Blood pressure panel with all children optional",
    profile: "bp",
};

fn loinc(code: &str, name: &str) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding::new(LOINC, code, Some(name))],
        text: Some(name.to_owned()),
    }
}

/// The observations of one vitals entry: one per sign measured, blood pressure as a panel.
fn vital_signs(patient: Uuid, entry: &Entry, vitals: &Vitals) -> Vec<Observation> {
    let observation =
        |sign: &Sign, value: Option<Quantity>, component: Vec<Component>| Observation {
            id: format!("{}-{}", entry.id, sign.suffix),
            meta: Meta {
                profile: vec![
                    VITAL_SIGNS.to_owned(),
                    format!("http://hl7.org/fhir/StructureDefinition/{}", sign.profile),
                ],
            },
            status: "final",
            category: vec![CodeableConcept {
                coding: vec![Coding::new(
                    OBSERVATION_CATEGORY,
                    "vital-signs",
                    Some("Vital Signs"),
                )],
                text: Some("Vital Signs".to_owned()),
            }],
            code: loinc(sign.loinc, sign.name),
            subject: Reference::to("Patient", patient),
            effective_date_time: entry.created_at,
            issued: entry.created_at,
            performer: vec![author(entry)],
            value_quantity: value,
            component,
        };
    let mut signs = Vec::new();
    if let (Some(systolic), Some(diastolic)) = (vitals.systolic_mmhg, vitals.diastolic_mmhg) {
        let part = |code: &str, name: &str, value: i16| Component {
            code: loinc(code, name),
            value_quantity: Quantity::ucum(f64::from(value), "mm[Hg]", "mmHg"),
        };
        signs.push(observation(
            &BLOOD_PRESSURE,
            None,
            vec![
                part("8480-6", "Systolic blood pressure", systolic),
                part("8462-4", "Diastolic blood pressure", diastolic),
            ],
        ));
    }
    let single: [(Option<f64>, Sign, &str, &str); 6] = [
        (
            vitals.pulse_bpm.map(f64::from),
            Sign {
                suffix: "hr",
                loinc: "8867-4",
                name: "Heart rate",
                profile: "heartrate",
            },
            "/min",
            "beats/minute",
        ),
        (
            vitals.temperature_c,
            Sign {
                suffix: "temp",
                loinc: "8310-5",
                name: "Body temperature",
                profile: "bodytemp",
            },
            "Cel",
            "C",
        ),
        (
            vitals.respiratory_rate.map(f64::from),
            Sign {
                suffix: "rr",
                loinc: "9279-1",
                name: "Respiratory rate",
                profile: "resprate",
            },
            "/min",
            "breaths/minute",
        ),
        (
            vitals.spo2_percent.map(f64::from),
            Sign {
                suffix: "spo2",
                loinc: "2708-6",
                name: "Oxygen saturation in Arterial blood",
                profile: "oxygensat",
            },
            "%",
            "%",
        ),
        (
            vitals.weight_kg,
            Sign {
                suffix: "weight",
                loinc: "29463-7",
                name: "Body weight",
                profile: "bodyweight",
            },
            "kg",
            "kg",
        ),
        (
            vitals.height_cm,
            Sign {
                suffix: "height",
                loinc: "8302-2",
                name: "Body height",
                profile: "bodyheight",
            },
            "cm",
            "cm",
        ),
    ];
    for (value, sign, code, unit) in single {
        if let Some(value) = value {
            signs.push(observation(
                &sign,
                Some(Quantity::ucum(value, code, unit)),
                Vec::new(),
            ));
        }
    }
    signs
}

fn observations(patient: Uuid, chart: &Chart) -> Vec<(String, Resource)> {
    chart
        .entries
        .iter()
        .filter_map(|entry| match &entry.content {
            Content::Vitals(vitals) => Some(vital_signs(patient, entry, vitals)),
            _ => None,
        })
        .flatten()
        .map(|observation| (observation.id.clone(), observation.into()))
        .collect()
}

async fn read_observation(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    read_from_record(&state, &asking.viewer(), &id, "Observation", observations).await
}

async fn search_observations(
    State(state): State<AppState>,
    asking: Asking<Person>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let zone = state.zone;
    search_record(
        &state,
        &asking.viewer(),
        &base,
        &uri,
        "Observation",
        &["patient", "category", "date"],
        |patient, chart, search| {
            let range = search.dates("date", zone)?;
            // Every observation here is a vital sign: another category matches none.
            if search
                .token("category")?
                .is_some_and(|category| category != "vital-signs")
            {
                return Ok(Vec::new());
            }
            Ok(observations(patient, chart)
                .into_iter()
                .filter(|(_, resource)| match resource {
                    Resource::Observation(observation) => {
                        range.contains(observation.effective_date_time)
                    }
                    _ => false,
                })
                .collect())
        },
    )
    .await
}

// ---- AuditEvent ----

fn audit_action(action: &str) -> &'static str {
    let verb = action.rsplit('.').next().unwrap_or(action);
    match verb {
        "read" | "list" | "search" => "R",
        "write" | "create" | "declare" => "C",
        "cancel" | "stop" | "approve" | "decline" | "request" => "U",
        _ => "E",
    }
}

fn agent(row: &AuditRow) -> Reference {
    let person = Uuid::parse_str(&row.actor_id).ok();
    match (row.actor_role.as_str(), person) {
        ("PATIENT", Some(id)) => Reference::to("Patient", id),
        ("DOCTOR" | "NURSE", Some(id)) => Reference::to("Practitioner", id),
        (role, _) => Reference::named(format!("{} {}", role.to_lowercase(), row.actor_id)),
    }
}

fn audit_event(row: &AuditRow) -> AuditEvent {
    AuditEvent {
        id: row.id.to_string(),
        kind: Coding::new(AUDIT_TYPE, "rest", Some("RESTful Operation")),
        subtype: vec![Coding::new(AUDIT_ACTION, &row.action, None)],
        action: audit_action(&row.action),
        recorded: row.at,
        outcome: if row.outcome == "allowed" { "0" } else { "4" },
        outcome_desc: (row.outcome != "allowed").then(|| "Refused".to_owned()),
        agent: vec![AuditAgent {
            kind: None,
            who: agent(row),
            requestor: true,
        }],
        source: AuditSource {
            observer: Reference::named("Polyclinic prescriptions service"),
        },
        entity: row
            .patient_id
            .map(|patient| AuditEntity {
                what: Reference::to("Patient", patient),
                kind: Some(Coding::new(
                    "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                    "1",
                    Some("Person"),
                )),
            })
            .into_iter()
            .collect(),
    }
}

/// The id an `agent` reference names (a Practitioner or a Patient), as the trail keeps it.
fn agent_of(search: &Search) -> Result<Option<String>, ApiError> {
    let Some(value) = search.one("agent")? else {
        return Ok(None);
    };
    reference_id(value, "Practitioner")
        .or_else(|| reference_id(value, "Patient"))
        .map(|id| Some(id.to_string()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_search",
                "agent: expected `Practitioner/<id>` or `Patient/<id>`.",
            )
        })
}

/// The trail newest first. `patient`: that record's access log (its patient, or an
/// administrator, as the REST access log); `agent` and `date`: administrators only.
async fn search_audit_events(
    State(state): State<AppState>,
    asking: Asking<Person>,
    base: Base,
    uri: Uri,
) -> Result<Fhir<Resource>, ApiError> {
    let search = Search::parse(uri.query(), &["patient", "agent", "date"])?;
    let count = search.count(PAGE, MAX_PAGE)?;
    let viewer = asking.viewer();
    let patient = search.reference("patient", "Patient")?;
    let agent = agent_of(&search)?;
    let range = search.dates("date", state.zone)?;
    let before = search
        .cursor()
        .map(|cursor| {
            cursor.parse::<i64>().map_err(|_| {
                ApiError::bad_request("invalid_search", "_cursor: not a cursor this server made.")
            })
        })
        .transpose()?;
    let rows: Vec<AuditRow> = match viewer.acting {
        Acting::Admin => {
            state
                .audit(
                    &viewer,
                    "audit.search",
                    patient,
                    None,
                    audit::Outcome::Allowed,
                )
                .await?;
            let filter = audit::Search {
                patient_id: patient,
                actor_id: agent.as_deref(),
                from: range.from,
                to: range.to,
                before,
                ..audit::Search::default()
            };
            audit::search(&state.pool, &filter, count + 1).await?
        }
        Acting::Patient if agent.is_none() => {
            let own = patient.unwrap_or(viewer.id);
            let page = LogPage {
                from: range.from,
                to: range.to,
                before,
            };
            charting::access_log_page(&state, &viewer, own, &page, count + 1).await?
        }
        _ => return Err(not_found("AuditEvent")),
    };
    let (page, next) = overfetched(rows, count, |row| row.id.to_string());
    let resources = page.iter().map(|row| audit_event(row).into()).collect();
    Ok(searchset(&base, "AuditEvent", &search, resources, next))
}

/// One row of the trail: an administrator's, or the patient's of their own access log.
async fn read_audit_event(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(id): Path<String>,
) -> Result<Fhir<Resource>, ApiError> {
    let id: i64 = id.parse().map_err(|_| not_found("AuditEvent"))?;
    let viewer = asking.viewer();
    let row = match viewer.acting {
        Acting::Admin => {
            state
                .audit(&viewer, "audit.read", None, None, audit::Outcome::Allowed)
                .await?;
            let filter = audit::Search {
                before: id.checked_add(1),
                ..audit::Search::default()
            };
            audit::search(&state.pool, &filter, 1).await?.pop()
        }
        Acting::Patient => charting::access_log(&state, &viewer, viewer.id)
            .await?
            .into_iter()
            .find(|row| row.id == id),
        _ => None,
    };
    row.filter(|row| row.id == id)
        .map(|row| Fhir(audit_event(&row).into()))
        .ok_or_else(|| not_found("AuditEvent"))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    #[test]
    fn an_audit_action_maps_to_fhirs_verbs() {
        assert_eq!(audit_action("record.read"), "R");
        assert_eq!(audit_action("entry.write"), "C");
        assert_eq!(audit_action("prescription.cancel"), "U");
        assert_eq!(audit_action("access_log.read"), "R");
    }

    #[test]
    fn an_items_sort_key_keeps_positions_in_order_past_nine() {
        let prescription = Uuid::new_v4();
        assert!(item_id(prescription, 2).1 < item_id(prescription, 10).1);
        assert_eq!(item_id(prescription, 10).0, format!("{prescription}-10"));
    }

    #[test]
    fn declared_allergies_name_their_patient() {
        let patient = Uuid::new_v4();
        let at: DateTime<Utc> = Utc::now();
        let allergy = declared_allergy(
            patient,
            2,
            &DeclaredAllergy {
                substance: "Penicillin".into(),
                declared_at: at,
            },
        );
        assert_eq!(allergy.id, format!("{patient}-declared-2"));
        assert_eq!(allergy.verification_status.coding[0].code, "unconfirmed");
    }
}

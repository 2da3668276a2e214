//! `/api/records/{patient_id}`: the patient's record, its entries and their versions, and who
//! accessed it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use polyclinic_auth::Require;
use polyclinic_auth::rules::{CareOrAdmin, PatientOrAdmin, Person, ServiceWith};
use polyclinic_auth::scopes::RecordsDeclare;
use polyclinic_http::extract::{Json, JsonBytes, Path, json_from_bytes};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails, RequestId};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::body::Prescription;
use super::{Asking, invalid};
use crate::AppState;
use crate::charting::{self, Declaration, RecordsError};
use crate::domain::entry::Content;
use crate::repo::audit::AuditRow;
use crate::repo::records::{Declared, Entry};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read_record))
        .routes(routes!(add_entry))
        .routes(routes!(entry_versions))
        .routes(routes!(access_log))
        .routes(routes!(declare))
}

/// What a patient declared, as the identity service hands it over.
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclarationBody {
    /// Substances, 1 to 200 characters each; at most 50.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub allergies: Vec<String>,
    /// `A+`, `A-`, `B+`, `B-`, `AB+`, `AB-`, `O+` or `O-`.
    pub blood_type: Option<String>,
}

/// Takes what a patient declared about their health (the identity service, with scope
/// `records:declare`): allergies become patient-reported facts of their record, which the
/// prescribing check heeds and the care team reads. Repeating a declaration changes
/// nothing. Internal: the gateway does not route it.
#[utoipa::path(post, path = "/internal/records/{patient_id}/declarations", tag = "records",
    request_body = DeclarationBody, security(("bearer" = [])),
    responses((status = 204), (status = 403, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn declare(
    State(state): State<AppState>,
    _identity: Require<ServiceWith<RecordsDeclare>>,
    request_id: RequestId,
    Path(patient_id): Path<Uuid>,
    Json(body): Json<DeclarationBody>,
) -> Result<StatusCode, ApiError> {
    let declaration = Declaration {
        allergies: &body.allergies,
        blood_type: body.blood_type.as_deref(),
    };
    charting::declare(&state, request_id.as_str(), patient_id, declaration).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<RecordsError> for ApiError {
    fn from(err: RecordsError) -> Self {
        match err {
            RecordsError::Invalid(errors) => invalid(errors),
            RecordsError::RecordNotFound => ApiError::not_found(
                "record_not_found",
                "No such record of a patient you care for.",
            ),
            RecordsError::EntryNotFound => {
                ApiError::not_found("entry_not_found", "No such entry in this record.")
            }
            RecordsError::EntryCorrected => ApiError::conflict(
                "entry_corrected",
                "That version was corrected already; correct the latest.",
            ),
            RecordsError::KindChanged => ApiError::unprocessable(
                "validation_failed",
                "kind: a correction keeps the entry's kind",
            ),
            RecordsError::CareTeam(unavailable) => unavailable.into(),
            RecordsError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

/// A patient's record: current entries, what the patient declared, and prescriptions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Record {
    pub patient_id: Uuid,
    pub record_id: Uuid,
    /// Each entry's latest version, oldest first.
    pub entries: Vec<Entry>,
    /// What the patient reported (allergies the prescribing check also heeds, a blood
    /// type): unconfirmed until the care team records it.
    pub declared: Declared,
    /// Newest first.
    pub prescriptions: Vec<Prescription>,
}

/// The patient's record (the patient; doctors and nurses of the patient's scheduled or
/// completed appointments). Anyone else gets 404, and the attempt is in the trail.
#[utoipa::path(get, path = "/api/records/{patient_id}", tag = "records", security(("bearer" = [])),
    responses((status = 200, body = Record), (status = 404, body = ProblemDetails)))]
async fn read_record(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path(patient_id): Path<Uuid>,
) -> Result<Json<Record>, ApiError> {
    let viewer = asking.viewer();
    let chart = charting::read(&state, &viewer, patient_id).await?;
    Ok(Json(Record {
        patient_id,
        record_id: chart.record_id,
        entries: chart.entries,
        declared: chart.declared,
        prescriptions: chart
            .prescriptions
            .into_iter()
            .map(Prescription::from)
            .collect(),
    }))
}

/// An entry written: `{"kind": "DIAGNOSIS", "icd10_code", "description"}`, `{"kind": "NOTE",
/// "subjective", "objective", "assessment", "plan"}`, `{"kind": "VITALS", ...}` or
/// `{"kind": "ALLERGY", "substance", "reaction", "severity"}`, with `"corrects": <entry id>`
/// to write a new version of an entry.
/// The body of a new entry, as its schema: one object per kind, each with the entry's own
/// fields, `kind`, and an optional `corrects`.
pub struct EntryRequest;

impl utoipa::PartialSchema for EntryRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use serde_json::json;

        use crate::domain::entry::{
            DiagnosisText, NotePart, Reaction, Severity, Substance, Vitals,
        };
        let inline = |schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>| {
            serde_json::to_value(schema).unwrap_or_default()
        };
        let corrects = json!({
            "oneOf": [{"type": "null"}, {"type": "string", "format": "uuid"}],
            "description": "The entry this version corrects (a new version of it)."
        });
        let branch = |kind: &str, mut properties: Value, required: &[&str]| {
            properties["kind"] = json!({"type": "string", "enum": [kind]});
            properties["corrects"] = corrects.clone();
            let mut required: Vec<&str> = required.to_vec();
            required.push("kind");
            json!({"type": "object", "properties": properties, "required": required,
                   "additionalProperties": false})
        };
        let note = inline(NotePart::schema());
        let mut vitals = inline(Vitals::schema());
        let vitals_properties = vitals["properties"].take();
        let schema = json!({
            "description": "A diagnosis, a visit note (at least one part with text), vitals (at least one measurement; blood pressure as both numbers, systolic above diastolic) or an allergy.",
            "oneOf": [
                branch("DIAGNOSIS", json!({
                    "icd10_code": {"type": "string", "pattern": "^[A-Z][0-9][0-9AB](\\.[0-9A-Z]{1,4})?$",
                                   "description": "ICD-10, such as `J45.909`."},
                    "description": inline(DiagnosisText::schema()),
                }), &["icd10_code", "description"]),
                branch("NOTE", json!({
                    "subjective": note, "objective": note, "assessment": note, "plan": note,
                }), &[]),
                branch("VITALS", vitals_properties, &[]),
                branch("ALLERGY", json!({
                    "substance": inline(Substance::schema()),
                    "reaction": inline(Reaction::schema()),
                    "severity": inline(Severity::schema()),
                }), &["substance", "severity"]),
            ]
        });
        serde_json::from_value(schema).unwrap_or_default()
    }
}

impl utoipa::ToSchema for EntryRequest {}

fn parse_entry(body: &Bytes) -> Result<(Content, Option<Uuid>), ApiError> {
    let mut value: Value = json_from_bytes(body)?;
    let corrects = match value
        .as_object_mut()
        .and_then(|object| object.remove("corrects"))
    {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(
            Uuid::parse_str(&id)
                .map_err(|_| ApiError::unprocessable("invalid_body", "corrects: an entry id"))?,
        ),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_body",
                "corrects: an entry id",
            ));
        }
    };
    let content: Content = serde_json::from_value(value)
        .map_err(|err| ApiError::unprocessable("invalid_body", err.to_string()))?;
    content.validate().map_err(invalid)?;
    Ok((content, corrects))
}

/// Writes an entry (doctors of the patient's appointments: any kind; their nurses: vitals).
/// A correction keeps the version it replaces readable. Rules the schema cannot state answer
/// 422 `validation_failed`: a note has a part with text; vitals have a measurement, and
/// blood pressure both numbers with the systolic above the diastolic.
#[utoipa::path(post, path = "/api/records/{patient_id}/entries", tag = "records", request_body = EntryRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Entry), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails),
        (status = 422, body = ProblemDetails)))]
async fn add_entry(
    State(state): State<AppState>,
    asking: Asking<CareOrAdmin>,
    Path(patient_id): Path<Uuid>,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<Entry>), ApiError> {
    let viewer = asking.viewer();
    let (content, corrects) = parse_entry(&body)?;
    let entry = charting::write_entry(&state, &viewer, patient_id, &content, corrects).await?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Every version of an entry, first to last (whoever may read the record).
#[utoipa::path(get, path = "/api/records/{patient_id}/entries/{entry_id}/versions", tag = "records",
    security(("bearer" = [])), responses((status = 200, body = Vec<Entry>), (status = 404, body = ProblemDetails)))]
async fn entry_versions(
    State(state): State<AppState>,
    asking: Asking<Person>,
    Path((patient_id, entry_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let viewer = asking.viewer();
    Ok(Json(
        charting::versions(&state, &viewer, patient_id, entry_id).await?,
    ))
}

/// Who accessed the record and when, newest first (the patient, admins). An admin's read
/// and anyone's refused attempt are themselves rows of the trail (`access_log.read`); the
/// patient's look at their own is not, or every look would lengthen the list it shows.
#[utoipa::path(get, path = "/api/records/{patient_id}/access-log", tag = "records", security(("bearer" = [])),
    responses((status = 200, body = Vec<AuditRow>), (status = 404, body = ProblemDetails)))]
async fn access_log(
    State(state): State<AppState>,
    asking: Asking<PatientOrAdmin>,
    Path(patient_id): Path<Uuid>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let viewer = asking.viewer();
    Ok(Json(
        charting::access_log(&state, &viewer, patient_id).await?,
    ))
}

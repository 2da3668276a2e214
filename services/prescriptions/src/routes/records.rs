//! `/api/records/{patient_id}`: the patient's record, its entries and their versions, and who
//! accessed it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
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

use super::{Acting, Level, allowed, invalid, viewer};
use crate::AppState;
use crate::domain::entry::Content;
use crate::repo::audit::{self, AuditRow, Outcome, Search};
use crate::repo::prescriptions::{self, Prescription};
use crate::repo::records::{self, Declared, Entry};

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

const BLOOD_TYPES: [&str; 8] = ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"];

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
    let mut errors = Vec::new();
    if body.allergies.len() > 50 {
        errors.push(("allergies".to_owned(), "at most 50".to_owned()));
    }
    let allergies: Vec<String> = body
        .allergies
        .iter()
        .map(|substance| substance.trim().to_owned())
        .collect();
    if allergies
        .iter()
        .any(|substance| substance.is_empty() || substance.chars().count() > 200)
    {
        errors.push((
            "allergies".to_owned(),
            "1 to 200 characters each".to_owned(),
        ));
    }
    if let Some(blood_type) = &body.blood_type
        && !BLOOD_TYPES.contains(&blood_type.as_str())
    {
        errors.push((
            "blood_type".to_owned(),
            "one of A+, A-, B+, B-, AB+, AB-, O+, O-".to_owned(),
        ));
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let record_id = records::ensure_record(&mut tx, patient_id)
        .await
        .map_err(anyhow::Error::from)?;
    records::declare(&mut tx, record_id, &allergies, body.blood_type.as_deref())
        .await
        .map_err(anyhow::Error::from)?;
    let patient = patient_id.to_string();
    audit::append(
        &mut tx,
        &audit::Access {
            actor_id: &patient,
            actor_role: Acting::Patient.as_str(),
            action: "declaration.write",
            patient_id: Some(patient_id),
            record_id: Some(record_id),
            entry_id: None,
            request_id: Some(request_id.as_str()),
            outcome: Outcome::Allowed,
        },
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(StatusCode::NO_CONTENT)
}

fn record_not_found() -> ApiError {
    ApiError::not_found(
        "record_not_found",
        "No such record of a patient you care for.",
    )
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
    principal: Require<Person>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(patient_id): Path<Uuid>,
) -> Result<Json<Record>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    if state.level(&viewer, patient_id).await? == Level::None {
        state
            .audit(
                &viewer,
                "record.read",
                Some(patient_id),
                None,
                Outcome::Denied,
            )
            .await?;
        return Err(record_not_found());
    }
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let record_id = records::ensure_record(&mut tx, patient_id)
        .await
        .map_err(anyhow::Error::from)?;
    audit::append(
        &mut tx,
        &allowed(&viewer, "record.read", patient_id, Some(record_id), None),
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok(Json(Record {
        patient_id,
        record_id,
        entries: records::current_entries(&state.pool, record_id).await?,
        declared: records::declared(&state.pool, record_id)
            .await
            .map_err(anyhow::Error::from)?,
        prescriptions: prescriptions::list(&state.pool, Some(patient_id), None, 200)
            .await
            .map_err(anyhow::Error::from)?,
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
    principal: Require<CareOrAdmin>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(patient_id): Path<Uuid>,
    JsonBytes(body): JsonBytes,
) -> Result<(StatusCode, Json<Entry>), ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    let (content, corrects) = parse_entry(&body)?;
    let level = state.level(&viewer, patient_id).await?;
    let may = match level {
        Level::Full => true,
        Level::ReadAndVitals => records::nurse_may_write(content.kind()),
        Level::Read | Level::None => false,
    };
    if !may {
        state
            .audit(
                &viewer,
                "entry.write",
                Some(patient_id),
                corrects,
                Outcome::Denied,
            )
            .await?;
        return Err(record_not_found());
    }
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let record_id = records::ensure_record(&mut tx, patient_id)
        .await
        .map_err(anyhow::Error::from)?;
    let previous = match corrects {
        None => None,
        Some(id) => {
            let entry = records::find_entry(&mut tx, record_id, id)
                .await?
                .ok_or_else(|| {
                    ApiError::not_found("entry_not_found", "No such entry in this record.")
                })?;
            if entry.corrected_by.is_some() {
                return Err(ApiError::conflict(
                    "entry_corrected",
                    "That version was corrected already; correct the latest.",
                ));
            }
            if !records::same_kind(&entry, &content) {
                return Err(ApiError::unprocessable(
                    "validation_failed",
                    "kind: a correction keeps the entry's kind",
                ));
            }
            Some(entry)
        }
    };
    let author_role = viewer.acting.as_str();
    let id = records::insert_entry(
        &mut tx,
        record_id,
        &content,
        viewer.id,
        author_role,
        previous.as_ref(),
    )
    .await?;
    audit::append(
        &mut tx,
        &allowed(
            &viewer,
            "entry.write",
            patient_id,
            Some(record_id),
            Some(id),
        ),
    )
    .await?;
    let entry = records::find_entry(&mut tx, record_id, id)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a written entry is gone")))?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    Ok((StatusCode::CREATED, Json(entry)))
}

/// Every version of an entry, first to last (whoever may read the record).
#[utoipa::path(get, path = "/api/records/{patient_id}/entries/{entry_id}/versions", tag = "records",
    security(("bearer" = [])), responses((status = 200, body = Vec<Entry>), (status = 404, body = ProblemDetails)))]
async fn entry_versions(
    State(state): State<AppState>,
    principal: Require<Person>,
    request_id: RequestId,
    headers: HeaderMap,
    Path((patient_id, entry_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    if state.level(&viewer, patient_id).await? == Level::None {
        state
            .audit(
                &viewer,
                "entry.read",
                Some(patient_id),
                Some(entry_id),
                Outcome::Denied,
            )
            .await?;
        return Err(record_not_found());
    }
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let record_id = records::ensure_record(&mut tx, patient_id)
        .await
        .map_err(anyhow::Error::from)?;
    audit::append(
        &mut tx,
        &allowed(
            &viewer,
            "entry.read",
            patient_id,
            Some(record_id),
            Some(entry_id),
        ),
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    let versions = records::versions(&state.pool, record_id, entry_id).await?;
    if versions.is_empty() {
        return Err(ApiError::not_found(
            "entry_not_found",
            "No such entry in this record.",
        ));
    }
    Ok(Json(versions))
}

/// Who accessed the record and when, newest first (the patient, admins). An admin's read
/// and anyone's refused attempt are themselves rows of the trail (`access_log.read`); the
/// patient's look at their own is not, or every look would lengthen the list it shows.
#[utoipa::path(get, path = "/api/records/{patient_id}/access-log", tag = "records", security(("bearer" = [])),
    responses((status = 200, body = Vec<AuditRow>), (status = 404, body = ProblemDetails)))]
async fn access_log(
    State(state): State<AppState>,
    principal: Require<PatientOrAdmin>,
    request_id: RequestId,
    headers: HeaderMap,
    Path(patient_id): Path<Uuid>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let viewer = viewer(&principal, &request_id, &headers)?;
    if viewer.acting == Acting::Patient && !viewer.is_patient(patient_id) {
        state
            .audit(
                &viewer,
                "access_log.read",
                Some(patient_id),
                None,
                Outcome::Denied,
            )
            .await?;
        return Err(record_not_found());
    }
    if viewer.acting == Acting::Admin {
        state
            .audit(
                &viewer,
                "access_log.read",
                Some(patient_id),
                None,
                Outcome::Allowed,
            )
            .await?;
    }
    let search = Search {
        patient_id: Some(patient_id),
        ..Search::default()
    };
    Ok(Json(audit::search(&state.pool, &search, 500).await?))
}

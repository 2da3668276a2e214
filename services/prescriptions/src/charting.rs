//! The record flows: reading a patient's record, writing entries (a correction is a new
//! version), taking what a patient declared, and reading who accessed the record. Each
//! flow decides access (see [`crate::access`]) and writes its row of the audit trail in the
//! transaction of what it reads or writes; a refused attempt is audited on its own and
//! answers as if the record did not exist.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::AppState;
use crate::access::{Acting, CareTeamUnavailable, Level, Viewer, allowed};
use crate::domain::entry::Content;
use crate::repo::audit::{self, AuditRow, Outcome, Search};
use crate::repo::prescriptions::{self, PrescriptionRow};
use crate::repo::records::{self, Declared, Entry};

/// Why a record flow was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// Fields that break the rules: `(field, what it must be)`.
    #[error("invalid fields")]
    Invalid(Vec<(String, String)>),
    /// Not the record of a patient the viewer may see (or write this kind of entry in).
    #[error("no such record of a patient you care for")]
    RecordNotFound,
    #[error("no such entry in this record")]
    EntryNotFound,
    #[error("that version was corrected already; correct the latest")]
    EntryCorrected,
    #[error("kind: a correction keeps the entry's kind")]
    KindChanged,
    #[error(transparent)]
    CareTeam(#[from] CareTeamUnavailable),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for RecordsError {
    fn from(err: sqlx::Error) -> Self {
        RecordsError::Unexpected(err.into())
    }
}

/// The blood types a patient may declare.
pub const BLOOD_TYPES: [&str; 8] = ["A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"];

/// What a patient declared about their health.
#[derive(Debug)]
pub struct Declaration<'a> {
    pub allergies: &'a [String],
    pub blood_type: Option<&'a str>,
}

/// Takes what a patient declared: allergies become patient-reported facts of their record.
/// Repeating a declaration changes nothing.
pub async fn declare(
    state: &AppState,
    request_id: &str,
    patient_id: Uuid,
    declaration: Declaration<'_>,
) -> Result<(), RecordsError> {
    let mut errors = Vec::new();
    if declaration.allergies.len() > 50 {
        errors.push(("allergies".to_owned(), "at most 50".to_owned()));
    }
    let allergies: Vec<String> = declaration
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
    if let Some(blood_type) = declaration.blood_type
        && !BLOOD_TYPES.contains(&blood_type)
    {
        errors.push((
            "blood_type".to_owned(),
            "one of A+, A-, B+, B-, AB+, AB-, O+, O-".to_owned(),
        ));
    }
    if !errors.is_empty() {
        return Err(RecordsError::Invalid(errors));
    }
    let mut tx = state.pool.begin().await?;
    let record_id = records::ensure_record(&mut tx, patient_id).await?;
    records::declare(&mut tx, record_id, &allergies, declaration.blood_type).await?;
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
            request_id: Some(request_id),
            outcome: Outcome::Allowed,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A patient's record as the viewer reads it.
#[derive(Debug)]
pub struct Chart {
    pub record_id: Uuid,
    /// Each entry's latest version, oldest first.
    pub entries: Vec<Entry>,
    pub declared: Declared,
    /// Newest first.
    pub prescriptions: Vec<PrescriptionRow>,
}

/// Audits a refused attempt of `viewer` on `patient_id`'s record.
async fn refuse(
    state: &AppState,
    viewer: &Viewer<'_>,
    action: &str,
    patient_id: Uuid,
    entry_id: Option<Uuid>,
) -> Result<RecordsError, RecordsError> {
    state
        .audit(viewer, action, Some(patient_id), entry_id, Outcome::Denied)
        .await?;
    Ok(RecordsError::RecordNotFound)
}

/// The record's id, with the allowed access of `viewer` in the trail.
async fn open_for(
    state: &AppState,
    viewer: &Viewer<'_>,
    action: &str,
    patient_id: Uuid,
    entry_id: Option<Uuid>,
) -> Result<Uuid, RecordsError> {
    let mut tx = state.pool.begin().await?;
    let record_id = records::ensure_record(&mut tx, patient_id).await?;
    audit::append(
        &mut tx,
        &allowed(viewer, action, patient_id, Some(record_id), entry_id),
    )
    .await?;
    tx.commit().await?;
    Ok(record_id)
}

/// The patient's record: the patient, and doctors and nurses who care for them.
pub async fn read(
    state: &AppState,
    viewer: &Viewer<'_>,
    patient_id: Uuid,
) -> Result<Chart, RecordsError> {
    if state.level(viewer, patient_id).await? == Level::None {
        return Err(refuse(state, viewer, "record.read", patient_id, None).await?);
    }
    let record_id = open_for(state, viewer, "record.read", patient_id, None).await?;
    Ok(Chart {
        record_id,
        entries: records::current_entries(&state.pool, record_id).await?,
        declared: records::declared(&state.pool, record_id).await?,
        prescriptions: prescriptions::list(&state.pool, Some(patient_id), None, 200).await?,
    })
}

/// Writes an entry (doctors who care for the patient: any kind; their nurses: vitals);
/// `corrects` names the entry this is a new version of.
pub async fn write_entry(
    state: &AppState,
    viewer: &Viewer<'_>,
    patient_id: Uuid,
    content: &Content,
    corrects: Option<Uuid>,
) -> Result<Entry, RecordsError> {
    let may = match state.level(viewer, patient_id).await? {
        Level::Full => true,
        Level::ReadAndVitals => records::nurse_may_write(content.kind()),
        Level::Read | Level::None => false,
    };
    if !may {
        return Err(refuse(state, viewer, "entry.write", patient_id, corrects).await?);
    }
    let mut tx = state.pool.begin().await?;
    let record_id = records::ensure_record(&mut tx, patient_id).await?;
    let previous = match corrects {
        None => None,
        Some(id) => {
            let entry = records::find_entry(&mut tx, record_id, id)
                .await?
                .ok_or(RecordsError::EntryNotFound)?;
            if entry.corrected_by.is_some() {
                return Err(RecordsError::EntryCorrected);
            }
            if !records::same_kind(&entry, content) {
                return Err(RecordsError::KindChanged);
            }
            Some(entry)
        }
    };
    let id = records::insert_entry(
        &mut tx,
        record_id,
        content,
        viewer.id,
        viewer.acting.as_str(),
        previous.as_ref(),
    )
    .await?;
    audit::append(
        &mut tx,
        &allowed(viewer, "entry.write", patient_id, Some(record_id), Some(id)),
    )
    .await?;
    let entry = records::find_entry(&mut tx, record_id, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("a written entry is gone"))?;
    tx.commit().await?;
    Ok(entry)
}

/// Every version of an entry, first to last (whoever may read the record).
pub async fn versions(
    state: &AppState,
    viewer: &Viewer<'_>,
    patient_id: Uuid,
    entry_id: Uuid,
) -> Result<Vec<Entry>, RecordsError> {
    if state.level(viewer, patient_id).await? == Level::None {
        return Err(refuse(state, viewer, "entry.read", patient_id, Some(entry_id)).await?);
    }
    let record_id = open_for(state, viewer, "entry.read", patient_id, Some(entry_id)).await?;
    let versions = records::versions(&state.pool, record_id, entry_id).await?;
    if versions.is_empty() {
        return Err(RecordsError::EntryNotFound);
    }
    Ok(versions)
}

/// Who accessed the record and when, newest first (the patient, admins). An admin's read
/// and anyone's refused attempt are themselves rows of the trail; the patient's look at
/// their own is not, or every look would lengthen the list it shows.
pub async fn access_log(
    state: &AppState,
    viewer: &Viewer<'_>,
    patient_id: Uuid,
) -> Result<Vec<AuditRow>, RecordsError> {
    access_log_page(state, viewer, patient_id, &LogPage::default(), 500).await
}

/// Which part of an access log: rows at or after `from` and before `to`, before the row
/// `before` (newest first).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogPage {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub before: Option<i64>,
}

/// Part of the record's access log, newest first, at most `limit` rows, read as
/// [`access_log`] reads it (the FHIR AuditEvent search pages through it so).
pub async fn access_log_page(
    state: &AppState,
    viewer: &Viewer<'_>,
    patient_id: Uuid,
    page: &LogPage,
    limit: usize,
) -> Result<Vec<AuditRow>, RecordsError> {
    if viewer.acting == Acting::Patient && !viewer.is_patient(patient_id) {
        return Err(refuse(state, viewer, "access_log.read", patient_id, None).await?);
    }
    if viewer.acting == Acting::Admin {
        state
            .audit(
                viewer,
                "access_log.read",
                Some(patient_id),
                None,
                Outcome::Allowed,
            )
            .await?;
    }
    let search = Search {
        patient_id: Some(patient_id),
        from: page.from,
        to: page.to,
        before: page.before,
        ..Search::default()
    };
    Ok(audit::search(&state.pool, &search, limit).await?)
}

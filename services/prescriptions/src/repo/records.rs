//! Records and their entries. An entry is written once; a correction is a new row whose
//! `previous_id` names the version it replaces.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::entry::{Content, Kind, Severity, Vitals};

/// The patient's record, made on first use.
pub async fn ensure_record(conn: &mut PgConnection, patient_id: Uuid) -> sqlx::Result<Uuid> {
    sqlx::query(
        "insert into records (id, patient_id) values ($1, $2) on conflict (patient_id) do nothing",
    )
    .bind(Uuid::now_v7())
    .bind(patient_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar("select id from records where patient_id = $1")
        .bind(patient_id)
        .fetch_one(conn)
        .await
}

/// One version of an entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Entry {
    pub id: Uuid,
    pub version: i32,
    /// The version this one corrects.
    pub previous_id: Option<Uuid>,
    /// The version that corrects this one, if any.
    pub corrected_by: Option<Uuid>,
    pub author_id: Uuid,
    pub author_role: String,
    pub created_at: DateTime<Utc>,
    #[serde(flatten)]
    pub content: Content,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    kind: String,
    version: i32,
    previous_id: Option<Uuid>,
    corrected_by: Option<Uuid>,
    author_id: Uuid,
    author_role: String,
    created_at: DateTime<Utc>,
    icd10_code: Option<String>,
    description: Option<String>,
    subjective: Option<String>,
    objective: Option<String>,
    assessment: Option<String>,
    plan: Option<String>,
    systolic_mmhg: Option<i16>,
    diastolic_mmhg: Option<i16>,
    pulse_bpm: Option<i16>,
    temperature_c: Option<f64>,
    respiratory_rate: Option<i16>,
    spo2_percent: Option<i16>,
    weight_kg: Option<f64>,
    height_cm: Option<f64>,
    substance: Option<String>,
    reaction: Option<String>,
    severity: Option<String>,
}

impl Row {
    fn into_entry(self) -> anyhow::Result<Entry> {
        let content = match self.kind.as_str() {
            "DIAGNOSIS" => Content::Diagnosis {
                icd10_code: self.icd10_code.unwrap_or_default(),
                description: self.description.unwrap_or_default(),
            },
            "NOTE" => Content::Note {
                subjective: self.subjective.unwrap_or_default(),
                objective: self.objective.unwrap_or_default(),
                assessment: self.assessment.unwrap_or_default(),
                plan: self.plan.unwrap_or_default(),
            },
            "VITALS" => Content::Vitals(Vitals {
                systolic_mmhg: self.systolic_mmhg,
                diastolic_mmhg: self.diastolic_mmhg,
                pulse_bpm: self.pulse_bpm,
                temperature_c: self.temperature_c,
                respiratory_rate: self.respiratory_rate,
                spo2_percent: self.spo2_percent,
                weight_kg: self.weight_kg,
                height_cm: self.height_cm,
            }),
            "ALLERGY" => Content::Allergy {
                substance: self.substance.unwrap_or_default(),
                reaction: self.reaction.unwrap_or_default(),
                severity: match self.severity.as_deref() {
                    Some("SEVERE") => Severity::Severe,
                    Some("MODERATE") => Severity::Moderate,
                    _ => Severity::Mild,
                },
            },
            other => anyhow::bail!("a stored entry of unknown kind {other}"),
        };
        Ok(Entry {
            id: self.id,
            version: self.version,
            previous_id: self.previous_id,
            corrected_by: self.corrected_by,
            author_id: self.author_id,
            author_role: self.author_role,
            created_at: self.created_at,
            content,
        })
    }
}

const SELECT: &str = "
select e.id, e.kind, e.version, e.previous_id, c.id as corrected_by, e.author_id, e.author_role, e.created_at,
       d.icd10_code, d.description, n.subjective, n.objective, n.assessment, n.plan,
       v.systolic_mmhg, v.diastolic_mmhg, v.pulse_bpm, v.temperature_c::float8 as temperature_c,
       v.respiratory_rate, v.spo2_percent, v.weight_kg::float8 as weight_kg, v.height_cm::float8 as height_cm,
       a.substance, a.reaction, a.severity
from entries e
left join entries c on c.previous_id = e.id
left join diagnoses d on d.entry_id = e.id
left join visit_notes n on n.entry_id = e.id
left join vitals v on v.entry_id = e.id
left join allergies a on a.entry_id = e.id";

/// The statement of [`current_entries`] (`$1` the record): the record's entries off
/// `(record_id, created_at)`, each kind's row and a correction by primary key.
pub fn current_entries_sql() -> String {
    format!("{SELECT} where e.record_id = $1 and c.id is null order by e.created_at, e.id")
}

/// The record's current entries (each one's latest version), oldest first.
pub async fn current_entries(pool: &PgPool, record_id: Uuid) -> anyhow::Result<Vec<Entry>> {
    let rows: Vec<Row> = sqlx::query_as(&current_entries_sql())
        .bind(record_id)
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(Row::into_entry).collect()
}

/// One version of an entry of the record.
pub async fn find_entry(
    conn: &mut PgConnection,
    record_id: Uuid,
    id: Uuid,
) -> anyhow::Result<Option<Entry>> {
    let row: Option<Row> =
        sqlx::query_as(&format!("{SELECT} where e.record_id = $1 and e.id = $2"))
            .bind(record_id)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    row.map(Row::into_entry).transpose()
}

/// Every version of the entry `id` belongs to, first to last.
pub async fn versions(pool: &PgPool, record_id: Uuid, id: Uuid) -> anyhow::Result<Vec<Entry>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "with recursive back(id, previous_id) as (
             select id, previous_id from entries where id = $2 and record_id = $1
             union all
             select e.id, e.previous_id from entries e join back b on e.id = b.previous_id),
         first as (select id from back where previous_id is null),
         forward(id) as (
             select id from first
             union all
             select e.id from entries e join forward f on e.previous_id = f.id)
         {SELECT} where e.id in (select id from forward) order by e.version"
    ))
    .bind(record_id)
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Row::into_entry).collect()
}

/// Substances the record says the patient is allergic to: its current allergy entries and
/// what the patient declared.
pub async fn allergies(conn: &mut PgConnection, record_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "select a.substance from entries e join allergies a on a.entry_id = e.id
         where e.record_id = $1 and not exists (select 1 from entries c where c.previous_id = e.id)
         union
         select substance from declared_allergies where record_id = $1",
    )
    .bind(record_id)
    .fetch_all(conn)
    .await
}

/// Writes an entry (version 1, or the next version of `corrects`).
pub async fn insert_entry(
    conn: &mut PgConnection,
    record_id: Uuid,
    content: &Content,
    author_id: Uuid,
    author_role: &str,
    corrects: Option<&Entry>,
) -> anyhow::Result<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into entries (id, record_id, kind, version, previous_id, author_id, author_role)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(record_id)
    .bind(content.kind().as_str())
    .bind(corrects.map_or(1, |previous| previous.version + 1))
    .bind(corrects.map(|previous| previous.id))
    .bind(author_id)
    .bind(author_role)
    .execute(&mut *conn)
    .await?;
    let trimmed = |text: &str| text.trim().to_owned();
    match content {
        Content::Diagnosis {
            icd10_code,
            description,
        } => {
            sqlx::query(
                "insert into diagnoses (entry_id, icd10_code, description) values ($1, $2, $3)",
            )
            .bind(id)
            .bind(icd10_code)
            .bind(trimmed(description))
            .execute(&mut *conn)
            .await?;
        }
        Content::Note {
            subjective,
            objective,
            assessment,
            plan,
        } => {
            sqlx::query("insert into visit_notes (entry_id, subjective, objective, assessment, plan) values ($1, $2, $3, $4, $5)")
                .bind(id)
                .bind(trimmed(subjective))
                .bind(trimmed(objective))
                .bind(trimmed(assessment))
                .bind(trimmed(plan))
                .execute(&mut *conn)
                .await?;
        }
        Content::Vitals(vitals) => {
            sqlx::query(
                "insert into vitals (entry_id, systolic_mmhg, diastolic_mmhg, pulse_bpm, temperature_c, respiratory_rate,
                                     spo2_percent, weight_kg, height_cm)
                 values ($1, $2, $3, $4, $5::numeric(4, 1), $6, $7, $8::numeric(5, 1), $9::numeric(4, 1))",
            )
            .bind(id)
            .bind(vitals.systolic_mmhg)
            .bind(vitals.diastolic_mmhg)
            .bind(vitals.pulse_bpm)
            .bind(vitals.temperature_c)
            .bind(vitals.respiratory_rate)
            .bind(vitals.spo2_percent)
            .bind(vitals.weight_kg)
            .bind(vitals.height_cm)
            .execute(&mut *conn)
            .await?;
        }
        Content::Allergy {
            substance,
            reaction,
            severity,
        } => {
            sqlx::query("insert into allergies (entry_id, substance, reaction, severity) values ($1, $2, $3, $4)")
                .bind(id)
                .bind(trimmed(substance))
                .bind(trimmed(reaction))
                .bind(severity.as_str())
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(id)
}

/// Whether an entry's kind matches, for corrections.
pub fn same_kind(entry: &Entry, content: &Content) -> bool {
    entry.content.kind() == content.kind()
}

/// The kinds a nurse may write.
pub fn nurse_may_write(kind: Kind) -> bool {
    kind == Kind::Vitals
}

/// The patient whose record holds entry `id` (any version).
pub async fn patient_of_entry(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "select r.patient_id from entries e join records r on r.id = e.record_id where e.id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// An allergy the patient declared: patient-reported, not yet confirmed by the care team.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DeclaredAllergy {
    pub substance: String,
    pub declared_at: DateTime<Utc>,
}

/// What the patient declared to the record.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Declared {
    /// Patient-reported allergies, oldest first.
    pub allergies: Vec<DeclaredAllergy>,
    /// The blood type the patient gave (`A+` ... `O-`).
    pub blood_type: Option<String>,
}

/// Records the patient's declaration: allergies not declared before (ignoring case), and
/// the blood type when one is given. Returns the allergies that were new.
pub async fn declare(
    conn: &mut PgConnection,
    record_id: Uuid,
    allergies: &[String],
    blood_type: Option<&str>,
) -> sqlx::Result<Vec<String>> {
    let mut added = Vec::new();
    for substance in allergies {
        let inserted = sqlx::query(
            "insert into declared_allergies (id, record_id, substance) values ($1, $2, $3)
             on conflict (record_id, lower(substance)) do nothing",
        )
        .bind(Uuid::now_v7())
        .bind(record_id)
        .bind(substance)
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            added.push(substance.clone());
        }
    }
    if let Some(blood_type) = blood_type {
        sqlx::query(
            "update records set blood_type = $2, blood_type_declared_at = now(), updated_at = now()
             where id = $1",
        )
        .bind(record_id)
        .bind(blood_type)
        .execute(&mut *conn)
        .await?;
    }
    Ok(added)
}

/// What the patient declared to record `record_id`.
pub async fn declared(pool: &PgPool, record_id: Uuid) -> sqlx::Result<Declared> {
    let allergies = sqlx::query_as(
        "select substance, declared_at from declared_allergies where record_id = $1
         order by declared_at, id",
    )
    .bind(record_id)
    .fetch_all(pool)
    .await?;
    let blood_type = sqlx::query_scalar("select blood_type from records where id = $1")
        .bind(record_id)
        .fetch_one(pool)
        .await?;
    Ok(Declared {
        allergies,
        blood_type,
    })
}

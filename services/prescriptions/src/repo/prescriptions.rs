//! Prescriptions, their items and refills.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::prescription::{Item, Status};

/// A prescription as stored, with its items (the API's body is
/// `routes::body::Prescription`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PrescriptionRow {
    pub id: Uuid,
    pub record_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub appointment_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub status_reason: Option<String>,
    pub issued_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub refills_allowed: i16,
    pub refills_left: i16,
    /// Why the doctor prescribed despite an allergy on the record.
    pub allergy_override_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[sqlx(skip)]
    pub items: Vec<Item>,
}

const COLUMNS: &str =
    "id, record_id, patient_id, doctor_id, appointment_id, status, status_reason, issued_on,
    valid_until, refills_allowed, refills_left, allergy_override_reason, created_at, updated_at";

/// A prescription to write.
#[derive(Debug)]
pub struct NewPrescription<'a> {
    pub record_id: Uuid,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
    pub appointment_id: Uuid,
    pub issued_on: NaiveDate,
    pub valid_until: NaiveDate,
    pub refills_allowed: i16,
    pub allergy_override_reason: Option<&'a str>,
    pub items: &'a [Item],
}

pub async fn insert(
    conn: &mut PgConnection,
    new: &NewPrescription<'_>,
) -> sqlx::Result<PrescriptionRow> {
    let mut prescription: PrescriptionRow = sqlx::query_as(&format!(
        "insert into prescriptions (id, record_id, patient_id, doctor_id, appointment_id, issued_on, valid_until,
                                    refills_allowed, refills_left, allergy_override_reason)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
         returning {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.record_id)
    .bind(new.patient_id)
    .bind(new.doctor_id)
    .bind(new.appointment_id)
    .bind(new.issued_on)
    .bind(new.valid_until)
    .bind(new.refills_allowed)
    .bind(new.allergy_override_reason)
    .fetch_one(&mut *conn)
    .await?;
    for (position, item) in new.items.iter().enumerate() {
        sqlx::query(
            "insert into prescription_items (prescription_id, position, medication, strength, form, dose, route,
                                             frequency, duration, quantity, instructions)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(prescription.id)
        .bind(i16::try_from(position).unwrap_or(i16::MAX))
        .bind(item.medication.trim())
        .bind(item.strength.trim())
        .bind(item.form.trim())
        .bind(item.dose.trim())
        .bind(item.route.trim())
        .bind(item.frequency.trim())
        .bind(item.duration.trim())
        .bind(item.quantity)
        .bind(item.instructions.trim())
        .execute(&mut *conn)
        .await?;
    }
    prescription.items = new.items.to_vec();
    Ok(prescription)
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    prescription_id: Uuid,
    #[sqlx(flatten)]
    item: Item,
}

async fn with_items(
    pool: &PgPool,
    mut prescriptions: Vec<PrescriptionRow>,
) -> sqlx::Result<Vec<PrescriptionRow>> {
    let ids: Vec<Uuid> = prescriptions.iter().map(|p| p.id).collect();
    let items: Vec<ItemRow> = sqlx::query_as(
        "select prescription_id, medication, strength, form, dose, route, frequency, duration, quantity, instructions
         from prescription_items where prescription_id = any($1) order by prescription_id, position",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    for row in items {
        if let Some(prescription) = prescriptions
            .iter_mut()
            .find(|p| p.id == row.prescription_id)
        {
            prescription.items.push(row.item);
        }
    }
    Ok(prescriptions)
}

pub async fn find(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<PrescriptionRow>> {
    let found: Option<PrescriptionRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from prescriptions where id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match found {
        Some(prescription) => Ok(with_items(pool, vec![prescription]).await?.pop()),
        None => Ok(None),
    }
}

/// A patient's prescriptions, or a doctor's, newest first.
pub async fn list(
    pool: &PgPool,
    patient_id: Option<Uuid>,
    doctor_id: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PrescriptionRow>> {
    let found: Vec<PrescriptionRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from prescriptions
         where ($1::uuid is null or patient_id = $1) and ($2::uuid is null or doctor_id = $2)
         order by id desc limit $3"
    ))
    .bind(patient_id)
    .bind(doctor_id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    with_items(pool, found).await
}

/// A patient's prescriptions, or a doctor's, in id order from `from` on (inclusive), with
/// one `status` if given: at most `limit` (the FHIR searches page through them so).
pub async fn page(
    pool: &PgPool,
    patient_id: Option<Uuid>,
    doctor_id: Option<Uuid>,
    status: Option<Status>,
    from: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PrescriptionRow>> {
    let found: Vec<PrescriptionRow> = sqlx::query_as(&format!(
        "select {COLUMNS} from prescriptions
         where ($1::uuid is null or patient_id = $1) and ($2::uuid is null or doctor_id = $2)
           and ($3::text is null or status = $3) and ($4::uuid is null or id >= $4)
         order by id limit $5"
    ))
    .bind(patient_id)
    .bind(doctor_id)
    .bind(status.map(Status::as_str))
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    with_items(pool, found).await
}

/// A prescription that ended by itself.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Completed {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub record_id: Uuid,
}

/// Marks ACTIVE prescriptions valid only before `today` COMPLETED (those another instance
/// holds are skipped).
pub async fn complete_expired(
    conn: &mut PgConnection,
    today: NaiveDate,
) -> sqlx::Result<Vec<Completed>> {
    sqlx::query_as(
        "update prescriptions set status = 'COMPLETED', status_reason = 'the prescription ran its course', updated_at = now()
         where id in (select id from prescriptions where status = 'ACTIVE' and valid_until < $1
                      for update skip locked)
         returning id, patient_id, record_id",
    )
    .bind(today)
    .fetch_all(conn)
    .await
}

/// Ends an ACTIVE prescription; `None` if it is not active (any more).
pub async fn end(
    conn: &mut PgConnection,
    id: Uuid,
    status: Status,
    reason: &str,
) -> sqlx::Result<Option<PrescriptionRow>> {
    sqlx::query_as(&format!(
        "update prescriptions set status = $2, status_reason = $3, updated_at = now()
         where id = $1 and status = 'ACTIVE' returning {COLUMNS}"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .fetch_optional(conn)
    .await
}

/// A refill request as stored, with its prescription's patient and doctor.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefillRow {
    pub id: Uuid,
    pub prescription_id: Uuid,
    /// `REQUESTED`, `APPROVED` or `DECLINED`.
    pub status: String,
    pub reason: Option<String>,
    pub requested_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub patient_id: Uuid,
    pub doctor_id: Uuid,
}

const REFILL: &str = "r.id, r.prescription_id, r.status, r.reason, r.requested_at, r.decided_at, p.patient_id, p.doctor_id";

/// Asks for a refill; `None` when one is already waiting.
pub async fn request_refill(
    conn: &mut PgConnection,
    prescription_id: Uuid,
) -> sqlx::Result<Option<RefillRow>> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "insert into refills (id, prescription_id) values ($1, $2)
         on conflict (prescription_id) where status = 'REQUESTED' do nothing returning id",
    )
    .bind(Uuid::now_v7())
    .bind(prescription_id)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => find_refill(conn, id).await,
        None => Ok(None),
    }
}

pub async fn find_refill(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<RefillRow>> {
    sqlx::query_as(&format!(
        "select {REFILL} from refills r join prescriptions p on p.id = r.prescription_id where r.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The doctor's waiting refill requests, oldest first.
pub async fn queue(pool: &PgPool, doctor_id: Uuid) -> sqlx::Result<Vec<RefillRow>> {
    sqlx::query_as(&format!(
        "select {REFILL} from refills r join prescriptions p on p.id = r.prescription_id
         where p.doctor_id = $1 and r.status = 'REQUESTED' order by r.requested_at"
    ))
    .bind(doctor_id)
    .fetch_all(pool)
    .await
}

/// Approves a waiting refill, taking one of the prescription's refills; `None` if it is not
/// waiting or none is left (then the caller rolls back).
///
/// The decision is the guarded transition of the refill's own row, so that of any number of
/// concurrent decisions exactly one finds it `REQUESTED`: the others wait for its row lock
/// and then see it decided. (Guarding through a join instead lets a second approval through,
/// as PostgreSQL rechecks only the locked row of the updated table.)
pub async fn approve_refill(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<(RefillRow, i16)>> {
    let prescription_id: Option<Uuid> = sqlx::query_scalar(
        "update refills set status = 'APPROVED', decided_at = now(), updated_at = now()
         where id = $1 and status = 'REQUESTED'
         returning prescription_id",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(prescription_id) = prescription_id else {
        return Ok(None);
    };
    let left: Option<i16> = sqlx::query_scalar(
        "update prescriptions set refills_left = refills_left - 1, updated_at = now()
         where id = $1 and status = 'ACTIVE' and refills_left > 0
         returning refills_left",
    )
    .bind(prescription_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(left) = left else {
        return Ok(None);
    };
    Ok(find_refill(conn, id).await?.map(|refill| (refill, left)))
}

/// Declines a waiting refill; `None` if it is not waiting.
pub async fn decline_refill(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
) -> sqlx::Result<Option<RefillRow>> {
    let declined = sqlx::query(
        "update refills set status = 'DECLINED', reason = $2, decided_at = now(), updated_at = now()
         where id = $1 and status = 'REQUESTED'",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if declined == 0 {
        return Ok(None);
    }
    find_refill(conn, id).await
}

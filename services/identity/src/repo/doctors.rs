//! The public doctor directory: a read model over users, doctors and departments.

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::fields::Money;

/// A doctor as the public sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryEntry {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    pub specialization: String,
    pub years_of_experience: i32,
    pub department_id: Uuid,
    pub department_name: String,
    pub consultation_fee: Money,
}

/// A directory entry as the query reads it.
#[derive(sqlx::FromRow)]
struct DirectoryRow {
    id: Uuid,
    first_name: String,
    last_name: String,
    specialization: String,
    years_of_experience: i32,
    department_id: Uuid,
    department_name: String,
    fee_amount: i64,
    fee_currency: String,
}

impl From<DirectoryRow> for DirectoryEntry {
    fn from(row: DirectoryRow) -> Self {
        Self {
            id: row.id,
            first_name: row.first_name,
            last_name: row.last_name,
            specialization: row.specialization,
            years_of_experience: row.years_of_experience,
            department_id: row.department_id,
            department_name: row.department_name,
            consultation_fee: Money::stored(row.fee_amount, row.fee_currency),
        }
    }
}

const DIRECTORY: &str = "
select u.id, u.first_name, u.last_name, d.specialization, d.years_of_experience,
       d.department_id, dep.name as department_name, d.fee_amount, d.fee_currency
from users u
join doctors d on d.user_id = u.id
join departments dep on dep.id = d.department_id
where u.status = 'ACTIVE'";

/// Active doctors, optionally of one department and matching part of a specialization.
pub async fn list_directory(
    pool: &PgPool,
    department_id: Option<Uuid>,
    specialization: Option<&str>,
) -> anyhow::Result<Vec<DirectoryEntry>> {
    let pattern = specialization.map(polyclinic_db::contains_pattern);
    let rows: Vec<DirectoryRow> = sqlx::query_as(&format!(
        "{DIRECTORY}
           and ($1::uuid is null or d.department_id = $1)
           and ($2::text is null or d.specialization ilike $2)
         order by lower(u.last_name), lower(u.first_name), u.id"
    ))
    .bind(department_id)
    .bind(pattern)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(DirectoryEntry::from).collect())
}

/// One active doctor of the directory.
pub async fn find_in_directory(pool: &PgPool, id: Uuid) -> anyhow::Result<Option<DirectoryEntry>> {
    let row: Option<DirectoryRow> = sqlx::query_as(&format!("{DIRECTORY} and u.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(DirectoryEntry::from))
}

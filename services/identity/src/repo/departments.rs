//! Departments and rooms.

use polyclinic_db::violated_constraint;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::department::{Department, DepartmentError, Room};

fn map_error(err: sqlx::Error) -> DepartmentError {
    match violated_constraint(&err) {
        Some("departments_name_key") => DepartmentError::NameTaken,
        Some("rooms_name_key") => DepartmentError::RoomNameTaken,
        Some("rooms_department_fkey") => DepartmentError::UnknownDepartment,
        Some("doctors_department_fkey" | "nurses_department_fkey") => DepartmentError::NotEmpty,
        _ => DepartmentError::Unexpected(anyhow::Error::new(err).context("writing departments")),
    }
}

pub async fn insert_department(
    pool: &PgPool,
    name: &str,
    description: &str,
) -> Result<Department, DepartmentError> {
    sqlx::query_as(
        "insert into departments (id, name, description) values ($1, $2, $3)
         returning id, name, description, created_at, updated_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(description)
    .fetch_one(pool)
    .await
    .map_err(map_error)
}

pub async fn list_departments(pool: &PgPool) -> anyhow::Result<Vec<Department>> {
    Ok(sqlx::query_as(
        "select id, name, description, created_at, updated_at from departments order by lower(name)",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn find_department(pool: &PgPool, id: Uuid) -> Result<Department, DepartmentError> {
    sqlx::query_as(
        "select id, name, description, created_at, updated_at from departments where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(map_error)?
    .ok_or(DepartmentError::NotFound)
}

pub async fn update_department(
    pool: &PgPool,
    id: Uuid,
    name: Option<&str>,
    description: Option<&str>,
) -> Result<Department, DepartmentError> {
    sqlx::query_as(
        "update departments set name = coalesce($2, name), description = coalesce($3, description),
                updated_at = now()
         where id = $1
         returning id, name, description, created_at, updated_at",
    )
    .bind(id)
    .bind(name)
    .bind(description)
    .fetch_optional(pool)
    .await
    .map_err(map_error)?
    .ok_or(DepartmentError::NotFound)
}

/// Deletes an empty department; one with staff or rooms is refused, never cascaded.
pub async fn delete_department(pool: &PgPool, id: Uuid) -> Result<(), DepartmentError> {
    let mut tx = pool.begin().await.map_err(map_error)?;
    // Lock the row so no staff or room joins the department while we check.
    let exists: Option<Uuid> =
        sqlx::query_scalar("select id from departments where id = $1 for update")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?;
    if exists.is_none() {
        return Err(DepartmentError::NotFound);
    }
    let in_use: bool = sqlx::query_scalar(
        "select exists (select 1 from rooms where department_id = $1)
             or exists (select 1 from doctors where department_id = $1)
             or exists (select 1 from nurses where department_id = $1)",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .map_err(map_error)?;
    if in_use {
        return Err(DepartmentError::NotEmpty);
    }
    sqlx::query("delete from departments where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
    tx.commit().await.map_err(map_error)
}

pub async fn insert_room(
    pool: &PgPool,
    department_id: Uuid,
    name: &str,
) -> Result<Room, DepartmentError> {
    sqlx::query_as(
        "insert into rooms (id, department_id, name) values ($1, $2, $3)
         returning id, department_id, name, created_at, updated_at",
    )
    .bind(Uuid::now_v7())
    .bind(department_id)
    .bind(name)
    .fetch_one(pool)
    .await
    .map_err(map_error)
}

pub async fn list_rooms(pool: &PgPool, department_id: Option<Uuid>) -> anyhow::Result<Vec<Room>> {
    Ok(sqlx::query_as(
        "select id, department_id, name, created_at, updated_at from rooms
         where $1::uuid is null or department_id = $1
         order by lower(name)",
    )
    .bind(department_id)
    .fetch_all(pool)
    .await?)
}

pub async fn find_room(pool: &PgPool, id: Uuid) -> Result<Room, DepartmentError> {
    sqlx::query_as(
        "select id, department_id, name, created_at, updated_at from rooms where id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(map_error)?
    .ok_or(DepartmentError::RoomNotFound)
}

pub async fn update_room(
    pool: &PgPool,
    id: Uuid,
    name: Option<&str>,
    department_id: Option<Uuid>,
) -> Result<Room, DepartmentError> {
    sqlx::query_as(
        "update rooms set name = coalesce($2, name), department_id = coalesce($3, department_id),
                updated_at = now()
         where id = $1
         returning id, department_id, name, created_at, updated_at",
    )
    .bind(id)
    .bind(name)
    .bind(department_id)
    .fetch_optional(pool)
    .await
    .map_err(map_error)?
    .ok_or(DepartmentError::RoomNotFound)
}

pub async fn delete_room(pool: &PgPool, id: Uuid) -> Result<(), DepartmentError> {
    let deleted = sqlx::query("delete from rooms where id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map_err(map_error)?;
    if deleted.rows_affected() == 0 {
        return Err(DepartmentError::RoomNotFound);
    }
    Ok(())
}

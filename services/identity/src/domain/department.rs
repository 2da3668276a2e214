//! Departments and their rooms.

use chrono::{DateTime, Utc};
use polyclinic_http::ApiError;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Department {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Room {
    pub id: Uuid,
    pub department_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum DepartmentError {
    #[error("no such department")]
    NotFound,
    #[error("no such room")]
    RoomNotFound,
    #[error("a department with this name exists")]
    NameTaken,
    #[error("a room with this name exists")]
    RoomNameTaken,
    #[error("the department still has staff or rooms; move or remove them first")]
    NotEmpty,
    #[error("no such department")]
    UnknownDepartment,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<DepartmentError> for ApiError {
    fn from(err: DepartmentError) -> Self {
        match err {
            DepartmentError::NotFound => {
                ApiError::not_found("department_not_found", err.to_string())
            }
            DepartmentError::RoomNotFound => ApiError::not_found("room_not_found", err.to_string()),
            DepartmentError::NameTaken => {
                ApiError::conflict("department_name_taken", err.to_string())
            }
            DepartmentError::RoomNameTaken => {
                ApiError::conflict("room_name_taken", err.to_string())
            }
            DepartmentError::NotEmpty => {
                ApiError::conflict("department_not_empty", err.to_string())
            }
            DepartmentError::UnknownDepartment => {
                ApiError::not_found("unknown_department", err.to_string())
            }
            DepartmentError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

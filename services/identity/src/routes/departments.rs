//! `/api/departments` and `/api/rooms`: admins write, staff read.

use axum::extract::State;
use axum::http::StatusCode;
use polyclinic_auth::Require;
use polyclinic_auth::rules::{Admin, Staff, StaffOr};
use polyclinic_auth::scopes::RoomsRead;
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails, Violations};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::domain::department::{Department, Room};
use crate::domain::fields::{Description, RoomName, Title};
use crate::domain::user::{Profile, User, UserRole};
use crate::repo::departments as repo;
use crate::repo::users::{self, UserFilter};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_department, list_departments))
        .routes(routes!(get_department, patch_department, delete_department))
        .routes(routes!(department_staff))
        .routes(routes!(department_rooms))
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(get_room, patch_room, delete_room))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDepartment {
    #[schema(value_type = Title)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Description)]
    pub description: String,
}

/// Create a department.
#[utoipa::path(post, path = "/api/departments", tag = "departments", request_body = NewDepartment,
    security(("bearer" = [])),
    responses((status = 201, body = Department), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn create_department(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Json(body): Json<NewDepartment>,
) -> Result<(StatusCode, Json<Department>), ApiError> {
    let mut violations = Violations::new();
    let name = violations.check("name", Title::parse(&body.name));
    let description = violations.check("description", Description::parse(&body.description));
    let (Some(name), Some(description)) = (name, description) else {
        return Err(violations.into_error());
    };
    let department =
        repo::insert_department(&state.pool, name.as_str(), description.as_str()).await?;
    Ok((StatusCode::CREATED, Json(department)))
}

/// Every department.
#[utoipa::path(get, path = "/api/departments", tag = "departments", security(("bearer" = [])),
    responses((status = 200, body = Vec<Department>)))]
async fn list_departments(
    State(state): State<AppState>,
    _staff: Require<Staff>,
) -> Result<Json<Vec<Department>>, ApiError> {
    Ok(Json(repo::list_departments(&state.pool).await?))
}

/// One department.
#[utoipa::path(get, path = "/api/departments/{id}", tag = "departments", security(("bearer" = [])),
    responses((status = 200, body = Department), (status = 404, body = ProblemDetails)))]
async fn get_department(
    State(state): State<AppState>,
    _staff: Require<StaffOr<RoomsRead>>,
    Path(id): Path<Uuid>,
) -> Result<Json<Department>, ApiError> {
    Ok(Json(repo::find_department(&state.pool, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DepartmentPatch {
    #[schema(value_type = Option<Title>)]
    pub name: Option<String>,
    #[schema(value_type = Option<Description>)]
    pub description: Option<String>,
}

/// Rename or describe a department.
#[utoipa::path(patch, path = "/api/departments/{id}", tag = "departments", request_body = DepartmentPatch,
    security(("bearer" = [])),
    responses((status = 200, body = Department), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn patch_department(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(id): Path<Uuid>,
    Json(body): Json<DepartmentPatch>,
) -> Result<Json<Department>, ApiError> {
    let mut violations = Violations::new();
    let name = violations.check_opt("name", body.name.as_deref().map(Title::parse));
    let description = violations.check_opt(
        "description",
        body.description.as_deref().map(Description::parse),
    );
    let (Some(name), Some(description)) = (name, description) else {
        return Err(violations.into_error());
    };
    let department = repo::update_department(
        &state.pool,
        id,
        name.as_ref().map(Title::as_str),
        description.as_ref().map(Description::as_str),
    )
    .await?;
    Ok(Json(department))
}

/// Delete an empty department; one with staff or rooms is refused with 409.
#[utoipa::path(delete, path = "/api/departments/{id}", tag = "departments", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn delete_department(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    repo::delete_department(&state.pool, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A doctor or nurse as their colleagues see them: who they are and what they do, never
/// their contact data, address or birth date (admins read those through `/api/users`).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct StaffMember {
    pub id: Uuid,
    pub role: UserRole,
    pub first_name: String,
    pub last_name: String,
    /// Doctors only.
    pub specialization: Option<String>,
    pub department_id: Uuid,
}

impl StaffMember {
    fn of(user: User) -> Option<Self> {
        let (specialization, department_id) = match user.profile {
            Profile::Doctor(doctor) => (Some(doctor.specialization), doctor.department_id),
            Profile::Nurse(nurse) => (None, nurse.department_id),
            Profile::Admin {} | Profile::Patient(_) => return None,
        };
        Some(StaffMember {
            id: user.id,
            role: user.role,
            first_name: user.first_name,
            last_name: user.last_name,
            specialization,
            department_id,
        })
    }
}

/// The doctors and nurses of a department.
#[utoipa::path(get, path = "/api/departments/{id}/staff", tag = "departments", security(("bearer" = [])),
    responses((status = 200, body = Vec<StaffMember>), (status = 404, body = ProblemDetails)))]
async fn department_staff(
    State(state): State<AppState>,
    _staff: Require<Staff>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<StaffMember>>, ApiError> {
    repo::find_department(&state.pool, id).await?;
    let filter = UserFilter {
        department_id: Some(id),
        limit: 1000,
        ..UserFilter::default()
    };
    let staff = users::list_users(&state.pool, &filter).await?;
    Ok(Json(
        staff.into_iter().filter_map(StaffMember::of).collect(),
    ))
}

/// The rooms of a department.
#[utoipa::path(get, path = "/api/departments/{id}/rooms", tag = "departments", security(("bearer" = [])),
    responses((status = 200, body = Vec<Room>), (status = 404, body = ProblemDetails)))]
async fn department_rooms(
    State(state): State<AppState>,
    _staff: Require<Staff>,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Room>>, ApiError> {
    repo::find_department(&state.pool, id).await?;
    Ok(Json(repo::list_rooms(&state.pool, Some(id)).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    pub department_id: Uuid,
    #[schema(value_type = RoomName)]
    pub name: String,
}

/// Create a room in a department.
#[utoipa::path(post, path = "/api/rooms", tag = "rooms", request_body = NewRoom, security(("bearer" = [])),
    responses((status = 201, body = Room), (status = 409, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn create_room(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Json(body): Json<NewRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    let name = RoomName::parse(&body.name)
        .map_err(|err| ApiError::unprocessable("validation_failed", format!("name: {err}")))?;
    let room = repo::insert_room(&state.pool, body.department_id, name.as_str()).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomQuery {
    pub department_id: Option<Uuid>,
}

/// Rooms, optionally of one department.
#[utoipa::path(get, path = "/api/rooms", tag = "rooms", params(RoomQuery), security(("bearer" = [])),
    responses((status = 200, body = Vec<Room>)))]
async fn list_rooms(
    State(state): State<AppState>,
    _staff: Require<Staff>,
    Query(query): Query<RoomQuery>,
) -> Result<Json<Vec<Room>>, ApiError> {
    Ok(Json(
        repo::list_rooms(&state.pool, query.department_id).await?,
    ))
}

/// One room.
#[utoipa::path(get, path = "/api/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    responses((status = 200, body = Room), (status = 404, body = ProblemDetails)))]
async fn get_room(
    State(state): State<AppState>,
    _staff: Require<StaffOr<RoomsRead>>,
    Path(id): Path<Uuid>,
) -> Result<Json<Room>, ApiError> {
    Ok(Json(repo::find_room(&state.pool, id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomPatch {
    #[schema(value_type = Option<RoomName>)]
    pub name: Option<String>,
    pub department_id: Option<Uuid>,
}

/// Rename a room or move it to another department.
#[utoipa::path(patch, path = "/api/rooms/{id}", tag = "rooms", request_body = RoomPatch, security(("bearer" = [])),
    responses((status = 200, body = Room), (status = 404, body = ProblemDetails), (status = 422, body = ProblemDetails)))]
async fn patch_room(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(id): Path<Uuid>,
    Json(body): Json<RoomPatch>,
) -> Result<Json<Room>, ApiError> {
    let name = body
        .name
        .as_deref()
        .map(RoomName::parse)
        .transpose()
        .map_err(|err| ApiError::unprocessable("validation_failed", format!("name: {err}")))?;
    let room = repo::update_room(
        &state.pool,
        id,
        name.as_ref().map(RoomName::as_str),
        body.department_id,
    )
    .await?;
    Ok(Json(room))
}

/// Delete a room.
#[utoipa::path(delete, path = "/api/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = ProblemDetails)))]
async fn delete_room(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    repo::delete_room(&state.pool, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

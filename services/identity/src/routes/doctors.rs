//! `/api/doctors`: the public directory. Names, specialization, department and fee; never
//! contact data.

use axum::extract::State;
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::repo::doctors::{self, DirectoryEntry};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_doctors))
        .routes(routes!(get_doctor))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    pub department_id: Option<Uuid>,
    /// Part of the specialization, case-insensitive.
    pub specialization: Option<String>,
}

/// The doctor directory.
#[utoipa::path(get, path = "/api/doctors", tag = "doctors", params(DirectoryQuery),
    responses((status = 200, body = Vec<DirectoryEntry>)))]
async fn list_doctors(
    State(state): State<AppState>,
    Query(query): Query<DirectoryQuery>,
) -> Result<Json<Vec<DirectoryEntry>>, ApiError> {
    let specialization = query
        .specialization
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty());
    Ok(Json(
        doctors::list_directory(&state.pool, query.department_id, specialization).await?,
    ))
}

/// One doctor of the directory.
#[utoipa::path(get, path = "/api/doctors/{id}", tag = "doctors",
    responses((status = 200, body = DirectoryEntry), (status = 404, body = ProblemDetails)))]
async fn get_doctor(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<Json<DirectoryEntry>, ApiError> {
    doctors::find_in_directory(&state.pool, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("doctor_not_found", "No such doctor."))
}

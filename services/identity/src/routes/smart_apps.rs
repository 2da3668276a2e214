//! `/api/smart`: the SMART apps administrators register (and disable, or cut off), and the
//! apps a person allowed (and withdraws).

use axum::extract::State;
use axum::http::StatusCode;
use polyclinic_auth::Require;
use polyclinic_auth::rules::{Admin, Person};
use polyclinic_http::extract::{Json, Path};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::accounts::smart::{self, AppRequest, SmartError};
use crate::repo::smart::{self as repo, App, Grant};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_app, list_apps))
        .routes(routes!(get_app))
        .routes(routes!(disable_app))
        .routes(routes!(revoke_app_grants))
        .routes(routes!(my_grants))
        .routes(routes!(revoke_grant))
}

impl From<SmartError> for ApiError {
    fn from(err: SmartError) -> Self {
        let detail = err.to_string();
        match err {
            SmartError::Invalid(message) => ApiError::unprocessable("validation_failed", message),
            SmartError::ClientIdTaken => ApiError::conflict("client_id_taken", detail),
            SmartError::AppNotFound => ApiError::not_found("app_not_found", detail),
            SmartError::GrantNotFound => ApiError::not_found("grant_not_found", detail),
            SmartError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

/// A registered app, with its secret the one time it is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    #[serde(flatten)]
    pub app: App,
    /// A confidential app's client secret: shown once, kept only as a digest.
    pub client_secret: Option<String>,
}

/// Registers a SMART app (admin).
#[utoipa::path(post, path = "/api/smart/apps", tag = "smart", request_body = AppRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Registered), (status = 409, body = ProblemDetails),
        (status = 422, body = ProblemDetails)))]
async fn register_app(
    State(state): State<AppState>,
    admin: Require<Admin>,
    Json(request): Json<AppRequest>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let (app, client_secret) = smart::register(&state, admin.user_id()?, &request).await?;
    Ok((StatusCode::CREATED, Json(Registered { app, client_secret })))
}

/// Every registered app (admin).
#[utoipa::path(get, path = "/api/smart/apps", tag = "smart", security(("bearer" = [])),
    responses((status = 200, body = Vec<App>)))]
async fn list_apps(
    State(state): State<AppState>,
    _admin: Require<Admin>,
) -> Result<Json<Vec<App>>, ApiError> {
    Ok(Json(repo::list_apps(&state.pool).await?))
}

/// One app (admin).
#[utoipa::path(get, path = "/api/smart/apps/{client_id}", tag = "smart", security(("bearer" = [])),
    responses((status = 200, body = App), (status = 404, body = ProblemDetails)))]
async fn get_app(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(client_id): Path<String>,
) -> Result<Json<App>, ApiError> {
    repo::find_app(&state.pool, &client_id)
        .await?
        .map(Json)
        .ok_or_else(|| SmartError::AppNotFound.into())
}

/// How many grants were revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub revoked_grants: usize,
}

/// Disables an app: it can no longer sign anyone in, and every grant it holds is revoked
/// with the logins they held (admin). The app stays on record.
#[utoipa::path(post, path = "/api/smart/apps/{client_id}/disable", tag = "smart", security(("bearer" = [])),
    responses((status = 200, body = Revoked), (status = 404, body = ProblemDetails)))]
async fn disable_app(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(client_id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let revoked_grants = smart::revoke_app(&state, &client_id, true).await?;
    Ok(Json(Revoked { revoked_grants }))
}

/// Revokes every grant of an app, with the logins they held; the app stays registered
/// and people may allow it again (admin).
#[utoipa::path(post, path = "/api/smart/apps/{client_id}/revoke-grants", tag = "smart",
    security(("bearer" = [])),
    responses((status = 200, body = Revoked), (status = 404, body = ProblemDetails)))]
async fn revoke_app_grants(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(client_id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let revoked_grants = smart::revoke_app(&state, &client_id, false).await?;
    Ok(Json(Revoked { revoked_grants }))
}

/// The apps the caller allowed, newest first.
#[utoipa::path(get, path = "/api/smart/grants/mine", tag = "smart", security(("bearer" = [])),
    responses((status = 200, body = Vec<Grant>)))]
async fn my_grants(
    State(state): State<AppState>,
    caller: Require<Person>,
) -> Result<Json<Vec<Grant>>, ApiError> {
    Ok(Json(smart::grants_of(&state, caller.user_id()?).await?))
}

/// Withdraws an app's access: the grant and every login the app held through it end.
#[utoipa::path(delete, path = "/api/smart/grants/{id}", tag = "smart", security(("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 404, body = ProblemDetails)))]
async fn revoke_grant(
    State(state): State<AppState>,
    caller: Require<Person>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    smart::revoke_grant(&state, caller.user_id()?, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! `/api/audit`: the admins' search of the trail.

use axum::extract::State;
use chrono::{DateTime, Utc};
use polyclinic_auth::rules::Admin;
use polyclinic_http::extract::{Json, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, Page, page_limit};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::repo::audit::{self, AuditRow, Outcome, Search};
use crate::routes::Asking;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_audit))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    pub patient_id: Option<Uuid>,
    /// A user id (or a service client).
    pub actor_id: Option<String>,
    /// `record.read`, `entry.write`, `entry.read`, `prescription.write`, `prescription.read`,
    /// `prescription.list`, `refill.request`, `refill.list`, `refill.decide`.
    pub action: Option<String>,
    /// `allowed` or `denied`.
    pub outcome: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// 1 to 500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    pub cursor: Option<i64>,
}

/// The audit trail, newest first (admin). Each search is a row of the trail itself
/// (`audit.search`, with the patient searched for, if any).
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<AuditRow>)))]
async fn search_audit(
    State(state): State<AppState>,
    asking: Asking<Admin>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Page<AuditRow>>, ApiError> {
    let limit = page_limit(query.limit, 100, 500)?;
    let viewer = asking.viewer();
    state
        .audit(
            &viewer,
            "audit.search",
            query.patient_id,
            None,
            Outcome::Allowed,
        )
        .await?;
    let search = Search {
        patient_id: query.patient_id,
        actor_id: query.actor_id.as_deref(),
        action: query.action.as_deref(),
        outcome: query.outcome.as_deref(),
        from: query.from,
        to: query.to,
        before: query.cursor,
    };
    let rows = audit::search(&state.pool, &search, limit + 1).await?;
    Ok(Json(Page::from_overfetch(rows, limit, |row| {
        row.id.to_string()
    })))
}

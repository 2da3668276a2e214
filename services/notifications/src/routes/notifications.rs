//! `/api/notifications`: the recipient's inbox, and the admins' view of every message with
//! resending of failed ones.

use axum::extract::State;
use polyclinic_auth::Require;
use polyclinic_auth::rules::{Admin, Person};
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, Page, ProblemDetails, page_limit};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::repo::notifications::{self, Delivery, Filter, InboxItem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_notifications))
        .routes(routes!(mark_read))
        .routes(routes!(list_notifications))
        .routes(routes!(resend))
}

fn not_found() -> ApiError {
    ApiError::not_found("notification_not_found", "No such notification of yours.")
}

fn cursor(text: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    text.map(|text| {
        Uuid::parse_str(text)
            .map_err(|_| ApiError::bad_request("invalid_cursor", "Unknown cursor."))
    })
    .transpose()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Only unread ones.
    pub unread: Option<bool>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<Uuid>)]
    pub cursor: Option<String>,
}

/// The caller's inbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct Inbox {
    pub items: Vec<InboxItem>,
    pub next_cursor: Option<String>,
    /// Unread messages in all.
    pub unread_count: i64,
}

/// The caller's notifications, newest first, with the number still unread.
#[utoipa::path(get, path = "/api/notifications/me", tag = "notifications", params(InboxQuery),
    security(("bearer" = [])), responses((status = 200, body = Inbox)))]
async fn my_notifications(
    State(state): State<AppState>,
    caller: Require<Person>,
    Query(query): Query<InboxQuery>,
) -> Result<Json<Inbox>, ApiError> {
    let me = caller.user_id()?;
    let limit = page_limit(query.limit, 50, 100)?;
    let items = notifications::inbox(
        &state.pool,
        me,
        query.unread.unwrap_or(false),
        cursor(query.cursor.as_deref())?,
        limit + 1,
    )
    .await?;
    let page = Page::from_overfetch(items, limit, |item| item.id.to_string());
    Ok(Json(Inbox {
        items: page.items,
        next_cursor: page.next_cursor,
        unread_count: notifications::unread_count(&state.pool, me).await?,
    }))
}

/// Marks one of the caller's notifications read; anyone else's is 404.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications",
    security(("bearer" = [])), responses((status = 200, body = InboxItem), (status = 404, body = ProblemDetails)))]
async fn mark_read(
    State(state): State<AppState>,
    caller: Require<Person>,
    Path(id): Path<Uuid>,
) -> Result<Json<InboxItem>, ApiError> {
    notifications::mark_read(&state.pool, caller.user_id()?, id)
        .await?
        .map(Json)
        .ok_or_else(not_found)
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `PENDING`, `SENT` or `FAILED`.
    #[param(pattern = "^(PENDING|SENT|FAILED)$")]
    pub status: Option<String>,
    pub recipient_id: Option<Uuid>,
    pub template: Option<String>,
    pub event_id: Option<Uuid>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<Uuid>)]
    pub cursor: Option<String>,
}

/// Every message with how its delivery went, newest first (admin).
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(DeliveryQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Delivery>)))]
async fn list_notifications(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Query(query): Query<DeliveryQuery>,
) -> Result<Json<Page<Delivery>>, ApiError> {
    let status = query.status.clone();
    if status
        .as_deref()
        .is_some_and(|status| !["PENDING", "SENT", "FAILED"].contains(&status))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "status: PENDING, SENT or FAILED",
        ));
    }
    let limit = page_limit(query.limit, 50, 100)?;
    let filter = Filter {
        status: status.as_deref(),
        recipient_id: query.recipient_id,
        template: query.template.as_deref(),
        event_id: query.event_id,
        before: cursor(query.cursor.as_deref())?,
    };
    let items = notifications::list(&state.pool, &filter, limit + 1).await?;
    Ok(Json(Page::from_overfetch(items, limit, |item| {
        item.id.to_string()
    })))
}

/// Sends a FAILED message again, its attempts counted afresh (admin).
#[utoipa::path(post, path = "/api/notifications/{id}/resend", tag = "notifications",
    security(("bearer" = [])),
    responses((status = 200, body = Delivery), (status = 404, body = ProblemDetails), (status = 409, body = ProblemDetails)))]
async fn resend(
    State(state): State<AppState>,
    _admin: Require<Admin>,
    Path(id): Path<Uuid>,
) -> Result<Json<Delivery>, ApiError> {
    match notifications::resend(&state.pool, id).await? {
        None => Err(ApiError::not_found(
            "notification_not_found",
            "No such notification.",
        )),
        Some(Err(status)) => Err(ApiError::conflict(
            "notification_state",
            format!("the notification is {status}; only a FAILED one is resent"),
        )),
        Some(Ok(delivery)) => Ok(Json(delivery)),
    }
}

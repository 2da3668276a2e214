//! `/api/calendar/feed`: a person's private calendar feed (made, shown, rotated, ended), and
//! `/calendar/{secret}.ics`, the feed itself, for calendar applications to subscribe to.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use polyclinic_auth::Require;
use polyclinic_auth::rules::Person;
use polyclinic_http::ApiError;
use polyclinic_http::ProblemDetails;
use polyclinic_http::extract::{Json, Path};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::calendar::feeds::{self, FeedError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_feed, create_feed, remove_feed))
        .routes(routes!(read_feed))
}

/// Whether the caller has a calendar feed. Its URL is shown only when it is made.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedStatus {
    pub active: bool,
    pub created_at: Option<DateTime<Utc>>,
    /// When a calendar last fetched it.
    pub last_read_at: Option<DateTime<Utc>>,
}

/// A feed just made: its URL, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedCreated {
    /// The private address to subscribe to (`webcal:` works as well as `https:`). Anyone
    /// with it can read the times and places of the caller's visits: keep it private.
    pub url: String,
    pub created_at: DateTime<Utc>,
}

/// The caller's calendar feed, if they have one.
#[utoipa::path(get, path = "/api/calendar/feed", tag = "calendar", security(("bearer" = [])),
    responses((status = 200, body = FeedStatus)))]
async fn show_feed(
    State(state): State<AppState>,
    caller: Require<Person>,
) -> Result<Json<FeedStatus>, ApiError> {
    let feed = feeds::find(&state.pool, caller.user_id()?).await?;
    Ok(Json(FeedStatus {
        active: feed.is_some(),
        created_at: feed.as_ref().map(|feed| feed.created_at),
        last_read_at: feed.and_then(|feed| feed.last_read_at),
    }))
}

/// Makes the caller a private calendar feed of their appointments, replacing the one they
/// had (whose URL stops working at once). The URL is in this answer only.
#[utoipa::path(post, path = "/api/calendar/feed", tag = "calendar", security(("bearer" = [])),
    responses((status = 201, body = FeedCreated)))]
async fn create_feed(
    State(state): State<AppState>,
    caller: Require<Person>,
) -> Result<(StatusCode, Json<FeedCreated>), ApiError> {
    let (secret, created_at) = feeds::create(&state.pool, caller.user_id()?).await?;
    let url = format!("{}/calendar/{secret}.ics", state.public_url);
    Ok((StatusCode::CREATED, Json(FeedCreated { url, created_at })))
}

/// Ends the caller's calendar feed: its URL stops working. Ending none is not an error.
#[utoipa::path(delete, path = "/api/calendar/feed", tag = "calendar", security(("bearer" = [])),
    responses((status = 204)))]
async fn remove_feed(
    State(state): State<AppState>,
    caller: Require<Person>,
) -> Result<StatusCode, ApiError> {
    feeds::remove(&state.pool, caller.user_id()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A calendar feed (iCalendar, RFC 5545), by the secret in its URL: the owner's visits from
/// a month ago to a year ahead, with names, times and places only. Anyone with the URL may
/// read it; an unknown, replaced or ended one answers 404.
#[utoipa::path(get, path = "/calendar/{file}", tag = "calendar",
    params(("file" = String, Path, description = "The feed's secret followed by `.ics`.")),
    responses(
        (status = 200, content_type = "text/calendar", body = String, description = "The feed."),
        (status = 404, body = ProblemDetails), (status = 503, body = ProblemDetails)))]
async fn read_feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("calendar_feed_not_found", "No such calendar feed.");
    let secret = file.strip_suffix(".ics").ok_or_else(not_found)?;
    let text = match feeds::serve(&state.pool, &state.mail, secret, Utc::now()).await {
        Ok(text) => text,
        Err(FeedError::NotFound) => return Err(not_found()),
        Err(FeedError::Unexpected(err)) => {
            tracing::warn!(error = %format!("{err:#}"), "a calendar feed could not be read");
            return Err(ApiError::dependency_unavailable(
                "The calendar could not be read just now; please try again.",
            ));
        }
    };
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    // The URL is the credential: no shared cache may keep the answer.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("inline; filename=\"appointments.ics\""),
    );
    Ok(response)
}

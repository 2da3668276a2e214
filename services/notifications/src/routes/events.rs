//! `/api/events`: the admins' event log and dead letters, across every service.
//!
//! Events come from this service's own record of every topic; each consumer's outcome, and
//! dead letters, come from the service that consumed them (its `/internal/events` routes),
//! asked with the admin's own token.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use polyclinic_auth::Require;
use polyclinic_auth::rules::Admin;
use polyclinic_client::{CallContext, ClientError};
use polyclinic_events::api::{Outcome, ServiceDeadLetter};
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, Page, ProblemDetails, RequestId, page_limit};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::repo::events::{self, EventRow};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_dead_letter))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// CloudEvents type, such as `polyclinic.identity.user.registered.v1`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// The aggregate id.
    pub subject: Option<String>,
    /// The request id that caused the event.
    pub correlation_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// 1 to 200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(value_type = Option<Uuid>)]
    pub cursor: Option<String>,
}

/// A consumer's outcome, and the service it runs in.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerOutcome {
    pub service: String,
    pub consumer: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub handled_at: DateTime<Utc>,
}

/// An event of the log with what each consumer made of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedEvent {
    pub event_id: Uuid,
    pub topic: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: String,
    pub source: String,
    pub correlation_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub outcomes: Vec<ConsumerOutcome>,
}

impl From<EventRow> for LoggedEvent {
    fn from(row: EventRow) -> Self {
        Self {
            event_id: row.event_id,
            topic: row.topic,
            event_type: row.event_type,
            subject: row.subject,
            source: row.source,
            correlation_id: row.correlation_id,
            occurred_at: row.occurred_at,
            outcomes: Vec::new(),
        }
    }
}

fn context<'a>(admin: &'a Require<Admin>, request_id: &'a RequestId) -> CallContext<'a> {
    CallContext {
        bearer: Some(admin.bearer()),
        request_id: Some(request_id.as_str()),
        trace: Default::default(),
    }
}

/// Events, newest first, with each consumer's outcome.
#[utoipa::path(get, path = "/api/events", tag = "events", params(EventQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<LoggedEvent>), (status = 403, body = ProblemDetails)))]
async fn list_events(
    State(state): State<AppState>,
    admin: Require<Admin>,
    request_id: RequestId,
    Query(query): Query<EventQuery>,
) -> Result<Json<Page<LoggedEvent>>, ApiError> {
    let limit = page_limit(query.limit, 50, 200)?;
    let before = match query.cursor.as_deref() {
        Some(cursor) => Some(
            Uuid::parse_str(cursor)
                .map_err(|_| ApiError::bad_request("invalid_cursor", "Unknown cursor."))?,
        ),
        None => None,
    };
    let filter = events::Filter {
        event_type: query.event_type.as_deref(),
        subject: query.subject.as_deref(),
        correlation_id: query.correlation_id.as_deref(),
        from: query.from,
        to: query.to,
        before,
    };
    let mut events: Vec<LoggedEvent> = events::list_events(&state.pool, filter, limit + 1)
        .await?
        .into_iter()
        .map(LoggedEvent::from)
        .collect();

    let ids: Vec<String> = events
        .iter()
        .map(|event| event.event_id.to_string())
        .collect();
    let mut by_event: HashMap<Uuid, Vec<ConsumerOutcome>> = HashMap::new();
    if !ids.is_empty() {
        for (service, url) in state.services.iter() {
            let url = format!("{url}/internal/events/outcomes?ids={}", ids.join(","));
            match state
                .client
                .get_json::<Vec<Outcome>>(&url, context(&admin, &request_id))
                .await
            {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        by_event
                            .entry(outcome.event_id)
                            .or_default()
                            .push(ConsumerOutcome {
                                service: service.clone(),
                                consumer: outcome.consumer,
                                outcome: outcome.outcome,
                                detail: outcome.detail,
                                handled_at: outcome.handled_at,
                            });
                    }
                }
                // A service without consumers yet does not serve the route.
                Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {}
                Err(err) => {
                    tracing::warn!(%service, error = %err, "could not read a service's consumer outcomes")
                }
            }
        }
    }
    for event in &mut events {
        event.outcomes = by_event.remove(&event.event_id).unwrap_or_default();
    }
    Ok(Json(Page::from_overfetch(events, limit, |event| {
        event.event_id.to_string()
    })))
}

/// Dead letters of every reachable service, and the services that could not be asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetters {
    pub items: Vec<ServiceDeadLetter>,
    /// Services that did not answer; their dead letters are not in `items`.
    pub unreachable: Vec<String>,
}

/// Every service's dead letters, newest first.
#[utoipa::path(get, path = "/api/events/dead-letters", tag = "events", security(("bearer" = [])),
    responses((status = 200, body = DeadLetters), (status = 403, body = ProblemDetails)))]
async fn list_dead_letters(
    State(state): State<AppState>,
    admin: Require<Admin>,
    request_id: RequestId,
) -> Result<Json<DeadLetters>, ApiError> {
    let mut letters = Vec::new();
    let mut unreachable = Vec::new();
    for (service, url) in state.services.iter() {
        let url = format!("{url}/internal/events/dead-letters");
        match state
            .client
            .get_json::<Vec<ServiceDeadLetter>>(&url, context(&admin, &request_id))
            .await
        {
            Ok(found) => letters.extend(found),
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {}
            Err(err) => {
                tracing::warn!(%service, error = %err, "could not read a service's dead letters");
                unreachable.push(service.clone());
            }
        }
    }
    letters.sort_by_key(|letter| std::cmp::Reverse(letter.letter.created_at));
    Ok(Json(DeadLetters {
        items: letters,
        unreachable,
    }))
}

/// Replays a dead letter in the service that holds it.
#[utoipa::path(post, path = "/api/events/dead-letters/{id}/replay", tag = "events", security(("bearer" = [])),
    responses((status = 204, description = "Handled this time"), (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails)))]
async fn replay_dead_letter(
    State(state): State<AppState>,
    admin: Require<Admin>,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    for (service, url) in state.services.iter() {
        let url = format!("{url}/internal/events/dead-letters/{id}/replay");
        match state
            .client
            .post(&url, context(&admin, &request_id), None)
            .await
        {
            Ok(_) => return Ok(StatusCode::NO_CONTENT),
            Err(ClientError::Status { status, body, .. })
                if status == StatusCode::UNPROCESSABLE_ENTITY =>
            {
                let detail = body["detail"]
                    .as_str()
                    .unwrap_or("The handler failed again.")
                    .to_owned();
                return Err(ApiError::unprocessable("replay_failed", detail));
            }
            Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {}
            Err(err) => tracing::warn!(%service, error = %err, "could not ask a service to replay"),
        }
    }
    Err(ApiError::not_found(
        "dead_letter_not_found",
        "No open dead letter with this id.",
    ))
}

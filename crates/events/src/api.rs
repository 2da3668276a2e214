//! The backbone's internal routes, served by every service with a schema: its consumers'
//! outcomes per event, its dead letters, and their replay. Admins and platform services only;
//! the notifications service gathers them into the event log (`/api/events`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use polyclinic_auth::rules::AdminOr;
use polyclinic_auth::scopes::{EventsRead, EventsReplay};
use polyclinic_auth::{Require, Verifier};
use polyclinic_http::extract::{Json, Path, Query};
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ProblemDetails};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{Consumer, DeadLetter, list_dead_letters, replay_dead_letter};

/// A consumer whose dead letters can be replayed.
pub trait Replay: Send + Sync {
    #[allow(
        clippy::type_complexity,
        reason = "a boxed future of the replay's outcome"
    )]
    fn replay(
        &self,
        id: Uuid,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Option<Result<(), String>>>> + Send + '_>>;
}

impl<S: Send + Sync + 'static> Replay for Consumer<S> {
    fn replay(
        &self,
        id: Uuid,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<Option<Result<(), String>>>> + Send + '_>> {
        Box::pin(replay_dead_letter(self, id))
    }
}

/// What the internal routes need.
#[derive(Clone)]
pub struct EventsApi {
    pub service: &'static str,
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub consumers: Arc<Vec<Arc<dyn Replay>>>,
}

impl FromRef<EventsApi> for Arc<Verifier> {
    fn from_ref(api: &EventsApi) -> Self {
        api.verifier.clone()
    }
}

fn routes() -> OpenApiRouter<EventsApi> {
    OpenApiRouter::new()
        .routes(routes!(outcomes))
        .routes(routes!(dead_letters))
        .routes(routes!(replay))
}

/// The internal routes, state applied.
pub fn internal_routes(api: EventsApi) -> OpenApiRouter {
    routes().with_state(api)
}

/// The internal routes' OpenAPI paths, for a service document built without state.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutcomeQuery {
    /// Event ids, comma-separated (at most 500).
    pub ids: String,
}

/// One consumer's outcome for one event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Outcome {
    pub event_id: Uuid,
    pub consumer: String,
    /// `handled`, `skipped`, `dead_lettered` or `replayed`.
    pub outcome: String,
    pub detail: Option<String>,
    pub handled_at: DateTime<Utc>,
}

/// This service's consumers' outcomes for the given events.
#[utoipa::path(get, path = "/internal/events/outcomes", tag = "events", params(OutcomeQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<Outcome>), (status = 400, body = ProblemDetails)))]
async fn outcomes(
    State(api): State<EventsApi>,
    _caller: Require<AdminOr<EventsRead>>,
    Query(query): Query<OutcomeQuery>,
) -> Result<Json<Vec<Outcome>>, ApiError> {
    let ids = query
        .ids
        .split(',')
        .filter(|id| !id.trim().is_empty())
        .map(|id| Uuid::parse_str(id.trim()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::bad_request("invalid_query", "ids: comma-separated UUIDs"))?;
    if ids.len() > 500 {
        return Err(ApiError::bad_request("invalid_query", "ids: at most 500"));
    }
    let found = sqlx::query_as(
        "select event_id, consumer, outcome, detail, handled_at from inbox where event_id = any($1)
         order by handled_at",
    )
    .bind(&ids)
    .fetch_all(&api.pool)
    .await
    .map_err(anyhow::Error::from)?;
    Ok(Json(found))
}

/// A dead letter and the service that holds it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ServiceDeadLetter {
    pub service: String,
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// This service's dead letters, newest first.
#[utoipa::path(get, path = "/internal/events/dead-letters", tag = "events", security(("bearer" = [])),
    responses((status = 200, body = Vec<ServiceDeadLetter>)))]
async fn dead_letters(
    State(api): State<EventsApi>,
    _caller: Require<AdminOr<EventsRead>>,
) -> Result<Json<Vec<ServiceDeadLetter>>, ApiError> {
    let letters = list_dead_letters(&api.pool, false).await?;
    Ok(Json(
        letters
            .into_iter()
            .map(|letter| ServiceDeadLetter {
                service: api.service.to_owned(),
                letter,
            })
            .collect(),
    ))
}

/// Runs a dead letter's handler again.
#[utoipa::path(post, path = "/internal/events/dead-letters/{id}/replay", tag = "events", security(("bearer" = [])),
    responses((status = 204, description = "Handled this time"), (status = 404, body = ProblemDetails),
        (status = 422, body = ProblemDetails)))]
async fn replay(
    State(api): State<EventsApi>,
    _caller: Require<AdminOr<EventsReplay>>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    for consumer in api.consumers.iter() {
        match consumer.replay(id).await? {
            Some(Ok(())) => return Ok(StatusCode::NO_CONTENT),
            Some(Err(error)) => {
                return Err(ApiError::unprocessable(
                    "replay_failed",
                    format!("The handler failed again: {error}"),
                ));
            }
            None => {}
        }
    }
    Err(ApiError::not_found(
        "dead_letter_not_found",
        "No open dead letter with this id here.",
    ))
}

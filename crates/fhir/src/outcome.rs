//! Errors as FHIR speaks them: an `OperationOutcome` with the HTTP status.
//!
//! FHIR handlers return the platform's [`ApiError`] like every other handler, and the
//! extractors refuse with it too; [`to_operation_outcome`] (a response layer on every FHIR
//! route, in each service and in the gateway) rewrites each problem+json answer into an
//! OperationOutcome with the same status and headers. So a refusal has one source of truth
//! (its stable code, carried in `details.coding` under [`PROBLEM_SYSTEM`]) whichever API it
//! is asked through, and no FHIR route can answer a problem document by forgetting a
//! conversion.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use polyclinic_http::ProblemDetails;
use serde::Serialize;

use crate::types::{CodeableConcept, Coding};
use crate::{FHIR_JSON, Fhir};

/// The code system of the platform's stable problem codes.
pub const PROBLEM_SYSTEM: &str = "urn:polyclinic:problem";

/// The largest problem document the layer reads (they are a few hundred bytes).
const PROBLEM_LIMIT: usize = 64 * 1024;

/// One issue of an outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Issue {
    /// `fatal`, `error`, `warning` or `information`.
    pub severity: &'static str,
    /// FHIR's issue type (`not-found`, `forbidden`, `invalid`, ...).
    pub code: &'static str,
    pub details: CodeableConcept,
    pub diagnostics: String,
}

/// What went wrong (or, for an operation, what happened).
#[derive(Debug, Clone, Serialize)]
pub struct OperationOutcome {
    pub issue: Vec<Issue>,
}

impl OperationOutcome {
    /// The outcome for a refusal with HTTP `status`, our stable `code` and a `detail` for
    /// a person.
    pub fn error(status: StatusCode, code: &str, detail: &str) -> Self {
        Self {
            issue: vec![Issue {
                severity: if status.is_server_error() {
                    "fatal"
                } else {
                    "error"
                },
                code: issue_type(status),
                details: CodeableConcept {
                    coding: vec![Coding::new(PROBLEM_SYSTEM, code, None)],
                    text: Some(detail.to_owned()),
                },
                diagnostics: detail.to_owned(),
            }],
        }
    }
}

/// FHIR's issue type for an HTTP status.
fn issue_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::UNAUTHORIZED => "login",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::NOT_ACCEPTABLE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE => "not-supported",
        StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED => "conflict",
        StatusCode::GONE => "deleted",
        StatusCode::PAYLOAD_TOO_LARGE => "too-costly",
        StatusCode::TOO_MANY_REQUESTS => "throttled",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => "transient",
        _ if status.is_server_error() => "exception",
        _ => "processing",
    }
}

/// The response layer: a problem+json answer becomes an OperationOutcome (same status, same
/// `WWW-Authenticate` and `Retry-After`); a plain JSON answer (a replayed idempotent one, say)
/// is labelled FHIR JSON, which every answer under `/fhir` is; any other passes unchanged. A
/// body that is not the problem it says it is still becomes an outcome, with a generic code.
pub async fn to_operation_outcome(mut response: Response) -> Response {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        return response;
    }
    if !content_type.starts_with("application/problem+json") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    let problem = axum::body::to_bytes(body, PROBLEM_LIMIT)
        .await
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ProblemDetails>(&bytes).ok());
    let outcome = match problem {
        Some(problem) => OperationOutcome::error(status, &problem.code, &problem.detail),
        None => OperationOutcome::error(
            status,
            "error",
            status.canonical_reason().unwrap_or("Error"),
        ),
    };
    let body = serde_json::to_vec(&crate::Resource::from(outcome)).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Response::from_parts(parts, Body::from(body))
}

/// An outcome as a handler's answer, with its status.
pub fn respond(status: StatusCode, outcome: OperationOutcome) -> Response {
    (status, Fhir(crate::Resource::from(outcome))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyclinic_http::ApiError;

    #[tokio::test]
    async fn a_problem_becomes_an_operation_outcome_with_the_same_status_and_code() {
        let problem =
            ApiError::not_found("appointment_not_found", "No such appointment.").into_response();
        let response = to_operation_outcome(problem).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], FHIR_JSON);
        let body = axum::body::to_bytes(response.into_body(), PROBLEM_LIMIT)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["resourceType"], "OperationOutcome");
        assert_eq!(json["issue"][0]["code"], "not-found");
        assert_eq!(json["issue"][0]["severity"], "error");
        assert_eq!(
            json["issue"][0]["details"]["coding"][0],
            serde_json::json!({ "system": PROBLEM_SYSTEM, "code": "appointment_not_found" })
        );
        assert_eq!(json["issue"][0]["diagnostics"], "No such appointment.");
    }

    #[tokio::test]
    async fn a_refused_token_keeps_its_challenge() {
        let problem = ApiError::unauthorized("invalid_token", "The token has expired.")
            .with_challenge("Bearer error=\"invalid_token\"")
            .into_response();
        let response = to_operation_outcome(problem).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[tokio::test]
    async fn an_answer_that_is_not_a_problem_passes_unchanged() {
        let answer = (StatusCode::OK, "plain").into_response();
        let response = to_operation_outcome(answer).await;
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }
}

//! Running a mutating request at most once per `Idempotency-Key`.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use polyclinic_db::idempotency::{self, Claim};
use polyclinic_http::ApiError;
use serde_json::Value;
use sqlx::PgPool;
use std::future::Future;
use std::time::Duration;

/// How long a first attempt holds its key before a retry may take over.
const LEASE: Duration = Duration::from_secs(60);

/// Runs `handle` unless the request's key was seen: the same key and body get the stored
/// answer, another body 422, a key still in flight 409. Without a key, `handle` just runs.
/// Failed requests free their key, so a retry is handled afresh.
pub async fn once<F, Fut>(
    pool: &PgPool,
    headers: &HeaderMap,
    scope: &str,
    method_and_path: (&str, &str),
    body: &[u8],
    handle: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, Value), ApiError>>,
{
    let Some(key) = headers.get("idempotency-key") else {
        return match handle().await {
            Ok((status, body)) => (status, axum::Json(body)).into_response(),
            Err(err) => err.into_response(),
        };
    };
    let Some(key) = key.to_str().ok().filter(|key| idempotency::valid_key(key)) else {
        return ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key: 1 to 255 visible ASCII characters.",
        )
        .into_response();
    };
    let fingerprint = idempotency::fingerprint(method_and_path.0, method_and_path.1, body);
    match idempotency::claim(pool, scope, key, &fingerprint, LEASE).await {
        Err(err) => ApiError::internal(err).into_response(),
        Ok(Claim::Replay { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, axum::Json(body)).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        Ok(Claim::InFlight) => ApiError::conflict(
            "idempotency_key_in_flight",
            "A request with this Idempotency-Key is still being handled.",
        )
        .into_response(),
        Ok(Claim::Mismatch) => ApiError::unprocessable(
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request.",
        )
        .into_response(),
        Ok(Claim::Proceed) => match handle().await {
            Ok((status, body)) => {
                if let Err(err) =
                    idempotency::complete(pool, scope, key, status.as_u16(), &body).await
                {
                    tracing::error!(error = %format!("{err:#}"), "storing an idempotent answer failed");
                }
                (status, axum::Json(body)).into_response()
            }
            Err(err) => {
                if let Err(release) = idempotency::release(pool, scope, key).await {
                    tracing::error!(error = %format!("{release:#}"), "freeing an idempotency key failed");
                }
                err.into_response()
            }
        },
    }
}

//! `Idempotency-Key` for mutating endpoints: the same key and body get the stored response,
//! the same key with another body is refused, and a key whose first request is still running
//! is reported as such. Keys are kept at least 24 hours. [`once`] wraps a handler with all of it.

use std::future::Future;
use std::time::Duration;

use polyclinic_http::ApiError;
use polyclinic_http::axum::Json;
use polyclinic_http::axum::body::Bytes;
use polyclinic_http::axum::extract::{FromRef, FromRequest, Request};
use polyclinic_http::axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use polyclinic_http::axum::response::{IntoResponse, Response};
use polyclinic_http::extract::{JsonBytes, json_from_bytes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::PgPool;

/// The table's definition; services that accept keys carry a copy among their migrations.
pub const TABLE_SQL: &str = include_str!("../sql/idempotency.sql");

/// How long keys are kept.
pub const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);

/// What to do with a request that carries a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First time (or the first attempt died): handle it, then [`complete`] or [`release`].
    Proceed,
    /// Answered before: send this again.
    Replay { status: u16, body: Value },
    /// The first request with this key is still being handled.
    InFlight,
    /// The key was used with another request.
    Mismatch,
}

/// Whether `key` is an acceptable key: 1 to 255 visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// The fingerprint of a request: method, path and body.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(method.as_bytes());
    context.update(b" ");
    context.update(path.as_bytes());
    context.update(b"\n");
    context.update(body);
    context.finish().as_ref().to_vec()
}

fn interval(duration: Duration) -> String {
    format!("{} milliseconds", duration.as_millis())
}

/// A transaction for key bookkeeping. It commits without waiting for the WAL flush: a
/// crash can forget the last fraction of a second of keys, which only means that a retry
/// sent across the crash is handled afresh, and every effect behind a key is guarded by a
/// constraint of its own (one payment per appointment, one booking per slot). The effects
/// themselves commit durably as usual.
async fn bookkeeping(pool: &PgPool) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("set local synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Claims `key` in `scope` (the route and the caller, so two callers never share keys) for a
/// request with `fingerprint`. `lease` bounds how long an unfinished first attempt blocks
/// the key.
pub async fn claim(
    pool: &PgPool,
    scope: &str,
    key: &str,
    fingerprint: &[u8],
    lease: Duration,
) -> anyhow::Result<Claim> {
    let mut tx = bookkeeping(pool).await?;
    let inserted = sqlx::query(
        "insert into idempotency_keys (scope, key, request_hash, state, locked_until, expires_at)
         values ($1, $2, $3, 'in_flight', now() + $4::interval, now() + $5::interval)
         on conflict (scope, key) do nothing",
    )
    .bind(scope)
    .bind(key)
    .bind(fingerprint)
    .bind(interval(lease))
    .bind(interval(KEEP_FOR))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 1 {
        tx.commit().await?;
        return Ok(Claim::Proceed);
    }
    let (hash, state, status, body, lapsed): (Vec<u8>, String, Option<i16>, Option<Value>, bool) =
        sqlx::query_as(
            "select request_hash, state, response_status, response_body, locked_until <= now()
         from idempotency_keys where scope = $1 and key = $2 for update",
        )
        .bind(scope)
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
    let claim = if hash != fingerprint {
        Claim::Mismatch
    } else if state == "completed" {
        Claim::Replay {
            status: status
                .and_then(|status| u16::try_from(status).ok())
                .unwrap_or(200),
            body: body.unwrap_or(Value::Null),
        }
    } else if lapsed {
        // The first attempt died without an answer; this one takes over.
        sqlx::query(
            "update idempotency_keys set locked_until = now() + $3::interval, updated_at = now()
             where scope = $1 and key = $2",
        )
        .bind(scope)
        .bind(key)
        .bind(interval(lease))
        .execute(&mut *tx)
        .await?;
        Claim::Proceed
    } else {
        Claim::InFlight
    };
    tx.commit().await?;
    Ok(claim)
}

/// Stores the answer a claimed request gave.
pub async fn complete(
    pool: &PgPool,
    scope: &str,
    key: &str,
    status: u16,
    body: &Value,
) -> anyhow::Result<()> {
    let mut tx = bookkeeping(pool).await?;
    sqlx::query(
        "update idempotency_keys set state = 'completed', response_status = $3, response_body = $4,
                updated_at = now()
         where scope = $1 and key = $2",
    )
    .bind(scope)
    .bind(key)
    .bind(i16::try_from(status).unwrap_or(500))
    .bind(body)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Frees a claimed key whose request failed without an answer worth repeating (a 5xx), so a
/// retry is handled afresh.
pub async fn release(pool: &PgPool, scope: &str, key: &str) -> anyhow::Result<()> {
    sqlx::query(
        "delete from idempotency_keys where scope = $1 and key = $2 and state = 'in_flight'",
    )
    .bind(scope)
    .bind(key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes keys past their 24 hours.
pub async fn purge_expired(pool: &PgPool) -> anyhow::Result<u64> {
    Ok(
        sqlx::query("delete from idempotency_keys where expires_at < now()")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// How long a first attempt of [`once`] holds its key before a retry may take over.
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
            Ok((status, body)) => (status, Json(body)).into_response(),
            Err(err) => err.into_response(),
        };
    };
    let Some(key) = key.to_str().ok().filter(|key| valid_key(key)) else {
        return ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key: 1 to 255 visible ASCII characters.",
        )
        .into_response();
    };
    let fingerprint = fingerprint(method_and_path.0, method_and_path.1, body);
    match claim(pool, scope, key, &fingerprint, LEASE).await {
        Err(err) => ApiError::internal(err).into_response(),
        Ok(Claim::Replay { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, Json(body)).into_response();
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
                if let Err(err) = complete(pool, scope, key, status.as_u16(), &body).await {
                    tracing::error!(error = %format!("{err:#}"), "storing an idempotent answer failed");
                }
                (status, Json(body)).into_response()
            }
            Err(err) => {
                if let Err(release) = release(pool, scope, key).await {
                    tracing::error!(error = %format!("{release:#}"), "freeing an idempotency key failed");
                }
                err.into_response()
            }
        },
    }
}

/// A mutating request that runs once per `Idempotency-Key` of its caller: the extractor
/// takes the body (with [`JsonBytes`]' rules), and [`Idempotent::run`] runs the handler's
/// work through [`once`], scoped to the method, the path and the caller.
///
/// ```text
/// async fn capture(caller: Require<Admin>, Path(id): Path<Uuid>, request: Idempotent) -> Response {
///     request.run(&caller.subject, || async { let body: Amount = request.json()?; ... }).await
/// }
/// ```
#[derive(Debug)]
pub struct Idempotent {
    pool: PgPool,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl<S> FromRequest<S> for Idempotent
where
    S: Send + Sync,
    PgPool: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let headers = req.headers().clone();
        let JsonBytes(body) = JsonBytes::from_request(req, state).await?;
        Ok(Self {
            pool: PgPool::from_ref(state),
            method,
            path,
            headers,
            body,
        })
    }
}

impl Idempotent {
    /// Runs `handle` once for `caller` (the subject of its token) and this key; a repeat
    /// gets the first answer.
    pub async fn run<F, Fut, T>(&self, caller: &str, handle: F) -> Response
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(StatusCode, T), ApiError>>,
        T: Serialize,
    {
        let scope = format!("{} {} {caller}", self.method, self.path);
        once(
            &self.pool,
            &self.headers,
            &scope,
            (self.method.as_str(), &self.path),
            &self.body,
            || async {
                let (status, answer) = handle().await?;
                let answer =
                    serde_json::to_value(answer).map_err(|err| ApiError::internal(err.into()))?;
                Ok((status, answer))
            },
        )
        .await
    }

    /// The body as `T` (a JSON object).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        json_from_bytes(&self.body)
    }

    /// The body as sent, for a handler that reads it its own way (a FHIR Parameters
    /// resource).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as `T`, or `T::default()` when it is empty (routes whose body is optional).
    pub fn json_or_default<T: Default + DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            Ok(T::default())
        } else {
            self.json()
        }
    }
}

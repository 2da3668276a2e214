//! Extractors whose rejections are problem+json errors with stable codes, so a malformed
//! body, path or query gets the same error shape as everything else.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ApiError;
use crate::strict::Strict;

/// A JSON body. Rejections: 400 `malformed_json`, 422 `invalid_body` (a field of the wrong
/// type or a missing field), 415 `unsupported_media_type`, 413 `payload_too_large`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_type(req.headers()) {
            return Err(unsupported_media_type());
        }
        let bytes = read_body(req, state).await?;
        json_from_bytes(&bytes).map(Json)
    }
}

/// The bytes of a JSON body, for handlers that need them as sent (idempotency
/// fingerprints) and parse them with [`json_from_bytes`]. The same rejections as [`Json`]
/// for the content type and the size; an empty body needs no content type, for routes
/// whose body is optional.
#[derive(Debug, Clone, Default)]
pub struct JsonBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let typed = has_json_type(req.headers());
        let bytes = read_body(req, state).await?;
        if !typed && !bytes.is_empty() {
            return Err(unsupported_media_type());
        }
        Ok(JsonBytes(bytes))
    }
}

fn has_json_type(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        })
}

fn unsupported_media_type() -> ApiError {
    json_rejection(JsonRejection::MissingJsonContentType(Default::default()))
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, ApiError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                payload_too_large()
            } else {
                ApiError::new(rejection.status(), "unreadable_body", rejection.body_text())
            }
        })
}

/// Whether a URL part or a form body has a percent-encoded NUL character, which no text the
/// platform keeps may contain and PostgreSQL cannot store.
pub fn has_encoded_nul(text: impl AsRef<[u8]>) -> bool {
    text.as_ref()
        .windows(3)
        .any(|window| window.eq_ignore_ascii_case(b"%00"))
}

/// Whether a JSON text has a string holding the NUL character (`\u0000`), which no text
/// the platform keeps may contain and PostgreSQL cannot store.
fn has_nul_escape(bytes: &[u8]) -> bool {
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' {
            let escape = bytes.get(index + 1..index + 6);
            if escape.is_some_and(|escape| escape.eq_ignore_ascii_case(b"u0000")) {
                return true;
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    false
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(err) => {
            ApiError::unprocessable("invalid_body", err.body_text())
        }
        JsonRejection::JsonSyntaxError(err) => {
            ApiError::bad_request("malformed_json", err.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected a request body with `Content-Type: application/json`.",
        ),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            payload_too_large()
        }
        other => ApiError::new(other.status(), "unreadable_body", other.body_text()),
    }
}

/// The 413 answer shared by every way a body can be too large.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "The request body is larger than this service accepts.",
    )
}

/// Path parameters. A value that does not parse (an id that is not a UUID) gives
/// 400 `invalid_path_parameter`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(rejection)),
        }
    }
}

fn path_rejection(rejection: PathRejection) -> ApiError {
    match rejection {
        PathRejection::FailedToDeserializePathParams(err) => {
            ApiError::bad_request("invalid_path_parameter", err.body_text())
        }
        other => ApiError::internal(anyhow::anyhow!(
            "path extraction failed: {}",
            other.body_text()
        )),
    }
}

/// Query parameters. Bad ones give 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(has_encoded_nul) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "Query values must not contain the NUL character (%00).",
            ));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

/// Parses a JSON body read as bytes (for handlers that also need the raw bytes, such as
/// idempotency fingerprints and signature checks), with the same errors as [`Json`].
pub fn json_from_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if has_nul_escape(bytes) {
        return Err(ApiError::unprocessable(
            "invalid_body",
            "Text must not contain the NUL character (\\u0000).",
        ));
    }
    // Every request body of the platform is documented as an object: an array, a string,
    // a number or `null` in its place is refused before serde sees it, and below, `Strict`
    // refuses an array wherever a nested object is expected.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
        return Err(match first {
            None => ApiError::bad_request("malformed_json", "The request body is empty."),
            Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() => {
                ApiError::bad_request("malformed_json", "The request body is not valid JSON.")
            }
            Some(_) => {
                ApiError::unprocessable("invalid_body", "The request body must be a JSON object.")
            }
        });
    }
    let mut parsed: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request("malformed_json", err.to_string()))?;
    integral_numbers(&mut parsed);
    let value = serde_path_to_error::deserialize(Strict(parsed)).map_err(|err| {
        // The path of a key refused before it was read ends in `?`: the message names it.
        let path = err.path().to_string();
        let path = path
            .strip_suffix('?')
            .unwrap_or(&path)
            .trim_end_matches('.');
        let inner = err.into_inner();
        // The message names the field, as axum's own JSON rejection does.
        let detail = if path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::unprocessable("invalid_body", detail),
            _ => ApiError::bad_request("malformed_json", detail),
        }
    })?;
    Ok(value)
}

/// JSON has one number type: `5.0` is the integer 5 to JSON Schema (and to the documents),
/// so it is one here too. Numbers with a fraction stay as they are.
fn integral_numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(number) if number.is_f64() => {
            if let Some(float) = number.as_f64()
                && float.fract() == 0.0
                && float.abs() < 9.0e15
            {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "a whole number below 2^53 converts exactly"
                )]
                let whole = float as i64;
                *value = serde_json::Value::from(whole);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        serde_json::Value::Object(object) => object.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::json_from_bytes;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only the refusals are read")]
    struct Registration {
        email: String,
        address: Option<Address>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only the refusals are read")]
    struct Address {
        city: String,
    }

    fn detail(body: &str) -> String {
        let error = json_from_bytes::<Registration>(body.as_bytes()).unwrap_err();
        assert_eq!(error.code(), "invalid_body", "{body}");
        error.detail().to_owned()
    }

    #[test]
    fn an_unknown_field_is_named_alone_at_the_top_and_with_its_path_below() {
        assert_eq!(
            detail(r#"{"email": "a@b.example", "role": "ADMIN"}"#),
            "unknown field `role`"
        );
        assert_eq!(
            detail(r#"{"email": "a@b.example", "address": {"city": "X", "zip": 1}}"#),
            "address: unknown field `zip`"
        );
    }
}

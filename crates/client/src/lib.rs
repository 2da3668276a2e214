//! The client services call each other with (what the original's Feign JWT interceptor
//! was): it forwards the caller's bearer token, the `x-request-id` and the W3C
//! `traceparent`, applies a timeout, retries only idempotent calls (GET, PUT, DELETE, and a
//! POST that carries an `Idempotency-Key`; once, on a connection failure or a 502/503/504),
//! and maps failures to [`ClientError`].

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Who is calling: what travels with every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallContext<'a> {
    pub bearer: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub traceparent: Option<&'a str>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} did not answer in time")]
    Timeout { url: String },
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: StatusCode,
        body: Value,
    },
    #[error("{url} answered something unreadable: {reason}")]
    Unreadable { url: String, reason: String },
}

impl ClientError {
    /// The status of an answered call.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A shared client; cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    timeout: Duration,
}

impl ServiceClient {
    pub fn new(timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder().build().unwrap_or_default(),
            timeout,
        }
    }

    /// `GET url` as JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: &str,
        context: CallContext<'_>,
    ) -> Result<T, ClientError> {
        let body = self.send(Method::GET, url, context, None, None).await?;
        serde_json::from_value(body).map_err(|err| ClientError::Unreadable {
            url: url.to_owned(),
            reason: err.to_string(),
        })
    }

    /// `POST url` with an optional JSON body; the answer's JSON (`Null` when empty).
    pub async fn post(
        &self,
        url: &str,
        context: CallContext<'_>,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        self.send(Method::POST, url, context, body, None).await
    }

    /// `POST url` with an `Idempotency-Key`: the receiver answers a repeated key with its
    /// first answer, so this call is retried like a GET.
    pub async fn post_idempotent(
        &self,
        url: &str,
        context: CallContext<'_>,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Value, ClientError> {
        self.send(Method::POST, url, context, body, Some(key)).await
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        context: CallContext<'_>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let idempotent =
            key.is_some() || matches!(method, Method::GET | Method::PUT | Method::DELETE);
        let attempts = if idempotent { 2 } else { 1 };
        let mut last = None;
        for attempt in 1..=attempts {
            match self.attempt(method.clone(), url, context, body, key).await {
                Ok(value) => return Ok(value),
                Err(err) => {
                    let transient = matches!(err, ClientError::Unreachable { .. })
                        || err.status().is_some_and(|status| {
                            matches!(
                                status,
                                StatusCode::BAD_GATEWAY
                                    | StatusCode::SERVICE_UNAVAILABLE
                                    | StatusCode::GATEWAY_TIMEOUT
                            )
                        });
                    if !transient || attempt == attempts {
                        return Err(err);
                    }
                    tracing::debug!(%url, error = %err, "retrying an idempotent call");
                    last = Some(err);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(last.unwrap_or(ClientError::Unreachable {
            url: url.to_owned(),
            reason: "no attempt was made".to_owned(),
        }))
    }

    async fn attempt(
        &self,
        method: Method,
        url: &str,
        context: CallContext<'_>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut request = self.http.request(method, url).timeout(self.timeout);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(bearer) = context.bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(request_id) = context.request_id {
            request = request.header("x-request-id", request_id);
        }
        if let Some(traceparent) = context.traceparent {
            request = request.header("traceparent", traceparent);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| {
            if err.is_timeout() {
                ClientError::Timeout {
                    url: url.to_owned(),
                }
            } else {
                ClientError::Unreachable {
                    url: url.to_owned(),
                    reason: err.to_string(),
                }
            }
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| ClientError::Unreadable {
                url: url.to_owned(),
                reason: err.to_string(),
            })?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::Status {
                url: url.to_owned(),
                status,
                body,
            })
        }
    }
}

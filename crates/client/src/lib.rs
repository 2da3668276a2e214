//! The client services call each other with (what the original's Feign JWT interceptor
//! was): it forwards the caller's bearer token, the `x-request-id` and the W3C trace
//! context and baggage (`traceparent`, `tracestate`, `baggage`), applies a timeout, retries
//! only idempotent calls (GET, PUT, DELETE, and a POST that carries an `Idempotency-Key`;
//! once, on a connection failure or a 502/503/504), and maps failures to [`ClientError`].

pub mod care;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Who is calling: what travels with every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallContext<'a> {
    pub bearer: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// The W3C trace context and baggage to pass on.
    pub trace: polyclinic_telemetry::TraceHeaders<'a>,
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
        for (name, value) in context.trace.pairs() {
            request = request.header(name, value);
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

/// The access token of one of the platform's own OAuth clients (`grant_type=client_credentials`),
/// for work no user asked for (consumers, jobs). Cached, and renewed a minute (or a tenth of
/// its lifetime, if shorter) before it expires; concurrent callers share one renewal.
pub struct ServiceTokens {
    http: reqwest::Client,
    token_url: String,
    client_id: String,
    client_secret: String,
    timeout: Duration,
    cached: tokio::sync::Mutex<Option<(String, std::time::Instant)>>,
}

impl std::fmt::Debug for ServiceTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceTokens")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl ServiceTokens {
    pub fn new(token_url: &str, client_id: &str, client_secret: &str, timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder().build().unwrap_or_default(),
            token_url: token_url.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            timeout,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The tokens of `service`'s client `polyclinic-<service>` at the configured issuer: the
    /// identity service's token endpoint, or Keycloak's. Under Keycloak the identity
    /// service's client is the one it manages users with (`keycloak.client_id`).
    pub fn for_service(
        config: &polyclinic_config::Config,
        service: polyclinic_config::Service,
    ) -> Self {
        if let (
            polyclinic_config::IdentityProvider::Keycloak,
            polyclinic_config::Service::Identity,
            Some(secret),
        ) = (
            config.identity_provider,
            service,
            &config.keycloak.client_secret,
        ) {
            return Self::new(
                &format!(
                    "{}/protocol/openid-connect/token",
                    config.keycloak.realm_url()
                ),
                &config.keycloak.client_id,
                secret,
                Duration::from_secs(config.http.upstream_timeout_secs.into()),
            );
        }
        let token_url = match config.identity_provider {
            polyclinic_config::IdentityProvider::Builtin => format!(
                "{}/api/auth/token",
                config.service_url(polyclinic_config::Service::Identity)
            ),
            polyclinic_config::IdentityProvider::Keycloak => format!(
                "{}/protocol/openid-connect/token",
                config.keycloak.realm_url()
            ),
        };
        Self::new(
            &token_url,
            &format!("polyclinic-{service}"),
            &config.client_secret(service),
            Duration::from_secs(config.http.upstream_timeout_secs.into()),
        )
    }

    /// A valid access token.
    pub async fn token(&self) -> Result<String, ClientError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, renew_at)) = cached.as_ref()
            && std::time::Instant::now() < *renew_at
        {
            return Ok(token.clone());
        }
        let url = &self.token_url;
        let response = self
            .http
            .post(url)
            .timeout(self.timeout)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .map_err(|err| ClientError::Unreachable {
                url: url.clone(),
                reason: err.to_string(),
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.json().await.unwrap_or(Value::Null);
            return Err(ClientError::Status {
                url: url.clone(),
                status,
                body,
            });
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|err| ClientError::Unreadable {
                url: url.clone(),
                reason: err.to_string(),
            })?;
        let lifetime = Duration::from_secs(answer.expires_in);
        let margin = Duration::from_secs(60).min(lifetime / 10);
        let renew_at = std::time::Instant::now() + lifetime.saturating_sub(margin);
        *cached = Some((answer.access_token.clone(), renew_at));
        Ok(answer.access_token)
    }

    /// Forgets the cached token (after a 401, say), so the next call fetches a new one.
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}

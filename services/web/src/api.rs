//! The gateway's API as the web app uses it: one HTTP client, the session's bearer token on
//! every call, refreshed here before it runs out (or once after a 401), and problem+json
//! answers turned into [`ApiFailure`]s that pages can show next to their fields.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use polyclinic_http::ClientAddress;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::session::{Session, Sessions, Tokens};

/// Where tokens come from and go back to: the identity service (built-in provider) or
/// Keycloak's endpoints (RFC 6749 token, RFC 7009 revocation).
#[derive(Debug, Clone)]
pub struct AuthEndpoints {
    pub token_url: String,
    pub revoke_url: String,
    /// The OAuth client the web app signs people in as.
    pub client_id: String,
}

/// Refresh when the access token has less than this left.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Why an API call did not give what was asked.
#[derive(Debug)]
pub enum ApiFailure {
    /// The API refused the request (4xx) with a problem document.
    Rejected(Problem),
    /// The session's login is over (revoked, expired, password changed): sign in again.
    SignedOut,
    /// The platform did not answer usefully (network error, 5xx, unreadable body).
    Unavailable(String),
}

impl ApiFailure {}

/// An RFC 9457 problem document as the platform writes them.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    /// Field errors of a 422 `validation_failed`: (field, message).
    pub fields: Vec<(String, String)>,
    pub body: Value,
}

impl Problem {
    fn from_body(status: StatusCode, body: Value) -> Self {
        let text = |name: &str| body[name].as_str().unwrap_or_default().to_owned();
        let fields = body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| {
                        (
                            error["field"].as_str().unwrap_or_default().to_owned(),
                            error["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let detail = match text("detail") {
            detail if detail.is_empty() => text("title"),
            detail => detail,
        };
        Self {
            status,
            code: text("code"),
            detail,
            fields,
            body,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
    refresh_token: Option<String>,
}

impl TokenResponse {
    fn into_tokens(self) -> Tokens {
        let lifetime = Duration::from_secs(self.expires_in.max(0).unsigned_abs());
        Tokens {
            access: self.access_token,
            refresh: self.refresh_token,
            access_expires: SystemTime::now() + lifetime,
        }
    }
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a Value),
}

/// The gateway, reached over HTTP like any client reaches it.
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: String,
    auth: std::sync::Arc<AuthEndpoints>,
    /// Where the sessions' tokens are kept (and refreshed under a lock).
    sessions: Sessions,
}

impl Gateway {
    pub fn new(
        base: String,
        auth: AuthEndpoints,
        timeout: Duration,
        sessions: Sessions,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            base,
            auth: std::sync::Arc::new(auth),
            sessions,
        })
    }

    /// `GET path` as the session's user, decoded.
    pub async fn get<T: DeserializeOwned>(
        &self,
        session: &Session,
        path: &str,
    ) -> Result<T, ApiFailure> {
        let value = self
            .send(session, Method::GET, path, Body::None, None)
            .await?;
        decode(value)
    }

    /// `GET path` with a token the session does not hold yet (right after sign-in).
    pub async fn get_with_token<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
    ) -> Result<T, ApiFailure> {
        let request = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        let (status, body) = exchange(request).await?;
        if status.is_success() {
            decode(body)
        } else {
            Err(ApiFailure::Rejected(Problem::from_body(status, body)))
        }
    }

    /// `GET path` of a public route: with the session's token when someone is signed in
    /// (so the gateway counts it against their own rate limit, not against the web app's
    /// address, which every visitor shares), without one otherwise.
    pub async fn get_as<T: DeserializeOwned>(
        &self,
        session: &Session,
        path: &str,
    ) -> Result<T, ApiFailure> {
        if session.user.is_some() {
            self.get(session, path).await
        } else {
            self.get_public(path).await
        }
    }

    /// `GET path` without a token (public routes).
    pub async fn get_public<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiFailure> {
        let request = self.http.get(format!("{}{path}", self.base));
        let (status, body) = exchange(request).await?;
        if status.is_success() {
            decode(body)
        } else {
            Err(ApiFailure::Rejected(Problem::from_body(status, body)))
        }
    }

    /// `POST path` with a JSON body as the session's user.
    pub async fn post(
        &self,
        session: &Session,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        self.send(session, Method::POST, path, Body::Json(body), None)
            .await
    }

    /// `POST path` with an `Idempotency-Key`: a form submitted twice (a double click, a
    /// reload after a lost answer) sends the same key and so has one effect.
    pub async fn post_once(
        &self,
        session: &Session,
        path: &str,
        body: &Value,
        key: &str,
    ) -> Result<Value, ApiFailure> {
        self.send(session, Method::POST, path, Body::Json(body), Some(key))
            .await
    }

    pub async fn call(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        self.send(session, method, path, Body::Json(body), None)
            .await
    }

    pub async fn delete(&self, session: &Session, path: &str) -> Result<Value, ApiFailure> {
        self.send(session, Method::DELETE, path, Body::None, None)
            .await
    }

    /// A public JSON `POST` (self-registration).
    pub async fn post_public(&self, path: &str, body: &Value) -> Result<Value, ApiFailure> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        let (status, body) = exchange(request).await?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(ApiFailure::Rejected(Problem::from_body(status, body)))
        }
    }

    /// The password grant: the person's email and password for tokens.
    pub async fn password_grant(&self, email: &str, password: &str) -> Result<Tokens, ApiFailure> {
        self.token_request(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
            ("client_id", &self.auth.client_id),
        ])
        .await
    }

    /// The authorization code grant with its PKCE verifier (Keycloak login).
    pub async fn code_grant(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Tokens, ApiFailure> {
        self.token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect_uri),
            ("client_id", &self.auth.client_id),
        ])
        .await
    }

    /// Revokes the session's refresh token (logout); the access token dies on its own.
    pub async fn revoke(&self, tokens: &Tokens) {
        let Some(refresh) = &tokens.refresh else {
            return;
        };
        let request = self.http.post(&self.auth.revoke_url).form(&[
            ("token", refresh.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", &self.auth.client_id),
        ]);
        if let Err(failure) = exchange(request).await {
            tracing::warn!(?failure, "revoking a refresh token at logout failed");
        }
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, ApiFailure> {
        let request = self.http.post(&self.auth.token_url).form(form);
        let (status, body) = exchange(request).await?;
        if !status.is_success() {
            return Err(ApiFailure::Rejected(Problem::from_body(status, body)));
        }
        let response: TokenResponse = decode(body)?;
        Ok(response.into_tokens())
    }

    /// The session's access token, refreshed first when it is about to expire (or, after a
    /// 401, when it is the one refused).
    ///
    /// One refresh at a time per session: this process's requests queue on the session's
    /// token lock, and every replica's on the session row's lock. Under that lock the row is
    /// read again: tokens another replica refreshed meanwhile are taken as they are, so a
    /// refresh token is never spent twice (a reused one revokes the whole login).
    async fn access_token(
        &self,
        session: &Session,
        force: Option<&str>,
    ) -> Result<String, ApiFailure> {
        let stale = |tokens: &Tokens| match force {
            Some(refused) => tokens.access == refused,
            None => tokens.access_expires <= SystemTime::now() + REFRESH_MARGIN,
        };
        let unavailable =
            |err: anyhow::Error| ApiFailure::Unavailable(format!("the session store: {err:#}"));
        let mut tokens = session.tokens.lock().await;
        let Some(current) = tokens.as_ref() else {
            return Err(ApiFailure::SignedOut);
        };
        if !stale(current) {
            return Ok(current.access.clone());
        }
        let lock = self.sessions.lock(&session.id).await.map_err(unavailable)?;
        let Some(stored) = self
            .sessions
            .stored_tokens(&session.id)
            .await
            .map_err(unavailable)?
        else {
            // Signed out meanwhile, here or on another replica.
            *tokens = None;
            return Err(ApiFailure::SignedOut);
        };
        if !stale(&stored) {
            let access = stored.access.clone();
            *tokens = Some(stored);
            lock.release().await.map_err(unavailable)?;
            return Ok(access);
        }
        let Some(refresh) = stored.refresh.clone() else {
            self.sessions
                .store_tokens(&session.id, None)
                .await
                .map_err(unavailable)?;
            lock.release().await.map_err(unavailable)?;
            *tokens = None;
            return Err(ApiFailure::SignedOut);
        };
        let refreshed = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &self.auth.client_id),
            ])
            .await;
        match refreshed {
            Ok(mut fresh) => {
                // A provider that does not rotate refresh tokens keeps the old one valid.
                if fresh.refresh.is_none() {
                    fresh.refresh = Some(refresh);
                }
                self.sessions
                    .store_tokens(&session.id, Some(&fresh))
                    .await
                    .map_err(unavailable)?;
                lock.release().await.map_err(unavailable)?;
                let access = fresh.access.clone();
                *tokens = Some(fresh);
                Ok(access)
            }
            // Only a refusal of the refresh token itself ends the login; a rate limit or a
            // platform hiccup is tried again on the next request.
            Err(ApiFailure::Rejected(problem))
                if problem.status == StatusCode::BAD_REQUEST
                    || problem.status == StatusCode::UNAUTHORIZED =>
            {
                self.sessions
                    .store_tokens(&session.id, None)
                    .await
                    .map_err(unavailable)?;
                lock.release().await.map_err(unavailable)?;
                *tokens = None;
                Err(ApiFailure::SignedOut)
            }
            Err(ApiFailure::Rejected(problem)) => Err(ApiFailure::Unavailable(format!(
                "refreshing the token: {} {}",
                problem.status, problem.code
            ))),
            Err(other) => Err(other),
        }
    }

    async fn send(
        &self,
        session: &Session,
        method: Method,
        path: &str,
        body: Body<'_>,
        idempotency_key: Option<&str>,
    ) -> Result<Value, ApiFailure> {
        let mut token = self.access_token(session, None).await?;
        for attempt in 0..2 {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&token);
            if let Body::Json(json) = body {
                request = request.json(json);
            }
            if let Some(key) = idempotency_key {
                request = request.header("idempotency-key", key);
            }
            let (status, body) = exchange(request).await?;
            if status.is_success() {
                return Ok(body);
            }
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                token = self.access_token(session, Some(&token)).await?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(ApiFailure::SignedOut);
            }
            return Err(ApiFailure::Rejected(Problem::from_body(status, body)));
        }
        Err(ApiFailure::SignedOut)
    }
}

tokio::task_local! {
    /// The address of the visitor whose page view is being served.
    static VISITOR: IpAddr;
}

/// Serves a page view with its visitor's address at hand, so that every API call made for
/// it tells the gateway whom it is for (`X-Forwarded-For`; the gateway trusts the web app
/// as a proxy). Without it, every anonymous visitor would share the web app's own address,
/// and so one anonymous rate limit: one busy visitor could make sign-in fail for all.
pub async fn with_visitor(
    ClientAddress(visitor): ClientAddress,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    VISITOR.scope(visitor, next.run(request)).await
}

/// Sends `request` (for the current visitor); a 5xx, a network error or a body that is not
/// JSON is `Unavailable`.
async fn exchange(request: reqwest::RequestBuilder) -> Result<(StatusCode, Value), ApiFailure> {
    let request = match VISITOR.try_with(|visitor| *visitor) {
        Ok(visitor) => request.header("x-forwarded-for", visitor.to_string()),
        Err(_) => request,
    };
    let response = request
        .send()
        .await
        .map_err(|error| ApiFailure::Unavailable(format!("the gateway did not answer: {error}")))?;
    let status = StatusCode::from_u16(response.status().as_u16())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = response.bytes().await.map_err(|error| {
        ApiFailure::Unavailable(format!("reading the gateway's answer: {error}"))
    })?;
    if status.is_server_error() {
        let problem = serde_json::from_slice::<Value>(&bytes).unwrap_or_default();
        return Err(ApiFailure::Unavailable(format!(
            "{status}: {}",
            problem["code"].as_str().unwrap_or("no problem code")
        )));
    }
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|error| {
            ApiFailure::Unavailable(format!("the gateway's answer is not JSON: {error}"))
        })?
    };
    Ok((status, body))
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ApiFailure> {
    serde_json::from_value(value).map_err(|error| {
        ApiFailure::Unavailable(format!(
            "the gateway's answer has an unexpected shape: {error}"
        ))
    })
}

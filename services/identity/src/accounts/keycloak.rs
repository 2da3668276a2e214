//! The Keycloak Admin REST API client used when `identity_provider = "keycloak"`.
//!
//! It authenticates as the identity service's own confidential client (client credentials,
//! a service account with the realm-management roles it needs), never with an admin
//! password. Keycloak generates user ids (UUIDs); the local user row takes the same id, so a
//! token's `sub` is the user's id in both providers.

use std::time::{Duration, Instant};

use anyhow::Context;
use polyclinic_config::KeycloakConfig;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

/// Why Keycloak refused.
#[derive(Debug, thiserror::Error)]
pub enum KeycloakError {
    #[error("Keycloak already has a user with this username or email")]
    Conflict,
    #[error("Keycloak has no such user")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

pub struct KeycloakAdmin {
    http: reqwest::Client,
    realm_url: String,
    admin_url: String,
    client_id: String,
    client_secret: String,
    token: Mutex<Option<(String, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

/// The fields of a Keycloak user that the identity service keeps in step.
#[derive(Debug, Clone, Default)]
pub struct KeycloakUser {
    pub username: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl KeycloakAdmin {
    pub fn new(config: &KeycloakConfig, client_secret: String) -> anyhow::Result<Self> {
        let base = config.url.trim_end_matches('/');
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .context("building the Keycloak client")?,
            realm_url: config.realm_url(),
            admin_url: format!("{base}/admin/realms/{}", config.realm),
            client_id: config.client_id.clone(),
            client_secret,
            token: Mutex::new(None),
        })
    }

    /// A service-account token, cached until shortly before it expires.
    async fn token(&self, fresh: bool) -> anyhow::Result<String> {
        let mut cached = self.token.lock().await;
        if !fresh
            && let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let response: TokenResponse = self
            .http
            .post(format!("{}/protocol/openid-connect/token", self.realm_url))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.as_str()),
            ])
            .send()
            .await
            .context("asking Keycloak for a service-account token")?
            .error_for_status()
            .context("Keycloak refused the service-account credentials")?
            .json()
            .await
            .context("reading Keycloak's token response")?;
        let lifetime = Duration::from_secs(response.expires_in.saturating_sub(30).max(5));
        *cached = Some((response.access_token.clone(), Instant::now() + lifetime));
        Ok(response.access_token)
    }

    /// Sends an admin request; a 401 (expired or revoked token) is retried once with a new
    /// token.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Response> {
        let build = |token: String| -> RequestBuilder {
            let request = self
                .http
                .request(method.clone(), format!("{}{path}", self.admin_url))
                .bearer_auth(token);
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        };
        let response = build(self.token(false).await?).send().await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Ok(build(self.token(true).await?).send().await?);
        }
        Ok(response)
    }

    async fn expect_success(response: Response, doing: &str) -> Result<Response, KeycloakError> {
        match response.status() {
            status if status.is_success() => Ok(response),
            StatusCode::CONFLICT => Err(KeycloakError::Conflict),
            StatusCode::NOT_FOUND => Err(KeycloakError::NotFound),
            status => {
                let body = response.text().await.unwrap_or_default();
                Err(anyhow::anyhow!("Keycloak answered {status} while {doing}: {body}").into())
            }
        }
    }

    /// Creates an enabled user with a password and `role`; returns Keycloak's id for it.
    pub async fn create_user(
        &self,
        user: &KeycloakUser,
        password: &str,
        role: &str,
    ) -> Result<Uuid, KeycloakError> {
        let body = json!({
            "username": user.username,
            "email": user.email,
            "firstName": user.first_name,
            "lastName": user.last_name,
            "enabled": true,
            "emailVerified": true,
            "credentials": [{"type": "password", "value": password, "temporary": false}],
        });
        let response = self.send(Method::POST, "/users", Some(&body)).await?;
        let response = Self::expect_success(response, "creating a user").await?;
        let id = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|location| location.to_str().ok())
            .and_then(|location| location.rsplit('/').next())
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| anyhow::anyhow!("Keycloak created a user without a usable Location"))?;
        if let Err(err) = self.grant_role(id, role).await {
            // Leave nothing half-made behind.
            self.delete_user(id).await.ok();
            return Err(err);
        }
        Ok(id)
    }

    async fn realm_role(&self, role: &str) -> Result<Value, KeycloakError> {
        let response = self
            .send(Method::GET, &format!("/roles/{role}"), None)
            .await?;
        let response = Self::expect_success(response, "looking up a realm role").await?;
        Ok(response.json().await.context("reading a realm role")?)
    }

    pub async fn grant_role(&self, id: Uuid, role: &str) -> Result<(), KeycloakError> {
        let role = self.realm_role(role).await?;
        let response = self
            .send(
                Method::POST,
                &format!("/users/{id}/role-mappings/realm"),
                Some(&json!([role])),
            )
            .await?;
        Self::expect_success(response, "assigning a realm role").await?;
        Ok(())
    }

    pub async fn revoke_role(&self, id: Uuid, role: &str) -> Result<(), KeycloakError> {
        let role = self.realm_role(role).await?;
        let response = self
            .send(
                Method::DELETE,
                &format!("/users/{id}/role-mappings/realm"),
                Some(&json!([role])),
            )
            .await?;
        Self::expect_success(response, "removing a realm role").await?;
        Ok(())
    }

    pub async fn update_user(&self, id: Uuid, user: &KeycloakUser) -> Result<(), KeycloakError> {
        let mut body = serde_json::Map::new();
        let fields = [
            ("username", &user.username),
            ("email", &user.email),
            ("firstName", &user.first_name),
            ("lastName", &user.last_name),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                body.insert(name.to_owned(), Value::String(value.clone()));
            }
        }
        if body.is_empty() {
            return Ok(());
        }
        let response = self
            .send(
                Method::PUT,
                &format!("/users/{id}"),
                Some(&Value::Object(body)),
            )
            .await?;
        Self::expect_success(response, "updating a user").await?;
        Ok(())
    }

    pub async fn set_enabled(&self, id: Uuid, enabled: bool) -> Result<(), KeycloakError> {
        let response = self
            .send(
                Method::PUT,
                &format!("/users/{id}"),
                Some(&json!({ "enabled": enabled })),
            )
            .await?;
        Self::expect_success(response, "enabling or disabling a user").await?;
        Ok(())
    }

    /// Ends every Keycloak session of the user (their refresh tokens stop working).
    pub async fn log_out(&self, id: Uuid) -> Result<(), KeycloakError> {
        let response = self
            .send(Method::POST, &format!("/users/{id}/logout"), None)
            .await?;
        Self::expect_success(response, "ending a user's sessions").await?;
        Ok(())
    }

    pub async fn reset_password(&self, id: Uuid, password: &str) -> Result<(), KeycloakError> {
        let body = json!({"type": "password", "value": password, "temporary": false});
        let response = self
            .send(
                Method::PUT,
                &format!("/users/{id}/reset-password"),
                Some(&body),
            )
            .await?;
        Self::expect_success(response, "resetting a password").await?;
        Ok(())
    }

    pub async fn delete_user(&self, id: Uuid) -> Result<(), KeycloakError> {
        let response = self
            .send(Method::DELETE, &format!("/users/{id}"), None)
            .await?;
        Self::expect_success(response, "deleting a user").await?;
        Ok(())
    }

    /// Keycloak's id of the user with exactly this email.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Uuid>, KeycloakError> {
        let response = self
            .send(
                Method::GET,
                &format!("/users?exact=true&email={}", urlencode(email)),
                None,
            )
            .await?;
        let response = Self::expect_success(response, "searching users").await?;
        let users: Vec<Value> = response.json().await.context("reading a user search")?;
        Ok(users
            .iter()
            .filter_map(|user| user.get("id").and_then(Value::as_str))
            .find_map(|id| Uuid::parse_str(id).ok()))
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

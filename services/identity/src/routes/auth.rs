//! `/api/auth`: the built-in OIDC provider's discovery document, JWKS, token endpoint,
//! logout, and the revocation feed the other services poll.

use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use polyclinic_auth::Require;
use polyclinic_auth::RevocationList;
use polyclinic_auth::rules::ServiceWith;
use polyclinic_auth::scopes::RevocationsRead;
use polyclinic_config::IdentityProvider;
use polyclinic_http::extract::Json;
use polyclinic_http::utoipa_axum::{router::OpenApiRouter, routes};
use polyclinic_http::{ApiError, ClientAddress, ProblemDetails};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::accounts::login::{self, GrantError, TokenResponse};
use crate::accounts::{smart, tokens};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(discovery))
        .routes(routes!(jwks))
        .routes(routes!(token))
        .routes(routes!(revoke))
        .routes(routes!(revocations))
}

fn builtin_only(state: &AppState) -> Result<(), ApiError> {
    match state.provider {
        IdentityProvider::Builtin => Ok(()),
        IdentityProvider::Keycloak => Err(ApiError::not_found(
            "issued_by_keycloak",
            "Tokens are issued by Keycloak in this deployment; use its endpoints.",
        )),
    }
}

/// OpenID Connect discovery for the built-in provider.
#[utoipa::path(get, path = "/api/auth/.well-known/openid-configuration", tag = "auth",
    responses((status = 200, description = "The provider's metadata")))]
async fn discovery(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    builtin_only(&state)?;
    let issuer = &state.tokens.issuer;
    Ok(Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "grant_types_supported": ["authorization_code", "password", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "fhirUser", "launch/patient", "offline_access", "online_access",
            "patient/*.rs", "user/*.rs"],
        "subject_types_supported": ["public"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "azp", "sid", "scope",
            "realm_access", "preferred_username", "email", "name", "fhirUser", "nonce"],
    })))
}

/// The public keys that verify the provider's tokens.
#[utoipa::path(get, path = "/api/auth/jwks", tag = "auth",
    responses((status = 200, description = "A JSON Web Key Set")))]
async fn jwks(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    builtin_only(&state)?;
    Ok(Json(tokens::jwks(&state.pool, &state.tokens).await?))
}

/// The token endpoint's form (RFC 6749).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `authorization_code` (SMART apps, with PKCE), `password`, `refresh_token` or
    /// `client_credentials` (what each needs: RFC 6749; a missing one is 400
    /// `invalid_request`).
    #[schema(pattern = "^(authorization_code|password|refresh_token|client_credentials)$")]
    pub grant_type: String,
    /// Email or username (password grant).
    pub username: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// The authorization code (authorization_code grant).
    pub code: Option<String>,
    /// The redirect URI the code was issued for (authorization_code grant).
    pub redirect_uri: Option<String>,
    /// The PKCE verifier of the code's challenge (authorization_code grant).
    pub code_verifier: Option<String>,
}

fn form<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    let form_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Expected Content-Type: application/x-www-form-urlencoded.",
        ));
    }
    if polyclinic_http::extract::has_encoded_nul(body) {
        return Err(ApiError::from(GrantError::InvalidRequest(
            "malformed form: values must not contain the NUL character".to_owned(),
        )));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|err| ApiError::from(GrantError::InvalidRequest(format!("malformed form: {err}"))))
}

/// `client_id` and `client_secret` from HTTP Basic, when the client uses it.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

fn required(value: Option<String>, name: &str) -> Result<String, GrantError> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| GrantError::InvalidRequest(format!("`{name}` is required")))
}

/// Issue tokens: `grant_type=authorization_code` (SMART apps: the code of the
/// authorization endpoint with its PKCE verifier), `password` (first-party apps),
/// `refresh_token` (rotates the refresh token; a reused one revokes the login) or
/// `client_credentials` (services).
#[utoipa::path(post, path = "/api/auth/token", tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 400, body = ProblemDetails),
        (status = 401, body = ProblemDetails), (status = 429, body = ProblemDetails)))]
async fn token(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<TokenResponse>, ApiError> {
    builtin_only(&state)?;
    let request: TokenRequest = form(&headers, &body)?;
    let response = match request.grant_type.as_str() {
        "password" => {
            let username = required(request.username, "username")?;
            let password = required(request.password, "password")?;
            let client_id = request
                .client_id
                .unwrap_or_else(|| login::FIRST_PARTY_CLIENTS[0].to_owned());
            login::password_grant(&state, &username, password, &client_id, client).await?
        }
        "authorization_code" => {
            let (client_id, client_secret) = match basic_credentials(&headers) {
                Some((id, secret)) => (id, Some(secret)),
                None => (
                    required(request.client_id, "client_id")?,
                    request.client_secret,
                ),
            };
            let code = required(request.code, "code")?;
            let verifier = required(request.code_verifier, "code_verifier")?;
            let redirect_uri = required(request.redirect_uri, "redirect_uri")?;
            smart::exchange(
                &state,
                smart::Client {
                    client_id: &client_id,
                    client_secret: client_secret.as_deref(),
                },
                &code,
                &redirect_uri,
                &verifier,
            )
            .await?
        }
        "refresh_token" => {
            let refresh_token = required(request.refresh_token, "refresh_token")?;
            let basic = basic_credentials(&headers);
            let client = match (&basic, request.client_id.as_deref()) {
                (Some((id, secret)), _) => Some((id.as_str(), Some(secret.as_str()))),
                (None, Some(id)) => Some((id, request.client_secret.as_deref())),
                (None, None) => None,
            };
            login::refresh_grant(&state, &refresh_token, client).await?
        }
        "client_credentials" => {
            let (client_id, client_secret) = match basic_credentials(&headers) {
                Some(credentials) => credentials,
                None => (
                    required(request.client_id, "client_id")?,
                    required(request.client_secret, "client_secret")?,
                ),
            };
            login::client_credentials_grant(&state, &client_id, &client_secret).await?
        }
        _ => return Err(GrantError::UnsupportedGrantType.into()),
    };
    Ok(Json(response))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// The refresh token of the login to end.
    pub token: String,
}

/// Log out: the login the refresh token belongs to ends, with its access tokens.
#[utoipa::path(post, path = "/api/auth/revoke", tag = "auth",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked (or unknown, which RFC 7009 treats alike)")))]
async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    builtin_only(&state)?;
    let request: RevokeRequest = form(&headers, &body)?;
    login::revoke(&state, &request.token).await?;
    Ok(StatusCode::OK)
}

/// Users whose tokens were voided (deactivation, a role change under Keycloak) and ended
/// logins within the longest access-token lifetime, for the other services' token
/// verifiers: a platform service's token with scope `revocations:read`. Internal: the
/// gateway does not route it.
#[utoipa::path(get, path = "/internal/auth/revocations", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = RevocationList), (status = 401, body = ProblemDetails),
        (status = 403, body = ProblemDetails)))]
async fn revocations(
    State(state): State<AppState>,
    _service: Require<ServiceWith<RevocationsRead>>,
) -> Result<Json<RevocationList>, ApiError> {
    Ok(Json(
        login::revocation_list(&state.pool, state.tokens.access_ttl + state.tokens.leeway).await?,
    ))
}

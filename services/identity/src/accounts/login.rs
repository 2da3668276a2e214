//! The token endpoint's grants (password, refresh_token, client_credentials) and logout.

use std::net::IpAddr;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use polyclinic_auth::{RevocationList, Revoked};
use polyclinic_http::ApiError;
use polyclinic_http::client_address::limit_key;
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::accounts::tokens::{self, Subject};
use crate::accounts::verify_password;
use crate::domain::user::{User, UserRole, UserStatus};
use crate::repo::sessions::{self, NewRefreshToken};
use crate::repo::{smart, throttle, users};

/// Password checks of one account from one client address (IPv6: its /64) per
/// [`PAIR_WINDOW`]: a guesser gets five tries a quarter of an hour from where they are.
pub const PAIR_LIMIT: i32 = 5;
pub const PAIR_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Password checks of one account from every address together per [`ACCOUNT_WINDOW`]: a
/// guesser with many addresses is capped too, and when they reach it the account is shut
/// for everyone only until this short window ends, so throttling cannot lock a chosen
/// person (the admin, say) out for long.
pub const ACCOUNT_LIMIT: i32 = 20;
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// First-party clients that may use the password grant (their tokens act with the person's
/// whole role).
pub use polyclinic_auth::FIRST_PARTY_CLIENTS;

/// An OAuth token response (RFC 6749 section 5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
    /// What a SMART app was granted (space-separated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// SMART's patient context: the signed-in patient, when `launch/patient` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<Uuid>,
    /// The OpenID Connect ID token, when `openid` was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What a SMART app's login carries beyond a person's own: the grant it holds, the scopes
/// granted, and the ID token's nonce.
#[derive(Debug, Clone, Copy)]
pub struct AppLogin<'a> {
    pub grant_id: Uuid,
    pub scopes: &'a [String],
    pub nonce: Option<&'a str>,
}

impl AppLogin<'_> {
    fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }

    /// Whether the app may keep the login past the access token (SMART's `offline_access`
    /// and `online_access`).
    fn keeps_login(&self) -> bool {
        self.has("offline_access") || self.has("online_access")
    }
}

/// Why a grant was refused. Rendered as problem+json that also carries OAuth's `error` and
/// `error_description` members, so standard OAuth clients understand it.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidGrant(&'static str),
    #[error("unknown client or wrong client secret")]
    InvalidClient,
    #[error("this grant type is not supported")]
    UnsupportedGrantType,
    #[error("too many failed logins for this account; try again later")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<GrantError> for ApiError {
    fn from(err: GrantError) -> Self {
        let detail = err.to_string();
        let (status, code) = match err {
            GrantError::Unexpected(source) => return ApiError::internal(source),
            GrantError::Throttled { retry_after_secs } => {
                return ApiError::too_many_requests("too_many_login_attempts", retry_after_secs)
                    .with_extension("error", json!("invalid_grant"))
                    .with_extension("error_description", json!(detail));
            }
            GrantError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            GrantError::InvalidGrant(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
            GrantError::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client"),
            GrantError::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
        };
        ApiError::new(status, code, detail.clone())
            .with_extension("error", json!(code))
            .with_extension("error_description", json!(detail))
    }
}

fn roles_of(user: &User) -> Vec<&'static str> {
    vec![user.role.as_str()]
}

/// Starts a login: a new refresh token family and an access token bound to it. An app's
/// login is tied to its grant, so that revoking the grant ends it; the app gets the refresh
/// token only if it was granted `offline_access` or `online_access`.
pub async fn start_session(
    state: &AppState,
    user: &User,
    client_id: &str,
    app: Option<AppLogin<'_>>,
) -> Result<TokenResponse, GrantError> {
    start_session_as(state, user, client_id, app, Uuid::now_v7()).await
}

/// [`start_session`] with the login's (refresh token family's) id chosen by the caller.
pub async fn start_session_as(
    state: &AppState,
    user: &User,
    client_id: &str,
    app: Option<AppLogin<'_>>,
    family_id: Uuid,
) -> Result<TokenResponse, GrantError> {
    let (refresh_token, hash) = tokens::new_refresh_token()?;
    let refresh_ttl =
        chrono::Duration::from_std(state.tokens.refresh_ttl).map_err(anyhow::Error::from)?;
    let mut conn = state.pool.acquire().await.map_err(anyhow::Error::from)?;
    sessions::insert_refresh_token(
        &mut conn,
        &NewRefreshToken {
            family_id,
            user_id: user.id,
            client_id,
            token_hash: &hash,
            expires_at: Utc::now() + refresh_ttl,
            grant_id: app.map(|app| app.grant_id),
            scopes: app.map(|app| app.scopes),
        },
    )
    .await?;
    access_for(state, user, client_id, family_id, refresh_token, app).await
}

async fn access_for(
    state: &AppState,
    user: &User,
    client_id: &str,
    family_id: Uuid,
    refresh_token: String,
    app: Option<AppLogin<'_>>,
) -> Result<TokenResponse, GrantError> {
    let subject = Subject {
        subject: user.id.to_string(),
        roles: roles_of(user),
        client_id: client_id.to_owned(),
        session_id: Some(family_id),
        username: Some(user.username.clone()),
        email: Some(user.email.clone()),
        scopes: app.map(|app| app.scopes.to_vec()).unwrap_or_default(),
    };
    let (access_token, expires_in) =
        tokens::issue_access_token(&state.pool, &state.tokens, &subject).await?;
    let keeps_login = app.is_none_or(|app| app.keeps_login());
    let mut response = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: keeps_login.then_some(refresh_token),
        refresh_expires_in: keeps_login
            .then(|| i64::try_from(state.tokens.refresh_ttl.as_secs()).unwrap_or(i64::MAX)),
        scope: None,
        patient: None,
        id_token: None,
    };
    if let Some(app) = app {
        response.scope = Some(app.scopes.join(" "));
        if app.has("launch/patient") && user.role == UserRole::Patient {
            response.patient = Some(user.id);
        }
        if app.has("openid") {
            let claims = tokens::IdClaims {
                sub: user.id.to_string(),
                aud: client_id,
                nonce: app.nonce,
                fhir_user: app.has("fhirUser").then(|| state.fhir_user(user)).flatten(),
                name: format!("{} {}", user.first_name, user.last_name),
                preferred_username: &user.username,
            };
            response.id_token =
                Some(tokens::issue_id_token(&state.pool, &state.tokens, &claims).await?);
        }
    }
    Ok(response)
}

/// The throttle counters of one login attempt: the (account, address) pair's and the
/// account's. An account is its id when one has the login, else the login as typed
/// (normalised), so an unknown login is throttled exactly like a known one.
struct Counters {
    pair: Vec<u8>,
    account: Vec<u8>,
}

impl Counters {
    fn new(user: Option<&User>, login: &str, client: IpAddr) -> Self {
        let account = match user {
            Some(user) => format!("user:{}", user.id),
            None => format!("login:{}", login.trim().to_lowercase()),
        };
        let digest = |text: String| {
            ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
                .as_ref()
                .to_vec()
        };
        Self {
            pair: digest(format!("pair\0{account}\0{}", limit_key(client))),
            account: digest(format!("account\0{account}")),
        }
    }

    /// Takes an attempt from both counters before the password is checked, so that
    /// however many attempts arrive at once, at most the allowance is verified.
    async fn take(&self, pool: &PgPool) -> Result<(), GrantError> {
        let (attempts, started) = throttle::take_attempt(pool, &self.pair, PAIR_WINDOW).await?;
        if attempts > PAIR_LIMIT {
            return Err(throttled(started, PAIR_WINDOW));
        }
        let (attempts, started) =
            throttle::take_attempt(pool, &self.account, ACCOUNT_WINDOW).await?;
        if attempts > ACCOUNT_LIMIT {
            // Not checked, so not this address's try.
            throttle::give_back(pool, &self.pair).await?;
            return Err(throttled(started, ACCOUNT_WINDOW));
        }
        Ok(())
    }

    /// The password was right: this address starts afresh, and the try does not count
    /// against the account.
    async fn succeeded(&self, pool: &PgPool) -> Result<(), GrantError> {
        throttle::clear(pool, &self.pair).await?;
        throttle::give_back(pool, &self.account).await?;
        Ok(())
    }
}

fn throttled(started: DateTime<Utc>, window: Duration) -> GrantError {
    let ends = started + chrono::Duration::from_std(window).unwrap_or_default();
    let retry_after_secs = u64::try_from((ends - Utc::now()).num_seconds())
        .unwrap_or(1)
        .max(1);
    GrantError::Throttled { retry_after_secs }
}

/// `grant_type=password`: a first-party client logs a person in from `client`.
pub async fn password_grant(
    state: &AppState,
    login: &str,
    password: String,
    client_id: &str,
    client: IpAddr,
) -> Result<TokenResponse, GrantError> {
    if !FIRST_PARTY_CLIENTS.contains(&client_id) {
        return Err(GrantError::InvalidClient);
    }
    let user = check_password(state, login, password, client).await?;
    start_session(state, &user, client_id, None).await
}

/// The active person whose login and password these are, checked under the login throttle
/// (the password grant's, and the sign-in page of the authorization endpoint's).
pub async fn check_password(
    state: &AppState,
    login: &str,
    password: String,
    client: IpAddr,
) -> Result<User, GrantError> {
    let found = users::find_for_login(&state.pool, login).await?;
    let counters = Counters::new(found.as_ref().map(|(user, _)| user), login, client);
    counters.take(&state.pool).await?;
    let Some((user, hash)) = found else {
        // Spend the same time as for a real account, so timing does not reveal which exist.
        verify_password(password, None).await;
        return Err(GrantError::InvalidGrant("wrong username or password"));
    };
    if !verify_password(password, hash).await {
        return Err(GrantError::InvalidGrant("wrong username or password"));
    }
    counters.succeeded(&state.pool).await?;
    if user.status != UserStatus::Active {
        return Err(GrantError::InvalidGrant("this account is deactivated"));
    }
    Ok(user)
}

/// Forgets throttle counters whose window ended a day ago.
pub async fn purge_throttle(pool: &PgPool) -> anyhow::Result<u64> {
    throttle::purge(pool, Utc::now() - chrono::Duration::days(1)).await
}

/// `grant_type=refresh_token`: rotates the refresh token. Presenting one that was already
/// used means it leaked: the whole login is revoked. An app's login is refreshed only by
/// that app (`client`: the client id and secret it presented; a confidential app must).
pub async fn refresh_grant(
    state: &AppState,
    presented: &str,
    client: Option<(&str, Option<&str>)>,
) -> Result<TokenResponse, GrantError> {
    let hash = tokens::hash_refresh_token(presented);
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let Some(token) = sessions::find_refresh_token_for_update(&mut tx, &hash).await? else {
        return Err(GrantError::InvalidGrant("unknown refresh token"));
    };
    if sessions::is_revoked(&mut tx, token.family_id).await? {
        return Err(GrantError::InvalidGrant("this login has ended"));
    }
    if token.used_at.is_some() {
        sessions::revoke_family(
            &mut tx,
            token.family_id,
            token.user_id,
            "refresh token reused",
        )
        .await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        state
            .verifier
            .revoke_session(&token.family_id.to_string(), Utc::now().timestamp());
        tracing::warn!(user_id = %token.user_id, "a spent refresh token was presented; the login is revoked");
        return Err(GrantError::InvalidGrant(
            "refresh token already used; the login is revoked",
        ));
    }
    if token.expires_at <= Utc::now() {
        return Err(GrantError::InvalidGrant("refresh token expired"));
    }
    let user = users::find_user(&mut tx, token.user_id)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .ok_or(GrantError::InvalidGrant("unknown refresh token"))?;
    if user.status != UserStatus::Active {
        return Err(GrantError::InvalidGrant("this account is deactivated"));
    }
    // An app's login lasts as long as its grant, with what it was granted that is granted
    // still (a later, wider consent does not widen it).
    let scopes = match token.grant_id {
        None => None,
        Some(grant_id) => {
            crate::accounts::smart::authenticate_client(state, &token.client_id, client).await?;
            match smart::find_grant(&mut tx, grant_id).await? {
                Some(grant) if grant.revoked_at.is_none() => {
                    let kept: Vec<String> = token
                        .scopes
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|scope| grant.scopes.contains(scope))
                        .collect();
                    Some((grant_id, kept))
                }
                _ => return Err(GrantError::InvalidGrant("access for this app was revoked")),
            }
        }
    };

    let (refresh_token, new_hash) = tokens::new_refresh_token()?;
    sessions::mark_used(&mut tx, token.id).await?;
    sessions::insert_refresh_token(
        &mut tx,
        &NewRefreshToken {
            family_id: token.family_id,
            user_id: token.user_id,
            client_id: &token.client_id,
            token_hash: &new_hash,
            expires_at: token.expires_at,
            grant_id: token.grant_id,
            scopes: scopes.as_ref().map(|(_, scopes)| scopes.as_slice()),
        },
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    let app = scopes.as_ref().map(|(grant_id, scopes)| AppLogin {
        grant_id: *grant_id,
        scopes,
        nonce: None,
    });
    access_for(
        state,
        &user,
        &token.client_id,
        token.family_id,
        refresh_token,
        app,
    )
    .await
}

/// `grant_type=client_credentials`: a platform service gets a token of its own.
pub async fn client_credentials_grant(
    state: &AppState,
    client_id: &str,
    client_secret: &str,
) -> Result<TokenResponse, GrantError> {
    let Some(client) = state
        .service_clients
        .get(client_id)
        .filter(|client| polyclinic_http::secrets_match(client_secret, &client.secret))
    else {
        return Err(GrantError::InvalidClient);
    };
    let subject = Subject {
        subject: client_id.to_owned(),
        roles: vec!["SERVICE"],
        client_id: client_id.to_owned(),
        session_id: None,
        username: Some(client_id.to_owned()),
        email: None,
        scopes: polyclinic_auth::scopes::granted_to(client.service)
            .iter()
            .map(|scope| (*scope).to_owned())
            .collect(),
    };
    let (access_token, expires_in) =
        tokens::issue_access_token(&state.pool, &state.tokens, &subject).await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: None,
        refresh_expires_in: None,
        scope: None,
        patient: None,
        id_token: None,
    })
}

/// Users whose tokens were voided and logins that ended within `horizon` (the longest
/// access-token lifetime, plus a minute of margin): what every token verifier must refuse.
pub async fn revocation_list(
    pool: &sqlx::PgPool,
    horizon: Duration,
) -> anyhow::Result<RevocationList> {
    let since = Utc::now() - chrono::Duration::from_std(horizon)? - chrono::Duration::seconds(60);
    let subjects = users::tokens_revoked_since(pool, since).await?;
    let sessions = sessions::revoked_since(pool, since).await?;
    let revoked = |(id, at): (Uuid, chrono::DateTime<Utc>)| Revoked {
        id: id.to_string(),
        revoked_at: at.timestamp(),
    };
    Ok(RevocationList {
        subjects: subjects.into_iter().map(revoked).collect(),
        sessions: sessions.into_iter().map(revoked).collect(),
    })
}

/// Logout (RFC 7009): the login the refresh token belongs to ends. Unknown tokens are
/// ignored, as the RFC asks.
pub async fn revoke(state: &AppState, presented: &str) -> Result<(), GrantError> {
    let hash = tokens::hash_refresh_token(presented);
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    if let Some(token) = sessions::find_refresh_token_for_update(&mut tx, &hash).await? {
        sessions::revoke_family(&mut tx, token.family_id, token.user_id, "logout").await?;
        tx.commit().await.map_err(anyhow::Error::from)?;
        state
            .verifier
            .revoke_session(&token.family_id.to_string(), Utc::now().timestamp());
    }
    Ok(())
}

//! SMART App Launch 2.x, standalone launch, with the built-in provider: the apps
//! administrators register, the authorization request a person signs in to and allows or
//! denies, the code exchanged with PKCE (S256) for tokens that carry the granted scopes and
//! the patient context, and the grants people can list and revoke.
//!
//! OAuth's rules are kept as RFC 6749 and 7636 and the SMART specification state them: an
//! unknown client or an unregistered redirect URI is shown on the page and never redirected
//! to; every other refusal goes back to the app as `error`; a code is good once, for two
//! minutes, for its redirect URI and its PKCE verifier, and a second use revokes what the
//! first one gave.

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use polyclinic_fhir::smart::{IDENTITY_SCOPES, is_known};
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use uuid::Uuid;

use crate::AppState;
use crate::accounts::login::{self, AppLogin, GrantError, TokenResponse};
use crate::accounts::tokens;
use crate::domain::user::{User, UserRole};
use crate::repo::smart::{self as repo, App, Grant, NewApp, NewCode};
use crate::repo::{sessions, users};

/// How long a code is good for.
const CODE_TTL: Duration = Duration::minutes(2);

/// Why a SMART request was refused.
#[derive(Debug, thiserror::Error)]
pub enum SmartError {
    #[error("{0}")]
    Invalid(String),
    #[error("an app with this client id exists already")]
    ClientIdTaken,
    #[error("no such app")]
    AppNotFound,
    #[error("no such grant of yours")]
    GrantNotFound,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// An app to register, as an administrator describes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRequest {
    /// 3 to 64 letters, digits, `.`, `_` or `-`; not starting with `polyclinic-`.
    pub client_id: String,
    pub name: String,
    /// Where the authorization endpoint may send the person back: `https://` URLs (or
    /// `http://localhost` and `http://127.0.0.1` for development), without fragments.
    pub redirect_uris: Vec<String>,
    /// A confidential app (a server) gets a secret; a public one (in a browser or on a
    /// phone) authenticates with PKCE alone.
    pub confidential: bool,
    /// What the app may ask for: `openid`, `fhirUser`, `launch/patient`, `offline_access`,
    /// `online_access`, and resource scopes such as `patient/*.rs` or
    /// `patient/Appointment.rs`.
    pub scopes: Vec<String>,
}

fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("generating a random token"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn acceptable_redirect(uri: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(uri) else {
        return false;
    };
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    url.fragment().is_none()
        && url.username().is_empty()
        && (url.scheme() == "https" || (url.scheme() == "http" && local))
}

/// Registers an app; a confidential one's secret is returned this once.
pub async fn register(
    state: &AppState,
    admin_id: Uuid,
    request: &AppRequest,
) -> Result<(App, Option<String>), SmartError> {
    let client_id = request.client_id.trim();
    let valid_id = (3..=64).contains(&client_id.len())
        && client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !client_id.starts_with("polyclinic-");
    if !valid_id {
        return Err(SmartError::Invalid(
            "client_id: 3 to 64 letters, digits, `.`, `_` or `-`, not starting with `polyclinic-`"
                .into(),
        ));
    }
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(SmartError::Invalid(
            "name: 1 to 200 characters on one line".into(),
        ));
    }
    if request.redirect_uris.is_empty()
        || request.redirect_uris.len() > 10
        || !request
            .redirect_uris
            .iter()
            .all(|uri| acceptable_redirect(uri))
    {
        return Err(SmartError::Invalid(
            "redirect_uris: 1 to 10 https:// URLs (http:// only for localhost), without fragments"
                .into(),
        ));
    }
    if request.scopes.is_empty() {
        return Err(SmartError::Invalid("scopes: at least one".into()));
    }
    if let Some(unknown) = request.scopes.iter().find(|scope| !is_known(scope)) {
        return Err(SmartError::Invalid(format!(
            "scopes: `{unknown}` is not a scope this server grants"
        )));
    }
    let secret = request.confidential.then(random_token).transpose()?;
    let secret_hash = secret.as_deref().map(tokens::hash_refresh_token);
    let app = repo::insert_app(
        &state.pool,
        &NewApp {
            client_id,
            name,
            redirect_uris: &request.redirect_uris,
            secret_hash: secret_hash.as_deref(),
            scopes: &request.scopes,
            created_by: admin_id,
        },
    )
    .await?
    .ok_or(SmartError::ClientIdTaken)?;
    Ok((app, secret))
}

/// Ends every login held through the revoked grants, here and (through the revocation feed)
/// in every service.
async fn end_logins(
    tx: &mut sqlx::PgConnection,
    revoked: &[(Uuid, Uuid)],
) -> anyhow::Result<Vec<Uuid>> {
    let mut ended = Vec::new();
    for (grant_id, user_id) in revoked {
        for family in repo::families_of(tx, *grant_id).await? {
            sessions::revoke_family(tx, family, *user_id, "app access revoked").await?;
            ended.push(family);
        }
    }
    Ok(ended)
}

fn forget_sessions(state: &AppState, families: &[Uuid]) {
    let now = Utc::now().timestamp();
    for family in families {
        state.verifier.revoke_session(&family.to_string(), now);
    }
}

/// Revokes every grant of an app (and, with `disable`, disables it). Returns how many grants
/// were revoked.
pub async fn revoke_app(
    state: &AppState,
    client_id: &str,
    disable: bool,
) -> Result<usize, SmartError> {
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    if repo::find_app(&state.pool, client_id).await?.is_none() {
        return Err(SmartError::AppNotFound);
    }
    if disable {
        repo::disable_app(&mut tx, client_id).await?;
    }
    let revoked = repo::revoke_grants(&mut tx, None, Some(client_id)).await?;
    let families = end_logins(&mut tx, &revoked).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    forget_sessions(state, &families);
    Ok(revoked.len())
}

/// Revokes one of `user_id`'s grants.
pub async fn revoke_grant(
    state: &AppState,
    user_id: Uuid,
    grant_id: Uuid,
) -> Result<(), SmartError> {
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    match repo::find_grant(&mut tx, grant_id).await? {
        Some(grant) if grant.user_id == user_id && grant.revoked_at.is_none() => {}
        _ => return Err(SmartError::GrantNotFound),
    }
    let revoked = repo::revoke_grants(&mut tx, Some(grant_id), None).await?;
    let families = end_logins(&mut tx, &revoked).await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    forget_sessions(state, &families);
    Ok(())
}

/// Forgets authorization codes that expired a day ago (idempotent; any instance may).
pub async fn purge_codes(pool: &sqlx::PgPool) -> anyhow::Result<u64> {
    repo::purge_codes(pool, Utc::now() - Duration::days(1)).await
}

/// The apps `user_id` allowed, newest first.
pub async fn grants_of(state: &AppState, user_id: Uuid) -> Result<Vec<Grant>, SmartError> {
    Ok(repo::grants_of(&state.pool, user_id).await?)
}

/// An authorization request's parameters (RFC 6749 section 4.1.1, RFC 7636, SMART's `aud`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub aud: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
}

/// Why an authorization request was refused.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Shown on the page: the client or its redirect URI cannot be trusted with a redirect.
    Page(String),
    /// Sent back to the app's redirect URI as `error` and `error_description`.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
    Unexpected(anyhow::Error),
}

impl From<anyhow::Error> for AuthorizeError {
    fn from(err: anyhow::Error) -> Self {
        AuthorizeError::Unexpected(err)
    }
}

/// An authorization request that can be shown to the person: the app, where to send them
/// back, and the scopes it asks for (those the app may ask for).
#[derive(Debug, Clone)]
pub struct Checked {
    pub app: App,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
}

/// Checks an authorization request.
pub async fn check(
    state: &AppState,
    request: &AuthorizeRequest,
) -> Result<Checked, AuthorizeError> {
    let client_id = request
        .client_id
        .as_deref()
        .ok_or_else(|| AuthorizeError::Page("The request names no app (`client_id`).".into()))?;
    // No registered client id is longer, or holds anything but these characters.
    let plausible = client_id.len() <= 64
        && client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plausible {
        return Err(AuthorizeError::Page(
            "No app with this client id is registered here.".into(),
        ));
    }
    let app = repo::find_app(&state.pool, client_id)
        .await?
        .filter(|app| app.status == "ACTIVE")
        .ok_or_else(|| {
            AuthorizeError::Page("No app with this client id is registered here.".into())
        })?;
    let redirect_uri = match request.redirect_uri.as_deref() {
        Some(uri) if app.redirect_uris.iter().any(|registered| registered == uri) => uri.to_owned(),
        None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
        _ => {
            return Err(AuthorizeError::Page(
                "The app asked to return to an address it did not register.".into(),
            ));
        }
    };
    let refuse = |error, description: &str| AuthorizeError::Redirect {
        redirect_uri: redirect_uri.clone(),
        state: request.state.clone(),
        error,
        description: description.to_owned(),
    };
    if request.response_type.as_deref() != Some("code") {
        return Err(refuse(
            "unsupported_response_type",
            "Only `response_type=code` is supported.",
        ));
    }
    let challenge = match (
        request.code_challenge.as_deref(),
        request.code_challenge_method.as_deref(),
    ) {
        (Some(challenge), Some("S256")) if (43..=128).contains(&challenge.len()) => {
            challenge.to_owned()
        }
        _ => {
            return Err(refuse(
                "invalid_request",
                "PKCE is required: `code_challenge` with `code_challenge_method=S256`.",
            ));
        }
    };
    if let Some(aud) = request.aud.as_deref()
        && aud.trim_end_matches('/') != &*state.fhir_base
    {
        return Err(refuse(
            "invalid_request",
            "`aud` is not this FHIR server's base URL.",
        ));
    }
    let asked: Vec<String> = request
        .scope
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = asked.iter().find(|scope| !is_known(scope)) {
        return Err(refuse(
            "invalid_scope",
            &format!("`{unknown}` is not a scope this server grants."),
        ));
    }
    let scopes: Vec<String> = asked
        .into_iter()
        .filter(|scope| app.scopes.contains(scope))
        .collect();
    // A token must carry scopes to be held to them: an app that may ask for none of what it
    // asked for gets nothing.
    if !scopes
        .iter()
        .any(|scope| !IDENTITY_SCOPES.contains(&scope.as_str()) || scope == "openid")
    {
        return Err(refuse(
            "invalid_scope",
            "The app asked for nothing it may be granted.",
        ));
    }
    Ok(Checked {
        app,
        redirect_uri,
        scopes,
        state: request.state.clone(),
        code_challenge: challenge,
        nonce: request.nonce.clone().filter(|nonce| !nonce.is_empty()),
    })
}

/// `redirect_uri` with `pairs` added to its query.
pub fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.to_string()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

/// The person denied the app: back to it with `access_denied`.
pub fn denied(checked: &Checked) -> String {
    let mut pairs = vec![
        ("error", "access_denied"),
        ("error_description", "The person did not allow access."),
    ];
    if let Some(state) = checked.state.as_deref() {
        pairs.push(("state", state));
    }
    redirect_to(&checked.redirect_uri, &pairs)
}

/// The scopes `user` can be granted of those asked: the patient context only for a patient
/// (this server has no patient picker).
pub fn grantable(checked: &Checked, user: &User) -> Vec<String> {
    checked
        .scopes
        .iter()
        .filter(|scope| scope.as_str() != "launch/patient" || user.role == UserRole::Patient)
        .cloned()
        .collect()
}

/// The person signed in and allowed the app: the grant is recorded and the app gets a code.
pub async fn allow(
    state: &AppState,
    checked: &Checked,
    login: &str,
    password: String,
    client: IpAddr,
) -> Result<String, GrantError> {
    let user = login::check_password(state, login, password, client).await?;
    let scopes = grantable(checked, &user);
    let code = random_token()?;
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let grant_id = repo::upsert_grant(&mut tx, &checked.app.client_id, user.id, &scopes).await?;
    repo::insert_code(
        &mut tx,
        &NewCode {
            code_hash: &tokens::hash_refresh_token(&code),
            grant_id,
            redirect_uri: &checked.redirect_uri,
            code_challenge: &checked.code_challenge,
            scopes: &scopes,
            nonce: checked.nonce.as_deref(),
            expires_at: Utc::now() + CODE_TTL,
        },
    )
    .await?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = checked.state.as_deref() {
        pairs.push(("state", state));
    }
    Ok(redirect_to(&checked.redirect_uri, &pairs))
}

/// The client of a code exchange, as it authenticated.
#[derive(Debug)]
pub struct Client<'a> {
    pub client_id: &'a str,
    pub client_secret: Option<&'a str>,
}

/// The active app `client_id`, if the client that presented `client` (its id and secret)
/// is it: a confidential app must present its secret; a public one may name itself.
pub async fn authenticate_client(
    state: &AppState,
    client_id: &str,
    client: Option<(&str, Option<&str>)>,
) -> Result<App, GrantError> {
    if client.is_some_and(|(presented, _)| presented != client_id) {
        return Err(GrantError::InvalidClient);
    }
    let app = repo::find_app(&state.pool, client_id)
        .await?
        .filter(|app| app.status == "ACTIVE")
        .ok_or(GrantError::InvalidClient)?;
    if let Some(hash) = &app.secret_hash {
        // Digests compared: how long a comparison of SHA-256 digests takes says nothing of
        // the secret.
        let presented = client
            .and_then(|(_, secret)| secret)
            .map(tokens::hash_refresh_token);
        if presented.as_ref() != Some(hash) {
            return Err(GrantError::InvalidClient);
        }
    }
    Ok(app)
}

/// `grant_type=authorization_code`: a code, its redirect URI and the PKCE verifier become
/// the app's tokens.
pub async fn exchange(
    state: &AppState,
    client: Client<'_>,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<TokenResponse, GrantError> {
    let app = authenticate_client(
        state,
        client.client_id,
        Some((client.client_id, client.client_secret)),
    )
    .await?;
    let code_hash = tokens::hash_refresh_token(code);
    // The login this code starts, named before the code is taken so that a second use
    // finds it (in the same transaction as the first use's mark).
    let family_id = Uuid::now_v7();
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let stored = repo::take_code(&mut tx, &code_hash, family_id).await?;
    let Some(stored) = stored.filter(|stored| stored.client_id == app.client_id) else {
        return Err(GrantError::InvalidGrant("unknown authorization code"));
    };
    if stored.used_at.is_some() {
        // A code used twice leaked: the login it gave is ended (RFC 6749 section 4.1.2).
        if let Some(family) = stored.family_id {
            sessions::revoke_family(&mut tx, family, stored.user_id, "authorization code reused")
                .await?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            forget_sessions(state, &[family]);
        }
        return Err(GrantError::InvalidGrant(
            "authorization code already used; the login it gave is ended",
        ));
    }
    tx.commit().await.map_err(anyhow::Error::from)?;
    if stored.expires_at <= Utc::now() || stored.revoked_at.is_some() {
        return Err(GrantError::InvalidGrant("authorization code expired"));
    }
    if redirect_uri != stored.redirect_uri {
        return Err(GrantError::InvalidGrant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    if URL_SAFE_NO_PAD.encode(digest.as_ref()) != stored.code_challenge {
        return Err(GrantError::InvalidGrant(
            "the PKCE code_verifier does not match the challenge",
        ));
    }
    let mut conn = state.pool.acquire().await.map_err(anyhow::Error::from)?;
    let user = users::find_user(&mut conn, stored.user_id)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?
        .filter(|user| user.status == crate::domain::user::UserStatus::Active)
        .ok_or(GrantError::InvalidGrant("this account is deactivated"))?;
    drop(conn);
    login::start_session_as(
        state,
        &user,
        &app.client_id,
        Some(AppLogin {
            grant_id: stored.grant_id,
            scopes: &stored.scopes,
            nonce: stored.nonce.as_deref(),
        }),
        family_id,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_local_http_without_fragments() {
        assert!(acceptable_redirect("https://app.example/callback"));
        assert!(acceptable_redirect("http://127.0.0.1:8000/cb"));
        assert!(acceptable_redirect("http://localhost/cb"));
        assert!(!acceptable_redirect("http://app.example/callback"));
        assert!(!acceptable_redirect("https://app.example/cb#frag"));
        assert!(!acceptable_redirect("https://user@app.example/cb"));
        assert!(!acceptable_redirect("javascript:alert(1)"));
        assert!(!acceptable_redirect("not a url"));
    }

    #[test]
    fn a_redirect_keeps_the_uris_own_query() {
        assert_eq!(
            redirect_to(
                "https://app.example/cb?x=1",
                &[("code", "a b"), ("state", "s")]
            ),
            "https://app.example/cb?x=1&code=a+b&state=s"
        );
    }
}

//! The built-in OIDC provider's tokens: Ed25519 signing keys kept in the database, access
//! tokens (JWT, EdDSA) and opaque refresh tokens stored as SHA-256 hashes.
//!
//! Rotation publishes a new key in the JWKS `auth.key_publish_lead_secs` before it signs
//! anything, so verifiers that cached the JWKS learn it in time; the key it replaces stays
//! published until every token it signed has expired.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::repo::keys::{self, StoredKey};

/// What the provider issues, from the configuration.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub leeway: Duration,
    pub publish_lead: Duration,
}

/// Who an access token is for.
#[derive(Debug, Clone)]
pub struct Subject {
    pub subject: String,
    pub roles: Vec<&'static str>,
    pub client_id: String,
    pub session_id: Option<Uuid>,
    pub username: Option<String>,
    pub email: Option<String>,
    /// The token's scopes (RFC 9068 `scope`): a service client's, or what a person granted
    /// a SMART app. A person's first-party login has none.
    pub scopes: Vec<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: String,
    azp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    realm_access: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

/// A fresh Ed25519 key, active from `active_from`.
pub fn generate_key(active_from: DateTime<Utc>) -> anyhow::Result<StoredKey> {
    let random = SystemRandom::new();
    let document = Ed25519KeyPair::generate_pkcs8(&random)
        .map_err(|_| anyhow::anyhow!("generating an Ed25519 key"))?;
    let pair = Ed25519KeyPair::from_pkcs8(document.as_ref())
        .map_err(|_| anyhow::anyhow!("reading the generated key"))?;
    Ok(StoredKey {
        kid: Uuid::now_v7().simple().to_string(),
        private_key: document.as_ref().to_vec(),
        public_key: pair.public_key().as_ref().to_vec(),
        active_from,
    })
}

/// Makes sure a key can sign now; the first start creates one.
pub async fn ensure_signing_key(pool: &PgPool) -> anyhow::Result<()> {
    if keys::signing_key(pool, Utc::now()).await?.is_none() {
        keys::insert_key(pool, &generate_key(Utc::now())?).await?;
        tracing::info!("created the first token signing key");
    }
    Ok(())
}

/// Publishes a new key that starts signing after `lead`. Returns its key id.
pub async fn rotate(pool: &PgPool, lead: Duration) -> anyhow::Result<String> {
    let lead = chrono::Duration::from_std(lead)?;
    let key = generate_key(Utc::now() + lead)?;
    keys::insert_key(pool, &key).await?;
    Ok(key.kid)
}

/// The JWKS: every key that signs now or will soon, and retired keys whose tokens may still
/// be alive.
pub async fn jwks(pool: &PgPool, settings: &TokenSettings) -> anyhow::Result<Value> {
    let all = keys::all_keys(pool).await?;
    let now = Utc::now();
    let retention = chrono::Duration::from_std(settings.access_ttl + settings.leeway)?;
    let published = all.iter().enumerate().filter(|(index, _)| {
        // A key is retired once a newer one is active; it stays until its tokens expire.
        all[index + 1..]
            .iter()
            .filter(|newer| newer.active_from <= now)
            .all(|newer| newer.active_from + retention > now)
    });
    let keys: Vec<Value> = published
        .map(|(_, key)| {
            json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": key.kid,
                "x": URL_SAFE_NO_PAD.encode(&key.public_key),
            })
        })
        .collect();
    Ok(json!({ "keys": keys }))
}

/// Signs an access token for `subject`. Returns it with its lifetime in seconds.
pub async fn issue_access_token(
    pool: &PgPool,
    settings: &TokenSettings,
    subject: &Subject,
) -> anyhow::Result<(String, i64)> {
    let now = Utc::now();
    let key = keys::signing_key(pool, now)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no signing key is active"))?;
    let ttl = secs(settings.access_ttl);
    let claims = Claims {
        iss: &settings.issuer,
        sub: &subject.subject,
        aud: &settings.audience,
        exp: now.timestamp() + ttl,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: Uuid::new_v4().to_string(),
        azp: &subject.client_id,
        sid: subject.session_id.map(|sid| sid.to_string()),
        scope: (!subject.scopes.is_empty()).then(|| subject.scopes.join(" ")),
        realm_access: json!({ "roles": subject.roles }),
        preferred_username: subject.username.as_deref(),
        email: subject.email.as_deref(),
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid);
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_der(&key.private_key),
    )?;
    Ok((token, ttl))
}

/// What an OpenID Connect ID token says of the person an app signed in.
#[derive(Debug, Clone, Serialize)]
pub struct IdClaims<'a> {
    pub sub: String,
    /// The app's client id.
    pub aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    /// The person's FHIR resource (`<base>/Patient/<id>`), when `fhirUser` was granted.
    #[serde(rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    pub name: String,
    pub preferred_username: &'a str,
}

#[derive(Serialize)]
struct IdToken<'a> {
    iss: &'a str,
    exp: i64,
    iat: i64,
    #[serde(flatten)]
    claims: &'a IdClaims<'a>,
}

/// Signs an OpenID Connect ID token (with the access tokens' key and lifetime).
pub async fn issue_id_token(
    pool: &PgPool,
    settings: &TokenSettings,
    claims: &IdClaims<'_>,
) -> anyhow::Result<String> {
    let now = Utc::now();
    let key = keys::signing_key(pool, now)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no signing key is active"))?;
    let token = IdToken {
        iss: &settings.issuer,
        exp: now.timestamp() + secs(settings.access_ttl),
        iat: now.timestamp(),
        claims,
    };
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid);
    Ok(jsonwebtoken::encode(
        &header,
        &token,
        &EncodingKey::from_ed_der(&key.private_key),
    )?)
}

/// A new opaque refresh token and the hash under which it is stored.
pub fn new_refresh_token() -> anyhow::Result<(String, Vec<u8>)> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("generating a refresh token"))?;
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    Ok((token, hash))
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
        .as_ref()
        .to_vec()
}

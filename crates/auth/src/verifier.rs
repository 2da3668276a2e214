//! [`Verifier`]: from a bearer token to a [`Principal`], or a reason it is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use polyclinic_client::ServiceTokens;
use polyclinic_config::{Config, Service};
use polyclinic_http::ApiError;
use serde_json::Value;

use crate::jwks::KeyCache;
use crate::revocation::{RevocationList, Revocations};
use crate::{Principal, roles};

/// Why a token was refused. Each maps to a 401 with its own `code`, except an issuer that
/// cannot be reached, which is a 503.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("tokens are not accepted in the query string")]
    InQuery,
    #[error("the token is malformed or signed with a refused algorithm")]
    Malformed,
    #[error("the token is signed with an unknown key")]
    UnknownKey,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token issuer cannot be reached")]
    Unavailable,
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let code = match &err {
            AuthError::Missing => "missing_token",
            AuthError::InQuery => "token_in_query",
            AuthError::Expired => "token_expired",
            AuthError::Revoked => "token_revoked",
            AuthError::Unavailable => {
                return ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "auth_unavailable",
                    "Tokens cannot be verified right now; try again shortly.",
                );
            }
            AuthError::Malformed | AuthError::UnknownKey | AuthError::Invalid(_) => "invalid_token",
        };
        ApiError::unauthorized(code, err.to_string())
            .with_challenge("Bearer error=\"invalid_token\"")
    }
}

/// Where a verifier learns of ended logins and deactivated users.
#[derive(Clone)]
pub enum RevocationFeed {
    /// Nothing is polled (tests of verification alone).
    None,
    /// The identity service's feed, asked with this service's own token (scope
    /// `revocations:read`): who has been cut off is not for anyone to read.
    Http {
        url: String,
        tokens: Arc<ServiceTokens>,
    },
    /// A function: the identity service reads its own tables.
    Local(Arc<dyn Fn() -> LocalFeed + Send + Sync>),
}

/// What a local feed returns.
pub type LocalFeed =
    std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<RevocationList>> + Send>>;

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevocationFeed::None => f.write_str("None"),
            RevocationFeed::Http { url, .. } => f.debug_struct("Http").field("url", url).finish(),
            RevocationFeed::Local(_) => f.write_str("Local"),
        }
    }
}

/// What a verifier trusts.
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub issuer: String,
    pub audience: String,
    pub jwks_url: String,
    /// The revocation feed it polls.
    pub revocations: RevocationFeed,
    pub leeway: Duration,
    pub refetch_interval: Duration,
    pub revocation_poll: Duration,
    /// The longest an access token lives: revocations older than that are forgotten.
    pub max_token_lifetime: Duration,
}

impl VerifierSettings {
    /// The settings `service` derives from the platform configuration: the identity
    /// service's feed, asked with `service`'s own client credentials.
    pub fn from_config(config: &Config, service: Service) -> Self {
        Self {
            issuer: config.issuer(),
            audience: config.auth.audience.clone(),
            jwks_url: config.jwks_url(),
            revocations: RevocationFeed::Http {
                url: format!(
                    "{}/internal/auth/revocations",
                    config.service_url(Service::Identity)
                ),
                tokens: Arc::new(ServiceTokens::for_service(config, service)),
            },
            leeway: Duration::from_secs(config.auth.leeway_secs.into()),
            refetch_interval: Duration::from_secs(config.auth.jwks_refetch_interval_secs.into()),
            revocation_poll: Duration::from_secs(config.auth.revocation_poll_secs.max(1).into()),
            max_token_lifetime: Duration::from_secs(config.auth.access_token_ttl_secs.into()),
        }
    }
}

/// Verifies bearer tokens. Shared by a service's handlers through its state.
pub struct Verifier {
    settings: VerifierSettings,
    keys: KeyCache,
    revocations: Revocations,
    http: reqwest::Client,
    /// Keyed by the whole token (some hundreds of bytes) with foldhash: only tokens whose
    /// signature checked are kept, so no caller chooses the keys, and SipHash (the
    /// default) cost more than the rest of the lookup.
    verified: Mutex<HashMap<Arc<str>, Verified, foldhash::fast::RandomState>>,
}

/// A token whose signature and claims were checked: reused until it expires, so a client
/// sending the same token many times pays for the signature check once. Revocation is still
/// checked on every use.
struct Verified {
    principal: Principal,
    expires_at: i64,
    issued_at: i64,
}

/// Verified tokens remembered at most; past that the cache is emptied and refilled.
const VERIFIED_CAPACITY: usize = 10_000;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.settings.issuer)
            .finish()
    }
}

/// Only asymmetric algorithms: `none` and HMAC (which a public key could forge) never pass.
const ALLOWED: [Algorithm; 2] = [Algorithm::RS256, Algorithm::EdDSA];

impl Verifier {
    /// A verifier; when a revocation feed is configured, a task polls it for as long as the
    /// verifier lives. Must be called inside a Tokio runtime.
    pub fn new(settings: VerifierSettings) -> Arc<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let verifier = Arc::new(Self {
            keys: KeyCache::new(
                settings.jwks_url.clone(),
                http.clone(),
                settings.refetch_interval,
            ),
            settings,
            revocations: Revocations::default(),
            http,
            verified: Mutex::new(HashMap::default()),
        });
        if !matches!(verifier.settings.revocations, RevocationFeed::None) {
            tokio::spawn(poll_revocations(Arc::downgrade(&verifier)));
        }
        verifier
    }

    /// The issuer this verifier trusts.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// Checks `token` and returns who presented it.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if let Some(principal) = self.remembered(token)? {
            return Ok(principal);
        }
        let principal = self.verify_signed(token).await?;
        Ok(principal)
    }

    /// A previously verified, unexpired token; `Err` if it has been revoked since.
    fn remembered(&self, token: &str) -> Result<Option<Principal>, AuthError> {
        let Ok(verified) = self.verified.lock() else {
            return Ok(None);
        };
        let Some(entry) = verified.get(token) else {
            return Ok(None);
        };
        if now_unix() > entry.expires_at + self.settings.leeway.as_secs() as i64 {
            return Err(AuthError::Expired);
        }
        let principal = &entry.principal;
        if self.revocations.is_revoked(
            &principal.subject,
            principal.session_id.as_deref(),
            entry.issued_at,
        ) {
            return Err(AuthError::Revoked);
        }
        Ok(Some(principal.clone()))
    }

    fn remember(&self, principal: &Principal, expires_at: i64, issued_at: i64) {
        let Ok(mut verified) = self.verified.lock() else {
            return;
        };
        if verified.len() >= VERIFIED_CAPACITY {
            let now = now_unix();
            verified.retain(|_, entry| entry.expires_at > now);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(
            principal.token.clone(),
            Verified {
                principal: principal.clone(),
                expires_at,
                issued_at,
            },
        );
    }

    async fn verify_signed(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(AuthError::Malformed);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let key = self.keys.get(&kid).await?;
        if key.algorithm != header.alg {
            return Err(AuthError::Malformed);
        }

        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();

        let claims = jsonwebtoken::decode::<Value>(token, &key.key, &validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    AuthError::Invalid("bad signature".into())
                }
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    AuthError::Invalid("not valid yet (nbf)".into())
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => {
                    AuthError::Invalid("wrong issuer".into())
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    AuthError::Invalid("wrong audience".into())
                }
                _ => AuthError::Malformed,
            })?
            .claims;

        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let subject = text("sub").ok_or(AuthError::Malformed)?;
        let session_id = text("sid");
        let issued_at = claims.get("iat").and_then(Value::as_i64).unwrap_or(0);
        if self
            .revocations
            .is_revoked(&subject, session_id.as_deref(), issued_at)
        {
            return Err(AuthError::Revoked);
        }
        let principal = Principal {
            roles: roles::from_claims(&claims, &self.settings.audience),
            subject,
            session_id,
            client_id: text("azp"),
            username: text("preferred_username"),
            email: text("email"),
            scopes: roles::scopes_from_claims(&claims, &self.settings.audience).into(),
            token: token.into(),
        };
        let expires_at = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        self.remember(&principal, expires_at, issued_at);
        Ok(principal)
    }

    /// Voids `subject`'s tokens issued up to `at` (unix seconds) at once in this process;
    /// other processes learn it from the feed.
    pub fn revoke_subject(&self, subject: &str, at: i64) {
        self.revocations.add_subject(subject, at);
    }

    /// Voids a login's tokens at once in this process.
    pub fn revoke_session(&self, session: &str, at: i64) {
        self.revocations.add_session(session, at);
    }

    async fn fetch_revocations(&self) -> anyhow::Result<RevocationList> {
        match &self.settings.revocations {
            RevocationFeed::None => Ok(RevocationList::default()),
            RevocationFeed::Local(feed) => feed().await,
            RevocationFeed::Http { url, tokens } => {
                let token = tokens.token().await?;
                let response = self.http.get(url).bearer_auth(token).send().await?;
                if response.status() == reqwest::StatusCode::UNAUTHORIZED {
                    tokens.forget().await;
                }
                Ok(response.error_for_status()?.json().await?)
            }
        }
    }

    async fn refresh_revocations(&self) -> anyhow::Result<()> {
        let list = self.fetch_revocations().await?;
        self.revocations.replace(list);
        let horizon = now_unix()
            - self.settings.max_token_lifetime.as_secs() as i64
            - self.settings.leeway.as_secs() as i64;
        self.revocations.prune(horizon);
        Ok(())
    }
}

async fn poll_revocations(verifier: Weak<Verifier>) {
    let mut failures = 0u32;
    loop {
        let Some(strong) = verifier.upgrade() else {
            return;
        };
        let pause = strong.settings.revocation_poll;
        match strong.refresh_revocations().await {
            Ok(()) => failures = 0,
            Err(err) => {
                failures += 1;
                // The identity service starts alongside; only persistent failure is news.
                if failures == 5 {
                    let feed = &strong.settings.revocations;
                    tracing::warn!(?feed, error = %format!("{err:#}"), "cannot fetch the revocation list");
                }
            }
        }
        drop(strong);
        tokio::time::sleep(pause).await;
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

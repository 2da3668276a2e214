//! The issuer's signing keys, fetched from its JWKS and cached.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use crate::AuthError;

/// Keys older than this are refetched when next used; on failure the old ones still serve.
const MAX_AGE: Duration = Duration::from_secs(600);

/// A key that verifies signatures of exactly one algorithm.
pub(crate) struct VerifyingKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

#[derive(Default)]
struct Cached {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

pub(crate) struct KeyCache {
    url: String,
    http: reqwest::Client,
    refetch_interval: Duration,
    cached: RwLock<Cached>,
    fetching: Mutex<()>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

impl KeyCache {
    pub(crate) fn new(url: String, http: reqwest::Client, refetch_interval: Duration) -> Self {
        Self {
            url,
            http,
            refetch_interval,
            cached: RwLock::new(Cached::default()),
            fetching: Mutex::new(()),
        }
    }

    /// The key `kid`, fetching the JWKS when the key is unknown (rate-limited) or the cache
    /// is old.
    pub(crate) async fn get(&self, kid: &str) -> Result<Arc<VerifyingKey>, AuthError> {
        if let Some(key) = self.lookup(kid, true).await {
            return Ok(key);
        }
        let _one_fetch_at_a_time = self.fetching.lock().await;
        if let Some(key) = self.lookup(kid, true).await {
            return Ok(key);
        }
        let may_fetch = {
            let cached = self.cached.read().await;
            let stale = cached.fetched_at.is_none_or(|at| at.elapsed() >= MAX_AGE);
            let rested = cached
                .attempted_at
                .is_none_or(|at| at.elapsed() >= self.refetch_interval);
            rested || (stale && cached.keys.contains_key(kid))
        };
        if may_fetch {
            let fetched = self.fetch().await;
            let mut cached = self.cached.write().await;
            cached.attempted_at = Some(Instant::now());
            match fetched {
                Ok(keys) => {
                    cached.keys = keys;
                    cached.fetched_at = Some(Instant::now());
                }
                Err(err) => {
                    tracing::warn!(url = %self.url, error = %format!("{err:#}"), "fetching the JWKS failed");
                    if cached.keys.is_empty() {
                        return Err(AuthError::Unavailable);
                    }
                }
            }
        }
        self.lookup(kid, false).await.ok_or(AuthError::UnknownKey)
    }

    async fn lookup(&self, kid: &str, fresh_only: bool) -> Option<Arc<VerifyingKey>> {
        let cached = self.cached.read().await;
        let fresh = cached.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE);
        if fresh_only && !fresh {
            return None;
        }
        cached.keys.get(kid).cloned()
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, Arc<VerifyingKey>>> {
        let set: JwkSet = self
            .http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(set
            .keys
            .into_iter()
            .filter_map(|jwk| {
                let kid = jwk.kid.clone()?;
                let key = verifying_key(jwk)?;
                Some((kid, Arc::new(key)))
            })
            .collect())
    }
}

/// The keys we accept: RSA for RS256 and Ed25519 for EdDSA, for signatures. Anything else
/// (encryption keys, other curves) is ignored.
fn verifying_key(jwk: Jwk) -> Option<VerifyingKey> {
    if jwk.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return None;
    }
    match (jwk.kty.as_str(), jwk.alg.as_deref()) {
        ("RSA", None | Some("RS256")) => Some(VerifyingKey {
            algorithm: Algorithm::RS256,
            key: DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?).ok()?,
        }),
        ("OKP", None | Some("EdDSA")) if jwk.crv.as_deref() == Some("Ed25519") => {
            Some(VerifyingKey {
                algorithm: Algorithm::EdDSA,
                key: DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()?,
            })
        }
        _ => None,
    }
}

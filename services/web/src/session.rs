//! Server-side sessions. The browser holds one opaque cookie; the tokens it stands for, the
//! CSRF token and a pending Keycloak login live here and never reach the browser.
//!
//! Sessions are rows of the web app's own schema (`web.session`), read and written through
//! tower-sessions' PostgreSQL store, so they outlive a restart and every replica serves every
//! session. The store loads a row only while its `expiry_date` is ahead; that date is kept at
//! the earlier of the idle limit (moved on by use) and the absolute one (fixed at the start),
//! so both limits are the store's to enforce. Expired rows are deleted by [`Sessions::purge`],
//! one instance at a time.
//!
//! The cookie carries a random 256-bit value; the row is keyed by a hash of it, so the table
//! holds nothing a browser could present. Each row's data (tokens, who is signed in) is sealed
//! whole (AES-256-GCM, [`Sealer`], bound to its row) with the first of `sessions.keys`; any of
//! the keys opens it, so a new key can be put first while sessions sealed with the old one
//! run out.
//!
//! Each request works on a snapshot of its session. What it changes (a flash message, a
//! pending login) is written back at its end under a lock on the session
//! (`pg_advisory_xact_lock`) onto a fresh read of the row, so two requests of one session, on
//! one replica or two, never undo each other's changes; refreshing the tokens takes the same
//! lock, so a refresh token is spent once however many replicas need a new access token at
//! the same moment (a reused refresh token revokes the whole login).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use polyclinic_config::{Config, Environment, Service};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::session_store::{ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::PostgresStore;

/// The session cookie's name. `__Host-` pins it to this host, path `/` and HTTPS, so it is
/// used only when the app is served over TLS.
pub const COOKIE: &str = "polyclinic_session";
pub const SECURE_COOKIE: &str = "__Host-polyclinic_session";

/// The key of the session's data in the store's record.
const DATA_KEY: &str = "polyclinic";
/// The idle limit is moved on at most this often (not on every request: a write each).
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Development's sealing key when `sessions.keys` is empty (production refuses to start).
const DEVELOPMENT_KEY: &[u8; 32] = b"polyclinic development only key!";

/// Who is signed in, as the identity service described them at login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Patient,
    Doctor,
    Nurse,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text.to_ascii_uppercase().as_str() {
            "PATIENT" => Some(Role::Patient),
            "DOCTOR" => Some(Role::Doctor),
            "NURSE" => Some(Role::Nurse),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The role's start page.
    pub fn home(self) -> &'static str {
        match self {
            Role::Patient => "/appointments",
            Role::Doctor => "/doctor",
            Role::Nurse => "/nurse",
            Role::Admin => "/admin/queue",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Patient => "Patient",
            Role::Doctor => "Doctor",
            Role::Nurse => "Nurse",
            Role::Admin => "Admin",
        }
    }
}

/// The tokens behind a signed-in session.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    /// When the access token stops being accepted (wall clock: every replica reads it).
    pub access_expires: SystemTime,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(***)")
    }
}

/// A Keycloak login in progress: what the callback must see again.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub verifier: String,
    pub next: String,
}

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    pub kind: String,
    pub text: String,
}

/// What a session's row holds (MessagePack, through the store).
#[derive(Clone, Serialize, Deserialize)]
struct Data {
    csrf: String,
    /// When the session began (seconds since the epoch): the absolute limit counts from it.
    started: i64,
    user: Option<User>,
    tokens: Option<Tokens>,
    pending: Option<PendingLogin>,
    flash: Option<Flash>,
}

/// What a request changed in its session, written back at its end.
#[derive(Default)]
struct Changes {
    flash: Option<Option<Flash>>,
    pending: Option<Option<PendingLogin>>,
}

/// One browser's session, as one request sees it.
pub struct Session {
    pub id: String,
    /// Every form of this session carries it; every unsafe request must bring it back.
    pub csrf: String,
    pub user: Option<User>,
    /// When it began (seconds since the epoch) and when it ends as loaded.
    started: i64,
    expiry: OffsetDateTime,
    /// This request's copy of the tokens. Refreshing takes this lock (one refresh at a time
    /// in this process) and the session's row lock (one across replicas).
    pub tokens: tokio::sync::Mutex<Option<Tokens>>,
    flash: Mutex<Option<Flash>>,
    pending: Mutex<Option<PendingLogin>>,
    changes: Mutex<Changes>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id, the CSRF token and the PKCE verifier are secrets.
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn set_flash(&self, kind: &'static str, text: impl Into<String>) {
        let flash = Flash {
            kind: kind.to_owned(),
            text: text.into(),
        };
        if let (Ok(mut current), Ok(mut changes)) = (self.flash.lock(), self.changes.lock()) {
            *current = Some(flash.clone());
            changes.flash = Some(Some(flash));
        }
    }

    pub fn take_flash(&self) -> Option<Flash> {
        let (Ok(mut current), Ok(mut changes)) = (self.flash.lock(), self.changes.lock()) else {
            return None;
        };
        let taken = current.take();
        if taken.is_some() {
            changes.flash = Some(None);
        }
        taken
    }

    pub fn set_pending(&self, pending: PendingLogin) {
        if let (Ok(mut current), Ok(mut changes)) = (self.pending.lock(), self.changes.lock()) {
            *current = Some(pending.clone());
            changes.pending = Some(Some(pending));
        }
    }

    pub fn take_pending(&self) -> Option<PendingLogin> {
        let (Ok(mut current), Ok(mut changes)) = (self.pending.lock(), self.changes.lock()) else {
            return None;
        };
        let taken = current.take();
        if taken.is_some() {
            changes.pending = Some(None);
        }
        taken
    }

    fn changed(&self) -> bool {
        self.changes
            .lock()
            .is_ok_and(|changes| changes.flash.is_some() || changes.pending.is_some())
    }
}

/// Seals and opens tokens with the configured keys (AES-256-GCM, a random nonce each time).
///
/// A sealed value is `<key id>.<base64url(nonce | ciphertext | tag)>`, the key id being the
/// first 8 bytes of the key's SHA-256 (so a value names the key that opens it and keys need
/// no names). The associated data binds it to its purpose.
pub struct Sealer {
    /// Newest first: the first seals.
    keys: Vec<(String, LessSafeKey)>,
    random: SystemRandom,
}

const SEAL_PURPOSE: &[u8] = b"polyclinic web session v1";

impl Sealer {
    pub fn new(raw_keys: &[Vec<u8>]) -> anyhow::Result<Self> {
        let keys = raw_keys
            .iter()
            .map(|raw| {
                let id = hex(&digest(&SHA256, raw).as_ref()[..8]);
                let key = UnboundKey::new(&AES_256_GCM, raw)
                    .map_err(|_| anyhow::anyhow!("a session key must be 32 bytes"))?;
                Ok((id, LessSafeKey::new(key)))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!keys.is_empty(), "no session key");
        Ok(Self {
            keys,
            random: SystemRandom::new(),
        })
    }

    /// The configured keys, or development's fixed one.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut raw = Vec::new();
        for key in &config.sessions.keys {
            raw.push(
                polyclinic_config::session_key(key)
                    .map_err(|message| anyhow::anyhow!("`sessions.keys`: a key {message}"))?,
            );
        }
        if raw.is_empty() {
            anyhow::ensure!(
                config.environment == Environment::Development,
                "`sessions.keys` (POLYCLINIC_SESSIONS_KEYS) is required in production"
            );
            tracing::warn!("no `sessions.keys`: sealing session tokens with the development key");
            raw.push(DEVELOPMENT_KEY.to_vec());
        }
        Self::new(&raw)
    }

    /// Seals `plain` for `context` (the row it belongs to): it opens only there.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> anyhow::Result<String> {
        let (id, key) = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
        let mut sealed = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated(context)),
            &mut sealed,
        )
        .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{id}.{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The plain value, or `None` when no configured key opens it (a retired key, or a
    /// value altered at rest).
    pub fn open(&self, sealed: &str, context: &[u8]) -> Option<Vec<u8>> {
        let (id, body) = sealed.split_once('.')?;
        let (_, key) = self.keys.iter().find(|(known, _)| known == id)?;
        let mut bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let rest = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
        let mut rest = rest;
        let plain = key
            .open_in_place(nonce, Aad::from(associated(context)), &mut rest)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// What a sealed value is bound to: its purpose and its row, so that a value copied into
/// another row (by whoever can write the table) does not open there.
fn associated(context: &[u8]) -> Vec<u8> {
    let mut associated = SEAL_PURPOSE.to_vec();
    associated.push(0);
    associated.extend_from_slice(context);
    associated
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Every session, in the web app's schema.
#[derive(Clone)]
pub struct Sessions {
    store: PostgresStore,
    /// Connections that wait for and hold the sessions' row locks, apart from the store's: a
    /// lock holder always finds a connection to read and write the row with.
    locks: PgPool,
    sealer: Arc<Sealer>,
    random: SystemRandom,
    idle: Duration,
    absolute: Duration,
}

impl Sessions {
    pub fn new(config: &Config, pool: PgPool) -> anyhow::Result<Self> {
        let store = PostgresStore::new(pool)
            .with_schema_name("web")
            .and_then(|store| store.with_table_name("session"))
            .map_err(|err| anyhow::anyhow!("the session table's name: {err}"))?;
        Ok(Self {
            store,
            locks: polyclinic_db::service_pool(config, Service::Web, "polyclinic-web-locks")?,
            sealer: Arc::new(Sealer::from_config(config)?),
            random: SystemRandom::new(),
            idle: Duration::from_secs(u64::from(config.sessions.idle_minutes) * 60),
            absolute: Duration::from_secs(u64::from(config.sessions.absolute_hours) * 3600),
        })
    }

    /// A random 256-bit value, URL-safe.
    pub fn secret(&self) -> String {
        let mut bytes = [0u8; 32];
        // The system's CSPRNG does not fail on a working OS; a zeroed value would be
        // guessable, so fall back to a fresh UUIDv4 pair rather than use it.
        if self.random.fill(&mut bytes).is_err() {
            let fallback = format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
            return fallback.replace('-', "");
        }
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The live session with this id (`None` if there is none, it has ended, or its tokens
    /// were sealed with a key no longer configured).
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Arc<Session>>> {
        let Some(row) = row_id(id) else {
            return Ok(None);
        };
        let Some(record) = self.store.load(&row).await.context("loading a session")? else {
            return Ok(None);
        };
        // Sealed with a key no longer configured, or altered at rest: no session.
        let Some(data) = self.decode(&record) else {
            return Ok(None);
        };
        let tokens = data.tokens;
        Ok(Some(Arc::new(Session {
            id: id.to_owned(),
            csrf: data.csrf,
            user: data.user,
            started: data.started,
            expiry: record.expiry_date,
            tokens: tokio::sync::Mutex::new(tokens),
            flash: Mutex::new(data.flash),
            pending: Mutex::new(data.pending),
            changes: Mutex::new(Changes::default()),
        })))
    }

    /// A new anonymous session (a visitor who has not signed in).
    pub async fn start(&self) -> anyhow::Result<Arc<Session>> {
        self.insert(None, None).await
    }

    /// A new signed-in session. Signing in always changes the session id, so an id planted
    /// before login is worth nothing after it.
    pub async fn sign_in(
        &self,
        previous: &Session,
        user: User,
        tokens: Tokens,
    ) -> anyhow::Result<Arc<Session>> {
        self.remove(&previous.id).await?;
        self.insert(Some(user), Some(tokens)).await
    }

    /// Ends a session, on every replica at once. Under the row's lock, so that no request's
    /// write-back (a read, then a save) can bring it back.
    pub async fn remove(&self, id: &str) -> anyhow::Result<()> {
        self.end(id).await.map(|_| ())
    }

    /// Ends a session like [`Sessions::remove`] and answers the tokens it held last (which
    /// another request may have refreshed since this one read them): the ones to revoke.
    pub async fn end(&self, id: &str) -> anyhow::Result<Option<Tokens>> {
        let Some(row) = row_id(id) else {
            return Ok(None);
        };
        let lock = self.lock(id).await?;
        let tokens = self.stored_tokens(id).await?;
        self.store
            .delete(&row)
            .await
            .context("deleting a session")?;
        lock.release().await?;
        Ok(tokens)
    }

    /// Writes back what the request changed (onto a fresh read, under the session's lock),
    /// and moves the idle limit on when it is due.
    pub async fn persist(&self, session: &Session) -> anyhow::Result<()> {
        // Moved on at most once a minute, and not at all once the absolute limit holds it.
        let due = self.expiry(session.started) - session.expiry >= TOUCH_EVERY;
        if !session.changed() && !due {
            return Ok(());
        }
        let changes = match session.changes.lock() {
            Ok(mut changes) => std::mem::take(&mut *changes),
            Err(_) => Changes::default(),
        };
        self.update(&session.id, |data| {
            if let Some(flash) = changes.flash {
                data.flash = flash;
            }
            if let Some(pending) = changes.pending {
                data.pending = pending;
            }
        })
        .await
    }

    /// The tokens the session's row holds now, with the row locked until `lock` ends: a
    /// replica that refreshed meanwhile left its new tokens there.
    pub async fn lock(&self, id: &str) -> anyhow::Result<SessionLock> {
        let mut lock = self.locks.begin().await.context("locking a session")?;
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!(
                "polyclinic-web-session:{}",
                row_id(id).map(|row| row.to_string()).unwrap_or_default()
            ))
            .execute(&mut *lock)
            .await
            .context("locking a session")?;
        Ok(SessionLock { lock })
    }

    /// The tokens stored for the session now (call under [`Sessions::lock`]).
    pub async fn stored_tokens(&self, id: &str) -> anyhow::Result<Option<Tokens>> {
        let Some(row) = row_id(id) else {
            return Ok(None);
        };
        let record = self.store.load(&row).await.context("loading a session")?;
        Ok(record
            .as_ref()
            .and_then(|record| self.decode(record))
            .and_then(|data| data.tokens))
    }

    /// Replaces the session's tokens (call under [`Sessions::lock`]); `None` signs it out.
    pub async fn store_tokens(&self, id: &str, tokens: Option<&Tokens>) -> anyhow::Result<()> {
        self.write(id, |data| data.tokens = tokens.cloned()).await
    }

    /// Deletes expired sessions, unless another instance is doing it right now.
    pub async fn purge(&self) -> anyhow::Result<()> {
        let mut lock = self.locks.begin().await.context("purging sessions")?;
        let mine: bool =
            sqlx::query_scalar("select pg_try_advisory_xact_lock(hashtextextended($1, 0))")
                .bind("polyclinic-web-session-purge")
                .fetch_one(&mut *lock)
                .await
                .context("purging sessions")?;
        if mine {
            self.store
                .delete_expired()
                .await
                .context("deleting expired sessions")?;
        }
        lock.commit().await.context("purging sessions")?;
        Ok(())
    }

    async fn insert(
        &self,
        user: Option<User>,
        tokens: Option<Tokens>,
    ) -> anyhow::Result<Arc<Session>> {
        let started = unix_now();
        let data = Data {
            csrf: self.secret(),
            started,
            user: user.clone(),
            tokens: tokens.clone(),
            pending: None,
            flash: None,
        };
        let expiry = self.expiry(started);
        let id = self.secret();
        let row = row_id(&id).context("a session id")?;
        let record = Record {
            data: self.encode(&row, &data)?,
            id: row,
            expiry_date: expiry,
        };
        self.store
            .save(&record)
            .await
            .context("storing a new session")?;
        Ok(Arc::new(Session {
            id,
            csrf: data.csrf,
            user,
            started,
            expiry,
            tokens: tokio::sync::Mutex::new(tokens),
            flash: Mutex::new(None),
            pending: Mutex::new(None),
            changes: Mutex::new(Changes::default()),
        }))
    }

    /// Reads, changes and writes the row under the session's lock.
    async fn update(&self, id: &str, change: impl FnOnce(&mut Data)) -> anyhow::Result<()> {
        let lock = self.lock(id).await?;
        self.write(id, change).await?;
        lock.release().await
    }

    /// Reads, changes and writes the row (the caller holds the lock). A session that ended
    /// meanwhile stays ended.
    async fn write(&self, id: &str, change: impl FnOnce(&mut Data)) -> anyhow::Result<()> {
        let Some(row) = row_id(id) else {
            return Ok(());
        };
        let Some(mut record) = self.store.load(&row).await.context("loading a session")? else {
            return Ok(());
        };
        let Some(mut data) = self.decode(&record) else {
            return Ok(());
        };
        change(&mut data);
        record.data = self.encode(&record.id, &data)?;
        record.expiry_date = self.expiry(data.started);
        self.store.save(&record).await.context("saving a session")?;
        Ok(())
    }

    fn expiry(&self, started: i64) -> OffsetDateTime {
        expiry_at(OffsetDateTime::now_utc(), started, self.idle, self.absolute)
    }

    /// The session's data, opened: `None` when no configured key opens it (a retired key,
    /// a value altered or moved at rest).
    fn decode(&self, record: &Record) -> Option<Data> {
        let sealed = record.data.get(DATA_KEY)?.as_str()?;
        let plain = self.sealer.open(sealed, record.id.to_string().as_bytes())?;
        serde_json::from_slice(&plain).ok()
    }

    /// The session's data, sealed whole for its row: the table holds no token, name or
    /// address in the clear.
    fn encode(&self, row: &Id, data: &Data) -> anyhow::Result<HashMap<String, serde_json::Value>> {
        let plain = serde_json::to_vec(data).context("encoding a session")?;
        let sealed = self.sealer.seal(&plain, row.to_string().as_bytes())?;
        Ok(HashMap::from([(
            DATA_KEY.to_owned(),
            serde_json::Value::String(sealed),
        )]))
    }
}

/// The lock on one session's row, held until released (or dropped: rolled back).
pub struct SessionLock {
    lock: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl SessionLock {
    pub async fn release(self) -> anyhow::Result<()> {
        self.lock.commit().await.context("unlocking a session")
    }
}

/// When a session used at `now` ends: the earlier of the idle limit from now and the absolute
/// one from its start.
fn expiry_at(
    now: OffsetDateTime,
    started: i64,
    idle: Duration,
    absolute: Duration,
) -> OffsetDateTime {
    let absolute = OffsetDateTime::from_unix_timestamp(started).unwrap_or(now) + absolute;
    (now + idle).min(absolute)
}

/// The row of the session whose cookie carries `id` (a random 256-bit value): the first 128
/// bits of its SHA-256. The table never holds the cookie's value, so whoever reads it (a
/// backup, a replica, an operator) cannot take over a session. `None` for anything that is
/// not such a value, before any query.
fn row_id(id: &str) -> Option<Id> {
    let well_formed = id.len() == 43
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !well_formed {
        return None;
    }
    let hash = digest(&SHA256, id.as_bytes());
    let first: [u8; 16] = hash.as_ref()[..16].try_into().ok()?;
    Some(Id(i128::from_le_bytes(first)))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(keys: &[&[u8; 32]]) -> Sealer {
        Sealer::new(&keys.iter().map(|key| key.to_vec()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_session_ends_after_the_idle_limit_but_never_past_the_absolute_one() {
        let (idle, absolute) = (Duration::from_secs(30 * 60), Duration::from_secs(12 * 3600));
        let started = 1_800_000_000;
        let start = OffsetDateTime::from_unix_timestamp(started).unwrap();
        assert_eq!(expiry_at(start, started, idle, absolute), start + idle);
        let busy = start + Duration::from_secs(11 * 3600 + 50 * 60);
        assert_eq!(
            expiry_at(busy, started, idle, absolute),
            start + absolute,
            "use moves the idle limit on, up to the absolute one"
        );
    }

    #[test]
    fn only_a_well_formed_cookie_value_names_a_row_and_the_row_is_not_the_value() {
        let value = "a".repeat(43);
        let row = row_id(&value).unwrap();
        assert_ne!(row.to_string(), value);
        assert_eq!(row_id(&value).unwrap().to_string(), row.to_string());
        assert!(row_id("short").is_none());
        assert!(row_id(&"a".repeat(42)).is_none());
        assert!(row_id(&format!("{}'", "a".repeat(42))).is_none());
    }

    #[test]
    fn a_sealed_value_opens_with_any_configured_key_and_never_with_another() {
        let old = sealer(&[b"an old key of thirty-two bytes!!"]);
        let sealed = old.seal(b"refresh token", b"row").unwrap();
        assert!(!sealed.contains("refresh"), "{sealed}");
        assert_ne!(
            sealed,
            old.seal(b"refresh token", b"row").unwrap(),
            "a fresh nonce each time"
        );

        let rotated = sealer(&[
            b"a new key of exactly 32 bytes!!!",
            b"an old key of thirty-two bytes!!",
        ]);
        assert_eq!(
            rotated.open(&sealed, b"row").as_deref(),
            Some(&b"refresh token"[..])
        );
        let resealed = rotated.seal(b"refresh token", b"row").unwrap();
        assert!(
            old.open(&resealed, b"row").is_none(),
            "the newest key seals"
        );

        let retired = sealer(&[b"a new key of exactly 32 bytes!!!"]);
        assert!(retired.open(&sealed, b"row").is_none());
        let mut altered = sealed.clone();
        altered.push('A');
        assert!(
            old.open(&altered, b"row").is_none(),
            "an altered value does not open"
        );
        assert!(
            old.open(&sealed, b"another row").is_none(),
            "a value moved to another row does not open"
        );
    }
}

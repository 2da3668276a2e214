//! Server-side sessions. The browser holds one opaque cookie; the tokens it stands for, the
//! CSRF token and a pending Keycloak login live here and never reach the browser.
//!
//! Sessions are kept in this process's memory: a restart signs everyone out, and several
//! replicas need sticky sessions (deploy/ runs one replica behind the gateway's host).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

/// The session cookie's name. `__Host-` pins it to this host, path `/` and HTTPS, so it is
/// used only when the app is served over TLS.
pub const COOKIE: &str = "polyclinic_session";
pub const SECURE_COOKIE: &str = "__Host-polyclinic_session";

/// How long a session lives without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// How long a signed-in session lives at most, however busy.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most. Past it a visitor who has not signed in is forgotten first (a flood
/// of cookieless requests cannot push signed-in people out while visitors remain).
const CAPACITY: usize = 100_000;

/// Who is signed in, as the identity service described them at login.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    /// When the access token stops being accepted (by this process's clock).
    pub access_expires: Instant,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens(***)")
    }
}

/// A Keycloak login in progress: what the callback must see again.
#[derive(Clone)]
pub struct PendingLogin {
    pub state: String,
    pub verifier: String,
    pub next: String,
}

/// One browser's session.
pub struct Session {
    pub id: String,
    /// Every form of this session carries it; every unsafe request must bring it back.
    pub csrf: String,
    created: Instant,
    last_seen: Mutex<Instant>,
    pub user: Option<User>,
    /// Refreshing takes this lock, so two requests of one session never spend the same
    /// refresh token (a reused refresh token revokes the whole login).
    pub tokens: tokio::sync::Mutex<Option<Tokens>>,
    pub pending: Mutex<Option<PendingLogin>>,
    flash: Mutex<Option<Flash>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id, the CSRF token and the PKCE verifier are secrets.
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone)]
pub struct Flash {
    pub kind: &'static str,
    pub text: String,
}

impl Session {
    pub fn set_flash(&self, kind: &'static str, text: impl Into<String>) {
        if let Ok(mut flash) = self.flash.lock() {
            *flash = Some(Flash {
                kind,
                text: text.into(),
            });
        }
    }

    pub fn take_flash(&self) -> Option<Flash> {
        self.flash.lock().ok().and_then(|mut flash| flash.take())
    }

    fn expired(&self, now: Instant) -> bool {
        let idle = self
            .last_seen
            .lock()
            .map(|seen| now.duration_since(*seen) > IDLE)
            .unwrap_or(true);
        idle || now.duration_since(self.created) > ABSOLUTE
    }
}

/// Every live session of this process.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    random: SystemRandom,
}

impl Sessions {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
            random: SystemRandom::new(),
        }
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

    /// The live session with this id, touched.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let now = Instant::now();
        let mut sessions = self.inner.lock().ok()?;
        let session = sessions.get(id)?.clone();
        if session.expired(now) {
            sessions.remove(id);
            return None;
        }
        if let Ok(mut seen) = session.last_seen.lock() {
            *seen = now;
        }
        Some(session)
    }

    /// A new anonymous session (a visitor who has not signed in).
    pub fn start(&self) -> Arc<Session> {
        self.insert(None, None)
    }

    /// A new signed-in session. Signing in always changes the session id, so an id planted
    /// before login is worth nothing after it.
    pub fn sign_in(&self, previous: &Session, user: User, tokens: Tokens) -> Arc<Session> {
        self.remove(&previous.id);
        self.insert(Some(user), Some(tokens))
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut sessions) = self.inner.lock() {
            sessions.remove(id);
        }
    }

    fn insert(&self, user: Option<User>, tokens: Option<Tokens>) -> Arc<Session> {
        let now = Instant::now();
        let session = Arc::new(Session {
            id: self.secret(),
            csrf: self.secret(),
            created: now,
            last_seen: Mutex::new(now),
            user,
            tokens: tokio::sync::Mutex::new(tokens),
            pending: Mutex::new(None),
            flash: Mutex::new(None),
        });
        if let Ok(mut sessions) = self.inner.lock() {
            if sessions.len() >= CAPACITY {
                let victim = sessions
                    .iter()
                    .find(|(_, session)| session.user.is_none())
                    .or_else(|| sessions.iter().next())
                    .map(|(id, _)| id.clone());
                if let Some(victim) = victim {
                    sessions.remove(&victim);
                }
            }
            sessions.insert(session.id.clone(), session.clone());
        }
        session
    }

    /// Forgets sessions that have expired (run now and then).
    pub fn sweep(&self) {
        let now = Instant::now();
        if let Ok(mut sessions) = self.inner.lock() {
            sessions.retain(|_, session| !session.expired(now));
        }
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_in_changes_the_session_id_and_forgets_the_old_one() {
        let sessions = Sessions::new();
        let visitor = sessions.start();
        let user = User {
            id: "u".into(),
            email: "e".into(),
            name: "n".into(),
            role: Role::Patient,
        };
        let tokens = Tokens {
            access: "a".into(),
            refresh: None,
            access_expires: Instant::now(),
        };
        let signed = sessions.sign_in(&visitor, user, tokens);
        assert_ne!(signed.id, visitor.id);
        assert_ne!(signed.csrf, visitor.csrf);
        assert!(sessions.get(&visitor.id).is_none());
        assert!(sessions.get(&signed.id).is_some_and(|s| s.user.is_some()));
    }

    #[test]
    fn session_ids_are_long_random_and_distinct() {
        let sessions = Sessions::new();
        let (a, b) = (sessions.secret(), sessions.secret());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}

//! Revoked sessions and deactivated users, polled from the identity service.
//!
//! Access tokens are short-lived and verified offline, so a deactivation or a revoked login
//! would otherwise keep working until the token expires. The identity service publishes
//! what was revoked within the last access-token lifetime; every verifier polls it.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// The identity service's revocation feed.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RevocationList {
    /// Users whose tokens issued at or before `revoked_at` are void.
    pub subjects: Vec<Revoked>,
    /// Logins (the `sid` claim) that ended.
    pub sessions: Vec<Revoked>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Revoked {
    pub id: String,
    /// Unix seconds.
    pub revoked_at: i64,
}

#[derive(Default)]
pub(crate) struct Revocations {
    subjects: RwLock<HashMap<String, i64>>,
    sessions: RwLock<HashMap<String, i64>>,
}

impl Revocations {
    pub(crate) fn replace(&self, list: RevocationList) {
        let collect = |items: Vec<Revoked>| -> HashMap<String, i64> {
            items
                .into_iter()
                .map(|item| (item.id, item.revoked_at))
                .collect()
        };
        // Entries learned directly (see `add_*`) but not yet in the feed are kept.
        if let Ok(mut subjects) = self.subjects.write() {
            let mut fresh = collect(list.subjects);
            for (id, at) in subjects.drain() {
                fresh.entry(id).or_insert(at);
            }
            *subjects = fresh;
        }
        if let Ok(mut sessions) = self.sessions.write() {
            let mut fresh = collect(list.sessions);
            for (id, at) in sessions.drain() {
                fresh.entry(id).or_insert(at);
            }
            *sessions = fresh;
        }
    }

    pub(crate) fn add_subject(&self, subject: &str, at: i64) {
        if let Ok(mut subjects) = self.subjects.write() {
            subjects.insert(subject.to_owned(), at);
        }
    }

    pub(crate) fn add_session(&self, session: &str, at: i64) {
        if let Ok(mut sessions) = self.sessions.write() {
            sessions.insert(session.to_owned(), at);
        }
    }

    /// Forgets entries older than `horizon` (unix seconds): no token that old is valid.
    pub(crate) fn prune(&self, horizon: i64) {
        if let Ok(mut subjects) = self.subjects.write() {
            subjects.retain(|_, at| *at >= horizon);
        }
        if let Ok(mut sessions) = self.sessions.write() {
            sessions.retain(|_, at| *at >= horizon);
        }
    }

    pub(crate) fn is_revoked(&self, subject: &str, session: Option<&str>, issued_at: i64) -> bool {
        let subject_revoked = self
            .subjects
            .read()
            .map(|subjects| subjects.get(subject).is_some_and(|at| issued_at <= *at))
            .unwrap_or(false);
        let session_revoked = session.is_some_and(|session| {
            self.sessions
                .read()
                .map(|sessions| sessions.contains_key(session))
                .unwrap_or(false)
        });
        subject_revoked || session_revoked
    }
}

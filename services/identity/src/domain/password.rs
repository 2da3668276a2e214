//! Passwords: the strength rule and argon2id hashing.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A password that meets the strength rule; never logged, never serialized.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

const COMMON: &[&str] = &[
    "password",
    "passw0rd",
    "123456",
    "12345678",
    "123456789",
    "1234567890",
    "qwerty",
    "letmein",
    "welcome",
    "admin",
    "iloveyou",
    "monkey",
    "dragon",
    "football",
    "changeme",
];

impl Password {
    /// At least 10 characters (at most 128), not a well-known password, and not the
    /// account's email or username.
    pub fn parse(text: &str, identifiers: &[&str]) -> Result<Self, String> {
        let length = text.chars().count();
        if length < 10 {
            return Err("must be at least 10 characters".to_owned());
        }
        if length > 128 {
            return Err("must be at most 128 characters".to_owned());
        }
        let lower = text.to_lowercase();
        if COMMON
            .iter()
            .any(|common| lower.starts_with(common) && lower.len() <= common.len() + 4)
        {
            return Err("is too common".to_owned());
        }
        if identifiers
            .iter()
            .any(|identifier| !identifier.is_empty() && lower.contains(&identifier.to_lowercase()))
        {
            return Err("must not contain your email or username".to_owned());
        }
        if text.chars().all(|c| text.starts_with(c)) {
            return Err("must not repeat one character".to_owned());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The argon2id hash (PHC string) of this password. CPU-heavy: call it from a blocking
    /// task.
    pub fn hash(&self) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(self.0.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| anyhow::anyhow!("hashing a password: {err}"))
    }
}

/// Whether `candidate` matches the stored `hash`. CPU-heavy: call it from a blocking task.
pub fn verify(candidate: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(candidate.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of nothing in particular, verified against when an account does not exist so that
/// a failed login takes as long whether or not the account exists.
pub fn decoy_hash() -> &'static str {
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$KmHg8mM9lqFq0Fj5rE2kq1o0ZyVQ2x3C1Yz8b7b0vU0"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        assert!(Password::parse("short", &[]).is_err());
        assert!(Password::parse("password123", &[]).is_err());
        assert!(Password::parse("aaaaaaaaaaaa", &[]).is_err());
        assert!(Password::parse("ada.lovelace-2024", &["ada.lovelace"]).is_err());
        assert!(Password::parse("correct horse battery", &["ada"]).is_ok());
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let password = Password::parse("correct horse battery", &[]).unwrap();
        let hash = password.hash().unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &hash));
        assert!(!verify("correct horse battery!", &hash));
        assert!(!verify("anything", decoy_hash()));
    }
}

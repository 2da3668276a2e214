//! Token verification in every service, and the extractors handlers use.
//!
//! Every service verifies the bearer token itself; the gateway's check is not trusted
//! blindly. [`Verifier`] checks the signature against the issuer's JWKS (cached, refetched
//! on an unknown `kid` at most once per `auth.jwks_refetch_interval_secs`), an algorithm
//! allowlist (RS256 and EdDSA: never `none`, never HMAC), `iss`, `aud`, and `exp`/`nbf` with
//! a small leeway, then consults the revocation list (deactivated users, ended sessions)
//! that it polls from the identity service. [`roles`] turns Keycloak's and the built-in
//! provider's role claims into one [`RoleSet`].
//!
//! Handlers take a [`Principal`] (any valid token) or a [`Require`] guard such as
//! `Require<Admin>`; both answer 401 problem+json without a valid token and the guard 403
//! without the role. A handler that acts for the caller (calls other services, writes
//! events) takes [`Asking`], which adds the request id and trace context those carry.

mod asking;
mod jwks;
mod principal;
mod revocation;
pub mod roles;
pub mod scopes;
mod verifier;

pub use asking::Asking;
pub use principal::{
    FIRST_PARTY_CLIENTS, Principal, Require, RoleRule, Scope, app_token_refused, authenticate,
    insufficient_scope, rules,
};
pub use revocation::{RevocationList, Revoked};
pub use roles::{Role, RoleSet};
pub use verifier::{AuthError, LocalFeed, RevocationFeed, Verifier, VerifierSettings};

//! Signing in through Keycloak: the authorization code flow with PKCE (RFC 7636, `S256`).
//!
//! The browser is sent to Keycloak's login page with a fresh `state` and code challenge;
//! the verifier stays in the server-side session. Keycloak sends the browser back to
//! `/auth/callback` with a code, which the server exchanges (with the verifier) for tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use polyclinic_config::Config;

use crate::api::AuthEndpoints;
use crate::page::encode;

/// The realm's public client for the browser apps (`deploy/keycloak/polyclinic-realm.json`).
pub const CLIENT_ID: &str = "polyclinic-app";

/// Keycloak's endpoints as this app uses them.
#[derive(Debug, Clone)]
pub struct KeycloakLogin {
    /// Where browsers go to sign in (the issuer's public URL).
    authorize_url: String,
    /// Where the browser returns: `<public web URL>/auth/callback`.
    pub redirect_uri: String,
    /// Where tokens are exchanged and revoked (Keycloak as the services reach it).
    pub endpoints: AuthEndpoints,
}

impl KeycloakLogin {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let internal = format!("{}/protocol/openid-connect", config.keycloak.realm_url());
        Ok(Self {
            authorize_url: format!("{}/protocol/openid-connect/auth", config.issuer()),
            redirect_uri: format!(
                "{}/auth/callback",
                config.public_web_url.trim_end_matches('/')
            ),
            endpoints: AuthEndpoints {
                token_url: format!("{internal}/token"),
                revoke_url: format!("{internal}/revoke"),
                client_id: CLIENT_ID.to_owned(),
            },
        })
    }

    /// Keycloak's end-session endpoint: it ends the Keycloak sign-in too (else the next
    /// visit to the sign-in page would be signed straight back in), then sends the browser
    /// back to this app's sign-in page.
    pub fn logout_url(&self) -> String {
        let back = self.redirect_uri.replace("/auth/callback", "/login");
        format!(
            "{}?client_id={}&post_logout_redirect_uri={}",
            self.authorize_url.replace(
                "/protocol/openid-connect/auth",
                "/protocol/openid-connect/logout"
            ),
            encode(CLIENT_ID),
            encode(&back),
        )
    }

    /// The realm's account console, where people change their password.
    pub fn account_url(&self) -> String {
        self.authorize_url
            .replace("/protocol/openid-connect/auth", "/account")
    }

    /// The URL of Keycloak's login page for this `state` and PKCE `verifier`.
    pub fn authorize(&self, state: &str, verifier: &str) -> String {
        format!(
            "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state={}\
             &code_challenge={}&code_challenge_method=S256",
            self.authorize_url,
            encode(CLIENT_ID),
            encode(&self.redirect_uri),
            encode(state),
            challenge(verifier),
        )
    }
}

/// `BASE64URL(SHA-256(verifier))`, the `S256` code challenge.
pub fn challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_challenge_is_the_unpadded_base64url_sha256_of_the_verifier() {
        // Expected value from Python: urlsafe_b64encode(sha256(verifier)).rstrip("=").
        let verifier = "dBjftJeZ4CVP-mJ92K9qdqb6Hyj6IfA5C7Q3tKG8Zrc";
        assert_eq!(
            challenge(verifier),
            "jqO2V9QqZzpLVA5fMzUYhvtapkgEEOSOfzKb6B34_MM"
        );
    }
}

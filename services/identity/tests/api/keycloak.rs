//! Keycloak mode: written next.

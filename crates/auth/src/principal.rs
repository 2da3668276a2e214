//! The extractors: [`Principal`] for any valid token, [`Require`] for a role.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri};
use polyclinic_http::ApiError;
use uuid::Uuid;

use crate::{AuthError, Role, RoleSet, Verifier};

/// Who is calling: the verified claims of the bearer token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `sub`: a user's id, or a service client's id.
    pub subject: String,
    pub roles: RoleSet,
    /// `azp`: the client the token was issued to.
    pub client_id: Option<String>,
    /// `sid`: the login the token belongs to.
    pub session_id: Option<String>,
    pub username: Option<String>,
    pub email: Option<String>,
    pub(crate) token: Arc<str>,
}

impl Principal {
    /// Whether the caller has `role`.
    pub fn is(&self, role: Role) -> bool {
        self.roles.contains(role)
    }

    /// The user id of a person's token. A service token has none: 403.
    pub fn user_id(&self) -> Result<Uuid, ApiError> {
        Uuid::parse_str(&self.subject).map_err(|_| {
            ApiError::forbidden("user_token_required", "This route needs a user's token.")
        })
    }

    /// The raw token, to forward to another service on the caller's behalf.
    pub fn bearer(&self) -> &str {
        &self.token
    }
}

fn bearer_token(parts: &Parts) -> Result<Option<&str>, AuthError> {
    token_from(&parts.headers, &parts.uri)
}

/// The bearer token of a request, if it has one. A token in the query string is refused:
/// URLs end up in logs and browser histories.
fn token_from<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<Option<&'a str>, AuthError> {
    let in_query = uri.query().is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|name| name == "access_token")
        })
    });
    if in_query {
        return Err(AuthError::InQuery);
    }
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(AuthError::Malformed),
    }
}

/// Verifies the request's bearer token, if it carries one: `Ok(None)` without one.
pub async fn authenticate(
    verifier: &Verifier,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Option<Principal>, AuthError> {
    match token_from(headers, uri)? {
        Some(token) => verifier.verify(token).await.map(Some),
        None => Ok(None),
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let token = bearer_token(parts)?.ok_or(AuthError::Missing)?;
        let verifier = Arc::<Verifier>::from_ref(state);
        let principal = verifier.verify(token).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// `Option<Principal>`: `None` without an `Authorization` header, a 401 for a bad token.
impl<S> OptionalFromRequestParts<S> for Principal
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        if bearer_token(parts)?.is_none() {
            return Ok(None);
        }
        <Principal as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// A set of roles that a route admits.
pub trait RoleRule {
    const ROLES: &'static [Role];
}

/// The role rules routes use.
pub mod rules {
    use super::RoleRule;
    use crate::Role;

    /// Administrators.
    pub struct Admin;
    /// Clinic staff: administrators, doctors, nurses.
    pub struct Staff;
    /// Doctors.
    pub struct Doctor;
    /// Patients.
    pub struct Patient;
    /// Platform services acting on their own behalf.
    pub struct Service;
    /// A person of any role (not a service client).
    pub struct Person;
    /// Administrators, and platform services acting on their own behalf.
    pub struct AdminOrService;
    /// Clinic staff, and platform services acting on their own behalf (rooms).
    pub struct StaffOrService;
    /// Patients and administrators (bookings).
    pub struct PatientOrAdmin;
    /// Doctors and administrators (schedules).
    pub struct DoctorOrAdmin;
    /// The care team and administrators: doctors, nurses, admins (closing visits).
    pub struct CareOrAdmin;

    impl RoleRule for Admin {
        const ROLES: &'static [Role] = &[Role::Admin];
    }
    impl RoleRule for Staff {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Doctor, Role::Nurse];
    }
    impl RoleRule for Doctor {
        const ROLES: &'static [Role] = &[Role::Doctor];
    }
    impl RoleRule for Patient {
        const ROLES: &'static [Role] = &[Role::Patient];
    }
    impl RoleRule for Service {
        const ROLES: &'static [Role] = &[Role::Service];
    }
    impl RoleRule for AdminOrService {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Service];
    }
    impl RoleRule for StaffOrService {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Doctor, Role::Nurse, Role::Service];
    }
    impl RoleRule for PatientOrAdmin {
        const ROLES: &'static [Role] = &[Role::Patient, Role::Admin];
    }
    impl RoleRule for DoctorOrAdmin {
        const ROLES: &'static [Role] = &[Role::Doctor, Role::Admin];
    }
    impl RoleRule for CareOrAdmin {
        const ROLES: &'static [Role] = &[Role::Doctor, Role::Nurse, Role::Admin];
    }
    impl RoleRule for Person {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Doctor, Role::Nurse, Role::Patient];
    }
}

/// A [`Principal`] that has one of `R`'s roles: 401 without a valid token, 403 without
/// the role. Dereferences to the principal.
pub struct Require<R: RoleRule> {
    principal: Principal,
    rule: PhantomData<fn() -> R>,
}

impl<R: RoleRule> std::fmt::Debug for Require<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.principal.fmt(f)
    }
}

impl<R: RoleRule> Require<R> {
    pub fn into_principal(self) -> Principal {
        self.principal
    }
}

impl<R: RoleRule> Deref for Require<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl<S, R> FromRequestParts<S> for Require<R>
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
    R: RoleRule,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal =
            <Principal as FromRequestParts<S>>::from_request_parts(parts, state).await?;
        if !principal.roles.any(R::ROLES) {
            return Err(ApiError::forbidden(
                "forbidden",
                "Your role does not allow this request.",
            ));
        }
        Ok(Self {
            principal,
            rule: PhantomData,
        })
    }
}

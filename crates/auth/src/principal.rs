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
    /// `scope`: what a service client's token was granted (space-separated in the token).
    pub scopes: Arc<[String]>,
    pub(crate) token: Arc<str>,
}

/// The platform's own apps for people (the mobile and browser apps, the web app): their
/// tokens act with the person's whole role. A token issued to any other client (a SMART app,
/// through the authorization endpoint or Keycloak) is delegated: held to its scopes, and good
/// on the FHIR API only.
pub const FIRST_PARTY_CLIENTS: [&str; 2] = ["polyclinic-app", "polyclinic-web"];

impl Principal {
    /// Whether this is a person's token issued to a third-party app (`azp` not one of the
    /// [`FIRST_PARTY_CLIENTS`]). Every issuer here names the client; a token that names none
    /// is a first-party one of an issuer that predates apps.
    pub fn is_delegated(&self) -> bool {
        !self.is(Role::Service)
            && self
                .client_id
                .as_deref()
                .is_some_and(|client| !FIRST_PARTY_CLIENTS.contains(&client))
    }

    /// Whether the caller has `role`.
    pub fn is(&self, role: Role) -> bool {
        self.roles.contains(role)
    }

    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|granted| granted == scope)
    }

    /// Whether this is a platform service's own token granted `scope`: what a route that
    /// admits services asks, so that each service can do only what it needs (a
    /// notifications token reads people, it does not refund payments).
    pub fn is_service_with(&self, scope: &str) -> bool {
        self.is(Role::Service) && self.has_scope(scope)
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
        // An app's token is for the FHIR API, whose layer vets it against its scopes and
        // puts the caller in the request (found above); everywhere else it is refused.
        if principal.is_delegated() {
            return Err(app_token_refused());
        }
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

/// A set of roles that a route admits. A rule that admits [`Role::Service`] names the
/// scope a service's token must carry.
pub trait RoleRule {
    const ROLES: &'static [Role];
    /// The scope a service token needs on this route (the rules that admit services set it).
    const SERVICE_SCOPE: Option<&'static str> = None;
}

/// A permission a platform service's client may be granted (the token's `scope`).
pub trait Scope {
    const NAME: &'static str;
}

/// The role rules routes use.
pub mod rules {
    use std::marker::PhantomData;

    use super::{RoleRule, Scope};
    use crate::Role;

    /// Administrators.
    pub struct Admin;
    /// Clinic staff: administrators, doctors, nurses.
    pub struct Staff;
    /// Doctors.
    pub struct Doctor;
    /// Patients.
    pub struct Patient;

    /// A person of any role (not a service client).
    pub struct Person;
    /// Platform services whose token carries scope `S`, and no one else.
    pub struct ServiceWith<S>(PhantomData<S>);
    /// Administrators, and platform services whose token carries scope `S`.
    pub struct AdminOr<S>(PhantomData<S>);
    /// Clinic staff, and platform services whose token carries scope `S`.
    pub struct StaffOr<S>(PhantomData<S>);
    /// A person of any role, and platform services whose token carries scope `S`.
    pub struct PersonOr<S>(PhantomData<S>);
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
    impl<S: Scope> RoleRule for ServiceWith<S> {
        const ROLES: &'static [Role] = &[Role::Service];
        const SERVICE_SCOPE: Option<&'static str> = Some(S::NAME);
    }
    impl<S: Scope> RoleRule for AdminOr<S> {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Service];
        const SERVICE_SCOPE: Option<&'static str> = Some(S::NAME);
    }
    impl<S: Scope> RoleRule for StaffOr<S> {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Doctor, Role::Nurse, Role::Service];
        const SERVICE_SCOPE: Option<&'static str> = Some(S::NAME);
    }
    impl<S: Scope> RoleRule for PersonOr<S> {
        const ROLES: &'static [Role] = &[
            Role::Admin,
            Role::Doctor,
            Role::Nurse,
            Role::Patient,
            Role::Service,
        ];
        const SERVICE_SCOPE: Option<&'static str> = Some(S::NAME);
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
        let people: Vec<Role> = R::ROLES
            .iter()
            .copied()
            .filter(|role| *role != Role::Service)
            .collect();
        if principal.roles.any(&people) {
            return Ok(Self {
                principal,
                rule: PhantomData,
            });
        }
        if principal.is(Role::Service) && R::ROLES.contains(&Role::Service) {
            let scope = R::SERVICE_SCOPE.unwrap_or("");
            if !principal.has_scope(scope) {
                return Err(insufficient_scope(scope));
            }
            return Ok(Self {
                principal,
                rule: PhantomData,
            });
        }
        Err(ApiError::forbidden(
            "forbidden",
            "Your role does not allow this request.",
        ))
    }
}

/// 403 for an app's (delegated) token on a route that is not the FHIR API's.
pub fn app_token_refused() -> ApiError {
    ApiError::forbidden(
        "app_token_not_accepted",
        "This token was issued to an app for the FHIR API (`/fhir`); it is not accepted here.",
    )
    .with_challenge("Bearer error=\"insufficient_scope\"")
}

/// 403 for a token without the scope a route needs (RFC 6750 section 3.1).
pub fn insufficient_scope(scope: &str) -> ApiError {
    ApiError::forbidden(
        "insufficient_scope",
        format!("The token lacks the scope `{scope}`."),
    )
}

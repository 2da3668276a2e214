//! SMART App Launch 2.x scopes, and holding FHIR requests to them.
//!
//! A scope is `openid`, `fhirUser`, `launch/patient`, `offline_access`, `online_access`, or a
//! resource scope `<context>/<type>.<permissions>`: context `patient` (the signed-in
//! patient's own data) or `user` (whatever the user may see), type a served resource type or
//! `*`, permissions SMART v2's `cruds` letters in order (`rs`, `cu`, ...) or v1's `read`,
//! `write` and `*`. A v2 scope narrowed by a query (`?category=...`) grants nothing here.
//!
//! A token issued to an app (a person's token whose `azp` is not one of the platform's own
//! [`polyclinic_auth::FIRST_PARTY_CLIENTS`]; whatever scopes it carries, none included) is
//! held to its scopes on the FHIR routes, on top of the role rules, and refused everywhere
//! else; a person's first-party token (the web app's, the password grant's, Keycloak's for
//! `polyclinic-app`) is held to the role rules alone. Public resource types (the directory,
//! the calendar) need no scope: a scope unlocks, it does not lock what anyone may read.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use polyclinic_auth::{Principal, Role, Verifier, authenticate};

use polyclinic_http::ApiError;

use crate::capability::{Audience, support};

/// What a request does to a resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Create,
    Read,
    Update,
    Delete,
    Search,
    /// A method no scope letter stands for: no scope grants it.
    Unclassified,
}

impl Permission {
    fn letter(self) -> char {
        match self {
            Permission::Create => 'c',
            Permission::Read => 'r',
            Permission::Update => 'u',
            Permission::Delete => 'd',
            Permission::Search => 's',
            Permission::Unclassified => '?',
        }
    }
}

/// Whose data a resource scope reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Patient,
    User,
}

/// A resource scope, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceScope {
    pub context: Context,
    /// A resource type, or `*`.
    pub resource_type: String,
    /// The `cruds` letters it grants.
    pub permissions: String,
}

/// The scopes that are not resource scopes.
pub const IDENTITY_SCOPES: &[&str] = &[
    "openid",
    "fhirUser",
    "profile",
    "launch/patient",
    "offline_access",
    "online_access",
];

impl ResourceScope {
    /// Parses a resource scope; `None` for anything else (or a type not served here).
    pub fn parse(scope: &str) -> Option<Self> {
        let (context, rest) = scope.split_once('/')?;
        let context = match context {
            "patient" => Context::Patient,
            "user" => Context::User,
            _ => return None,
        };
        let (resource_type, permissions) = rest.split_once('.')?;
        if resource_type != "*" && support(resource_type).is_none() {
            return None;
        }
        let permissions = match permissions {
            "read" => "rs".to_owned(),
            "write" => "cud".to_owned(),
            "*" => "cruds".to_owned(),
            letters => {
                // v2: a non-empty subsequence of `cruds`, no query.
                let mut order = "cruds".chars();
                let valid = !letters.is_empty()
                    && letters
                        .chars()
                        .all(|letter| order.any(|known| known == letter));
                if !valid {
                    return None;
                }
                letters.to_owned()
            }
        };
        Some(Self {
            context,
            resource_type: resource_type.to_owned(),
            permissions,
        })
    }

    fn grants(&self, resource_type: &str, permission: Permission, is_patient: bool) -> bool {
        (self.resource_type == "*" || self.resource_type == resource_type)
            && self.permissions.contains(permission.letter())
            && (self.context == Context::User || is_patient)
    }
}

/// Whether `scope` is one this server knows (an identity scope or a resource scope of a
/// served type).
pub fn is_known(scope: &str) -> bool {
    IDENTITY_SCOPES.contains(&scope) || ResourceScope::parse(scope).is_some()
}

/// Whether `principal`'s token lets it do `permission` on `resource_type`. Patient-context
/// scopes reach a patient's own data only, so they count for a patient's login alone.
pub fn permits(principal: &Principal, resource_type: &str, permission: Permission) -> bool {
    if !principal.is_delegated() {
        return true;
    }
    let is_patient = principal.is(Role::Patient);
    principal
        .scopes
        .iter()
        .filter_map(|scope| ResourceScope::parse(scope))
        .any(|scope| scope.grants(resource_type, permission, is_patient))
}

/// The resource type and permission a FHIR request needs (its path relative to the FHIR
/// base), when it needs one: `None` for public types and for anything not a resource.
pub fn needed(method: &Method, path: &str) -> Option<(&'static str, Permission)> {
    let mut segments = path.trim_start_matches('/').split('/');
    let support = support(segments.next()?)?;
    let second = segments.next();
    let third = segments.next();
    // HEAD is answered by the GET handler: it reads as much.
    let permission = match (method.as_str(), second, third) {
        ("GET" | "HEAD", None | Some(""), None) => Permission::Search,
        ("GET" | "HEAD", Some(_), None) => Permission::Read,
        ("POST", Some(operation), None) if operation.starts_with('$') => {
            match support
                .operations
                .iter()
                .find(|known| !known.instance && known.name == &operation[1..])
            {
                Some(known) if known.audience == Audience::Public => return None,
                Some(_) => Permission::Create,
                None => Permission::Unclassified,
            }
        }
        ("POST", Some(_), Some(_)) => Permission::Update,
        ("PATCH" | "PUT", Some(_), None) => Permission::Update,
        ("DELETE", Some(_), None) => Permission::Delete,
        _ => Permission::Unclassified,
    };
    if support.audience == Audience::Public
        && matches!(permission, Permission::Read | Permission::Search)
    {
        return None;
    }
    Some((support.resource_type, permission))
}

/// The layer on a service's FHIR routes: a request with a valid bearer token whose scopes do
/// not grant what the request does is refused with 403 `insufficient_scope` (RFC 6750); the
/// verified caller is kept in the request for the handler (an app's token is accepted by the
/// handlers only so). A missing or invalid token is left to the handler, which knows whether
/// the route needs one.
pub async fn enforce(
    State(verifier): State<Arc<Verifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request
        .uri()
        .path()
        .strip_prefix("/fhir")
        .unwrap_or(request.uri().path())
        .to_owned();
    let need = needed(request.method(), &path);
    if let Ok(Some(principal)) = authenticate(&verifier, request.headers(), request.uri()).await {
        if let Some((resource_type, permission)) = need
            && !permits(&principal, resource_type, permission)
        {
            let letter = permission.letter();
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!(
                    "The token's scopes do not allow this: it needs patient/{resource_type}.{letter} or user/{resource_type}.{letter}."
                ),
            )
            .with_challenge("Bearer error=\"insufficient_scope\"")
            .into_response();
        }
        request.extensions_mut().insert::<Principal>(principal);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_scopes_parse_to_the_same_permissions() {
        let v1 = ResourceScope::parse("patient/Observation.read").unwrap();
        let v2 = ResourceScope::parse("patient/Observation.rs").unwrap();
        assert_eq!(v1, v2);
        assert_eq!(
            ResourceScope::parse("user/*.*").unwrap().permissions,
            "cruds"
        );
        assert_eq!(
            ResourceScope::parse("user/Appointment.cu").unwrap().context,
            Context::User
        );
    }

    #[test]
    fn malformed_scopes_and_unknown_types_grant_nothing() {
        for scope in [
            "patient/Observation.sr",
            "patient/Observation.x",
            "patient/Observation.",
            "patient/Observation.rs?category=vital-signs",
            "system/*.rs",
            "patient/Claim.rs",
            "patient",
        ] {
            assert!(ResourceScope::parse(scope).is_none(), "{scope}");
            assert!(!is_known(scope), "{scope}");
        }
        assert!(is_known("launch/patient"));
        assert!(is_known("patient/*.rs"));
    }

    #[test]
    fn a_request_needs_the_permission_its_method_and_path_say() {
        assert_eq!(
            needed(&Method::GET, "/Observation"),
            Some(("Observation", Permission::Search))
        );
        assert_eq!(
            needed(&Method::GET, "/MedicationRequest/x-1"),
            Some(("MedicationRequest", Permission::Read))
        );
        assert_eq!(
            needed(&Method::POST, "/Appointment/$book"),
            Some(("Appointment", Permission::Create))
        );
        assert_eq!(
            needed(&Method::POST, "/Appointment/abc/$cancel"),
            Some(("Appointment", Permission::Update))
        );
        assert_eq!(
            needed(&Method::PATCH, "/Appointment/abc"),
            Some(("Appointment", Permission::Update))
        );
        // Public: the directory, the calendar and $find need no scope.
        assert_eq!(needed(&Method::GET, "/Practitioner"), None);
        assert_eq!(needed(&Method::GET, "/Slot/x"), None);
        assert_eq!(needed(&Method::POST, "/Appointment/$find"), None);
        assert_eq!(needed(&Method::GET, "/metadata"), None);
        // HEAD reads; a method no letter covers is granted by no scope.
        assert_eq!(
            needed(&Method::HEAD, "/Observation"),
            Some(("Observation", Permission::Search))
        );
        assert_eq!(
            needed(&Method::OPTIONS, "/Observation/x"),
            Some(("Observation", Permission::Unclassified))
        );
        assert!(
            !ResourceScope::parse("user/*.*")
                .unwrap()
                .permissions
                .contains(Permission::Unclassified.letter())
        );
    }
}

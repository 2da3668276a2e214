//! The prescriptions service's HTTP interface. Every handler decides access with the
//! caller's token (and, for doctors and nurses, the appointments service), and every read,
//! write and refused attempt on clinical data appends a row to the audit trail. What the
//! caller may not see is 404, never 403, so a probe learns nothing.

pub mod audit;
pub mod body;
pub mod fhir;
pub mod prescriptions;
pub mod records;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use polyclinic_auth::{Role, RoleRule, Verifier};
use polyclinic_http::ApiError;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use uuid::Uuid;

use crate::AppState;
use crate::access::{Acting, Viewer};

/// Every documented route of the service.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(records::router())
        .merge(prescriptions::router())
        .merge(audit::router())
}

/// A request of a person in a role `R` allows: the shared [`polyclinic_auth::Asking`]
/// (the token, the request id and the trace context their calls carry) and the role the
/// person acts in here. A handler takes it and gets the [`Viewer`] the flows want from it.
pub struct Asking<R: RoleRule> {
    asking: polyclinic_auth::Asking<R>,
    id: Uuid,
    acting: Acting,
}

impl<S, R> FromRequestParts<S> for Asking<R>
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
    R: RoleRule,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let asking = polyclinic_auth::Asking::<R>::from_request_parts(parts, state).await?;
        let acting = if asking.is(Role::Admin) {
            Acting::Admin
        } else if asking.is(Role::Doctor) {
            Acting::Doctor
        } else if asking.is(Role::Nurse) {
            Acting::Nurse
        } else if asking.is(Role::Patient) {
            Acting::Patient
        } else {
            return Err(ApiError::forbidden(
                "forbidden",
                "Clinical data is read by people, not services.",
            ));
        };
        Ok(Self {
            id: asking.user_id()?,
            acting,
            asking,
        })
    }
}

impl<R: RoleRule> Asking<R> {
    /// Who asks, as the flows see them.
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            id: self.id,
            acting: self.acting,
            subject: &self.asking.subject,
            request_id: self.asking.request_id().as_str(),
            call: self.asking.call(),
        }
    }
}

/// Field errors as one 422.
pub fn invalid(errors: Vec<(String, String)>) -> ApiError {
    let mut violations = polyclinic_http::Violations::new();
    for (field, message) in errors {
        violations.add(&field, message);
    }
    violations.into_error()
}

//! The prescriptions service's HTTP interface. Every handler decides access with the
//! caller's token (and, for doctors and nurses, the appointments service), and every read,
//! write and refused attempt on clinical data appends a row to the audit trail. What the
//! caller may not see is 404, never 403, so a probe learns nothing.

pub mod audit;
pub mod body;
pub mod prescriptions;
pub mod records;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use polyclinic_auth::{Require, Role, RoleRule, Verifier};
use polyclinic_client::CallContext;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{ApiError, RequestId};
use polyclinic_telemetry::TraceContext;
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

/// A request of a person in a role `R` allows: the token's person in the role they act in
/// here, with the request id and trace context their calls to other services carry. A
/// handler takes it in place of the principal, the request id and the headers, and gets
/// the [`Viewer`] the flows want from it.
pub struct Asking<R: RoleRule> {
    principal: Require<R>,
    request_id: RequestId,
    trace: TraceContext,
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
        let principal = Require::<R>::from_request_parts(parts, state).await?;
        let acting = if principal.is(Role::Admin) {
            Acting::Admin
        } else if principal.is(Role::Doctor) {
            Acting::Doctor
        } else if principal.is(Role::Nurse) {
            Acting::Nurse
        } else if principal.is(Role::Patient) {
            Acting::Patient
        } else {
            return Err(ApiError::forbidden(
                "forbidden",
                "Clinical data is read by people, not services.",
            ));
        };
        let Ok(request_id) = RequestId::from_request_parts(parts, state).await;
        Ok(Self {
            id: principal.user_id()?,
            acting,
            request_id,
            trace: TraceContext::from_headers(&parts.headers),
            principal,
        })
    }
}

impl<R: RoleRule> Asking<R> {
    /// Who asks, as the flows see them.
    pub fn viewer(&self) -> Viewer<'_> {
        Viewer {
            id: self.id,
            acting: self.acting,
            subject: &self.principal.subject,
            request_id: self.request_id.as_str(),
            call: CallContext {
                bearer: Some(self.principal.bearer()),
                request_id: Some(self.request_id.as_str()),
                trace: self.trace.as_headers(),
            },
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

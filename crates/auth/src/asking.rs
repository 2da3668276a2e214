//! [`Asking`]: the one extractor a handler that acts for someone takes. It holds the
//! verified person (or platform service) in a role the route allows, the request's id and
//! its trace context, and gives the [`CallContext`] every call to another service carries,
//! so no handler assembles that from the principal, the request id and the headers itself.

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use polyclinic_client::CallContext;
use polyclinic_http::{ApiError, RequestId};
use polyclinic_telemetry::TraceContext;

use crate::{Principal, Require, RoleRule, Verifier};

/// Who asks (a [`Require<R>`]: 401 without a valid token, 403 without one of `R`'s
/// roles), with the request id and trace context their calls pass on. Dereferences to the
/// principal.
pub struct Asking<R: RoleRule> {
    principal: Require<R>,
    request_id: RequestId,
    trace: TraceContext,
}

impl<R: RoleRule> std::fmt::Debug for Asking<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asking")
            .field("subject", &self.principal.subject)
            .field("request_id", &self.request_id.as_str())
            .finish()
    }
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
        let Ok(request_id) = RequestId::from_request_parts(parts, state).await;
        Ok(Self {
            principal,
            request_id,
            trace: TraceContext::from_headers(&parts.headers),
        })
    }
}

impl<R: RoleRule> Asking<R> {
    /// What a call made on this request's behalf carries: the caller's token, the request
    /// id and the trace context.
    pub fn call(&self) -> CallContext<'_> {
        CallContext {
            bearer: Some(self.principal.bearer()),
            request_id: Some(self.request_id.as_str()),
            trace: self.trace.as_headers(),
        }
    }

    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    pub fn trace(&self) -> &TraceContext {
        &self.trace
    }
}

impl<R: RoleRule> Deref for Asking<R> {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.principal
    }
}

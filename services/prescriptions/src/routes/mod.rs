//! The prescriptions service's HTTP interface. Every handler decides access with the
//! caller's token (and, for doctors and nurses, the appointments service), and every read,
//! write and refused attempt on clinical data appends a row to the audit trail. What the
//! caller may not see is 404, never 403, so a probe learns nothing.

pub mod audit;
pub mod prescriptions;
pub mod records;

use axum::http::HeaderMap;
use polyclinic_auth::{Principal, Role};
use polyclinic_client::CallContext;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{ApiError, RequestId};

use crate::AppState;
use crate::access::{Acting, Viewer};

/// Every documented route of the service.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(records::router())
        .merge(prescriptions::router())
        .merge(audit::router())
}

pub fn viewer<'a>(
    principal: &'a Principal,
    request_id: &'a RequestId,
    headers: &'a HeaderMap,
) -> Result<Viewer<'a>, ApiError> {
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
    Ok(Viewer {
        id: principal.user_id()?,
        acting,
        subject: &principal.subject,
        request_id: request_id.as_str(),
        call: CallContext::forwarding(principal.bearer(), request_id.as_str(), headers),
    })
}

/// Field errors as one 422.
pub fn invalid(errors: Vec<(String, String)>) -> ApiError {
    let mut violations = polyclinic_http::Violations::new();
    for (field, message) in errors {
        violations.add(&field, message);
    }
    violations.into_error()
}

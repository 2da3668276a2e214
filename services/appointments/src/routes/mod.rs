//! The appointments service's HTTP interface: thin handlers over [`crate::booking`].

pub mod appointments;
pub mod body;
pub mod schedules;

use axum::http::HeaderMap;
use polyclinic_auth::scopes::AppointmentsRead;
use polyclinic_auth::{Principal, Role, Scope, insufficient_scope};
use polyclinic_client::CallContext;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{ApiError, RequestId};
use uuid::Uuid;

use crate::AppState;
use crate::booking::{BookingError, Caller};
use crate::domain::appointment::Actor;
use crate::domain::schedule::SlotError;

/// Every documented route of the service.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(appointments::router())
        .merge(schedules::router())
}

impl From<BookingError> for ApiError {
    fn from(err: BookingError) -> Self {
        let detail = err.to_string();
        match err {
            BookingError::NotFound => ApiError::not_found("appointment_not_found", detail),
            // A request of the documented shape that names something missing is a 404, and
            // one the calendar or the policy refuses a 409: 422 is for what breaks the shape.
            BookingError::DoctorNotFound => ApiError::not_found("unknown_doctor", detail),
            BookingError::Slot(SlotError::NotASlot) => ApiError::conflict("not_a_slot", detail),
            BookingError::Slot(SlotError::TooSoon) => ApiError::conflict("slot_too_soon", detail),
            BookingError::SlotTaken => ApiError::conflict("slot_taken", detail),
            BookingError::PendingLimit(_) => ApiError::conflict("pending_limit_reached", detail),
            BookingError::WrongState(_) => ApiError::conflict("appointment_state", detail),
            BookingError::TooLate => ApiError::conflict("cancellation_cutoff_passed", detail),
            BookingError::NotStarted => ApiError::conflict("appointment_not_started", detail),
            BookingError::InvalidRoom(_) => ApiError::conflict("invalid_room", detail),
            BookingError::InvalidNurse(_) => ApiError::conflict("invalid_nurse", detail),
            BookingError::PatientNotYours(_) => ApiError::forbidden("invalid_patient", detail),
            BookingError::PatientNotFound(_) => ApiError::not_found("invalid_patient", detail),
            BookingError::RoomTaken => ApiError::conflict("room_taken", detail),
            BookingError::NurseTaken => ApiError::conflict("nurse_taken", detail),
            BookingError::Forbidden => ApiError::forbidden("forbidden", detail),
            BookingError::PaymentRefused(_) => ApiError::conflict("payment_refused", detail),
            BookingError::PeerUnavailable(_) => ApiError::dependency_unavailable(detail),
            BookingError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

/// The caller of a request as the booking flows see them. A person's role decides; a
/// platform service acts as the system.
pub fn caller<'a>(
    principal: &'a Principal,
    request_id: &'a RequestId,
    headers: &'a HeaderMap,
) -> Result<Caller<'a>, ApiError> {
    let call = CallContext::forwarding(principal.bearer(), request_id.as_str(), headers);
    let (id, actor) = if principal.is(Role::Admin) {
        (principal.user_id()?, Actor::Admin)
    } else if principal.is(Role::Doctor) {
        (principal.user_id()?, Actor::Doctor)
    } else if principal.is(Role::Nurse) {
        (principal.user_id()?, Actor::Nurse)
    } else if principal.is(Role::Patient) {
        (principal.user_id()?, Actor::Patient)
    } else if principal.is_service_with(AppointmentsRead::NAME) {
        (Uuid::nil(), Actor::System)
    } else if principal.is(Role::Service) {
        return Err(insufficient_scope(AppointmentsRead::NAME));
    } else {
        return Err(ApiError::forbidden(
            "forbidden",
            "Your role does not allow this request.",
        ));
    };
    Ok(Caller { id, actor, call })
}

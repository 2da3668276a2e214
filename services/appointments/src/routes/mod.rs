//! The appointments service's HTTP interface: thin handlers over [`crate::booking`].

pub mod appointments;
pub mod body;
pub mod fhir;
pub mod fhir_booking;
pub mod schedules;
pub mod waitlist;

use polyclinic_auth::{Asking, Role, RoleRule};
use polyclinic_http::ApiError;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
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
        .merge(waitlist::router())
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
            BookingError::UnknownSpecialization => {
                ApiError::not_found("unknown_specialization", detail)
            }
            BookingError::WaitlistLimit(_) => ApiError::conflict("waitlist_limit_reached", detail),
            BookingError::AlreadyWaiting => ApiError::conflict("already_waiting", detail),
            BookingError::EntryNotFound => ApiError::not_found("waitlist_entry_not_found", detail),
            BookingError::EntryClosed => ApiError::conflict("waitlist_entry_closed", detail),
            BookingError::OfferLapsed => ApiError::conflict("offer_expired", detail),
            BookingError::Unexpected(source) => ApiError::internal(source),
        }
    }
}

/// The caller of a request as the booking flows see them. A person's role decides; a
/// platform service (admitted by the route's rule only with its scope) acts as the system.
pub fn caller<R: RoleRule>(asking: &Asking<R>) -> Result<Caller<'_>, ApiError> {
    let (id, actor) = if asking.is(Role::Admin) {
        (asking.user_id()?, Actor::Admin)
    } else if asking.is(Role::Doctor) {
        (asking.user_id()?, Actor::Doctor)
    } else if asking.is(Role::Nurse) {
        (asking.user_id()?, Actor::Nurse)
    } else if asking.is(Role::Patient) {
        (asking.user_id()?, Actor::Patient)
    } else if asking.is(Role::Service) {
        (Uuid::nil(), Actor::System)
    } else {
        return Err(ApiError::forbidden(
            "forbidden",
            "Your role does not allow this request.",
        ));
    };
    Ok(Caller {
        id,
        actor,
        call: asking.call(),
    })
}

//! The identity service's HTTP interface, one router per resource.

mod auth;
mod departments;
mod doctors;
pub mod fhir;
mod users;

use polyclinic_http::utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every documented route of the service.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(doctors::router())
        .merge(departments::router())
}

//! The identity service's HTTP interface, one router per resource.

mod auth;
mod authorize;
mod departments;
mod doctors;
pub mod fhir;
mod smart_apps;
mod users;

use polyclinic_http::utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every documented route of the service.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(authorize::router())
        .merge(smart_apps::router())
        .merge(users::router())
        .merge(doctors::router())
        .merge(departments::router())
}

//! The notifications service's HTTP interface.

pub mod calendar;
pub mod events;
pub mod notifications;

use polyclinic_http::utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every documented route of the service.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(calendar::router())
        .merge(events::router())
        .merge(notifications::router())
}

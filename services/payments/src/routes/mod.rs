//! The payments service's HTTP interface.

pub mod payments;
mod webhooks;

use polyclinic_http::utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every documented route of the service.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(payments::router())
        .merge(webhooks::router())
}

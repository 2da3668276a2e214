//! The API gateway: the platform's front door on port 8080.
//!
//! It keeps no data of its own. [`router`] builds the HTTP interface (tests call it in
//! process); [`run`] serves until shutdown.

use std::time::Duration;

use polyclinic_config::{Config, Service};
use polyclinic_http::axum::Router;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{CancellationToken, ServiceApp};
use tokio::net::TcpListener;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Gateway;

fn api() -> OpenApiRouter {
    OpenApiRouter::new()
}

/// The gateway's own OpenAPI document.
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    polyclinic_http::document(SERVICE, api().split_for_parts().1)
}

/// The gateway's complete router.
pub fn router(config: &Config) -> Router {
    ServiceApp::new(SERVICE, api())
        .body_limit(config.http.body_limit_bytes as usize)
        .into_router()
}

/// Serves on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = router(&config);
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    polyclinic_http::serve(listener, app, shutdown, grace).await?;
    Ok(())
}

//! The API gateway: the platform's front door on port 8080.
//!
//! It keeps no data. Every `/api` route of [`table::TABLE`] is forwarded to the service that
//! owns it after the gateway has verified the bearer token itself and applied the route's
//! coarse role rule (services still decide ownership), stripped hop-by-hop and spoofable
//! identity headers, and taken one request from the caller's rate-limit bucket. Upstream
//! timeouts give 504 and unreachable upstreams 502, both problem+json. The FHIR routes
//! (`/fhir/<Type>`) are forwarded by resource type the same way, their errors (the
//! gateway's own too) rewritten as OperationOutcomes; the gateway answers `/fhir/metadata`
//! itself from [`polyclinic_fhir::capability`]. It also serves `/docs` (Swagger UI over
//! every service's OpenAPI) and `/status`.
//!
//! Each connection is answered by a [`front::Front`]: it forwards the table's `/api` routes
//! itself and hands every other request to the router, which has all the routes.

mod docs;
mod front;
mod proxy;
mod rate_limit;
mod status;
pub mod table;
mod upstream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::routing::{MethodRouter, on};
use axum::serve::IncomingStream;
use polyclinic_auth::{Verifier, VerifierSettings};
use polyclinic_config::{Config, Service};
use polyclinic_http::axum::Router;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::utoipa_axum::routes;
use polyclinic_http::{CancellationToken, ClientAddress, RequestId, ServiceApp};
use tokio::net::TcpListener;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::docs::DocsCache;
use crate::rate_limit::{Limiter, Limits};
use crate::table::{Rule, TABLE};
use crate::upstream::Upstreams;

/// This service's name in configuration, logs and metrics.
pub const SERVICE: Service = Service::Gateway;

/// What the gateway's handlers share: one reference-counted value, since a handler's
/// state is cloned for every request.
#[derive(Clone)]
pub struct GatewayState(Arc<Shared>);

impl std::ops::Deref for GatewayState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`GatewayState`].
pub struct Shared {
    verifier: Arc<Verifier>,
    /// For the gateway's own calls: the status page's probes, the OpenAPI documents.
    http: reqwest::Client,
    /// For forwarding.
    forwarder: upstream::Forwarder,
    upstreams: Upstreams,
    limits: Limits,
    docs: DocsCache,
    body_limit: usize,
    upstream_timeout: Duration,
    public_scheme: &'static str,
}

impl FromRef<GatewayState> for Arc<Verifier> {
    fn from_ref(state: &GatewayState) -> Self {
        state.verifier.clone()
    }
}

impl GatewayState {
    pub fn new(config: &Config, verifier: Arc<Verifier>) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(Shared {
            verifier,
            http: reqwest::Client::builder()
                .build()
                .context("building the HTTP client")?,
            forwarder: upstream::forwarder(),
            upstreams: Upstreams::from_config(config)?,
            limits: Limits {
                anonymous: Limiter::new(config.rate_limit.anonymous_per_minute),
                users: Limiter::new(config.rate_limit.user_per_minute),
                webhooks: Limiter::new(config.rate_limit.webhook_per_minute),
                feeds: Limiter::new(config.rate_limit.feed_per_minute),
            },
            docs: DocsCache::default(),
            body_limit: config.http.body_limit_bytes as usize,
            upstream_timeout: Duration::from_secs(config.http.upstream_timeout_secs.into()),
            public_scheme: if config.public_url.starts_with("https://") {
                "https"
            } else {
                "http"
            },
        })))
    }
}

/// The forwarding routes, one per path of the table with a handler per method.
fn forwarding_routes() -> Router<GatewayState> {
    let mut by_path: BTreeMap<&'static str, Vec<Rule>> = BTreeMap::new();
    for rule in TABLE {
        by_path.entry(rule.path).or_default().push(*rule);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, rules)| {
            let methods = rules
                .into_iter()
                .fold(MethodRouter::new(), |methods, rule| {
                    methods.merge(on(
                        rule.method,
                        move |State(state): State<GatewayState>,
                              client: ClientAddress,
                              request_id: RequestId,
                              request: Request| {
                            proxy::forward(state, rule, client, request_id, request)
                        },
                    ))
                });
            // FHIR's resources and operations answer FHIR; its `.well-known` documents are
            // plain JSON, as SMART specifies.
            let methods = if path.starts_with("/fhir/") && !path.starts_with("/fhir/.well-known/") {
                methods
                    .layer(axum::middleware::from_fn(polyclinic_fhir::negotiate))
                    .layer(axum::middleware::map_response(
                        polyclinic_fhir::outcome::to_operation_outcome,
                    ))
            } else {
                methods
            };
            router.route(path, methods)
        })
}

/// What the gateway answers under `/fhir` itself: the CapabilityStatement, and an
/// OperationOutcome for a path no service serves.
fn fhir_routes(config: &Config) -> Router {
    let statement = polyclinic_fhir::Resource::from(
        polyclinic_fhir::capability::CapabilityStatement::of_server(
            polyclinic_fhir::Base::of(&config.public_url).as_str(),
            &polyclinic_fhir::capability::SmartEndpoints::of_issuer(
                &config.issuer(),
                config.identity_provider == polyclinic_config::IdentityProvider::Keycloak,
            ),
            chrono::Utc::now(),
        ),
    );
    let unknown = || async {
        polyclinic_http::ApiError::not_found(
            "fhir_route_not_found",
            "This FHIR server has no such resource type or interaction.",
        )
    };
    Router::new()
        .route(
            "/fhir/metadata",
            axum::routing::get(move || {
                let statement = statement.clone();
                async move { polyclinic_fhir::Fhir(statement) }
            }),
        )
        .route("/fhir", axum::routing::any(unknown))
        .route("/fhir/{*rest}", axum::routing::any(unknown))
        .layer(axum::middleware::from_fn(polyclinic_fhir::negotiate))
        .layer(axum::middleware::map_response(
            polyclinic_fhir::outcome::to_operation_outcome,
        ))
}

fn api() -> OpenApiRouter<GatewayState> {
    OpenApiRouter::new().routes(routes!(status::status))
}

/// The gateway's own OpenAPI document (the forwarded routes are documented by their
/// services; `/docs` shows them all).
pub fn openapi() -> polyclinic_http::utoipa::openapi::OpenApi {
    polyclinic_http::document(SERVICE, api().split_for_parts().1)
}

fn cors(config: &Config) -> Option<CorsLayer> {
    if config.cors_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("idempotency-key"),
                polyclinic_http::REQUEST_ID_HEADER,
                header::HeaderName::from_static("traceparent"),
                header::HeaderName::from_static("tracestate"),
                header::HeaderName::from_static("baggage"),
            ])
            .expose_headers([polyclinic_http::REQUEST_ID_HEADER, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// The gateway's router, which has every route, and the platform's work on a request, for
/// the requests [`front`] forwards itself.
fn router(config: &Config, state: GatewayState) -> (Router, polyclinic_http::Platform) {
    let forwarding = forwarding_routes().with_state(state.clone());
    let docs = docs::router(state.clone());
    let api = api()
        .with_state(state)
        .merge(OpenApiRouter::from(forwarding))
        .merge(OpenApiRouter::from(docs))
        .merge(OpenApiRouter::from(fhir_routes(config)));
    ServiceApp::new(SERVICE, api)
        .configured(config)
        .into_router_and_platform()
}

/// Marks an answer as https-only for a year (HSTS), on an https deployment.
async fn strict_transport(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    response
}

/// Serves on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let verifier = Verifier::new(VerifierSettings::from_config(&config, SERVICE));
    let state = GatewayState::new(&config, verifier)?;
    let (router, platform) = router(&config, state.clone());
    let parts = Arc::new(front::Parts::new(router, platform, state)?);
    // What every answer passes through on its way out, on both of the front's roads: CORS
    // for the configured origins, and HSTS when the public URL is https.
    let outermost = tower::ServiceBuilder::new()
        .option_layer(
            config
                .public_url
                .starts_with("https://")
                .then(|| axum::middleware::map_response::<_, ()>(strict_transport)),
        )
        .option_layer(cors(&config));
    let connections = tower::service_fn(move |connection: IncomingStream<'_, TcpListener>| {
        let answers = outermost.service(parts.front(*connection.remote_addr()));
        std::future::ready(Ok::<_, std::convert::Infallible>(answers))
    });
    tracing::info!(service = %SERVICE, address = %listener.local_addr()?, "listening");
    let grace = Duration::from_secs(config.http.shutdown_grace_secs.into());
    polyclinic_http::serve_connections(listener, connections, shutdown, grace).await?;
    Ok(())
}

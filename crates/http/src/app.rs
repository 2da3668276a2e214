//! [`ServiceApp`]: a service's API router plus everything every service serves and does.

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use futures_util::FutureExt;
use polyclinic_config::Service;
use prometheus_client::registry::Registry;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{
    ClientCredentials, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
};
use utoipa_axum::router::OpenApiRouter;

use crate::client_address::TrustedProxies;
use crate::health::{self, CheckReport, HealthReport, Readiness};
use crate::metrics::{self, HttpMetrics, MetricsRoute, Route};
use crate::observe::{Observer, observe, observed};
use crate::{ApiError, Check, ProblemDetails, RequestId};

#[derive(OpenApi)]
#[openapi(
    paths(health::live, health::ready, get_metrics_doc, get_openapi_doc),
    components(schemas(ProblemDetails, HealthReport, CheckReport)),
    tags((name = "platform", description = "Served by every service outside /api"))
)]
struct PlatformDoc;

/// Prometheus metrics of this service.
#[utoipa::path(get, path = "/metrics", tag = "platform",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
#[expect(
    dead_code,
    reason = "documents the route that metrics::get_metrics serves"
)]
fn get_metrics_doc() {}

/// This service's OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "platform",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[expect(dead_code, reason = "documents the route that ServiceApp serves")]
fn get_openapi_doc() {}

/// The OpenAPI document of `service`: its API plus the platform routes and shared schemas.
pub fn document(service: Service, api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut doc = PlatformDoc::openapi();
    doc.merge(api);
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    // The built-in provider's token endpoint, as OAuth clients (and schemathesis, which then
    // takes a refused login for a refused credential, not a refused request) look for it.
    // Under Keycloak the realm's token endpoint takes its place.
    components.add_security_scheme(
        "oauth2",
        SecurityScheme::OAuth2(OAuth2::with_description(
            [
                Flow::Password(Password::with_refresh_url(
                    "/api/auth/token",
                    Scopes::new(),
                    "/api/auth/token",
                )),
                Flow::ClientCredentials(ClientCredentials::new("/api/auth/token", Scopes::new())),
            ],
            "The built-in provider (`POST /api/auth/token`); bearer tokens it issues authenticate every route.",
        )),
    );
    declare_path_parameters(&mut doc);
    declare_problem_responses(&mut doc);
    let mut doc = declare_string_rules(doc);
    doc.info.title = format!("Polyclinic {service}");
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(format!(
        "The {service} service. Errors are RFC 9457 problem documents \
         (`application/problem+json`) with a stable `code`."
    ));
    doc
}

/// Declares every `{name}` of a path template that its operations do not declare: the
/// extractors parse path segments themselves, and every one of the platform's path
/// parameters is a UUID.
fn declare_path_parameters(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::Required;
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};

    for (path, item) in doc.paths.paths.iter_mut() {
        let names: Vec<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let parameters = operation.parameters.get_or_insert_with(Vec::new);
            for name in &names {
                let declared = parameters
                    .iter()
                    .any(|p| p.name == *name && p.parameter_in == ParameterIn::Path);
                if !declared {
                    let uuid = ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
                    parameters.push(
                        ParameterBuilder::new()
                            .name(*name)
                            .parameter_in(ParameterIn::Path)
                            .required(Required::True)
                            .schema(Some(uuid))
                            .build(),
                    );
                }
            }
        }
    }
}

/// What holds for every string the platform takes, said where the document would
/// otherwise not say it: a UUID is one in its hyphenated form and a date is `YYYY-MM-DD`
/// (JSON Schema's `format` alone asserts nothing), and no text holds the NUL character (the extractors refuse it, as
/// PostgreSQL cannot store it). Strings with a pattern or a list of values say more already.
fn declare_string_rules(doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(object) => {
                let is_string = match object.get("type") {
                    Some(serde_json::Value::String(kind)) => kind == "string",
                    Some(serde_json::Value::Array(kinds)) => {
                        kinds.iter().any(|kind| kind == "string")
                    }
                    _ => false,
                };
                if is_string && !object.contains_key("pattern") && !object.contains_key("enum") {
                    let pattern = match object.get("format").and_then(serde_json::Value::as_str) {
                        Some("uuid") => Some(UUID_PATTERN),
                        Some("date") => Some(DATE_PATTERN),
                        Some("date-time" | "binary" | "byte") => None,
                        _ => Some(NO_NUL_PATTERN),
                    };
                    if let Some(pattern) = pattern {
                        object.insert("pattern".to_owned(), pattern.into());
                    }
                }
                for child in object.values_mut() {
                    walk(child);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let Ok(mut value) = serde_json::to_value(&doc) else {
        return doc;
    };
    for section in ["paths", "components"] {
        if let Some(part) = value.get_mut(section) {
            walk(part);
        }
    }
    close_request_objects(&mut value);
    serde_json::from_value(value).unwrap_or(doc)
}

/// Request objects take no field they do not declare (the JSON extractor refuses unknown
/// fields of every struct), so every object schema a JSON request body reaches says
/// `additionalProperties: false` (forms are OAuth's, whose unknown parameters are ignored,
/// as RFC 6749 asks) — except one that is also a part of an `allOf` (a response
/// that flattens it), where saying so would refuse the other parts' fields.
fn close_request_objects(doc: &mut serde_json::Value) {
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn refs(value: &Value, into: &mut BTreeSet<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(reference)) = object.get("$ref")
                    && let Some(name) = reference.strip_prefix("#/components/schemas/")
                {
                    into.insert(name.to_owned());
                }
                object.values().for_each(|child| refs(child, into));
            }
            Value::Array(items) => items.iter().for_each(|child| refs(child, into)),
            _ => {}
        }
    }
    fn in_all_of(value: &Value, into: &mut BTreeSet<String>) {
        match value {
            Value::Object(object) => {
                if let Some(parts) = object.get("allOf") {
                    refs(parts, into);
                }
                object.values().for_each(|child| in_all_of(child, into));
            }
            Value::Array(items) => items.iter().for_each(|child| in_all_of(child, into)),
            _ => {}
        }
    }
    fn close(value: &mut Value) {
        match value {
            Value::Object(object) => {
                // An `allOf` of schemas with properties (a flattened object) cannot be
                // closed part by part; one of conditions only (`if`/`then`) can.
                let composed = object
                    .get("allOf")
                    .and_then(Value::as_array)
                    .is_some_and(|parts| {
                        parts.iter().any(|part| {
                            part.get("$ref").is_some() || part.get("properties").is_some()
                        })
                    });
                if composed {
                    return;
                }
                if object.contains_key("properties") && !object.contains_key("additionalProperties")
                {
                    object.insert("additionalProperties".to_owned(), Value::Bool(false));
                }
                object.values_mut().for_each(close);
            }
            Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }

    let mut reached = BTreeSet::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                let Some(content) = operation
                    .pointer_mut("/requestBody/content")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for (kind, media) in content.iter_mut() {
                    if !kind.ends_with("json") {
                        continue;
                    }
                    if let Some(schema) = media.get_mut("schema") {
                        refs(schema, &mut reached);
                        close(schema);
                    }
                }
            }
        }
    }
    let schemas = doc
        .pointer("/components/schemas")
        .cloned()
        .unwrap_or(Value::Null);
    let mut pending: Vec<String> = reached.iter().cloned().collect();
    while let Some(name) = pending.pop() {
        let mut found = BTreeSet::new();
        if let Some(schema) = schemas.get(&name) {
            refs(schema, &mut found);
        }
        for next in found {
            if reached.insert(next.clone()) {
                pending.push(next);
            }
        }
    }
    let mut flattened = BTreeSet::new();
    in_all_of(doc, &mut flattened);
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in reached.difference(&flattened) {
            if let Some(schema) = schemas.get_mut(name) {
                close(schema);
            }
        }
    }
}

/// A UUID in its hyphenated form, the one the platform writes.
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// A calendar date, `YYYY-MM-DD`.
pub const DATE_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// Any text without the NUL character.
pub const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

/// Errors are problem documents: every documented 4xx and 5xx answer is
/// `application/problem+json`, and every operation documents a `default` answer of that
/// kind for the errors any route can give (401, 403, 413, 429, 500, ...).
fn declare_problem_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

    const PROBLEM: &str = "application/problem+json";
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let is_error = status.parse::<u16>().is_ok_and(|code| code >= 400);
                if let (true, RefOr::T(response)) = (is_error, response)
                    && let Some(content) = response.content.shift_remove("application/json")
                {
                    response.content.insert(PROBLEM.to_owned(), content);
                }
            }
            operation
                .responses
                .responses
                .entry("default".to_owned())
                .or_insert_with(|| {
                    RefOr::T(
                        ResponseBuilder::new()
                            .description(
                                "An error: an RFC 9457 problem document with a stable `code`",
                            )
                            .content(
                                PROBLEM,
                                Content::new(Some(Ref::from_schema_name("ProblemDetails"))),
                            )
                            .build(),
                    )
                });
        }
    }
}

/// A service's router under construction: its API plus the platform's routes and layers.
pub struct ServiceApp {
    service: Service,
    api: Router,
    doc: utoipa::openapi::OpenApi,
    checks: Vec<Check>,
    registry: Registry,
    body_limit: usize,
    trusted_proxies: TrustedProxies,
    metrics: MetricsAccess,
}

/// Who may read `/metrics`.
enum MetricsAccess {
    /// Anyone who can reach the service (an internal service with no token configured).
    Open,
    /// The monitoring system, by its bearer token.
    Token(String),
    /// Nobody: a public listener with no token configured does not serve it.
    Hidden,
}

impl ServiceApp {
    /// Starts from the service's documented API routes (state already applied).
    pub fn new(service: Service, api: OpenApiRouter) -> Self {
        let (api, doc) = api.split_for_parts();
        Self {
            service,
            api,
            doc,
            checks: Vec::new(),
            registry: Registry::default(),
            body_limit: 256 * 1024,
            trusted_proxies: TrustedProxies::none(),
            metrics: MetricsAccess::Open,
        }
    }

    /// Applies the platform configuration: the body limit, the proxies whose forwarding
    /// headers are believed (see [`crate::ClientAddress`]), and who may read `/metrics`
    /// (the monitoring token when `http.metrics_token` is set; otherwise anyone on an
    /// internal service and no one on the public listeners, the gateway and the web app).
    pub fn configured(mut self, config: &polyclinic_config::Config) -> Self {
        self.body_limit = config.http.body_limit_bytes as usize;
        self.trusted_proxies = TrustedProxies::new(
            config.trusted_proxies(self.service),
            config.http.client_address_header,
        );
        self.metrics = match (&config.http.metrics_token, self.service) {
            (Some(token), _) => MetricsAccess::Token(token.clone()),
            (None, Service::Gateway | Service::Web) => MetricsAccess::Hidden,
            (None, _) => MetricsAccess::Open,
        };
        self
    }

    /// Adds a dependency that `/health/ready` checks.
    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// Sets the largest accepted request body.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// The registry that `/metrics` exposes, for the service's own metrics.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The finished router.
    pub fn into_router(self) -> Router {
        self.into_router_and_platform().0
    }

    /// The finished router, and the platform's work on a request for a service that answers
    /// some requests itself, in front of the router (the gateway's forwarding).
    pub fn into_router_and_platform(mut self) -> (Router, Platform) {
        let observer = Arc::new(Observer {
            service: self.service.as_str(),
            metrics: HttpMetrics::register(&mut self.registry),
        });
        let openapi =
            Bytes::from(serde_json::to_vec(&document(self.service, self.doc)).unwrap_or_default());
        let readiness = Arc::new(Readiness {
            service: self.service.as_str(),
            checks: self.checks,
        });

        let mut platform = Router::new()
            .route("/health/live", get(health::live))
            .route("/health/ready", get(health::ready))
            .with_state(readiness);
        let token = match self.metrics {
            MetricsAccess::Open => Some(None),
            MetricsAccess::Token(token) => Some(Some(token)),
            MetricsAccess::Hidden => None,
        };
        if let Some(token) = token {
            let route = Arc::new(MetricsRoute {
                registry: self.registry,
                token,
            });
            platform = platform.merge(
                Router::new()
                    .route("/metrics", get(metrics::get_metrics))
                    .with_state(route),
            );
        }
        let platform = platform.route(
            "/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi.clone(),
                )
            }),
        );

        let outside_the_router = Platform {
            observer: observer.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
        };
        let router = self
            .api
            .merge(platform)
            .fallback(route_not_found)
            .method_not_allowed_fallback(method_not_allowed)
            // One stack, applied in one go: the router boxes every route once per `layer`
            // call, and calling a route clones its boxes all the way down, so four calls
            // cost four boxings and their clones on every request.
            .layer(
                ServiceBuilder::new()
                    .layer(middleware::from_fn_with_state(observer, observe))
                    .layer(CatchPanicLayer::custom(|_| panicked()))
                    .layer(axum::Extension(self.trusted_proxies))
                    .layer(DefaultBodyLimit::max(self.body_limit)),
            );
        (router, outside_the_router)
    }
}

/// What a service answers for a request whose handler panicked.
fn panicked() -> Response {
    ApiError::internal(anyhow::anyhow!("a handler panicked")).into_response()
}

/// The platform's work on a request that a service answers without its router: what the
/// router's outermost layers do for its routes (request id, span, access log, metrics,
/// security headers, a panic answered as a 500) and the client's address as the service
/// resolves it. The rest is the caller's: no extension is set for extractors (the client's
/// address, the body limit, the matched path), so an answer reads the body within a limit
/// of its own and takes the client's address from [`Platform::client_address`].
#[derive(Clone)]
pub struct Platform {
    observer: Arc<Observer>,
    trusted_proxies: TrustedProxies,
}

impl Platform {
    /// The address of the client behind a request from `peer` (see [`crate::ClientAddress`]).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.trusted_proxies.client_address(peer, headers)
    }

    /// Answers `request` with `answer`, given the request's id, with the work the router's
    /// outermost layers do for a route whose pattern is `route`.
    pub async fn answer<Answer>(
        &self,
        route: &'static str,
        request: Request,
        answer: impl FnOnce(RequestId, Request) -> Answer,
    ) -> Response
    where
        Answer: Future<Output = Response>,
    {
        observed(
            &self.observer,
            Route::Pattern(route),
            request,
            |id, request| {
                // Making the answer's future is inside the catch too, as a layer's `call` is.
                AssertUnwindSafe(async move { answer(id, request).await })
                    .catch_unwind()
                    .map(|answered| answered.unwrap_or_else(|_| panicked()))
            },
        )
        .await
    }
}

async fn route_not_found() -> ApiError {
    ApiError::not_found("route_not_found", "No such route.")
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not accept that method.",
    )
    .into_response()
}

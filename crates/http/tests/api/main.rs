//! The platform behaviour every service inherits from `ServiceApp` and `serve`, checked on a
//! small service served over real TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use polyclinic_config::Service;
use polyclinic_http::axum::extract::Request;
use polyclinic_http::axum::response::{IntoResponse, Response};
use polyclinic_http::axum::routing::{get, post};
use polyclinic_http::axum::serve::IncomingStream;
use polyclinic_http::extract::Json;
use polyclinic_http::utoipa_axum::router::OpenApiRouter;
use polyclinic_http::{ApiError, CancellationToken, Check, ServiceApp};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::ServiceExt;

#[derive(serde::Deserialize, serde::Serialize)]
struct Greeting {
    name: String,
    age: u32,
}

async fn echo(Json(greeting): Json<Greeting>) -> Json<Greeting> {
    Json(greeting)
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(700)).await;
    "finished"
}

async fn panics() -> &'static str {
    panic!("a bug in a handler")
}

async fn broken() -> Result<(), ApiError> {
    Err(anyhow::anyhow!("database password is hunter2").into())
}

struct Served {
    address: SocketAddr,
    shutdown: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

impl Served {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// Serves on a port of its own what `serving` serves, given the listener and the shutdown.
async fn served<Serving>(serving: impl FnOnce(TcpListener, CancellationToken) -> Serving) -> Served
where
    Serving: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serving(listener, shutdown.clone()));
    Served {
        address,
        shutdown,
        server,
    }
}

async fn serve_app(app: ServiceApp) -> Served {
    served(|listener, shutdown| {
        polyclinic_http::serve(
            listener,
            app.into_router(),
            shutdown,
            Duration::from_secs(5),
        )
    })
    .await
}

/// A service that answers `/answered/...` itself through [`polyclinic_http::Platform`], as
/// the gateway's front does, and hands every other request to its router.
async fn serve_answering_in_front() -> Served {
    let (router, platform) = ServiceApp::new(Service::Identity, api()).into_router_and_platform();
    let front = tower::service_fn(move |request: Request| {
        let router = router.clone();
        let platform = platform.clone();
        async move {
            let path = request.uri().path().to_owned();
            if !path.starts_with("/answered/") {
                return router.oneshot(request).await;
            }
            let answered = platform
                .answer("/answered/{what}", request, |id, _| async move {
                    if path == "/answered/panics" {
                        panics_in_an_answer().await
                    } else {
                        id.to_string().into_response()
                    }
                })
                .await;
            Ok(answered)
        }
    });
    let connections = tower::service_fn(move |_: IncomingStream<'_, TcpListener>| {
        std::future::ready(Ok::<_, Infallible>(front.clone()))
    });
    served(|listener, shutdown| {
        polyclinic_http::serve_connections(listener, connections, shutdown, Duration::from_secs(5))
    })
    .await
}

async fn panics_in_an_answer() -> Response {
    panic!("a bug in an answer")
}

fn api() -> OpenApiRouter {
    OpenApiRouter::new()
        .route("/echo", post(echo))
        .route("/slow", get(slow))
        .route("/broken", get(broken))
        .route("/panics", get(panics))
}

async fn spawn() -> Served {
    serve_app(ServiceApp::new(Service::Identity, api()).body_limit(2048)).await
}

async fn problem(response: reqwest::Response) -> Value {
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "errors are problem+json"
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_unknown_route_gives_a_404_problem() {
    let app = spawn().await;
    let response = reqwest::get(app.url("/no/such/route")).await.unwrap();
    assert_eq!(response.status(), 404);
    let body = problem(response).await;
    assert_eq!(body["code"], "route_not_found");
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "urn:polyclinic:problem:route_not_found");
}

#[tokio::test]
async fn a_wrong_method_gives_a_405_problem() {
    let app = spawn().await;
    let response = reqwest::get(app.url("/echo")).await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(problem(response).await["code"], "method_not_allowed");
}

#[tokio::test]
async fn malformed_json_gives_400_and_a_wrong_field_type_gives_422() {
    let app = spawn().await;
    let client = reqwest::Client::new();
    let send = |body: &'static str| {
        client
            .post(app.url("/echo"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let malformed = send("{\"name\": \"Ada\",").await.unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(problem(malformed).await["code"], "malformed_json");

    let wrong_type = send("{\"name\": \"Ada\", \"age\": \"old\"}").await.unwrap();
    assert_eq!(wrong_type.status(), 422);
    let body = problem(wrong_type).await;
    assert_eq!(body["code"], "invalid_body");
    assert!(body["detail"].as_str().unwrap().contains("age"), "{body}");

    let fine = send("{\"name\": \"Ada\", \"age\": 36}").await.unwrap();
    assert_eq!(fine.status(), 200);
    assert_eq!(fine.json::<Value>().await.unwrap()["age"], 36);

    // PostgreSQL cannot store a NUL character: it is refused at the boundary, not a 500 later.
    let nul = send("{\"name\": \"A\\u0000da\", \"age\": 36}")
        .await
        .unwrap();
    assert_eq!(nul.status(), 422);
    assert_eq!(problem(nul).await["code"], "invalid_body");
    let escaped_backslash = send("{\"name\": \"A\\\\u0000da\", \"age\": 36}")
        .await
        .unwrap();
    assert_eq!(
        escaped_backslash.status(),
        200,
        "a backslash followed by the text u0000 is fine"
    );
}

#[derive(serde::Deserialize)]
struct Search {
    #[allow(dead_code, reason = "only its parsing is under test")]
    q: String,
}

async fn search(
    polyclinic_http::extract::Query(_): polyclinic_http::extract::Query<Search>,
) -> &'static str {
    "found"
}

#[tokio::test]
async fn a_nul_character_in_a_query_gives_400() {
    let app = serve_app(ServiceApp::new(
        Service::Identity,
        OpenApiRouter::new().route("/search", get(search)),
    ))
    .await;
    let client = reqwest::Client::new();
    let fine = client.get(app.url("/search?q=ada")).send().await.unwrap();
    assert_eq!(fine.status(), 200);
    let nul = client
        .get(app.url("/search?q=a%00da"))
        .send()
        .await
        .unwrap();
    assert_eq!(nul.status(), 400);
    assert_eq!(problem(nul).await["code"], "invalid_query");
}

#[tokio::test]
async fn a_body_without_a_json_content_type_gives_415() {
    let app = spawn().await;
    let response = reqwest::Client::new()
        .post(app.url("/echo"))
        .body("{\"name\": \"Ada\", \"age\": 36}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    assert_eq!(problem(response).await["code"], "unsupported_media_type");
}

#[tokio::test]
async fn a_body_over_the_limit_gives_413() {
    let app = spawn().await;
    let name = "x".repeat(4096);
    let response = reqwest::Client::new()
        .post(app.url("/echo"))
        .json(&Greeting { name, age: 1 })
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(problem(response).await["code"], "payload_too_large");
}

#[tokio::test]
async fn an_unexpected_error_is_an_opaque_500_that_leaks_nothing() {
    let app = spawn().await;
    let response = reqwest::get(app.url("/broken")).await.unwrap();
    assert_eq!(response.status(), 500);
    let body = problem(response).await;
    assert_eq!(body["code"], "internal_error");
    assert!(!body.to_string().contains("hunter2"), "{body}");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = spawn().await;
    let client = reqwest::Client::new();

    let kept = client
        .get(app.url("/health/live"))
        .header("x-request-id", "caller-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "caller-chosen-42");

    let made = client.get(app.url("/no/such/route")).send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
}

#[tokio::test]
async fn readiness_names_the_dependency_that_is_down() {
    let app = serve_app(
        ServiceApp::new(Service::Payments, api())
            .check(Check::new("postgres", || async { Ok(None) }))
            .check(Check::new("broker", || async {
                Err("connection refused".to_owned())
            })),
    )
    .await;
    let response = reqwest::get(app.url("/health/ready")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["service"], "payments");
    assert_eq!(body["checks"]["postgres"]["status"], "up");
    assert_eq!(body["checks"]["broker"]["status"], "down");
    assert_eq!(body["checks"]["broker"]["error"], "connection refused");

    let live = reqwest::get(app.url("/health/live")).await.unwrap();
    assert_eq!(
        live.status(),
        200,
        "liveness does not depend on dependencies"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = spawn().await;
    for _ in 0..3 {
        reqwest::get(app.url("/no/such/route")).await.unwrap();
    }
    reqwest::get(app.url("/health/live")).await.unwrap();

    let response = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 3"#),
        "{text}"
    );
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/health/live",status="200"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[tokio::test]
async fn methods_outside_http_share_one_metrics_label_so_callers_cannot_grow_the_metrics() {
    let app = spawn().await;
    let client = reqwest::Client::new();
    for n in 0..5 {
        let method = reqwest::Method::from_bytes(format!("PROBE{n}").as_bytes()).unwrap();
        let response = client
            .request(method, app.url("/no/such/route"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
    }

    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("PROBE"), "{text}");
    assert!(
        text.contains(r#"http_requests_total{method="other",route="unmatched",status="404"} 5"#),
        "{text}"
    );
}

#[tokio::test]
async fn a_panicking_handler_answers_a_problem_with_the_security_headers_and_the_request_id() {
    let app = spawn().await;
    let response = reqwest::get(app.url("/panics")).await.unwrap();
    assert_eq!(response.status(), 500);
    let headers = response.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("x-request-id"));
    let body = problem(response).await;
    assert_eq!(body["code"], "internal_error");
    assert!(!body.to_string().contains("a bug in a handler"), "{body}");
}

#[tokio::test]
async fn a_request_answered_in_front_of_the_router_gets_the_platforms_id_headers_and_metrics() {
    let app = serve_answering_in_front().await;
    let client = reqwest::Client::new();
    let answered = client
        .get(app.url("/answered/hello"))
        .header("x-request-id", "front-1")
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(answered.headers()["x-request-id"], "front-1");
    assert_eq!(answered.headers()["x-content-type-options"], "nosniff");
    assert_eq!(answered.headers()["cache-control"], "no-store");
    assert_eq!(
        answered.text().await.unwrap(),
        "front-1",
        "the answer was given the id"
    );

    let panicked = client
        .get(app.url("/answered/panics"))
        .send()
        .await
        .unwrap();
    assert_eq!(panicked.status(), 500);
    assert_eq!(panicked.headers()["x-frame-options"], "DENY");
    assert!(panicked.headers().contains_key("x-request-id"));
    let body = problem(panicked).await;
    assert_eq!(body["code"], "internal_error");
    assert!(!body.to_string().contains("a bug in an answer"), "{body}");

    let routed = client.get(app.url("/slow")).send().await.unwrap();
    assert_eq!(
        routed.text().await.unwrap(),
        "finished",
        "the router answers the rest"
    );
    let metrics = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"http_requests_total{method="GET",route="/answered/{what}",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="/answered/{what}",status="500"} 1"#,
        r#"http_requests_total{method="GET",route="/slow",status="200"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}

#[tokio::test]
async fn the_openapi_document_lists_the_platform_routes() {
    let app = spawn().await;
    let doc: Value = reqwest::get(app.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["info"]["title"], "Polyclinic identity");
    for path in ["/health/live", "/health/ready", "/metrics", "/openapi.json"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from {doc}");
    }
    assert!(doc["components"]["schemas"]["ProblemDetails"].is_object());
}

#[tokio::test]
async fn shutdown_waits_for_a_slow_in_flight_request() {
    let app = spawn().await;
    let in_flight = tokio::spawn(reqwest::get(app.url("/slow")));
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.shutdown.cancel();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    let url = app.url("/health/live");
    app.server.await.unwrap().unwrap();

    let refused = reqwest::get(url).await;
    assert!(refused.is_err(), "no new connections after shutdown");
}

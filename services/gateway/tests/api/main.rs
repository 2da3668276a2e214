//! The gateway in front of real and deliberately misbehaving upstreams.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::any;
use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// An upstream that answers every request with the headers it received.
async fn echo_upstream() -> SocketAddr {
    let app = Router::new().fallback(any(|headers: HeaderMap| async move {
        let seen: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or(""))))
            .collect();
        axum::Json(Value::Object(seen))
    }));
    serve(app).await
}

/// An upstream that takes longer than any test's patience.
async fn slow_upstream() -> SocketAddr {
    serve(Router::new().fallback(any(|| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "too late"
    })))
    .await
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

async fn gateway_before(
    identity: SocketAddr,
    customize: impl FnOnce(&mut polyclinic_testing::Config),
) -> TestPlatform {
    TestPlatform::start_with(&[Service::Gateway], |config, _| {
        config.identity.url = Some(format!("http://{identity}"));
        customize(config);
    })
    .await
}

#[tokio::test]
async fn identity_headers_sent_by_a_client_never_reach_a_service() {
    let upstream = echo_upstream().await;
    // The test client is a client, not one of the gateway's proxies (loopback is trusted
    // by default, for `polyclinic all` on one machine).
    let platform = gateway_before(upstream, |config| {
        config.gateway.trusted_proxies = Vec::new()
    })
    .await;
    let response = platform
        .client()
        .get(platform.url(Service::Gateway, "/api/doctors"))
        .header("x-user-id", "someone-else")
        .header("x-roles", "ADMIN")
        .header("x-forwarded-for", "10.0.0.1")
        .header("forwarded", "for=10.0.0.1")
        .header("x-real-ip", "10.0.0.1")
        .header("x-request-id", "trace-me-42")
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .header("tracestate", "clinic=north")
        .header("baggage", "clinic.site=north")
        .header("connection", "x-secret-hop")
        .header("x-secret-hop", "hop")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let seen: Value = response.json().await.unwrap();
    for header in [
        "x-user-id",
        "x-roles",
        "forwarded",
        "x-real-ip",
        "x-secret-hop",
    ] {
        assert!(
            seen.get(header).is_none(),
            "{header} reached the service: {seen}"
        );
    }
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "only what the gateway saw"
    );
    assert_eq!(seen["x-request-id"], "trace-me-42");
    assert_eq!(
        seen["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert_eq!(seen["tracestate"], "clinic=north");
    assert_eq!(seen["baggage"], "clinic.site=north");
}

/// An upstream with two large answers: 1 MiB of known length on `/api/doctors`, and 1 MiB
/// streamed in chunks of unknown length on `/api/auth/jwks`.
async fn large_upstream() -> SocketAddr {
    let app = Router::new()
        .route("/api/doctors", any(|| async { large_body() }))
        .route(
            "/api/auth/jwks",
            any(|| async {
                let chunks = large_body()
                    .chunks(16 * 1024)
                    .map(|chunk| Ok::<_, std::io::Error>(chunk.to_vec()))
                    .collect::<Vec<_>>();
                axum::body::Body::from_stream(tokio_stream::iter(chunks))
            }),
        );
    serve(app).await
}

fn large_body() -> Vec<u8> {
    (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect()
}

#[tokio::test]
async fn a_large_answer_streams_through_whole_with_its_length_or_chunked_without_one() {
    let upstream = large_upstream().await;
    let platform = gateway_before(upstream, |_| {}).await;
    let platform = &platform;
    let fetch = |path: &'static str| async move {
        let response = platform
            .client()
            .get(platform.url(Service::Gateway, path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        (response.headers().clone(), response.bytes().await.unwrap())
    };

    let (headers, body) = fetch("/api/doctors").await;
    assert_eq!(headers["content-length"], "1048576");
    assert_eq!(body, large_body());

    let (headers, body) = fetch("/api/auth/jwks").await;
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert_eq!(body, large_body());
}

#[tokio::test]
async fn a_slow_upstream_gives_504_and_an_unreachable_one_502() {
    let slow = slow_upstream().await;
    let platform = gateway_before(slow, |config| config.http.upstream_timeout_secs = 1).await;
    let timed_out = platform.call(Method::GET, "/api/doctors", None, None).await;
    assert_eq!(timed_out.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(timed_out.code(), "upstream_timeout");

    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let platform = gateway_before(closed, |_| {}).await;
    let unreachable = platform.call(Method::GET, "/api/doctors", None, None).await;
    assert_eq!(unreachable.status, StatusCode::BAD_GATEWAY);
    assert_eq!(unreachable.code(), "upstream_unavailable");
    assert!(
        unreachable.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
}

#[tokio::test]
async fn anonymous_callers_are_rate_limited_per_ip_with_retry_after() {
    let upstream = echo_upstream().await;
    let platform = gateway_before(upstream, |config| {
        config.rate_limit.anonymous_per_minute = 3
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            platform
                .call(Method::GET, "/api/doctors", None, None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let limited = platform.call(Method::GET, "/api/doctors", None, None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
}

#[tokio::test]
async fn authenticated_callers_have_their_own_bucket() {
    let platform = TestPlatform::start_with(&[Service::Identity, Service::Gateway], |config, _| {
        config.rate_limit.user_per_minute = 2;
    })
    .await;
    let (_, token) = platform.register_patient("busy@clinic.example").await;
    for _ in 0..2 {
        let reply = platform
            .call(Method::GET, "/api/users/me", Some(&token), None)
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let limited = platform
        .call(Method::GET, "/api/users/me", Some(&token), None)
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let (_, other) = platform.register_patient("calm@clinic.example").await;
    assert_eq!(
        platform
            .call(Method::GET, "/api/users/me", Some(&other), None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_reaching_the_service() {
    let upstream = echo_upstream().await;
    let platform = gateway_before(upstream, |config| config.http.body_limit_bytes = 4096).await;
    let reply = platform
        .call(
            Method::POST,
            "/api/users/patients",
            None,
            Some(json!({"first_name": "x".repeat(10_000)})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "payload_too_large");
}

#[tokio::test]
async fn unknown_and_internal_routes_are_not_forwarded() {
    let upstream = echo_upstream().await;
    let platform = gateway_before(upstream, |_| {}).await;
    for path in [
        "/api/auth/revocations",
        "/internal/auth/revocations",
        "/api/nothing",
        "/internal/metrics",
    ] {
        let reply = platform.call(Method::GET, path, None, None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.code(), "route_not_found");
    }
    let wrong_method = platform
        .call(Method::DELETE, "/api/doctors", None, None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let upstream = echo_upstream().await;
    let platform = gateway_before(upstream, |_| {}).await;
    for path in ["/api/doctors", "/api/nothing", "/health/live"] {
        let reply = platform.call(Method::GET, path, None, None).await;
        assert_eq!(reply.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(reply.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(reply.headers["referrer-policy"], "no-referrer", "{path}");
        assert!(
            reply.headers.contains_key("content-security-policy"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn only_configured_origins_pass_cors() {
    let upstream = echo_upstream().await;
    let platform = gateway_before(upstream, |config| {
        config.cors_origins = vec!["https://app.clinic.example".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        platform
            .client()
            .request(
                Method::OPTIONS,
                platform.url(Service::Gateway, "/api/doctors"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let request = |origin: &'static str| {
        platform
            .client()
            .get(platform.url(Service::Gateway, "/api/doctors"))
            .header("origin", origin)
            .send()
    };
    // The preflight, and the request itself, which the front forwards without the router.
    for (allowed, refused) in [
        (
            preflight("https://app.clinic.example").await.unwrap(),
            preflight("https://evil.example").await.unwrap(),
        ),
        (
            request("https://app.clinic.example").await.unwrap(),
            request("https://evil.example").await.unwrap(),
        ),
    ] {
        assert_eq!(allowed.status(), StatusCode::OK);
        assert_eq!(
            allowed.headers()["access-control-allow-origin"],
            "https://app.clinic.example"
        );
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
    }
}

#[tokio::test]
async fn an_https_deployment_marks_forwarded_answers_and_the_gateways_own_as_https_only() {
    let upstream = echo_upstream().await;
    let platform = gateway_before(upstream, |config| {
        config.public_url = "https://clinic.example".into();
    })
    .await;
    // Forwarded by the front; answered by the gateway's router; no route at all.
    for (path, status) in [
        ("/api/doctors", StatusCode::OK),
        ("/fhir/metadata", StatusCode::OK),
        ("/api/no/such/route", StatusCode::NOT_FOUND),
    ] {
        let response = platform
            .client()
            .get(platform.url(Service::Gateway, path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(
            response.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains",
            "{path}"
        );
    }
}

#[tokio::test]
async fn docs_serve_swagger_ui_offline_over_every_services_openapi() {
    let platform = TestPlatform::start(&[Service::Identity, Service::Gateway]).await;
    let page = platform
        .client()
        .get(platform.url(Service::Gateway, "/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let bundle = platform
        .client()
        .get(platform.url(Service::Gateway, "/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK, "assets are built in");

    let doc = platform
        .call(Method::GET, "/docs/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    for path in [
        "/api/users/me",
        "/api/auth/token",
        "/api/departments",
        "/status",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc.body["components"]["schemas"]["User"].is_object());
    assert!(
        doc.body["info"]["description"]
            .as_str()
            .unwrap()
            .contains("appointments"),
        "unreachable services are named"
    );
}

#[tokio::test]
async fn status_reports_each_upstream_as_json_and_html() {
    let platform = TestPlatform::start(&[Service::Identity, Service::Gateway]).await;
    let json = platform.call(Method::GET, "/status", None, None).await;
    assert_eq!(json.status, StatusCode::OK);
    let upstreams = json.body["upstreams"].as_array().unwrap();
    let identity = upstreams
        .iter()
        .find(|u| u["service"] == "identity")
        .unwrap();
    assert_eq!(identity["status"], "up");
    assert!(identity["version"].is_string());
    let payments = upstreams
        .iter()
        .find(|u| u["service"] == "payments")
        .unwrap();
    assert_eq!(payments["status"], "down");

    let html = platform
        .client()
        .get(platform.url(Service::Gateway, "/status"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(
        html.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = html.text().await.unwrap();
    assert!(page.contains("<title>Polyclinic status</title>") && page.contains("identity"));
}

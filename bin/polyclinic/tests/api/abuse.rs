//! Abuse through the gateway, against the whole platform: fields a client may not set (mass
//! assignment), oversized and malformed input, and headers or tokens that claim an identity
//! or an address they do not have. Every case gets a 4xx problem document with a stable code,
//! and nothing is written.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `alg: none` and a claimed ADMIN role.
const UNSIGNED_ADMIN: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJyb2xlIjoiQURNSU4iLCJyb2xlcyI6WyJBRE1JTiJdLCJleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMH0.";
/// The same claims signed with HS256 and the secret `secret` (algorithm confusion).
const HMAC_ADMIN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwMDAwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDEiLCJyb2xlIjoiQURNSU4iLCJyb2xlcyI6WyJBRE1JTiJdLCJleHAiOjQxMDI0NDQ4MDAsImlhdCI6MTcwMDAwMDAwMH0.grzAOYSiT_32EFV9I_LJmj6XqSycVbL71OZFryk45Ps";

/// Sends raw bytes through the gateway.
async fn raw(
    platform: &TestPlatform,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, String, Value) {
    let mut request = platform
        .client()
        .request(method, platform.url(Service::Gateway, path))
        .header("content-type", content_type)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body =
        serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null);
    (status, content_type, body)
}

/// Asserts a 4xx problem document with `status` and a code (`code` when given).
fn assert_problem(
    what: &str,
    (status, content_type, body): &(StatusCode, String, Value),
    expected: StatusCode,
    code: Option<&str>,
) {
    assert_eq!(*status, expected, "{what}: {body}");
    assert_eq!(content_type, "application/problem+json", "{what}");
    let got = body["code"].as_str().unwrap_or_default();
    assert!(!got.is_empty(), "{what}: a stable code: {body}");
    if let Some(code) = code {
        assert_eq!(got, code, "{what}: {body}");
    }
}

async fn json_call(
    platform: &TestPlatform,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, String, Value) {
    raw(
        platform,
        method,
        path,
        token,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await
}

async fn mine(platform: &TestPlatform, token: &str) -> Vec<Value> {
    let reply = platform
        .call(Method::GET, "/api/appointments/mine", Some(token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body["items"]
        .as_array()
        .or_else(|| reply.body.as_array())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn fields_a_client_may_not_set_are_refused_and_nothing_is_written() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("honest@abuse.example").await;
    let (other, other_token) = platform.register_patient("other@abuse.example").await;
    let slot = platform.free_slots(&clinic.doctor_id, None).await[1].clone();

    // A role, an id or a status chosen at registration.
    for (field, value) in [
        ("role", json!("ADMIN")),
        ("id", json!("00000000-0000-7000-8000-000000000001")),
        ("status", json!("ACTIVE")),
    ] {
        let mut body = json!({"first_name": "Mal", "last_name": "Lory", "email": "mallory@abuse.example",
                              "password": "mallory passphrase"});
        body[field] = value;
        let answer = json_call(&platform, Method::POST, "/api/users/patients", None, body).await;
        assert_problem(
            &format!("registration with {field}"),
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_body"),
        );
    }
    let login = platform
        .token_request(&[
            ("grant_type", "password"),
            ("username", "mallory@abuse.example"),
            ("password", "mallory passphrase"),
        ])
        .await;
    assert_eq!(
        login.status,
        StatusCode::BAD_REQUEST,
        "no account was made: {:?}",
        login.body
    );

    // Promoting oneself through the profile.
    let answer = json_call(
        &platform,
        Method::PATCH,
        "/api/users/me",
        Some(&patient),
        json!({"first_name": "Still", "role": "ADMIN"}),
    )
    .await;
    assert_problem(
        "a profile change with role",
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_body"),
    );
    let me = platform
        .call(Method::GET, "/api/users/me", Some(&patient), None)
        .await;
    assert_eq!(me.body["role"], "PATIENT");
    assert_eq!(
        me.body["first_name"], "Pat",
        "the valid part was not applied either"
    );

    // A booking that sets its own status, price or patient.
    for (field, value, code) in [
        ("status", json!("SCHEDULED"), Some("invalid_body")),
        ("amount", json!(1), Some("invalid_body")),
        (
            "price",
            json!({"amount": 1, "currency": "EUR"}),
            Some("invalid_body"),
        ),
        ("room_id", json!(clinic.room_id), Some("invalid_body")),
        ("patient_id", json!(other["id"]), None),
    ] {
        let mut body = json!({"doctor_id": clinic.doctor_id, "starts_at": slot});
        body[field] = value;
        let answer = json_call(
            &platform,
            Method::POST,
            "/api/appointments",
            Some(&patient),
            body,
        )
        .await;
        assert!(
            answer.0.is_client_error(),
            "a booking with {field}: {answer:?}"
        );
        assert_problem(&format!("a booking with {field}"), &answer, answer.0, code);
    }
    assert!(mine(&platform, &patient).await.is_empty());
    assert!(mine(&platform, &other_token).await.is_empty());

    // The price is the doctor's fee, and a payment cannot be confirmed at another amount.
    let reserved = platform.reserve(&patient, &clinic.doctor_id, &slot).await;
    let payment = reserved["payment"]["id"].as_str().unwrap();
    let answer = json_call(
        &platform,
        Method::POST,
        &format!("/api/payments/{payment}/confirm"),
        Some(&patient),
        json!({"payment_method": "pm_card_visa", "amount": 1}),
    )
    .await;
    assert_problem(
        "a confirmation with amount",
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("invalid_body"),
    );
    let read = platform
        .call(
            Method::GET,
            &format!("/api/payments/{payment}"),
            Some(&patient),
            None,
        )
        .await;
    assert_eq!(read.body["amount"], 6000, "{:?}", read.body);
    assert_eq!(read.body["status"], "requires_payment_method");
}

#[tokio::test]
async fn oversized_and_malformed_input_gets_a_problem_document_and_writes_nothing() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("fuzzy@abuse.example").await;
    let slot = platform.free_slots(&clinic.doctor_id, None).await[1].clone();
    let booking = |extra: (&str, Value)| {
        let mut body = json!({"doctor_id": clinic.doctor_id, "starts_at": slot});
        body[extra.0] = extra.1;
        body.to_string().into_bytes()
    };
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes();
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        (
            "a body over the limit",
            "application/json",
            booking(("notes", json!("x".repeat(300 * 1024)))),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "a reason over 500 characters",
            "application/json",
            booking(("reason", json!("x".repeat(501)))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "truncated JSON",
            "application/json",
            br#"{"doctor_id": "#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "JSON nested ten thousand deep",
            "application/json",
            nested,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "bytes that are not UTF-8",
            "application/json",
            vec![b'{', 0xff, 0xfe, b'}'],
            StatusCode::BAD_REQUEST,
        ),
        (
            "a doctor id that is not a UUID",
            "application/json",
            json!({"doctor_id": "not-a-uuid", "starts_at": slot})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a start that is not a time",
            "application/json",
            json!({"doctor_id": clinic.doctor_id, "starts_at": "tomorrow at nine"})
                .to_string()
                .into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a NUL character in the reason",
            "application/json",
            booking(("reason", json!("before\u{0}after"))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a number where text belongs",
            "application/json",
            booking(("reason", json!(12345))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "an array for the whole body",
            "application/json",
            b"[1, 2, 3]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "JSON sent as plain text",
            "text/plain",
            booking(("reason", json!("fine"))),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (what, content_type, body, expected) in cases {
        let answer = raw(
            &platform,
            Method::POST,
            "/api/appointments",
            Some(&patient),
            content_type,
            body,
        )
        .await;
        assert_problem(what, &answer, expected, None);
    }
    assert!(
        mine(&platform, &patient).await.is_empty(),
        "no refused booking was written"
    );

    // Malformed paths and queries.
    for (path, expected) in [
        ("/api/appointments/not-a-uuid", StatusCode::BAD_REQUEST),
        (
            &format!(
                "/api/doctors/{}/availability?from=someday",
                clinic.doctor_id
            ) as &str,
            StatusCode::BAD_REQUEST,
        ),
        (
            &format!(
                "/api/doctors/{}/availability?from=2026-02-30",
                clinic.doctor_id
            ),
            StatusCode::BAD_REQUEST,
        ),
        ("/api/appointments/mine?limit=-5", StatusCode::BAD_REQUEST),
        ("/api/appointments/mine?status=%00", StatusCode::BAD_REQUEST),
    ] {
        let answer = raw(
            &platform,
            Method::GET,
            path,
            Some(&patient),
            "application/json",
            Vec::new(),
        )
        .await;
        assert!(answer.0.is_client_error(), "{path}: {answer:?}");
        assert_problem(path, &answer, expected, None);
    }
}

#[tokio::test]
async fn headers_and_tokens_that_claim_an_identity_are_not_believed() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let admin = platform.admin_token().await;
    let (patient_user, patient) = platform.register_patient("spoof@abuse.example").await;
    let admin_id = platform
        .call(Method::GET, "/api/users/me", Some(&admin), None)
        .await
        .body["id"]
        .clone();
    let users = platform.url(Service::Gateway, "/api/users");

    let send = |token: Option<&str>| {
        let mut request = platform
            .client()
            .get(&users)
            .header("x-user-id", admin_id.as_str().unwrap())
            .header("x-roles", "ADMIN")
            .header("x-role", "ADMIN")
            .header("x-authenticated-user", "admin@polyclinic.local")
            .header("x-forwarded-user", "admin@polyclinic.local");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let mut tampered = patient.clone();
    tampered.pop();
    tampered.push(if patient.ends_with('A') { 'B' } else { 'A' });
    let (header, payload) = {
        let mut parts = patient.split('.');
        (parts.next().unwrap(), parts.next().unwrap())
    };
    let stripped = format!("{header}.{payload}.");
    for (what, token, expected) in [
        ("no token", None, StatusCode::UNAUTHORIZED),
        (
            "an unsigned token",
            Some(UNSIGNED_ADMIN),
            StatusCode::UNAUTHORIZED,
        ),
        ("an HS256 token", Some(HMAC_ADMIN), StatusCode::UNAUTHORIZED),
        (
            "a tampered signature",
            Some(tampered.as_str()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a stripped signature",
            Some(stripped.as_str()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "a patient's own token",
            Some(patient.as_str()),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let response = send(token).await.unwrap();
        assert_eq!(response.status(), expected, "{what} with identity headers");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
    }

    // The patient's own record is untouched by the claims.
    let me = platform
        .call(Method::GET, "/api/users/me", Some(&patient), None)
        .await;
    assert_eq!(me.body["id"], patient_user["id"]);
    assert_eq!(me.body["role"], "PATIENT");
}

#[tokio::test]
async fn a_forwarded_for_header_does_not_escape_the_anonymous_rate_limit() {
    let platform = TestPlatform::start_with(&[Service::Gateway, Service::Identity], |config, _| {
        config.rate_limit.anonymous_per_minute = 5;
        // The test client is a client, not one of the gateway's proxies (loopback is
        // trusted by default, for `polyclinic all` on one machine).
        config.gateway.trusted_proxies = Vec::new();
    })
    .await;
    let mut limited = 0;
    for n in 0..12 {
        let response = platform
            .client()
            .get(platform.url(Service::Gateway, "/api/doctors"))
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .header("x-real-ip", format!("198.51.100.{n}"))
            .header("forwarded", format!("for=192.0.2.{n}"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            limited += 1;
        }
    }
    assert!(
        limited >= 6,
        "each spoofed address got a fresh bucket: {limited} of 12 limited"
    );
}

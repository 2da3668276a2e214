//! Logging in, refreshing, logging out, throttling, service tokens, deactivation.

use std::time::Duration;

use polyclinic_testing::{ADMIN_EMAIL, Service, TestDb, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::Value;

async fn platform() -> TestPlatform {
    TestPlatform::start(&[Service::Identity, Service::Gateway]).await
}

/// Polls `path` with `token` at `service` until it answers `status` (verifiers learn of
/// revocations by polling the identity service); panics after 10 s.
async fn eventually(platform: &TestPlatform, service: Service, token: &str, status: StatusCode) {
    for _ in 0..100 {
        let reply = platform
            .call_service(service, Method::GET, "/api/users/me", Some(token), None)
            .await;
        if reply.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{service} never answered {status}");
}

#[tokio::test]
async fn a_patient_registers_logs_in_and_reads_their_profile_through_the_gateway() {
    let platform = platform().await;
    let (registered, token) = platform.register_patient("ada@clinic.example").await;
    assert_eq!(registered["role"], "PATIENT");
    assert_eq!(registered["status"], "ACTIVE");
    assert!(registered.get("password").is_none() && registered.get("password_hash").is_none());

    let me = platform
        .call(Method::GET, "/api/users/me", Some(&token), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], registered["id"]);
    assert_eq!(me.body["email"], "ada@clinic.example");
    // Nothing clinical is kept with the account: declarations go to the medical record.
    assert_eq!(me.body["patient"], serde_json::json!({}));

    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine;
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "azp",
        "preferred_username",
        "email",
    ] {
        assert!(claims.get(claim).is_some(), "{claim} missing from {claims}");
    }
    assert_eq!(claims["realm_access"]["roles"][0], "PATIENT");
    assert_eq!(claims["iss"], platform.config.issuer());
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((300..=900).contains(&lifetime), "{lifetime}");
}

#[tokio::test]
async fn refresh_rotates_and_reusing_a_spent_refresh_token_revokes_the_login() {
    let platform = platform().await;
    platform.register_patient("refresh@clinic.example").await;
    let first = platform
        .login("refresh@clinic.example", "patient passphrase")
        .await;
    let spent = first.refresh.clone().unwrap();

    let rotated = platform
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &spent)])
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let second_refresh = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    let second_access = rotated.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, spent, "a new refresh token each time");
    eventually(&platform, Service::Gateway, &second_access, StatusCode::OK).await;

    // The spent token again: someone else has it. The whole login ends.
    let reuse = platform
        .token_request(&[("grant_type", "refresh_token"), ("refresh_token", &spent)])
        .await;
    assert_eq!(reuse.status, StatusCode::BAD_REQUEST);
    assert_eq!(reuse.code(), "invalid_grant");
    assert_eq!(
        reuse.body["error"], "invalid_grant",
        "OAuth clients read `error`"
    );

    let successor = platform
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &second_refresh),
        ])
        .await;
    assert_eq!(
        successor.status,
        StatusCode::BAD_REQUEST,
        "the successor dies with the login"
    );
    eventually(
        &platform,
        Service::Identity,
        &second_access,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    eventually(
        &platform,
        Service::Gateway,
        &second_access,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    eventually(
        &platform,
        Service::Gateway,
        &first.access,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // Other logins of the same person are untouched.
    let other = platform
        .login("refresh@clinic.example", "patient passphrase")
        .await;
    eventually(&platform, Service::Gateway, &other.access, StatusCode::OK).await;
}

#[tokio::test]
async fn logout_ends_the_login() {
    let platform = platform().await;
    platform.register_patient("logout@clinic.example").await;
    let tokens = platform
        .login("logout@clinic.example", "patient passphrase")
        .await;
    let response = platform
        .client()
        .post(platform.url(Service::Gateway, "/api/auth/revoke"))
        .form(&[("token", tokens.refresh.as_deref().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let refresh = platform
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh.as_deref().unwrap()),
        ])
        .await;
    assert_eq!(refresh.status, StatusCode::BAD_REQUEST);
    eventually(
        &platform,
        Service::Gateway,
        &tokens.access,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn a_deactivated_users_token_is_refused_everywhere() {
    let platform = platform().await;
    let admin = platform.admin_token().await;
    let (patient, token) = platform.register_patient("leaving@clinic.example").await;
    let id = patient["id"].as_str().unwrap();

    let deleted = platform
        .call(
            Method::DELETE,
            &format!("/api/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    eventually(
        &platform,
        Service::Identity,
        &token,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    eventually(
        &platform,
        Service::Gateway,
        &token,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    let login = platform
        .token_request(&[
            ("grant_type", "password"),
            ("username", "leaving@clinic.example"),
            ("password", "patient passphrase"),
        ])
        .await;
    assert_eq!(login.status, StatusCode::BAD_REQUEST);

    let kept = platform
        .call(Method::GET, &format!("/api/users/{id}"), Some(&admin), None)
        .await;
    assert_eq!(kept.status, StatusCode::OK, "history keeps the id");
    assert_eq!(kept.body["status"], "DEACTIVATED");
}

#[tokio::test]
async fn more_than_five_failed_logins_in_fifteen_minutes_give_429_with_retry_after() {
    let platform = platform().await;
    platform.register_patient("guess@clinic.example").await;
    async fn attempt(platform: &TestPlatform, password: &str) -> polyclinic_testing::Reply {
        platform
            .token_request(&[
                ("grant_type", "password"),
                ("username", "guess@clinic.example"),
                ("password", password),
            ])
            .await
    }
    for _ in 0..5 {
        let wrong = attempt(&platform, "not the passphrase").await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
        assert_eq!(wrong.code(), "invalid_grant");
    }
    let throttled = attempt(&platform, "patient passphrase").await;
    assert_eq!(
        throttled.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert_eq!(throttled.code(), "too_many_login_attempts");
    let retry_after: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((800..=900).contains(&retry_after), "{retry_after}");

    // Another account is not affected.
    platform.register_patient("other@clinic.example").await;
}

#[tokio::test]
async fn an_unknown_account_and_a_wrong_password_look_the_same() {
    let platform = platform().await;
    platform.register_patient("known@clinic.example").await;
    let unknown = platform
        .token_request(&[
            ("grant_type", "password"),
            ("username", "nobody@clinic.example"),
            ("password", "whatever it is"),
        ])
        .await;
    let wrong = platform
        .token_request(&[
            ("grant_type", "password"),
            ("username", "known@clinic.example"),
            ("password", "whatever it is"),
        ])
        .await;
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(unknown.body["detail"], wrong.body["detail"]);
}

#[tokio::test]
async fn a_service_gets_a_token_with_client_credentials_and_a_wrong_secret_gets_401() {
    let platform = platform().await;
    let secret = platform.config.client_secret(Service::Notifications);
    let granted = platform
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "polyclinic-notifications"),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{:?}", granted.body);
    assert!(granted.body.get("refresh_token").is_none());
    let token = granted.body["access_token"].as_str().unwrap();

    // A service token reads users (notifications resolve recipients) but is nobody's "me".
    let admin_id = {
        let admin = platform.admin_token().await;
        platform
            .call(Method::GET, "/api/users/me", Some(&admin), None)
            .await
            .body["id"]
            .clone()
    };
    let read = platform
        .call_service(
            Service::Identity,
            Method::GET,
            &format!("/api/users/{}", admin_id.as_str().unwrap()),
            Some(token),
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["email"], ADMIN_EMAIL);
    let me = platform
        .call(Method::GET, "/api/users/me", Some(token), None)
        .await;
    assert_eq!(me.status, StatusCode::FORBIDDEN);

    let refused = platform
        .token_request(&[
            ("grant_type", "client_credentials"),
            ("client_id", "polyclinic-notifications"),
            ("client_secret", "guessed"),
        ])
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "invalid_client");
}

#[tokio::test]
async fn the_discovery_document_and_jwks_describe_the_builtin_issuer() {
    let platform = platform().await;
    let discovery = platform
        .call(
            Method::GET,
            "/api/auth/.well-known/openid-configuration",
            None,
            None,
        )
        .await;
    assert_eq!(discovery.status, StatusCode::OK);
    let issuer = platform.config.issuer();
    assert_eq!(discovery.body["issuer"], issuer.as_str());
    assert_eq!(discovery.body["jwks_uri"], format!("{issuer}/jwks"));
    let jwks = platform
        .call(Method::GET, "/api/auth/jwks", None, None)
        .await;
    let key = &jwks.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["alg"], "EdDSA");
    assert!(key.get("d").is_none(), "no private part is published");
}

#[tokio::test]
async fn the_first_admin_exists_once_however_often_the_service_starts() {
    let db = TestDb::create().await;
    for _ in 0..2 {
        let platform = TestPlatform::start_with(&[Service::Identity], |config, _| {
            config.database_url = db.url();
        })
        .await;
        platform.admin_token().await;
        platform.stop().await.unwrap();
    }
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    let admins: i64 =
        sqlx::query_scalar("select count(*) from identity.users where role = 'ADMIN'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(admins, 1);
    pool.close().await;
}

#[tokio::test]
async fn an_unsupported_grant_type_is_400_and_a_json_body_is_415() {
    let platform = platform().await;
    let reply = platform.token_request(&[("grant_type", "implicit")]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "unsupported_grant_type");
    let json = platform
        .call(
            Method::POST,
            "/api/auth/token",
            None,
            Some(serde_json::json!({"grant_type": "password"})),
        )
        .await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn production_refuses_to_start_without_an_admin_password_or_with_a_weak_one() {
    for password in [None, Some("admin123")] {
        let db = TestDb::create().await;
        let mut config = polyclinic_testing::Config {
            database_url: db.url(),
            environment: polyclinic_config::Environment::Production,
            ..polyclinic_testing::Config::default()
        };
        config.admin.password = password.map(str::to_owned);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stopped =
            polyclinic_identity::run(config, listener, polyclinic_http::CancellationToken::new())
                .await;
        let error = format!("{:#}", stopped.unwrap_err());
        assert!(error.contains("admin.password"), "{error}");
    }
}

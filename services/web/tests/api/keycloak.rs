//! Keycloak mode: signing in is the authorization code flow with PKCE. Keycloak is a fake
//! here that answers as Keycloak's authorization and token endpoints do (RFC 6749, RFC 7636);
//! behind the web app, a stand-in for the gateway answers `/api/users/me` for the tokens that
//! fake Keycloak issued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use polyclinic_testing::{Service, TestPlatform};
use reqwest::StatusCode;
use serde_json::json;

use crate::{client, session_cookie, web};

#[derive(Default)]
struct Realm {
    /// code -> (challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    issued: Vec<String>,
    exchanges: usize,
}

type Shared = Arc<Mutex<Realm>>;

async fn authorize(
    State(realm): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| q.get(name).cloned().unwrap_or_default();
    if param("response_type") != "code"
        || param("client_id") != "polyclinic-app"
        || param("code_challenge_method") != "S256"
        || param("code_challenge").len() != 43
    {
        return (AxumStatus::BAD_REQUEST, "invalid_request").into_response();
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let redirect = param("redirect_uri");
    realm
        .lock()
        .unwrap()
        .codes
        .insert(code.clone(), (param("code_challenge"), redirect.clone()));
    let location = format!("{redirect}?code={code}&state={}", param("state"));
    (AxumStatus::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn token(State(realm): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let param = |name: &str| form.get(name).cloned().unwrap_or_default();
    let mut realm = realm.lock().unwrap();
    let refused = || {
        (
            AxumStatus::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response()
    };
    match param("grant_type").as_str() {
        "authorization_code" => {
            let Some((challenge, redirect)) = realm.codes.remove(&param("code")) else {
                return refused();
            };
            let digest =
                ring::digest::digest(&ring::digest::SHA256, param("code_verifier").as_bytes());
            if URL_SAFE_NO_PAD.encode(digest.as_ref()) != challenge
                || redirect != param("redirect_uri")
                || param("client_id") != "polyclinic-app"
            {
                return refused();
            }
            realm.exchanges += 1;
        }
        "refresh_token" if realm.issued.iter().any(|t| *t == param("refresh_token")) => {}
        _ => return refused(),
    }
    let n = realm.issued.len();
    let (access, refresh) = (format!("kc-access-{n}"), format!("kc-refresh-{n}"));
    realm.issued.push(access.clone());
    realm.issued.push(refresh.clone());
    Json(json!({"access_token": access, "expires_in": 300, "refresh_token": refresh, "token_type": "Bearer"}))
        .into_response()
}

async fn me(State(realm): State<Shared>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if !realm.lock().unwrap().issued.contains(&bearer) {
        return (
            AxumStatus::UNAUTHORIZED,
            Json(json!({"code": "invalid_token"})),
        )
            .into_response();
    }
    Json(json!({
        "id": "0192c0de-0000-7000-8000-000000000001", "email": "kc.patient@example.test",
        "first_name": "Kay", "last_name": "Cloak", "role": "PATIENT"
    }))
    .into_response()
}

#[tokio::test]
async fn in_keycloak_mode_sign_in_is_the_authorization_code_flow_with_pkce() {
    let realm: Shared = Arc::default();
    let fake = Router::new()
        .route(
            "/realms/polyclinic/protocol/openid-connect/auth",
            get(authorize),
        )
        .route(
            "/realms/polyclinic/protocol/openid-connect/token",
            post(token),
        )
        .route(
            "/realms/polyclinic/protocol/openid-connect/revoke",
            post(|| async { "" }),
        )
        .route("/api/users/me", get(me))
        .with_state(realm.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fake_url = format!("http://{}", listener.local_addr().unwrap());
    let keycloak_url = fake_url.clone();
    tokio::spawn(async move { axum::serve(listener, fake).await });

    let platform = TestPlatform::start_with(&[Service::Web], |config, _| {
        config.identity_provider = polyclinic_config::IdentityProvider::Keycloak;
        config.keycloak.url = keycloak_url.clone();
        config.gateway.url = Some(keycloak_url);
        config.public_web_url = config.web.url.clone().unwrap();
    })
    .await;
    let http = client();

    // The sign-in page sends the browser to Keycloak with a state and an S256 challenge.
    let start = http
        .get(web(&platform, "/login?next=/record"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let visitor = session_cookie(&start).unwrap();
    let authorize_url = start.headers()["location"].to_str().unwrap().to_owned();
    let parsed = reqwest::Url::parse(&authorize_url).unwrap();
    let query: HashMap<_, _> = parsed.query_pairs().into_owned().collect();
    assert_eq!(query["redirect_uri"], web(&platform, "/auth/callback"));
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(
        !authorize_url.contains("code_verifier"),
        "the verifier never leaves the server"
    );

    // Keycloak sends the browser back with a code; a forged state is refused.
    let back = http.get(&authorize_url).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let forged = callback.replace(&format!("state={}", query["state"]), "state=forged");
    let refused = http
        .get(&forged)
        .header("cookie", &visitor)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        realm.lock().unwrap().exchanges,
        0,
        "no code was exchanged for a forged state"
    );

    // A fresh attempt completes: the code and the verifier become tokens on the server.
    let start = http
        .get(web(&platform, "/login?next=/record"))
        .send()
        .await
        .unwrap();
    let visitor = session_cookie(&start).unwrap();
    let back = http
        .get(start.headers()["location"].to_str().unwrap())
        .send()
        .await
        .unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let signed = http
        .get(&callback)
        .header("cookie", &visitor)
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed.status(),
        StatusCode::SEE_OTHER,
        "{}",
        signed.text().await.unwrap()
    );
    assert_eq!(signed.headers()["location"], "/record");
    let cookie = session_cookie(&signed).expect("a new session");
    assert_ne!(cookie, visitor);
    assert_eq!(realm.lock().unwrap().exchanges, 1);

    let account = http
        .get(web(&platform, "/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), StatusCode::OK);
    let html = account.text().await.unwrap();
    assert!(html.contains("Kay Cloak"), "signed in as Keycloak's user");
    assert!(
        html.contains(&format!("{fake_url}/realms/polyclinic/account")),
        "passwords are changed in Keycloak's account console"
    );
    assert!(!html.contains("kc-access"), "no token reaches the page");

    // Pages may send forms on to Keycloak (signing out there), nowhere else.
    let csp = account_csp(&platform, &cookie).await;
    assert!(
        csp.contains(&format!("form-action 'self' {fake_url};")),
        "{csp}"
    );

    // Signing out ends the Keycloak session too, then comes back to the sign-in page.
    let page = http
        .get(web(&platform, "/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let csrf = crate::csrf_of(&page.text().await.unwrap());
    let out = http
        .post(web(&platform, "/logout"))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    let location = out.headers()["location"].to_str().unwrap().to_owned();
    let end_session = reqwest::Url::parse(&location).unwrap();
    assert_eq!(
        end_session.path(),
        "/realms/polyclinic/protocol/openid-connect/logout"
    );
    let query: HashMap<_, _> = end_session.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], "polyclinic-app");
    assert_eq!(query["post_logout_redirect_uri"], web(&platform, "/login"));

    // The same code cannot be used twice.
    let replay = http
        .get(&callback)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
}

async fn account_csp(platform: &TestPlatform, cookie: &str) -> String {
    let response = client()
        .get(web(platform, "/account"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned()
}

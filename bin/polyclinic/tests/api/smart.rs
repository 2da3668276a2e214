//! SMART on FHIR through the gateway: admins register apps, a patient launches one with an
//! independent OAuth client library (Authlib, in `tests/smart/launch.py`) through the real
//! sign-in page, and the app's tokens are held to their scopes and to the patient's own data.

use std::path::Path;

use polyclinic_testing::{Service, TestPlatform};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::fhir::chart;

const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

async fn register(platform: &TestPlatform, admin: &str, client_id: &str, scopes: &[&str]) {
    let reply = platform
        .call(
            Method::POST,
            "/api/smart/apps",
            Some(admin),
            Some(json!({
                "client_id": client_id,
                "name": format!("{client_id} app"),
                "redirect_uris": [REDIRECT_URI],
                "confidential": false,
                "scopes": scopes,
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert!(
        reply.body["client_secret"].is_null(),
        "a public app has no secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_launches_a_smart_app_that_reads_only_what_its_scopes_and_the_patient_allow() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let clinic = platform.clinic().await;
    let chart = chart(&platform, &clinic).await;
    let (other, _) = platform.register_patient("smart-other@example.test").await;
    register(
        &platform,
        &clinic.admin,
        "health-diary",
        &[
            "openid",
            "fhirUser",
            "launch/patient",
            "offline_access",
            "patient/*.rs",
        ],
    )
    .await;
    register(
        &platform,
        &clinic.admin,
        "visit-reminders",
        &["launch/patient", "patient/Appointment.rs"],
    )
    .await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smart/launch.py");
    let mut python = std::process::Command::new("python3");
    python
        .arg(&script)
        .env("FHIR_BASE", platform.url(Service::Gateway, "/fhir"))
        .env("CLIENT_ID", "health-diary")
        .env("NARROW_CLIENT_ID", "visit-reminders")
        .env("REDIRECT_URI", REDIRECT_URI)
        .env("PATIENT_LOGIN", "fhir-ada@example.test")
        .env("PATIENT_PASSWORD", "patient passphrase")
        .env("PATIENT_ID", &chart.patient_id)
        .env("PATIENT_TOKEN", &chart.patient)
        .env("OTHER_PATIENT_ID", other["id"].as_str().unwrap())
        .env("APPOINTMENT_ID", &chart.visit_id)
        .env("PRESCRIPTION_ID", &chart.prescription_id);
    let output = tokio::task::spawn_blocking(move || python.output())
        .await
        .unwrap()
        .expect("python3 runs (the test set-up installs Authlib in its virtual environment)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SMART launch failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{stdout}");

    // What the patient revoked is gone from their list; the other grant stays.
    let grants = platform
        .call(
            Method::GET,
            "/api/smart/grants/mine",
            Some(&chart.patient),
            None,
        )
        .await;
    let apps: Vec<&str> = grants
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|grant| grant["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["health-diary"]);

    // An admin disables the app: its grants are revoked, and it can sign no one in.
    let disabled = platform
        .call(
            Method::POST,
            "/api/smart/apps/health-diary/disable",
            Some(&clinic.admin),
            None,
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{:?}", disabled.body);
    assert_eq!(disabled.body["revoked_grants"], 1);
    let page = platform
        .call(
            Method::GET,
            "/api/auth/authorize?response_type=code&client_id=health-diary&code_challenge=x&code_challenge_method=S256",
            None,
            None,
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::BAD_REQUEST,
        "a disabled app's request is not redirected"
    );
    let grants = platform
        .call(
            Method::GET,
            "/api/smart/grants/mine",
            Some(&chart.patient),
            None,
        )
        .await;
    assert!(grants.body.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_app_is_registered_only_with_safe_redirects_known_scopes_and_a_free_client_id() {
    let platform = TestPlatform::start(&[Service::Identity]).await;
    let admin = platform.admin_token().await;
    let app = |client_id: &str, redirect: &str, scopes: serde_json::Value, confidential: bool| {
        json!({"client_id": client_id, "name": "An app", "redirect_uris": [redirect],
            "confidential": confidential, "scopes": scopes})
    };
    for (body, status) in [
        (
            app(
                "ok-app",
                "http://app.example/cb",
                json!(["patient/*.rs"]),
                false,
            ),
            422,
        ),
        (
            app(
                "ok-app",
                "https://app.example/cb#x",
                json!(["patient/*.rs"]),
                false,
            ),
            422,
        ),
        (
            app(
                "ok-app",
                "https://app.example/cb",
                json!(["patient/Claim.rs"]),
                false,
            ),
            422,
        ),
        (
            app("ok-app", "https://app.example/cb", json!([]), false),
            422,
        ),
        (
            app(
                "polyclinic-web",
                "https://app.example/cb",
                json!(["openid"]),
                false,
            ),
            422,
        ),
        (
            app("a", "https://app.example/cb", json!(["openid"]), false),
            422,
        ),
    ] {
        let reply = platform
            .call(
                Method::POST,
                "/api/smart/apps",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {:?}", reply.body);
    }
    let created = platform
        .call(
            Method::POST,
            "/api/smart/apps",
            Some(&admin),
            Some(app(
                "lab-portal",
                "https://lab.example/cb",
                json!(["user/*.rs"]),
                true,
            )),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert!(
        created.body["client_secret"]
            .as_str()
            .is_some_and(|secret| secret.len() >= 40),
        "a confidential app gets its secret once"
    );
    let listed = platform
        .call(
            Method::GET,
            "/api/smart/apps/lab-portal",
            Some(&admin),
            None,
        )
        .await;
    assert!(
        listed.body.get("client_secret").is_none() && listed.body.get("secret_hash").is_none(),
        "{:?}",
        listed.body
    );
    let again = platform
        .call(
            Method::POST,
            "/api/smart/apps",
            Some(&admin),
            Some(app(
                "lab-portal",
                "https://lab.example/cb",
                json!(["openid"]),
                false,
            )),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "client_id_taken");
}

#[tokio::test]
async fn a_confidential_app_exchanges_its_code_only_with_its_secret() {
    use base64::Engine;
    let platform = TestPlatform::start(&[Service::Identity, Service::Gateway]).await;
    let admin = platform.admin_token().await;
    platform
        .register_patient("smart-confidential@example.test")
        .await;
    let created = platform
        .call(
            Method::POST,
            "/api/smart/apps",
            Some(&admin),
            Some(json!({"client_id": "insurer", "name": "Insurer", "redirect_uris": ["https://insurer.example/cb"],
                "confidential": true, "scopes": ["launch/patient", "offline_access", "patient/Appointment.rs"]})),
        )
        .await;
    let secret = created.body["client_secret"].as_str().unwrap().to_owned();
    let verifier = "v".repeat(50);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let code = || async {
        let allowed = client
            .post(platform.url(Service::Identity, "/api/auth/authorize"))
            .form(&[
                ("response_type", "code"),
                ("client_id", "insurer"),
                (
                    "scope",
                    "launch/patient offline_access patient/Appointment.rs",
                ),
                ("aud", &platform.url(Service::Gateway, "/fhir")),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("username", "smart-confidential@example.test"),
                ("password", "patient passphrase"),
                ("decision", "allow"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
        let location =
            reqwest::Url::parse(allowed.headers()["location"].to_str().unwrap()).unwrap();
        assert!(
            location.as_str().starts_with("https://insurer.example/cb?"),
            "the one registered URI"
        );
        location
            .query_pairs()
            .find(|(name, _)| name == "code")
            .unwrap()
            .1
            .into_owned()
    };
    let exchange = |code: String, secret: Option<String>| {
        let client = client.clone();
        let url = platform.url(Service::Identity, "/api/auth/token");
        let verifier = verifier.clone();
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", "https://insurer.example/cb".to_owned()),
            ];
            let mut request = client.post(url);
            match secret {
                Some(secret) => request = request.basic_auth("insurer", Some(secret)),
                None => form.push(("client_id", "insurer".to_owned())),
            }
            let response = request.form(&form).send().await.unwrap();
            (
                response.status(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = exchange(code().await, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    let (status, body) = exchange(code().await, Some("not the secret".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = exchange(code().await, Some(secret.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["scope"],
        "launch/patient offline_access patient/Appointment.rs"
    );
    assert!(body["patient"].is_string(), "{body}");

    // Its refresh token is the app's alone: without the secret it is refused.
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh_with = |secret: Option<String>| {
        let mut request = client.post(platform.url(Service::Identity, "/api/auth/token"));
        if let Some(secret) = secret {
            request = request.basic_auth("insurer", Some(secret));
        }
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.clone()),
        ];
        async move { request.form(&form).send().await.unwrap().status() }
    };
    assert_eq!(refresh_with(None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh_with(Some("not the secret".into())).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(refresh_with(Some(secret)).await, StatusCode::OK);
}

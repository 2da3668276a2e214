//! The session cookie and the CSRF guard, seen over plain HTTP.

use polyclinic_testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Service, TestPlatform};
use reqwest::StatusCode;

use crate::{client, csrf_of, session_cookie, web};

async fn platform() -> TestPlatform {
    TestPlatform::start(&[Service::Identity, Service::Gateway, Service::Web]).await
}

async fn sign_in(platform: &TestPlatform) -> String {
    crate::sign_in(platform, ADMIN_EMAIL, ADMIN_PASSWORD).await
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_and_holds_no_token() {
    let platform = platform().await;
    let response = client().get(web(&platform, "/login")).send().await.unwrap();
    let set_cookie = response.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.starts_with("polyclinic_session="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("; HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("; SameSite=Lax"), "{set_cookie}");
    assert!(set_cookie.contains("; Path=/"), "{set_cookie}");
    assert!(
        !set_cookie.contains("Secure"),
        "plain HTTP cannot carry a Secure cookie: {set_cookie}"
    );
    let value = set_cookie
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap();
    assert_eq!(value.len(), 43, "an opaque 256-bit id, not a token");
    assert!(!value.contains('.'), "not a JWT");
    let headers = response.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn over_tls_the_cookie_is_secure_and_host_prefixed() {
    let platform = TestPlatform::start_with(
        &[Service::Identity, Service::Gateway, Service::Web],
        |config, _| {
            config.public_web_url = "https://clinic.example".into();
        },
    )
    .await;
    let response = client().get(web(&platform, "/login")).send().await.unwrap();
    let set_cookie = response.headers()[reqwest::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.starts_with("__Host-polyclinic_session="),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    assert!(set_cookie.contains("; HttpOnly"), "{set_cookie}");
    assert!(response.headers().contains_key("strict-transport-security"));
}

#[tokio::test]
async fn a_form_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let platform = platform().await;
    let cookie = sign_in(&platform).await;
    let http = client();
    let page = http
        .get(web(&platform, "/admin/departments"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());

    for token in [None, Some("not-the-token")] {
        let mut form = vec![("name", "Forged"), ("description", "")];
        if let Some(token) = token {
            form.push(("_csrf", token));
        }
        let refused = http
            .post(web(&platform, "/admin/departments"))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "token {token:?}");
        assert!(
            refused
                .text()
                .await
                .unwrap()
                .contains("This form has expired")
        );
    }
    let admin = platform.admin_token().await;
    let departments = platform
        .call(reqwest::Method::GET, "/api/departments", Some(&admin), None)
        .await;
    assert_eq!(
        departments.body,
        serde_json::json!([]),
        "no department was created"
    );

    // The same post with the token goes through.
    let accepted = http
        .post(web(&platform, "/admin/departments"))
        .header("cookie", &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("name", "Cardiology"),
            ("description", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    let departments = platform
        .call(reqwest::Method::GET, "/api/departments", Some(&admin), None)
        .await;
    assert_eq!(departments.body[0]["name"], "Cardiology");
}

#[tokio::test]
async fn a_post_from_a_visitor_without_a_session_is_refused() {
    let platform = platform().await;
    let refused = client()
        .post(web(&platform, "/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        session_cookie(&refused).is_some(),
        "the visitor gets a session for the next try"
    );
}

#[tokio::test]
async fn signing_out_ends_the_login_on_the_server() {
    let platform = platform().await;
    let cookie = sign_in(&platform).await;
    let http = client();
    let page = http
        .get(web(&platform, "/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());
    let out = http
        .post(web(&platform, "/logout"))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = http
        .get(web(&platform, "/account"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        StatusCode::SEE_OTHER,
        "the old cookie is worth nothing"
    );
    assert!(
        after.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/login")
    );
}

#[tokio::test]
async fn a_path_that_is_not_an_id_is_a_404_page_not_an_api_call() {
    let platform = platform().await;
    let cookie = sign_in(&platform).await;
    let response = client()
        .get(web(&platform, "/appointments/..%2F..%2Fusers"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("<title>Not found · Polyclinic</title>")
    );
}

#[tokio::test]
async fn a_sign_in_only_goes_back_to_a_page_of_this_site() {
    let platform = platform().await;
    let http = client();
    let page = http
        .get(web(&platform, "/login?next=//evil.example"))
        .send()
        .await
        .unwrap();
    let anonymous = session_cookie(&page).unwrap();
    let html = page.text().await.unwrap();
    assert!(!html.contains("evil.example"), "a foreign next is dropped");
    let signed = http
        .post(web(&platform, "/login"))
        .header("cookie", &anonymous)
        .form(&[
            ("_csrf", csrf_of(&html).as_str()),
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
            ("next", "https://evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.headers()["location"], "/admin/queue");
}

#[tokio::test]
async fn a_session_whose_login_ended_is_replaced_so_the_sign_in_form_shows() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let (patient, _) = platform
        .register_patient("ended.patient@example.test")
        .await;
    let cookie = crate::sign_in(
        &platform,
        "ended.patient@example.test",
        "patient passphrase",
    )
    .await;
    let admin = platform.admin_token().await;
    let id = patient["id"].as_str().unwrap();
    let deactivated = platform
        .call(
            reqwest::Method::DELETE,
            &format!("/api/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deactivated.status, StatusCode::NO_CONTENT);

    // Once every service has heard of it, a page that asks the API sends the person to sign
    // in, with a fresh session; the sign-in form then shows instead of bouncing back.
    let (location, fresh) =
        polyclinic_testing::eventually("the ended login to be noticed", || async {
            let response = client()
                .get(web(&platform, "/appointments"))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            let location = response
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_owned())?;
            location
                .starts_with("/login")
                .then(|| (location, session_cookie(&response)))
        })
        .await;
    assert_eq!(location, "/login?next=%2Fappointments");
    let fresh = fresh.expect("the ended session is replaced");
    assert_ne!(fresh, cookie);
    let login = client()
        .get(web(&platform, &location))
        .header("cookie", &fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        StatusCode::OK,
        "the sign-in form, not a redirect loop"
    );
    assert!(
        login
            .text()
            .await
            .unwrap()
            .contains("Your sign-in has ended")
    );
}

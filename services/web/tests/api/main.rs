//! The web app against the whole platform: HTTP-level checks of its session and CSRF
//! guard, and the browser flow in Debian's Chromium.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that cannot set up should fail loudly"
)]

mod abuse;
mod actions;
mod browser;
mod guard;
mod keycloak;
mod pages;
mod scheduling;
mod sessions;

use polyclinic_testing::{Service, TestPlatform};
use reqwest::StatusCode;

/// A client that keeps no cookies and follows no redirects: each test sees exactly what the
/// web app answered.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn web(platform: &TestPlatform, path: &str) -> String {
    platform.url(Service::Web, path)
}

/// The session cookie a response set, as `name=value`.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.contains("polyclinic_session="))
        .and_then(|value| value.split(';').next())
        .map(str::to_owned)
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).expect("a form with a CSRF token") + marker.len();
    html[start..]
        .split('"')
        .next()
        .expect("a closing quote")
        .to_owned()
}

/// Signs in through the login form; returns the new session's cookie.
pub async fn sign_in(platform: &TestPlatform, email: &str, password: &str) -> String {
    let http = client();
    let page = http.get(web(platform, "/login")).send().await.unwrap();
    let anonymous = session_cookie(&page).expect("a session for the visitor");
    let csrf = csrf_of(&page.text().await.unwrap());
    let signed = http
        .post(web(platform, "/login"))
        .header("cookie", &anonymous)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed.status(),
        StatusCode::SEE_OTHER,
        "signing in as {email}"
    );
    let cookie = session_cookie(&signed).expect("a new session at sign-in");
    assert_ne!(cookie, anonymous, "signing in changes the session id");
    cookie
}

/// `GET path` with the session cookie: the status and the page.
pub async fn page(platform: &TestPlatform, cookie: &str, path: &str) -> (StatusCode, String) {
    let response = client()
        .get(web(platform, path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (response.status(), response.text().await.unwrap())
}

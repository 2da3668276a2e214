//! The web app against the whole platform: HTTP-level checks of its session and CSRF
//! guard, and the browser flow in Debian's Chromium.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that cannot set up should fail loudly"
)]

mod browser;
mod guard;
mod keycloak;

use polyclinic_testing::{Service, TestPlatform};

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

//! Abuse of the web app over HTTP: one visitor spending everyone's anonymous budget, and a
//! password that the sign-in form would have changed.

use polyclinic_testing::{Service, TestPlatform};
use reqwest::StatusCode;

use crate::{client, csrf_of, session_cookie, web};

/// Posts a form of the web app's as the visitor at `visitor`, starting a session first.
async fn post_form(
    platform: &TestPlatform,
    visitor: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let http = client();
    let page = http
        .get(web(platform, path))
        .header("x-forwarded-for", visitor)
        .send()
        .await
        .unwrap();
    let cookie = session_cookie(&page).expect("a session for the visitor");
    let csrf = csrf_of(&page.text().await.unwrap());
    let mut form = vec![("_csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    http.post(web(platform, path))
        .header("cookie", cookie)
        .header("x-forwarded-for", visitor)
        .form(&form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn one_busy_anonymous_visitor_does_not_make_sign_in_fail_for_everyone_else() {
    let platform = TestPlatform::start_with(
        &[
            Service::Gateway,
            Service::Identity,
            Service::Appointments,
            Service::Web,
        ],
        |config, _| config.rate_limit.anonymous_per_minute = 10,
    )
    .await;
    platform.register_patient("visitor@web.example").await;

    // One visitor reloads the public directory until the gateway limits them.
    let mut limited = false;
    for _ in 0..30 {
        let page = client()
            .get(web(&platform, "/doctors"))
            .header("x-forwarded-for", "203.0.113.50")
            .send()
            .await
            .unwrap();
        if page.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = true;
            break;
        }
    }
    assert!(limited, "the busy visitor is limited");

    // Another visitor signs in through the same web app.
    let signed_in = post_form(
        &platform,
        "198.51.100.60",
        "/login",
        &[
            ("email", "visitor@web.example"),
            ("password", "patient passphrase"),
            ("next", ""),
        ],
    )
    .await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "signed in");
}

#[tokio::test]
async fn a_password_with_a_leading_space_is_used_as_typed_at_sign_up_and_sign_in() {
    let platform = TestPlatform::start(&Service::ALL).await;
    let password = "  spaced out passphrase ";
    let registered = post_form(
        &platform,
        "198.51.100.61",
        "/register",
        &[
            ("first_name", "Space"),
            ("last_name", "Cadet"),
            ("email", "spaced@web.example"),
            ("password", password),
        ],
    )
    .await;
    assert_eq!(registered.status(), StatusCode::SEE_OTHER);
    let signed_in = post_form(
        &platform,
        "198.51.100.61",
        "/login",
        &[
            ("email", "spaced@web.example"),
            ("password", password),
            ("next", ""),
        ],
    )
    .await;
    assert_eq!(
        signed_in.status(),
        StatusCode::SEE_OTHER,
        "the password as typed"
    );
    let trimmed = post_form(
        &platform,
        "198.51.100.61",
        "/login",
        &[
            ("email", "spaced@web.example"),
            ("password", password.trim()),
            ("next", ""),
        ],
    )
    .await;
    assert_eq!(
        trimmed.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "without its spaces it is another password"
    );
}

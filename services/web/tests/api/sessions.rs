//! Sessions in PostgreSQL: they outlive a restart of the web app, every instance serves every
//! session (signing out on one ends it on all), and the tokens they hold are sealed at rest.

use std::time::{Duration, Instant};

use polyclinic_http::CancellationToken;
use polyclinic_testing::{ADMIN_EMAIL, ADMIN_PASSWORD, Service, TestPlatform};
use reqwest::StatusCode;
use tokio::task::JoinHandle;

use crate::{client, csrf_of, session_cookie};

/// Two keys: the first seals, both open.
const KEYS: [&str; 2] = [
    "bmV3ZXN0IGtleSBvZiBleGFjdGx5IDMyIGJ5dGVzISE=",
    "b2xkZXIga2V5IG9mIGV4YWN0bHkgMzIgYnl0ZXMhISE=",
];

/// Every service but the web app, whose instances each test starts and stops itself.
async fn platform(access_token_ttl_secs: u32) -> TestPlatform {
    platform_purging_every(access_token_ttl_secs, 300).await
}

async fn platform_purging_every(access_token_ttl_secs: u32, purge_secs: u32) -> TestPlatform {
    let services: Vec<Service> = Service::ALL
        .into_iter()
        .filter(|service| *service != Service::Web)
        .collect();
    TestPlatform::start_with(&services, |config, _| {
        config.sessions.keys = KEYS.iter().map(|key| (*key).to_owned()).collect();
        config.auth.access_token_ttl_secs = access_token_ttl_secs;
        config.sessions.purge_interval_secs = purge_secs;
    })
    .await
}

/// One web app process, as `polyclinic web` runs it.
struct WebInstance {
    base: String,
    shutdown: CancellationToken,
    running: JoinHandle<anyhow::Result<()>>,
}

impl WebInstance {
    async fn start(platform: &TestPlatform) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(polyclinic_web::run(
            platform.config.clone(),
            listener,
            shutdown.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client().get(format!("{base}/health/ready")).send().await;
            if ready.is_ok_and(|response| response.status() == StatusCode::OK) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the web app did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            base,
            shutdown,
            running,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.running.await.unwrap().unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn page(&self, cookie: &str, path: &str) -> (StatusCode, String) {
        let response = client()
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn sign_in(&self) -> String {
        let http = client();
        let page = http.get(self.url("/login")).send().await.unwrap();
        let anonymous = session_cookie(&page).expect("a session for the visitor");
        let csrf = csrf_of(&page.text().await.unwrap());
        let signed = http
            .post(self.url("/login"))
            .header("cookie", &anonymous)
            .form(&[
                ("_csrf", csrf.as_str()),
                ("email", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("next", ""),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed.status(), StatusCode::SEE_OTHER, "signing in");
        session_cookie(&signed).expect("a new session at sign-in")
    }
}

/// A signed-in page: the admin's approval queue, which the web app fills through the
/// gateway with the session's access token.
async fn signed_in_page(instance: &WebInstance, cookie: &str) {
    let (status, html) = instance.page(cookie, "/admin/queue").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("Sign out"), "signed in: {html}");
}

#[tokio::test]
async fn a_signed_in_person_carries_on_after_the_web_app_restarts() {
    let platform = platform(600).await;
    let first = WebInstance::start(&platform).await;
    let cookie = first.sign_in().await;
    signed_in_page(&first, &cookie).await;
    let (_, account) = first.page(&cookie, "/account").await;
    let csrf = csrf_of(&account);
    first.stop().await;

    let restarted = WebInstance::start(&platform).await;
    signed_in_page(&restarted, &cookie).await;
    // The same session, CSRF token and all: a form of the page before the restart is taken.
    let (_, account) = restarted.page(&cookie, "/account").await;
    assert_eq!(csrf_of(&account), csrf);

    // The tokens are sealed at rest: the row holds no token, no refresh token, no email.
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let rows: Vec<Vec<u8>> = sqlx::query_scalar("select data from web.session")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!rows.is_empty());
    let value = cookie.split_once('=').unwrap().1;
    let ids: Vec<String> = sqlx::query_scalar("select id from web.session")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(
        ids.iter().all(|id| id != value),
        "rows are keyed by a hash of the cookie, never by the cookie"
    );
    for row in &rows {
        let text = String::from_utf8_lossy(row);
        assert!(!text.contains("eyJ"), "no JWT in the clear: {text}");
    }
    pool.close().await;
    restarted.stop().await;
}

#[tokio::test]
async fn two_instances_serve_one_session_in_turn_and_at_once_and_signing_out_on_one_ends_it_on_both()
 {
    // An access token that is always about to expire: every request refreshes it, so the
    // refresh token rotates on every request, and a refresh token spent twice (by two
    // instances at once) would revoke the login.
    let platform = platform(5).await;
    let (a, b) = (
        WebInstance::start(&platform).await,
        WebInstance::start(&platform).await,
    );
    let cookie = a.sign_in().await;
    for turn in 0..3 {
        signed_in_page(if turn % 2 == 0 { &b } else { &a }, &cookie).await;
        signed_in_page(if turn % 2 == 0 { &a } else { &b }, &cookie).await;
    }
    tokio::join!(
        async {
            for _ in 0..4 {
                signed_in_page(&a, &cookie).await;
            }
        },
        async {
            for _ in 0..4 {
                signed_in_page(&b, &cookie).await;
            }
        }
    );

    let (_, account) = b.page(&cookie, "/account").await;
    let csrf = csrf_of(&account);
    let out = client()
        .post(b.url("/logout"))
        .header("cookie", &cookie)
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    for instance in [&a, &b] {
        let (status, _) = instance.page(&cookie, "/account").await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "signed out on every instance"
        );
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_session_past_its_expiry_is_not_served_and_the_purge_of_several_instances_deletes_it() {
    let platform = platform_purging_every(600, 1).await;
    let (a, b) = (
        WebInstance::start(&platform).await,
        WebInstance::start(&platform).await,
    );
    let cookie = a.sign_in().await;
    signed_in_page(&b, &cookie).await;
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    // As if its idle (or absolute) limit had passed.
    sqlx::query("update web.session set expiry_date = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    for instance in [&a, &b] {
        let (status, _) = instance.page(&cookie, "/account").await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "an ended session is not served"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let expired: i64 =
            sqlx::query_scalar("select count(*) from web.session where expiry_date < now()")
                .fetch_one(&pool)
                .await
                .unwrap();
        if expired == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{expired} expired sessions were not purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let live: i64 = sqlx::query_scalar("select count(*) from web.session")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(live > 0, "the visitors' new sessions are kept");
    pool.close().await;
    a.stop().await;
    b.stop().await;
}

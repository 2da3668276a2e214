//! The web app's pages under load, beside the API calls they are made of, in one run: a page
//! that only renders (`/account`: the session and a template), the doctor directory's API
//! call through the gateway, and the directory page, which makes that call and renders it.
//! Signed in as the admin through the sign-in form, as a browser would.

use anyhow::{Context, bail};
use serde_json::json;

use crate::{RequestFn, login, run_requests, table};

pub struct Options {
    pub gateway: String,
    pub web: String,
    pub email: String,
    pub password: String,
    pub concurrency: usize,
    pub seconds: u64,
}

/// A department with 20 doctors, so the directory page has something to show.
async fn set_up(client: &reqwest::Client, options: &Options) -> anyhow::Result<()> {
    let admin = login(client, &options.gateway, &options.email, &options.password).await?;
    let department: serde_json::Value = client
        .post(format!("{}/api/departments", options.gateway))
        .bearer_auth(&admin)
        .json(&json!({ "name": format!("Bench {}", uuid::Uuid::new_v4().simple()) }))
        .send()
        .await?
        .json()
        .await?;
    let department_id = department["id"].as_str().context("a department id")?;
    for n in 0..20 {
        let created = client
            .post(format!("{}/api/users/staff", options.gateway))
            .bearer_auth(&admin)
            .json(&json!({
                "role": "DOCTOR", "first_name": "Bench", "last_name": format!("Doctor {n}"),
                "email": format!("bench-doctor-{n}-{}@clinic.example", uuid::Uuid::new_v4().simple()),
                "password": "bench doctor passphrase", "department_id": department_id,
                "specialization": "General practice", "years_of_experience": 5 + n,
                "consultation_fee": { "amount": 5000 + 100 * n, "currency": "EUR" },
            }))
            .send()
            .await?;
        if !created.status().is_success() {
            bail!("creating a doctor: {}", created.text().await?);
        }
    }
    Ok(())
}

/// Signs in through the web app's form; returns the session cookie.
async fn sign_in(client: &reqwest::Client, options: &Options) -> anyhow::Result<String> {
    let cookie_of = |response: &reqwest::Response| {
        response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find_map(|value| value.split(';').next().map(str::to_owned))
    };
    let page = client.get(format!("{}/login", options.web)).send().await?;
    let visitor = cookie_of(&page).context("a visitor's session")?;
    let html = page.text().await?;
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker).context("the login form's CSRF token")? + marker.len();
    let csrf = html[start..].split('"').next().unwrap_or_default();
    let signed = client
        .post(format!("{}/login", options.web))
        .header("cookie", visitor)
        .form(&[
            ("_csrf", csrf),
            ("email", &options.email),
            ("password", &options.password),
        ])
        .send()
        .await?;
    if signed.status() != reqwest::StatusCode::SEE_OTHER {
        bail!("signing in through the web app: {}", signed.status());
    }
    cookie_of(&signed).context("a signed-in session")
}

pub async fn measure(options: &Options) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    set_up(&client, options).await?;
    let cookie = sign_in(&client, options).await?;
    let window = std::time::Duration::from_secs(options.seconds);
    let page = |path: &str| -> RequestFn {
        let (client, url, cookie) = (
            client.clone(),
            format!("{}{path}", options.web),
            cookie.clone(),
        );
        std::sync::Arc::new(move |_, _| client.get(&url).header("cookie", &cookie))
    };
    let api: RequestFn = {
        let (client, url) = (client.clone(), format!("{}/api/doctors", options.gateway));
        std::sync::Arc::new(move |_, _| client.get(&url))
    };
    let rows = [
        run_requests(
            "page that only renders: /account",
            options.concurrency,
            window,
            page("/account"),
        )
        .await,
        run_requests(
            "its API call: GET /api/doctors via the gateway",
            options.concurrency,
            window,
            api.clone(),
        )
        .await,
        run_requests(
            "page with that call: /doctors",
            options.concurrency,
            window,
            page("/doctors"),
        )
        .await,
    ];
    println!("{}", table(&rows));
    println!(
        "\nconcurrency {}, {} s per target, signed in as the admin through the form, 20 doctors listed; \
         /doctors page throughput is {:.0}% of its API call's",
        options.concurrency,
        options.seconds,
        100.0 * rows[2].per_second() / rows[1].per_second()
    );
    Ok(())
}

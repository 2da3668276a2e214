//! The FHIR API's two heaviest reads beside their REST equivalents, in one run, through the
//! gateway: a `Slot` search over 31 days for one practitioner (the calendar laid over the
//! bookings, as the REST availability over the same 31 days), and a 50-entry `Appointment`
//! search (as the REST list of 50).

use anyhow::{Context, bail};
use chrono::{Days, Utc};
use serde_json::{Value, json};

use crate::{login, run, table};

pub struct Options {
    pub gateway: String,
    pub email: String,
    pub password: String,
    pub concurrency: usize,
    pub seconds: u64,
}

async fn ok(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    if !response.status().is_success() {
        bail!("{what}: {} {}", response.status(), response.text().await?);
    }
    Ok(response.json().await?)
}

/// A doctor who works every hour of every day, and 60 appointments of 20 patients with them.
async fn set_up(
    client: &reqwest::Client,
    options: &Options,
    admin: &str,
) -> anyhow::Result<String> {
    let gateway = &options.gateway;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let department = ok(
        client
            .post(format!("{gateway}/api/departments"))
            .bearer_auth(admin)
            .json(&json!({ "name": format!("Bench FHIR {suffix}") }))
            .send()
            .await?,
        "a department",
    )
    .await?;
    let doctor = ok(
        client
            .post(format!("{gateway}/api/users/staff"))
            .bearer_auth(admin)
            .json(&json!({
                "role": "DOCTOR", "first_name": "Bench", "last_name": "Calendar",
                "email": format!("bench-fhir-{suffix}@clinic.example"),
                "password": "bench doctor passphrase",
                "department_id": department["id"], "specialization": "General practice",
                "years_of_experience": 10, "consultation_fee": { "amount": 6000, "currency": "EUR" },
            }))
            .send()
            .await?,
        "a doctor",
    )
    .await?;
    let doctor_id = doctor["id"].as_str().context("a doctor id")?.to_owned();
    let days: Vec<Value> = (1..=7)
        .map(|weekday| json!({ "weekday": weekday, "starts_at": "00:00", "ends_at": "23:00", "slot_minutes": 60 }))
        .collect();
    ok(
        client
            .put(format!("{gateway}/api/doctors/{doctor_id}/schedule"))
            .bearer_auth(admin)
            .json(&json!({ "days": days }))
            .send()
            .await?,
        "the weekly template",
    )
    .await?;
    let from = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(1))
        .context("tomorrow")?;
    let availability = ok(
        client
            .get(format!(
                "{gateway}/api/doctors/{doctor_id}/availability?from={from}&to={}",
                from.checked_add_days(Days::new(30)).context("a month")?
            ))
            .send()
            .await?,
        "availability",
    )
    .await?;
    let starts: Vec<String> = availability["slots"]
        .as_array()
        .context("slots")?
        .iter()
        .filter_map(|slot| slot["starts_at"].as_str().map(str::to_owned))
        .collect();
    let mut starts = starts.into_iter();
    for patient in 0..20 {
        let email = format!("bench-fhir-patient-{patient}-{suffix}@example.test");
        ok(
            client
                .post(format!("{gateway}/api/users/patients"))
                .json(&json!({ "first_name": "Bench", "last_name": format!("Patient {patient}"), "email": email, "password": "bench patient passphrase" }))
                .send()
                .await?,
            "a patient",
        )
        .await?;
        let token = login(client, gateway, &email, "bench patient passphrase").await?;
        for _ in 0..3 {
            let starts_at = starts.next().context("a free slot")?;
            ok(
                client
                    .post(format!("{gateway}/api/appointments"))
                    .bearer_auth(&token)
                    .json(&json!({ "doctor_id": doctor_id, "starts_at": starts_at, "reason": "bench" }))
                    .send()
                    .await?,
                "a reservation",
            )
            .await?;
        }
    }
    Ok(doctor_id)
}

pub async fn measure(options: &Options) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().build()?;
    let admin = login(&client, &options.gateway, &options.email, &options.password).await?;
    let doctor_id = set_up(&client, options, &admin).await?;
    let gateway = &options.gateway;
    let from = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(1))
        .context("tomorrow")?;
    let until = from.checked_add_days(Days::new(31)).context("a month")?;
    let last = from.checked_add_days(Days::new(30)).context("a month")?;
    let window = std::time::Duration::from_secs(options.seconds);
    let targets = [
        (
            "FHIR `Slot` search, 31 days, one practitioner (`_count=100`)",
            format!(
                "{gateway}/fhir/Slot?schedule=Schedule/{doctor_id}&start=ge{from}&start=lt{until}&_count=100"
            ),
        ),
        (
            "REST availability, the same 31 days",
            format!("{gateway}/api/doctors/{doctor_id}/availability?from={from}&to={last}"),
        ),
        (
            "FHIR `Appointment` search, 50 entries",
            format!("{gateway}/fhir/Appointment?_count=50"),
        ),
        (
            "REST appointment list, 50 items",
            format!("{gateway}/api/appointments?limit=50"),
        ),
    ];
    let mut outcomes = Vec::new();
    for (label, url) in targets {
        let probe = client.get(&url).bearer_auth(&admin).send().await?;
        if !probe.status().is_success() {
            bail!("{label}: {} {}", probe.status(), probe.text().await?);
        }
        outcomes.push(run(label, &client, &url, &admin, options.concurrency, window).await);
    }
    println!("{}", table(&outcomes));
    println!(
        "\n{} closed-loop clients, {} s per target after a warm-up, through the gateway, one doctor with 60 booked slots of 713 over the 31 days",
        options.concurrency, options.seconds
    );
    Ok(())
}

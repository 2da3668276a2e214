//! The booking benchmark: reservations per second with many concurrent clients, each
//! reserving a slot of its own, through the gateway and straight at the appointments
//! service; then availability reads the same two ways, of a day those reservations booked
//! full; and `pgbench` running the reservation's own transaction (the appointment, its
//! history row, its outbox row) on the same database in the same run, as the ceiling a
//! reservation is measured against. Then the same two requests through the gateway in an
//! open loop, at 25%, 50% and 75% of the saturation throughput this run measured: the
//! latency a clinic's steady stream of patients sees. The planner's statistics are brought
//! up to date before each timed run ([`analyze`]).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{Duration as Span, Utc};
use serde_json::{Value, json};

use crate::{Outcome, RequestFn, login, run_open_loop, run_requests};

pub struct Options {
    pub gateway: String,
    pub appointments: String,
    pub database: String,
    pub email: String,
    pub password: String,
    pub concurrency: usize,
    pub seconds: u64,
    /// Whether the steady load follows the saturation runs.
    pub steady: bool,
}

/// Slots of the benchmark's doctor: every 5 minutes, all day, every day.
const SLOTS_PER_DAY: usize = 287;

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

/// A doctor who works around the clock in 5-minute slots, and one patient per client.
async fn set_up(
    client: &reqwest::Client,
    options: &Options,
) -> anyhow::Result<(String, Vec<String>)> {
    let gateway = &options.gateway;
    let admin = login(client, gateway, &options.email, &options.password).await?;
    let department = post(
        client,
        &format!("{gateway}/api/departments"),
        Some(&admin),
        json!({"name": "Benchmark"}),
    )
    .await?;
    let doctor = post(
        client,
        &format!("{gateway}/api/users/staff"),
        Some(&admin),
        json!({
            "role": "DOCTOR", "first_name": "Bench", "last_name": "Mark",
            "email": "doctor@bench.example", "password": "bench doctor passphrase",
            "department_id": department["id"], "specialization": "General practice",
            "years_of_experience": 10, "consultation_fee": {"amount": 6000, "currency": "EUR"}
        }),
    )
    .await?;
    let doctor_id = doctor["id"].as_str().context("a doctor id")?.to_owned();
    let days: Vec<Value> = (1..=7)
        .map(|day| json!({"weekday": day, "starts_at": "00:00", "ends_at": "23:55", "slot_minutes": 5}))
        .collect();
    let response = client
        .put(format!("{gateway}/api/doctors/{doctor_id}/schedule"))
        .bearer_auth(&admin)
        .json(&json!({ "days": days }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("setting the schedule: {}", response.status());
    }
    let mut patients = Vec::with_capacity(options.concurrency);
    for n in 0..options.concurrency {
        let email = format!("patient{n}@bench.example");
        post(
            client,
            &format!("{gateway}/api/users/patients"),
            None,
            json!({"first_name": "Pat", "last_name": format!("Number {n}"), "email": email, "password": "bench patient passphrase"}),
        )
        .await?;
        patients.push(login(client, gateway, &email, "bench patient passphrase").await?);
    }
    Ok((doctor_id, patients))
}

/// Reservations by `concurrency` patients at `base`, each request a slot nobody took yet.
fn reservations(
    client: &reqwest::Client,
    base: &str,
    doctor_id: &str,
    patients: &Arc<Vec<String>>,
    next_slot: &Arc<AtomicUsize>,
) -> RequestFn {
    let first_day = (Utc::now() + Span::days(1)).date_naive();
    let (client, url, doctor_id) = (
        client.clone(),
        format!("{base}/api/appointments"),
        doctor_id.to_owned(),
    );
    let (patients, next_slot) = (patients.clone(), next_slot.clone());
    Arc::new(move |worker, _| {
        let k = next_slot.fetch_add(1, Ordering::Relaxed);
        let day = first_day + Span::days((k / SLOTS_PER_DAY) as i64);
        let minutes = (k % SLOTS_PER_DAY) as i64 * 5;
        let starts_at = day
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc() + Span::minutes(minutes));
        client
            .post(&url)
            .bearer_auth(&patients[worker % patients.len()])
            .json(&json!({"doctor_id": doctor_id, "starts_at": starts_at}))
    })
}

fn availability(client: &reqwest::Client, base: &str, doctor_id: &str) -> RequestFn {
    let day = (Utc::now() + Span::days(3)).date_naive();
    let (client, url) = (
        client.clone(),
        format!("{base}/api/doctors/{doctor_id}/availability?from={day}&to={day}"),
    );
    Arc::new(move |_, _| client.get(&url))
}

/// The reservation's own transaction in pgbench's script language.
const PGBENCH_SCRIPT: &str = r#"
begin;
with appointment as (
    insert into appointments.appointments
        (id, patient_id, doctor_id, status, starts_at, ends_at, reason, notes, fee_amount, fee_currency, hold_expires_at, created_by)
    values (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'PENDING', now() + interval '1 day',
            now() + interval '1 day 5 minutes', '', '', 6000, 'EUR', now() + interval '10 minutes', gen_random_uuid())
    returning id
), history as (
    insert into appointments.appointment_history (appointment_id, from_status, to_status)
    select id, null, 'PENDING' from appointment
)
insert into appointments.outbox (event_id, topic, key, event_type, envelope)
select gen_random_uuid(), 'polyclinic.appointments', id::text, 'polyclinic.bench.noop.v1',
       jsonb_build_object('specversion', '1.0', 'id', gen_random_uuid(), 'source', '/polyclinic/bench',
                          'type', 'polyclinic.bench.noop.v1', 'subject', id::text, 'time', now(),
                          'datacontenttype', 'application/json', 'data', '{}'::jsonb)
from appointment;
select pg_notify('polyclinic_outbox_appointments', '');
commit;
"#;

/// Runs the script with `concurrency` clients for `seconds`; transactions per second and
/// the mean latency in milliseconds, as pgbench reports them.
fn pgbench(database: &str, concurrency: usize, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let script = std::env::temp_dir().join(format!("polyclinic-bench-{}.sql", std::process::id()));
    std::fs::write(&script, PGBENCH_SCRIPT)?;
    let output = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &concurrency.to_string(),
            "-j",
            "2",
            "-T",
            &seconds.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(database)
        .output()
        .context("running pgbench (Debian: postgresql-client)")?;
    std::fs::remove_file(&script).ok();
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let number_after = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<f64>().ok())
    };
    let tps = number_after("tps = ").context("pgbench printed no tps")?;
    let latency = number_after("latency average = ").unwrap_or(f64::NAN);
    Ok((tps, latency))
}

/// Brings the planner's statistics up to date, as autovacuum would have in a clinic whose
/// tables grew over months rather than the seconds of the run before (and as it cannot on a
/// server where it is off): a plan chosen for a table that was empty a moment ago is not
/// what a clinic runs. Outside every timed window.
async fn analyze(database: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(database)
        .await
        .context("connecting to the benchmark's database")?;
    sqlx::query("analyze").execute(&mut connection).await?;
    connection.close().await?;
    Ok(())
}

pub async fn measure(options: &Options) -> anyhow::Result<()> {
    // Idle connections are all kept (reqwest's default): an open loop may have many more
    // requests in flight than the closed loop's clients, and would otherwise reconnect.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let (doctor_id, patients) = set_up(&client, options).await?;
    let patients = Arc::new(patients);
    let next_slot = Arc::new(AtomicUsize::new(0));
    let window = Duration::from_secs(options.seconds);
    let concurrency = options.concurrency;

    // Reservations first: the day the availability reads ask for is then fully booked, for
    // the closed loop and the steady load alike (read on an empty calendar, the closed loop
    // would measure a cheaper request than the steady load sends).
    let mut reserved: Vec<Outcome> = Vec::new();
    for (label, base) in [
        ("reservations, through the gateway", &options.gateway),
        ("reservations, direct", &options.appointments),
    ] {
        analyze(&options.database).await?;
        let requests = reservations(&client, base, &doctor_id, &patients, &next_slot);
        reserved.push(run_requests(label, concurrency, window, requests).await);
    }
    let mut read: Vec<Outcome> = Vec::new();
    for (label, base) in [
        ("availability, through the gateway", &options.gateway),
        ("availability, direct", &options.appointments),
    ] {
        analyze(&options.database).await?;
        let requests = availability(&client, base, &doctor_id);
        read.push(run_requests(label, concurrency, window, requests).await);
    }
    let (read_through, reserve_through) = (read[0].per_second(), reserved[0].per_second());
    let reserve_p99 = reserved[0].percentile_ms(0.99);
    let rows: Vec<Outcome> = read.into_iter().chain(reserved).collect();
    println!("{}", crate::table(&rows));
    // The platform's pools hold connections of their own meanwhile.
    let pgbench_clients = concurrency.min(32);
    let (tps, latency) = pgbench(&options.database, pgbench_clients, options.seconds)?;

    println!(
        "| pgbench: the reservation's transaction (appointment, history, outbox) | {tps:.0} | {latency:.2} (mean) | | |"
    );
    println!(
        "\n{concurrency} clients, {} s per target after a warm-up; every reservation a distinct slot, \
         the availability read a day they booked full. Reservations through the gateway: {:.0}% \
         of the pgbench ceiling, p99 {reserve_p99:.1} ms.",
        options.seconds,
        100.0 * reserve_through / tps,
    );

    if !options.steady {
        return Ok(());
    }
    // A steady load: arrivals at a fixed rate, a share of the saturation measured above.
    let mut steady = Vec::new();
    // Reads first: the reservations leave work behind them (payments, events, emails) that
    // would otherwise be what the reads are measured against. Each run starts after a pause
    // for what the one before left to settle.
    for (what, saturation, requests) in [
        (
            "availability",
            read_through,
            availability(&client, &options.gateway, &doctor_id),
        ),
        (
            "reservations",
            reserve_through,
            reservations(&client, &options.gateway, &doctor_id, &patients, &next_slot),
        ),
    ] {
        for share in [0.25, 0.50, 0.75] {
            tokio::time::sleep(Duration::from_secs(10)).await;
            analyze(&options.database).await?;
            let rate = saturation * share;
            let label = format!("{what}, through the gateway");
            let outcome =
                run_open_loop(&label, rate, patients.len(), window, requests.clone()).await;
            steady.push((share, rate, outcome));
        }
    }
    println!(
        "\n| steady load | share of saturation | offered (req/s) | answered (req/s) | p50 (ms) | p99 (ms) | p99.9 (ms) | max (ms) | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (share, rate, outcome) in &steady {
        println!(
            "| {} | {:.0}% | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            outcome.label,
            share * 100.0,
            rate,
            outcome.per_second(),
            outcome.percentile_ms(0.50),
            outcome.percentile_ms(0.99),
            outcome.percentile_ms(0.999),
            outcome.percentile_ms(1.0),
            outcome.errors
        );
    }
    let half = &steady[4].2;
    println!(
        "\nOpen loop: requests sent on schedule at the rate shown ({} s each after a warm-up), \
         latency from each one's intended send time. Reservations at 50% of saturation: p99 {:.1} ms.",
        options.seconds,
        half.percentile_ms(0.99)
    );
    Ok(())
}

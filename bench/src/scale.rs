//! The scale benchmark: the reference clinic (`polyclinic_testing::scale`) seeded at 1x, 10x
//! and 100x, and at each size what a night's jobs take and what the routes a clinic reads
//! all day cost, through the gateway. `bench/scale.sh` seeds a database per size and runs a
//! platform on each at once; [`report`] puts the sizes side by side with each route's p99
//! growth from the smallest size to the largest.
//!
//! - [`prepare`] seeds a migrated database and then runs the appointments service's jobs
//!   on it as the service runs them (the minutely expiry and reminders, the nightly
//!   completion and purge), each timed;
//! - [`measure`] signs in as the administrator, some patients and some doctors of each
//!   size's seed, and runs each route with a few closed-loop clients, every request for
//!   another patient, doctor or actor of the seed. The sizes take turns route by route, in
//!   several rounds whose order rotates, and each size's figures come from its rounds
//!   pooled: a pause of this shared machine lands on every size alike rather than on
//!   whichever size was being measured minutes apart from the others.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Duration as Span, Utc};
use polyclinic_appointments::jobs::Jobs;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::{Outcome, RequestFn, login, run_requests};

/// What seeding and the night's jobs took at one size.
#[derive(Debug, Serialize, Deserialize)]
pub struct Prepared {
    pub factor: u32,
    pub seed_seconds: f64,
    /// Rows of the big tables after seeding: (table, rows).
    pub rows: Vec<(String, i64)>,
    /// (job, rows it changed, milliseconds).
    pub jobs: Vec<(String, u64, f64)>,
}

/// One route's figures at one size.
#[derive(Debug, Serialize, Deserialize)]
pub struct Route {
    pub label: String,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
}

/// The routes' figures at one size.
#[derive(Debug, Serialize, Deserialize)]
pub struct Measured {
    pub factor: u32,
    pub concurrency: usize,
    /// Seconds each route ran at this size in each round.
    pub seconds: u64,
    pub rounds: usize,
    pub routes: Vec<Route>,
}

fn write(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Seeds `database` `factor` times over, runs the jobs, and writes what it saw to `out`.
pub async fn prepare(database: &str, factor: u32, out: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    polyclinic_testing::scale::seed(database, factor, "UTC").await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let pool = PgPool::connect(database).await?;
    let mut rows = Vec::new();
    for table in [
        "appointments.appointments",
        "prescriptions.audit_log",
        "notifications.notifications",
        "notifications.event_log",
        "identity.users",
    ] {
        let count: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&pool)
            .await?;
        rows.push((table.to_owned(), count));
    }
    pool.close().await;

    let pool = polyclinic_db::schema_pool(database, "appointments", 4, "polyclinic-bench")?;
    // The service's defaults: the clinic's zone and a retention of 730 days.
    let jobs = Jobs::new(pool.clone(), chrono_tz::UTC, Span::days(730));
    let now = Utc::now();
    let ms = |started: Instant| started.elapsed().as_secs_f64() * 1000.0;
    let mut done = Vec::new();
    let started = Instant::now();
    let expired = jobs.expire_holds(now).await? as u64;
    done.push((
        "expiry of holds that ran out".to_owned(),
        expired,
        ms(started),
    ));
    let started = Instant::now();
    let reminded = jobs.send_reminders(now).await? as u64;
    done.push((
        "reminders of the next 24 hours".to_owned(),
        reminded,
        ms(started),
    ));
    let started = Instant::now();
    let completed = jobs.complete_ended(now).await? as u64;
    done.push((
        "completion of the visits that ended".to_owned(),
        completed,
        ms(started),
    ));
    let started = Instant::now();
    let purged = jobs.purge(now).await?;
    done.push(("purge past the retention".to_owned(), purged, ms(started)));
    pool.close().await;
    write(
        out,
        &Prepared {
            factor,
            seed_seconds,
            rows,
            jobs: done,
        },
    )
}

/// One size's platform: how many times the reference clinic its database holds, its
/// gateway, and its database (for choosing whom to sign in as).
pub struct Size {
    pub factor: u32,
    pub gateway: String,
    pub database: String,
}

pub struct Options {
    pub sizes: Vec<Size>,
    pub password: String,
    pub email: String,
    pub concurrency: usize,
    pub seconds: u64,
    pub rounds: usize,
    /// Where `measured-<factor>.json` is written for each size.
    pub dir: PathBuf,
}

/// `count` seeded people of `role` (`DOCTOR`, `PATIENT`), chosen at random: (id, email).
async fn people(pool: &PgPool, role: &str, count: i64) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "select id::text, email from identity.users
         where role = $1 and email like '%@scale.example' order by random() limit $2",
    )
    .bind(role)
    .bind(count)
    .fetch_all(pool)
    .await?)
}

/// A request to `path` (with `{}` standing for the rotating value), with a rotating token.
fn rotating(
    client: &reqwest::Client,
    gateway: &str,
    path: &str,
    tokens: Vec<String>,
    values: Vec<String>,
) -> RequestFn {
    let (client, gateway, path) = (client.clone(), gateway.to_owned(), path.to_owned());
    let values = if values.is_empty() {
        vec![String::new()]
    } else {
        values
    };
    Arc::new(move |worker, n| {
        let turn = worker * 7919 + n;
        let token = &tokens[turn % tokens.len()];
        let url = format!(
            "{gateway}{}",
            path.replace("{}", &values[turn % values.len()])
        );
        client.get(url).bearer_auth(token)
    })
}

/// Signs in at `size`'s platform and returns the routes to measure there, each with its
/// label.
async fn routes(
    client: &reqwest::Client,
    size: &Size,
    email: &str,
    password: &str,
) -> anyhow::Result<Vec<(&'static str, RequestFn)>> {
    let gateway = size.gateway.as_str();
    let pool = PgPool::connect(&size.database).await?;
    let doctors = people(&pool, "DOCTOR", 8).await?;
    let patients = people(&pool, "PATIENT", 8).await?;
    let some_doctors: Vec<String> = people(&pool, "DOCTOR", 50)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let some_patients: Vec<String> = people(&pool, "PATIENT", 50)
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    pool.close().await;

    let admin = vec![login(client, gateway, email, password).await?];
    let mut doctor_tokens = Vec::new();
    for (_, email) in &doctors {
        doctor_tokens.push(login(client, gateway, email, password).await?);
    }
    let mut patient_tokens = Vec::new();
    let mut patient_paths = Vec::new();
    for (id, email) in &patients {
        patient_tokens.push(login(client, gateway, email, password).await?);
        patient_paths.push(id.clone());
    }

    let tomorrow = (Utc::now() + Span::days(1)).date_naive();
    let last = tomorrow + Span::days(30);
    let (month_from, month_to) = (Utc::now() - Span::days(60), Utc::now() - Span::days(30));
    let stamp = |at: chrono::DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(vec![
        (
            "availability, one doctor, 31 days",
            rotating(
                client,
                gateway,
                &format!("/api/doctors/{{}}/availability?from={tomorrow}&to={last}"),
                patient_tokens.clone(),
                some_doctors.clone(),
            ),
        ),
        (
            "the approval queue (admin)",
            rotating(
                client,
                gateway,
                "/api/appointments/queue?limit=50",
                admin.clone(),
                Vec::new(),
            ),
        ),
        (
            "a patient's appointments",
            rotating(
                client,
                gateway,
                "/api/appointments/mine?limit=50",
                patient_tokens.clone(),
                Vec::new(),
            ),
        ),
        (
            "a doctor's appointments",
            rotating(
                client,
                gateway,
                "/api/appointments/mine?limit=50",
                doctor_tokens.clone(),
                Vec::new(),
            ),
        ),
        (
            "all appointments by status and a month's dates (admin)",
            rotating(
                client,
                gateway,
                &format!(
                    "/api/appointments?status=COMPLETED&from={}&to={}&limit=50",
                    stamp(month_from),
                    stamp(month_to)
                ),
                admin.clone(),
                Vec::new(),
            ),
        ),
        (
            "audit search by patient (admin)",
            rotating(
                client,
                gateway,
                "/api/audit?patient_id={}&limit=50",
                admin.clone(),
                some_patients.clone(),
            ),
        ),
        (
            "audit search by actor (admin)",
            rotating(
                client,
                gateway,
                "/api/audit?actor_id={}&limit=50",
                admin.clone(),
                some_doctors.clone(),
            ),
        ),
        (
            "a patient's record with its entries",
            Arc::new({
                let (client, gateway) = (client.clone(), gateway.to_owned());
                let (tokens, ids) = (patient_tokens.clone(), patient_paths.clone());
                move |worker, n| {
                    let turn = (worker * 7919 + n) % tokens.len();
                    client
                        .get(format!("{gateway}/api/records/{}", ids[turn]))
                        .bearer_auth(&tokens[turn])
                }
            }),
        ),
        (
            "a patient's notifications inbox",
            rotating(
                client,
                gateway,
                "/api/notifications/me?limit=50",
                patient_tokens.clone(),
                Vec::new(),
            ),
        ),
        (
            "the event log, first page (admin)",
            rotating(
                client,
                gateway,
                "/api/events?limit=50",
                admin.clone(),
                Vec::new(),
            ),
        ),
    ])
}

/// Runs every route at every size in `options.rounds` rounds (the sizes take turns on each
/// route, starting with another size each round) and writes each size's pooled figures.
pub async fn measure(options: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        !options.sizes.is_empty() && options.rounds > 0,
        "nothing to measure: give at least one size and one round"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let mut platforms = Vec::new();
    for size in &options.sizes {
        platforms.push(routes(&client, size, &options.email, &options.password).await?);
    }
    let labels: Vec<&str> = platforms[0].iter().map(|(label, _)| *label).collect();
    // For each size and route: the latencies of every round, and the errors.
    let mut pooled: Vec<Vec<(Vec<u64>, usize)>> =
        vec![vec![(Vec::new(), 0); labels.len()]; options.sizes.len()];
    let window = Duration::from_secs(options.seconds);
    for round in 0..options.rounds {
        for (route, label) in labels.iter().enumerate() {
            for turn in 0..options.sizes.len() {
                let size = (round + turn) % options.sizes.len();
                let request = platforms[size][route].1.clone();
                let outcome = run_requests(label, options.concurrency, window, request).await;
                eprintln!(
                    "round {} {}x {label}: {:.0}/s p50 {:.2} ms p99 {:.2} ms errors {}",
                    round + 1,
                    options.sizes[size].factor,
                    outcome.per_second(),
                    outcome.percentile_ms(0.50),
                    outcome.percentile_ms(0.99),
                    outcome.errors
                );
                let (latencies, errors) = &mut pooled[size][route];
                latencies.extend_from_slice(&outcome.latencies_us);
                *errors += outcome.errors;
            }
        }
    }
    let measured_for = window * u32::try_from(options.rounds)?;
    for (size, routes) in options.sizes.iter().zip(pooled) {
        let routes = labels
            .iter()
            .zip(routes)
            .map(|(label, (latencies, errors))| {
                let outcome = Outcome::new(label, measured_for, latencies, errors);
                Route {
                    label: (*label).to_owned(),
                    per_second: outcome.per_second(),
                    p50_ms: outcome.percentile_ms(0.50),
                    p99_ms: outcome.percentile_ms(0.99),
                    errors: outcome.errors,
                }
            })
            .collect();
        write(
            &options.dir.join(format!("measured-{}.json", size.factor)),
            &Measured {
                factor: size.factor,
                concurrency: options.concurrency,
                seconds: options.seconds,
                rounds: options.rounds,
                routes,
            },
        )?;
    }
    Ok(())
}

/// The sizes' figures side by side, from `prepared-<factor>.json` and
/// `measured-<factor>.json` in `dir`, as markdown.
pub fn report(dir: &Path, factors: &[u32]) -> anyhow::Result<String> {
    let mut prepared = Vec::new();
    let mut measured = Vec::new();
    for factor in factors {
        prepared.push(read::<Prepared>(
            &dir.join(format!("prepared-{factor}.json")),
        )?);
        measured.push(read::<Measured>(
            &dir.join(format!("measured-{factor}.json")),
        )?);
    }
    let (Some(first), Some(last)) = (factors.first(), factors.last()) else {
        anyhow::bail!("no sizes to report");
    };
    let mut lines = Vec::new();
    let mut header = "| route |".to_owned();
    let mut rule = "|---|".to_owned();
    for factor in factors {
        header.push_str(&format!(" {factor}x p50 (ms) | {factor}x p99 (ms) |"));
        rule.push_str("---:|---:|");
    }
    header.push_str(&format!(" p99 growth {first}x to {last}x |"));
    rule.push_str("---:|");
    lines.push(header);
    lines.push(rule);
    let routes = measured.first().map(|m| m.routes.len()).unwrap_or(0);
    let mut worst: f64 = 0.0;
    for index in 0..routes {
        let label = &measured[0].routes[index].label;
        let mut line = format!("| {label} |");
        let mut errors = 0;
        for size in &measured {
            let route = &size.routes[index];
            errors += route.errors;
            line.push_str(&format!(" {:.2} | {:.2} |", route.p50_ms, route.p99_ms));
        }
        let growth =
            measured[measured.len() - 1].routes[index].p99_ms / measured[0].routes[index].p99_ms;
        worst = worst.max(growth);
        line.push_str(&format!(" {growth:.2}x |"));
        if errors > 0 {
            line.push_str(&format!(" ({errors} errors)"));
        }
        lines.push(line);
    }
    lines.push(String::new());
    let mut header = "| a night's job |".to_owned();
    let mut rule = "|---|".to_owned();
    for factor in factors {
        header.push_str(&format!(" {factor}x rows | {factor}x (ms) |"));
        rule.push_str("---:|---:|");
    }
    lines.push(header);
    lines.push(rule);
    let jobs = prepared.first().map(|p| p.jobs.len()).unwrap_or(0);
    for index in 0..jobs {
        let mut line = format!("| {} |", prepared[0].jobs[index].0);
        for size in &prepared {
            let (_, rows, ms) = &size.jobs[index];
            line.push_str(&format!(" {rows} | {ms:.1} |"));
        }
        lines.push(line);
    }
    lines.push(String::new());
    let sizes: Vec<String> = prepared
        .iter()
        .map(|size| {
            let count = |table: &str| {
                size.rows
                    .iter()
                    .find(|(name, _)| name == table)
                    .map(|(_, rows)| *rows)
                    .unwrap_or(0)
            };
            format!(
                "{}x: {} appointments, {} audit rows, {} notifications, {} events, {} people (seeded in {:.0} s)",
                size.factor,
                count("appointments.appointments"),
                count("prescriptions.audit_log"),
                count("notifications.notifications"),
                count("notifications.event_log"),
                count("identity.users"),
                size.seed_seconds
            )
        })
        .collect();
    let run = &measured[0];
    lines.push(format!(
        "{}; a platform on each size at once, {} closed-loop clients through its gateway, the sizes taking turns on each route for {} rounds of {} s (after a warm-up), pooled; worst p99 growth {first}x to {last}x: {worst:.2}x",
        sizes.join("; "),
        run.concurrency,
        run.rounds,
        run.seconds
    ));
    Ok(lines.join("\n"))
}

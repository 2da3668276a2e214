//! `polyclinic-bench`: load against a running platform, printed as markdown.
//!
//! Closed loop: `concurrency` workers each send a request, wait for the answer, and send
//! the next, for `duration` after a warm-up. Throughput is answers per second; latency
//! percentiles are over every answer of the measured window. Targets compared with each
//! other are measured in the same run, one after the other, with the same settings.

use std::time::{Duration, Instant};

mod booking;
mod events;
mod fhir;
mod notifications;
mod scale;
mod web;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "polyclinic-bench", about)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
}

#[derive(Debug, Subcommand)]
enum Suite {
    /// Events through outbox, relay, bus and consumer: burst throughput and paced latency,
    /// on the postgres bus and then the kafka bus
    Events {
        /// The PostgreSQL server (without a database); a scratch database is made on it
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
        postgres: String,
        #[arg(long, default_value = "127.0.0.1:9092")]
        kafka: String,
        /// librdkafka properties, `name=value,...`
        #[arg(long, default_value = "")]
        kafka_properties: String,
        #[arg(long, default_value_t = 20_000)]
        burst: usize,
        /// Paced rate for the latency measurement
        #[arg(long, default_value_t = 1_000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// The buses measured, in order: `postgres`, `kafka-mock` (librdkafka's mock
        /// cluster, in this process), `kafka` (the broker at `--kafka`)
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "postgres,kafka-mock,kafka"
        )]
        buses: Vec<String>,
    },
    /// Reservations and availability reads through the gateway and direct, next to pgbench
    /// running the reservation's transaction
    Booking {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        #[arg(long, default_value = "http://127.0.0.1:8083")]
        appointments: String,
        /// The platform's database, for pgbench
        #[arg(long, env = "DATABASE_URL")]
        database: String,
        #[arg(long, default_value = "admin@polyclinic.local")]
        email: String,
        #[arg(long, env = "POLYCLINIC_ADMIN_PASSWORD")]
        password: String,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Only the saturation runs, not the steady load after them
        #[arg(long)]
        no_steady: bool,
    },
    /// Emails per second to a loopback SMTP server from a burst of events, and each email's
    /// commit-to-delivered latency
    Notifications {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// The platform's database
        #[arg(long, env = "DATABASE_URL")]
        database: String,
        #[arg(long, default_value = "admin@polyclinic.local")]
        email: String,
        #[arg(long, env = "POLYCLINIC_ADMIN_PASSWORD")]
        password: String,
        /// Where the benchmark's SMTP server listens (the platform sends there)
        #[arg(long, default_value_t = 18025)]
        smtp_port: u16,
        #[arg(long, default_value_t = 5000)]
        events: usize,
        /// Sends in flight, as the platform's `email.concurrency` (for the server-alone row)
        #[arg(long, env = "POLYCLINIC_EMAIL_CONCURRENCY", default_value_t = 32)]
        concurrency: u32,
    },
    /// The FHIR API's Slot and Appointment searches beside their REST equivalents
    Fhir {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        #[arg(long, default_value = "admin@polyclinic.local")]
        email: String,
        #[arg(long, env = "POLYCLINIC_ADMIN_PASSWORD")]
        password: String,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Seeds the reference clinic `factor` times over into a migrated platform database,
    /// then runs the appointments service's minutely and nightly jobs on it, timed
    ScalePrepare {
        #[arg(long, env = "DATABASE_URL")]
        database: String,
        #[arg(long)]
        factor: u32,
        /// Where the figures go (JSON)
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// The routes a clinic reads all day, on each size's seeded database through its own
    /// platform's gateway, the sizes taking turns
    ScaleMeasure {
        /// How many times the reference clinic each platform's database holds
        #[arg(long, value_delimiter = ',', required = true)]
        factors: Vec<u32>,
        /// Each size's gateway, in the order of `--factors`
        #[arg(long, value_delimiter = ',', required = true)]
        gateways: Vec<String>,
        /// Each size's database, in the order of `--factors`
        #[arg(long, value_delimiter = ',', required = true)]
        databases: Vec<String>,
        #[arg(long, default_value = "admin@polyclinic.local")]
        email: String,
        /// The administrator's password, which every seeded person shares
        #[arg(long, env = "POLYCLINIC_ADMIN_PASSWORD")]
        password: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Seconds each route runs at each size in each round
        #[arg(long, default_value_t = 4)]
        seconds: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Where `measured-<factor>.json` is written for each size
        #[arg(long)]
        dir: std::path::PathBuf,
    },
    /// The sizes side by side as markdown, from the files scale-prepare and scale-measure wrote
    ScaleReport {
        /// The directory holding `prepared-<factor>.json` and `measured-<factor>.json`
        #[arg(long)]
        dir: std::path::PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        factors: Vec<u32>,
    },
    /// The web app's pages beside the API call they make, signed in through the form
    Web {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        #[arg(long, default_value = "http://127.0.0.1:8090")]
        web: String,
        #[arg(long, default_value = "admin@polyclinic.local")]
        email: String,
        #[arg(long, env = "POLYCLINIC_ADMIN_PASSWORD")]
        password: String,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// What one measured run saw.
struct Outcome {
    label: String,
    answers: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Outcome {
    /// What a run over `window` saw: the latencies of its answers (in any order), and errors.
    fn new(label: &str, window: Duration, mut latencies_us: Vec<u64>, errors: usize) -> Self {
        latencies_us.sort_unstable();
        Self {
            label: label.to_owned(),
            answers: latencies_us.len(),
            errors,
            elapsed: window,
            latencies_us,
        }
    }

    fn per_second(&self) -> f64 {
        self.answers as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }
}

/// Builds the `n`th request of worker `worker`.
type RequestFn = std::sync::Arc<dyn Fn(usize, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// Runs `concurrency` workers sending `GET url` with `token` for `window` (after a warm-up
/// of a quarter of it).
async fn run(
    label: &str,
    client: &reqwest::Client,
    url: &str,
    token: &str,
    concurrency: usize,
    window: Duration,
) -> Outcome {
    let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
    let request: RequestFn = std::sync::Arc::new(move |_, _| client.get(&url).bearer_auth(&token));
    run_requests(label, concurrency, window, request).await
}

/// Runs `concurrency` closed-loop workers, each sending its next `request` as soon as the
/// last is answered, for `window` after a warm-up of a quarter of it. A non-2xx answer
/// counts as an error.
async fn run_requests(
    label: &str,
    concurrency: usize,
    window: Duration,
    request: RequestFn,
) -> Outcome {
    let warmup = window / 4;
    let started = Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + window;
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            for n in 0.. {
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let ok = match request(worker, n).send().await {
                    Ok(response) => {
                        response.status().is_success() && response.bytes().await.is_ok()
                    }
                    Err(_) => false,
                };
                if sent >= measure_from {
                    if ok {
                        latencies
                            .push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for worker in workers {
        if let Ok((latencies, failed)) = worker.await {
            latencies_us.extend(latencies);
            errors += failed;
        }
    }
    Outcome::new(label, window, latencies_us, errors)
}

/// Sends one request of an open loop; whether it succeeded, and its latency from `intended`.
async fn send_scheduled(
    intended: tokio::time::Instant,
    request: reqwest::RequestBuilder,
) -> (tokio::time::Instant, bool, Duration) {
    let ok = match request.send().await {
        Ok(response) => {
            let status = response.status();
            let ok = status.is_success() && response.bytes().await.is_ok();
            if !ok {
                tell_once(&format!("an answer was {status}"));
            }
            ok
        }
        Err(err) => {
            tell_once(&err.to_string());
            false
        }
    };
    (intended, ok, intended.elapsed())
}

/// Tells on stderr what the first unsuccessful request of the run was.
fn tell_once(what: &str) {
    static TOLD: std::sync::Once = std::sync::Once::new();
    TOLD.call_once(|| eprintln!("open loop: {what}"));
}

/// Runs an open loop: requests sent at `rate` per second on a fixed schedule, whatever the
/// answers are doing, for `window` after a warm-up of a quarter of it at the same rate. Each
/// latency runs from the request's intended send time, so a stall (of the server, or of this
/// generator falling behind) counts against every request scheduled behind it rather than
/// thinning the load, as a closed loop would. `request(n % clients, n)` builds the `n`th.
async fn run_open_loop(
    label: &str,
    rate: f64,
    clients: usize,
    window: Duration,
    request: RequestFn,
) -> Outcome {
    eprintln!("open loop: {label} at {rate:.0} requests/s");
    let warmup = window / 4;
    let started = tokio::time::Instant::now();
    let measure_from = started + warmup;
    let stop_at = measure_from + window;
    let mut sending = Vec::new();
    let intended = |n: usize| started + Duration::from_secs_f64(n as f64 / rate);
    let mut n = 0usize;
    loop {
        // Every request whose time has come goes now: a timer wakes this loop a millisecond
        // at a time at best, which would hold back a faster rate if it slept per request.
        while intended(n) <= tokio::time::Instant::now() && intended(n) < stop_at {
            let (scheduled, built) = (intended(n), request(n % clients.max(1), n));
            sending.push(tokio::spawn(send_scheduled(scheduled, built)));
            n += 1;
        }
        if intended(n) >= stop_at {
            break;
        }
        tokio::time::sleep_until(intended(n)).await;
    }
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for sent in sending {
        let Ok((intended, ok, latency)) = sent.await else {
            errors += 1;
            continue;
        };
        if intended < measure_from {
            continue;
        }
        if ok {
            latencies_us.push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
        } else {
            errors += 1;
        }
    }
    Outcome::new(label, window, latencies_us, errors)
}

async fn login(
    client: &reqwest::Client,
    gateway: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let reply: serde_json::Value = client
        .post(format!("{gateway}/api/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", email),
            ("password", password),
        ])
        .send()
        .await
        .context("reaching the token endpoint")?
        .json()
        .await?;
    match reply["access_token"].as_str() {
        Some(token) => Ok(token.to_owned()),
        None => bail!("login refused: {reply}"),
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let mut lines = vec![
        "| target | requests/s | p50 (ms) | p99 (ms) | errors |".to_owned(),
        "|---|---:|---:|---:|---:|".to_owned(),
    ];
    for outcome in outcomes {
        lines.push(format!(
            "| {} | {:.0} | {:.2} | {:.2} | {} |",
            outcome.label,
            outcome.per_second(),
            outcome.percentile_ms(0.50),
            outcome.percentile_ms(0.99),
            outcome.errors
        ));
    }
    lines.join("\n")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().suite {
        Suite::Events {
            postgres,
            kafka,
            kafka_properties,
            burst,
            rate,
            seconds,
            buses,
        } => {
            let options = events::Options {
                server: postgres.trim_end_matches('/').to_owned(),
                kafka_brokers: kafka,
                kafka_properties: kafka_properties
                    .split(',')
                    .filter_map(|property| property.split_once('='))
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect(),
                burst,
                rate,
                seconds,
            };
            let mut rows = Vec::new();
            for bus in &buses {
                rows.push(events::measure(bus, &options).await?);
            }
            println!("{}", events::table(&rows));
            let row = |bus: &str| rows.iter().find(|row| row.bus == bus);
            if let (Some(postgres), Some(mock)) = (row("postgres"), row("kafka-mock")) {
                println!(
                    "\nkafka bus on the mock cluster against the postgres bus: {:.2}x the burst throughput, {:.2}x the backlog drained",
                    mock.burst_per_second / postgres.burst_per_second,
                    mock.backlog_per_second / postgres.backlog_per_second
                );
            }
            println!(
                "\nburst: {burst} events from 8 producers, one transaction each, timed from the first commit to the last event handled; backlog: as many written in transactions of 100 while held back from the relay, then released at once, timed from the release; paced: {rate} events/s for {seconds} s"
            );
        }
        Suite::Booking {
            gateway,
            appointments,
            database,
            email,
            password,
            concurrency,
            seconds,
            no_steady,
        } => {
            booking::measure(&booking::Options {
                gateway,
                appointments,
                database,
                email,
                password,
                concurrency,
                seconds,
                steady: !no_steady,
            })
            .await?;
        }
        Suite::Fhir {
            gateway,
            email,
            password,
            concurrency,
            seconds,
        } => {
            fhir::measure(&fhir::Options {
                gateway,
                email,
                password,
                concurrency,
                seconds,
            })
            .await?;
        }
        Suite::Notifications {
            gateway,
            database,
            email,
            password,
            smtp_port,
            events,
            concurrency,
        } => {
            notifications::measure(&notifications::Options {
                gateway,
                database,
                email,
                password,
                smtp_port,
                events,
                concurrency,
            })
            .await?;
        }
        Suite::ScalePrepare {
            database,
            factor,
            out,
        } => scale::prepare(&database, factor, &out).await?,
        Suite::ScaleMeasure {
            factors,
            gateways,
            databases,
            email,
            password,
            concurrency,
            seconds,
            rounds,
            dir,
        } => {
            anyhow::ensure!(
                factors.len() == gateways.len() && factors.len() == databases.len(),
                "give a gateway and a database for each of the factors"
            );
            let sizes = factors
                .into_iter()
                .zip(gateways)
                .zip(databases)
                .map(|((factor, gateway), database)| scale::Size {
                    factor,
                    gateway,
                    database,
                })
                .collect();
            scale::measure(&scale::Options {
                sizes,
                password,
                email,
                concurrency,
                seconds,
                rounds,
                dir,
            })
            .await?;
        }
        Suite::ScaleReport { dir, factors } => println!("{}", scale::report(&dir, &factors)?),
        Suite::Web {
            gateway,
            web,
            email,
            password,
            concurrency,
            seconds,
        } => {
            web::measure(&web::Options {
                gateway,
                web,
                email,
                password,
                concurrency,
                seconds,
            })
            .await?;
        }
    }
    Ok(())
}

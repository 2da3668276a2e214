//! `polyclinic`: run the platform, one service, migrations, or print the OpenAPI document.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use polyclinic_config::{Config, Service};
use polyclinic_http::CancellationToken;

/// Polyclinic: a clinic management platform.
///
/// Configuration comes from compiled defaults, then a TOML file, then environment
/// variables (`POLYCLINIC_<KEY>`, plus `DATABASE_URL`); `polyclinic config` lists them all.
#[derive(Debug, Parser)]
#[command(name = "polyclinic", version, about, long_about)]
struct Cli {
    /// The TOML configuration file; without it, ./polyclinic.toml is read when it exists.
    #[arg(long, global = true, env = "POLYCLINIC_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start every service in one process, each on its own port (8080-8086)
    All,
    /// Start the API gateway (port 8080)
    Gateway,
    /// Start the identity service: users, departments, rooms, tokens (port 8081)
    Identity,
    /// Start the appointments service: schedules and bookings (port 8083)
    Appointments,
    /// Start the payments service (port 8084)
    Payments,
    /// Start the notifications service (port 8085)
    Notifications,
    /// Start the prescriptions and medical records service (port 8086)
    Prescriptions,
    /// Start the web app for patients, doctors, nurses and admins (port 8090)
    Web,
    /// Apply every service's database migrations, then exit
    Migrate,
    /// Print the merged OpenAPI document of every service as JSON
    Openapi,
    /// Print every configuration key, its environment variable and its effective value
    Config,
    /// Publish a new token signing key; it signs after `auth.key_publish_lead_secs`, and the
    /// current key keeps verifying until its tokens expire
    RotateSigningKey,
    /// Check the audit trail of health-data access: recompute every row's hash chain and
    /// report the first row that was altered (exit status 1 if one was)
    AuditVerify,
    /// Check the configuration for running these services (`all`, `gateway`, `identity`,
    /// ..., `web`) as they would check it at start, without starting them: exit status 2
    /// and the missing or invalid key if one is wrong
    Check {
        #[arg(required = true, value_parser = parse_services)]
        services: Vec<Vec<Service>>,
    },
}

/// A service's name, or `all`.
fn parse_services(name: &str) -> Result<Vec<Service>, String> {
    if name == "all" {
        return Ok(Service::ALL.to_vec());
    }
    Service::ALL
        .into_iter()
        .find(|service| service.as_str() == name)
        .map(|service| vec![service])
        .ok_or_else(|| format!("`{name}` is not a service (all, gateway, identity, appointments, payments, notifications, prescriptions, web)"))
}

impl Command {
    fn services(&self) -> Option<Vec<Service>> {
        let one = match self {
            Command::All => return Some(Service::ALL.to_vec()),
            Command::Gateway => Service::Gateway,
            Command::Identity => Service::Identity,
            Command::Appointments => Service::Appointments,
            Command::Payments => Service::Payments,
            Command::Notifications => Service::Notifications,
            Command::Prescriptions => Service::Prescriptions,
            Command::Web => Service::Web,
            Command::Migrate
            | Command::Openapi
            | Command::Config
            | Command::RotateSigningKey
            | Command::AuditVerify
            | Command::Check { .. } => {
                return None;
            }
        };
        Some(vec![one])
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    if let Command::Openapi = cli.command {
        return match serde_json::to_string_pretty(&polyclinic::openapi()) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&anyhow::Error::new(err)),
        };
    }

    let file = cli.config.clone().or_else(|| {
        let default = PathBuf::from("polyclinic.toml");
        default.exists().then_some(default)
    });
    let config = match Config::load(file.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("polyclinic: {err}");
            return ExitCode::from(2);
        }
    };

    if let Command::Check { services } = &cli.command {
        let services: Vec<Service> = services.concat();
        return match config.check_services(&services) {
            Ok(()) => {
                let names: Vec<&str> = services.iter().map(|service| service.as_str()).collect();
                let environment = match config.environment {
                    polyclinic_config::Environment::Production => "production",
                    polyclinic_config::Environment::Development => "development",
                };
                println!(
                    "configuration complete for {} ({environment})",
                    names.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("polyclinic: {err}");
                ExitCode::from(2)
            }
        };
    }

    if let Command::Config = cli.command {
        return match polyclinic::describe_config(&config) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }

    let telemetry = match polyclinic_telemetry::init(&config.log) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("polyclinic: {err}");
            return ExitCode::from(2);
        }
    };

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::Error::new(err)),
    };
    // Kept to the end of `main`: dropping it stops the cluster it started.
    let (config, _private_postgres) = match private_postgres(&cli.command, config) {
        Ok(started) => started,
        Err(err) => return fail(&err),
    };
    let outcome = runtime.block_on(execute(cli.command, config));
    // The last spans (the shutdown's) are posted before the process ends.
    telemetry.flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

async fn execute(command: Command, config: Config) -> anyhow::Result<()> {
    let Some(services) = command.services() else {
        if let Command::RotateSigningKey = command {
            let kid = polyclinic_identity::rotate_signing_key(&config).await?;
            println!("published signing key {kid}");
            return Ok(());
        }
        if let Command::AuditVerify = command {
            let verification = polyclinic_prescriptions::verify_audit(&config).await?;
            return match (verification.broken_at, verification.missing) {
                (None, None) => {
                    println!(
                        "audit trail intact: {} rows, every hash matches, every checkpoint is there",
                        verification.rows
                    );
                    Ok(())
                }
                (Some(id), _) => anyhow::bail!(
                    "audit trail altered: row {id} does not match its hash chain ({} rows before it are intact)",
                    verification.rows
                ),
                (None, Some(id)) => anyhow::bail!(
                    "audit trail cut short: row {id} was checkpointed and is gone ({} rows remain, their chain intact)",
                    verification.rows
                ),
            };
        }
        return polyclinic::migrate(&config).await;
    };
    config.check_services(&services)?;
    let listeners = polyclinic::bind(&config, &services).await?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        polyclinic_http::shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        on_signal.cancel();
    });
    polyclinic::run(config, listeners, shutdown).await
}

/// For the README's run command on a machine with no PostgreSQL at the default URL: a
/// private cluster there (see [`polyclinic::local_postgres`]). A URL the operator chose is
/// left alone.
fn private_postgres(
    command: &Command,
    config: Config,
) -> anyhow::Result<(Config, Option<polyclinic::local_postgres::LocalPostgres>)> {
    use polyclinic::local_postgres::{LocalPostgres, candidate_bin_dirs, reachable};
    let default_url = Config::default().database_url;
    let chosen = config.database_url != default_url
        || Service::ALL
            .iter()
            .any(|service| config.service(*service).database_url.is_some());
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
    if !matches!(command, Command::All | Command::Migrate) || chosen || reachable(address) {
        return Ok((config, None));
    }
    let dir = LocalPostgres::default_dir()?;
    let cluster = LocalPostgres::start(&dir, address.port(), &candidate_bin_dirs())?;
    let how = if cluster.started_here() {
        "started; stopped on exit"
    } else {
        "already running; left running"
    };
    tracing::info!(
        data_dir = %cluster.data_dir().display(),
        "no PostgreSQL at the default URL: using a private cluster ({how})"
    );
    eprintln!(
        "polyclinic: no PostgreSQL at {default_url}: a private cluster in {} serves it ({how})",
        cluster.data_dir().display()
    );
    let config = Config {
        database_url: cluster.url(),
        ..config
    };
    Ok((config, Some(cluster)))
}

fn fail(err: &anyhow::Error) -> ExitCode {
    tracing::error!(error = %format!("{err:#}"), "polyclinic stopped");
    eprintln!("polyclinic: {err:#}");
    ExitCode::FAILURE
}

//! Email delivery: a burst of appointment reminders written straight into the appointments
//! service's outbox (as its reminder job does), relayed, turned into messages by the
//! notifications service and sent over SMTP to a loopback server this benchmark runs.
//! Throughput is emails delivered per second from the first event's commit to the last
//! delivery; latency is each email's, from its event's commit to the SMTP server's answer.
//!
//! Beside it, the limit: the same SMTP client (the notifications service's transport, with
//! the same number of sends in flight) sending the same emails straight to the same server,
//! as fast as the server takes them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use polyclinic_config::Service;
use polyclinic_contracts::appointments::{
    AppointmentRef, AppointmentReminderV1, AppointmentStatus,
};
use polyclinic_events::{EventContext, outbox};
use polyclinic_notifications::delivery::Transport;
use polyclinic_notifications::repo::notifications::Outbound;
use polyclinic_testing::SmtpSink;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::login;

pub struct Options {
    pub gateway: String,
    pub database: String,
    pub email: String,
    pub password: String,
    pub smtp_port: u16,
    pub events: usize,
    pub concurrency: u32,
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let mut request = client.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status();
    let body = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url}: {status} {body}");
    }
    Ok(body)
}

pub async fn measure(options: &Options) -> anyhow::Result<()> {
    let sink = SmtpSink::start_on(options.smtp_port).await?;
    let client = reqwest::Client::new();
    let gateway = &options.gateway;
    let admin = login(&client, gateway, &options.email, &options.password).await?;
    let department = post(
        &client,
        &format!("{gateway}/api/departments"),
        Some(&admin),
        json!({"name": "Mail"}),
    )
    .await?;
    let doctor = post(
        &client,
        &format!("{gateway}/api/users/staff"),
        Some(&admin),
        json!({"role": "DOCTOR", "first_name": "Mail", "last_name": "Bench", "email": "doctor@mail.example",
               "password": "bench doctor passphrase", "department_id": department["id"], "specialization": "GP",
               "years_of_experience": 3, "consultation_fee": {"amount": 6000, "currency": "EUR"}}),
    )
    .await?;
    let patient = post(
        &client,
        &format!("{gateway}/api/users/patients"),
        None,
        json!({"first_name": "Many", "last_name": "Reminders", "email": "patient@mail.example", "password": "bench patient passphrase"}),
    )
    .await?;
    let id = |value: &serde_json::Value| -> anyhow::Result<Uuid> {
        value["id"]
            .as_str()
            .context("an id")?
            .parse()
            .context("a uuid")
    };
    let (doctor_id, patient_id) = (id(&doctor)?, id(&patient)?);
    // The welcome emails of the set-up arrive first.
    let before = Instant::now();
    while sink.count() < 3 && before.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let baseline = sink.count();

    let config = polyclinic_config::Config {
        database_url: options.database.clone(),
        ..polyclinic_config::Config::default()
    };
    let appointments = polyclinic_db::pool(&config, Service::Appointments)?;
    // The latency joins two services' schemas: read as the database's owner, not as either
    // service's role.
    let notifications = sqlx::PgPool::connect(&options.database).await?;
    let started = Instant::now();
    let starts_at = Utc::now() + chrono::Duration::hours(23);
    for chunk in (0..options.events).collect::<Vec<_>>().chunks(100) {
        let mut tx = appointments.begin().await?;
        for _ in chunk {
            let reminder = AppointmentReminderV1 {
                appointment: AppointmentRef {
                    appointment_id: Uuid::now_v7(),
                    patient_id,
                    doctor_id,
                    starts_at,
                    ends_at: starts_at + chrono::Duration::hours(1),
                    room_id: None,
                    nurse_id: None,
                    payment_id: None,
                    amount: 6000,
                    currency: "EUR".into(),
                    status: Some(AppointmentStatus::Scheduled),
                    revision: 3,
                },
            };
            outbox::enqueue(
                &mut tx,
                Service::Appointments,
                &reminder,
                &EventContext::default(),
            )
            .await?;
        }
        tx.commit().await?;
    }
    let written = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while sink.count() < baseline + options.events {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} emails arrived",
                sink.count() - baseline,
                options.events
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = started.elapsed();

    // Each email's commit-to-delivered latency: its event's creation in the producer's
    // transaction to the moment the SMTP server accepted it.
    let latencies: Vec<f64> = sqlx::query_scalar(
        "select (extract(epoch from (n.sent_at - o.created_at)) * 1000)::float8
         from notifications.notifications n join appointments.outbox o on o.event_id = n.event_id
         where n.template = 'appointment_reminder' and n.status = 'SENT'
         order by 1",
    )
    .fetch_all(&notifications)
    .await?;
    let at = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let limit = server_alone(&notifications, &sink, options).await?;
    let rate = options.events as f64 / delivered.as_secs_f64();
    println!(
        "| path | emails | written in (s) | all delivered in (s) | emails/s | share of the limit | p50 commit to delivered (ms) | p99 (ms) | max (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| the platform: outbox, relay, consumer, sender | {} | {:.2} | {:.2} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.0} |",
        options.events,
        written.as_secs_f64(),
        delivered.as_secs_f64(),
        rate,
        100.0 * rate / limit.rate,
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!(
        "| the SMTP server alone: the same client, {} sends in flight | {} | | {:.2} | {:.0} | 100% | | | |",
        options.concurrency,
        limit.emails,
        limit.took.as_secs_f64(),
        limit.rate,
    );
    println!(
        "\n{} reminder events written in transactions of 100; {} emails received by the loopback SMTP server, each parsed from its SMTP session; `email.concurrency` {}",
        options.events,
        sink.count() - baseline - limit.emails,
        options.concurrency
    );
    Ok(())
}

struct Limit {
    emails: usize,
    took: Duration,
    rate: f64,
}

/// The limit: one of the delivered reminders sent `options.events` times straight to the
/// loopback server by the service's own transport, with `options.concurrency` in flight.
async fn server_alone(
    notifications: &sqlx::PgPool,
    sink: &SmtpSink,
    options: &Options,
) -> anyhow::Result<Limit> {
    let sample: Outbound = sqlx::query_as(
        "select id, recipient_email, subject, body_text, body_html, attempts, traceparent,
                calendar, calendar_method
         from notifications.notifications where template = 'appointment_reminder' limit 1",
    )
    .fetch_one(notifications)
    .await?;
    let config = polyclinic_config::EmailConfig {
        transport: polyclinic_config::EmailTransport::Smtp,
        smtp_url: Some(format!("smtp://127.0.0.1:{}?tls=none", options.smtp_port)),
        concurrency: options.concurrency,
        ..polyclinic_config::Config::default().email
    };
    let transport = Arc::new(Transport::from_config(&config)?);
    let before = sink.count();
    let in_flight = Arc::new(Semaphore::new(options.concurrency as usize));
    let mut sending = JoinSet::new();
    let started = Instant::now();
    for _ in 0..options.events {
        let permit = in_flight.clone().acquire_owned().await?;
        let (transport, message) = (transport.clone(), sample.clone());
        sending.spawn(async move {
            let sent = transport.send(&message).await;
            drop(permit);
            sent
        });
    }
    while let Some(sent) = sending.join_next().await {
        sent?.map_err(|err| anyhow::anyhow!("sending straight to the server: {}", err.message))?;
    }
    let took = started.elapsed();
    let emails = sink.count() - before;
    if emails != options.events {
        bail!("the server alone received {emails} of {}", options.events);
    }
    Ok(Limit {
        emails,
        took,
        rate: emails as f64 / took.as_secs_f64(),
    })
}

//! The kafka bus to a broker that accepts only TLS, trusted through the cluster's own CA
//! (`kafka.security_protocol = ssl`, `kafka.ssl_ca_location`), as managed clusters run it.

use std::time::Duration;

use polyclinic_config::{Config, EmailTransport};
use polyclinic_testing::{
    Service, SmtpSink, TestBroker, TestCa, TestPlatform, eventually, eventually_within, use_kafka,
};
use serde_json::Value;

fn over_tls(config: &mut Config, broker: &TestBroker, ca: &TestCa, sink: &SmtpSink) {
    use_kafka(config);
    config.kafka.brokers = broker.address.clone();
    config.kafka.security_protocol = "ssl".into();
    config.kafka.ssl_ca_location = ca.pem_file().display().to_string();
    config.email.transport = EmailTransport::Smtp;
    config.email.smtp_url = Some(format!("smtp://{}?tls=none", sink.address()));
}

/// The appointment's status, as its patient reads it.
async fn status_of(platform: &TestPlatform, patient: &str, id: &str) -> Value {
    platform
        .book(
            reqwest::Method::GET,
            &format!("/api/appointments/{id}"),
            Some(patient),
            None,
        )
        .await
        .body["status"]
        .clone()
}

async fn readiness(platform: &TestPlatform, service: Service) -> (u16, Value) {
    let response = platform.get(service, "/health/ready").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn emailed(sink: &SmtpSink, to: &str) -> usize {
    sink.received()
        .iter()
        .filter(|message| message.to.iter().any(|address| address == to))
        .count()
}

#[tokio::test]
async fn a_booking_s_events_travel_the_kafka_bus_over_tls_to_the_patient_s_email() {
    let ca = TestCa::new("Polyclinic test cluster CA");
    let broker = TestBroker::start_tls(&ca).await;
    let sink = SmtpSink::start().await;
    let platform = TestPlatform::start_with(&Service::ALL, |config, _| {
        over_tls(config, &broker, &ca, &sink);
    })
    .await;
    let (status, report) = readiness(&platform, Service::Appointments).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["checks"]["kafka"]["status"], "up", "{report}");

    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("tls@patients.example").await;
    let slot = platform.free_slots(&clinic.doctor_id, None).await[1].clone();
    // PAID is the appointments service's answer to the payments service's event.
    let paid = platform
        .paid_appointment(&patient, &clinic.doctor_id, &slot)
        .await;
    let id = paid["id"].as_str().unwrap();
    let approved = platform.approve(&clinic, id).await;
    assert_eq!(approved.status, 200, "{:?}", approved.body);
    // SCHEDULED once the payment is captured (another event each way), then the email.
    platform
        .appointment_becomes(&patient, id, "SCHEDULED")
        .await;
    eventually("the patient's confirmation email", || async {
        (emailed(&sink, "tls@patients.example") >= 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn with_the_wrong_ca_services_are_unready_naming_the_broker_and_the_tls_error_and_their_events_wait()
 {
    let trusted = TestCa::new("The CA the clinic trusts");
    let impostor = TestCa::new("Some other CA");
    let broker = TestBroker::start_tls(&impostor).await;
    let sink = SmtpSink::start().await;
    let mut platform = TestPlatform::launch_with(&Service::ALL, |config, _| {
        over_tls(config, &broker, &trusted, &sink);
    })
    .await;

    let error = eventually_within(
        Duration::from_secs(60),
        "the TLS failure in readiness",
        || async {
            let (status, report) = readiness(&platform, Service::Appointments).await;
            let error = report["checks"]["kafka"]["error"].as_str()?.to_owned();
            (status == 503).then_some(error)
        },
    )
    .await;
    assert!(error.contains(&broker.address), "names the broker: {error}");
    assert!(
        error.contains("certificate verify failed"),
        "names the TLS error: {error}"
    );
    assert!(error.contains("ssl.ca.location"), "{error}");

    // Everything else keeps working: the booking is taken and its events wait.
    for service in [Service::Gateway, Service::Identity, Service::Payments] {
        eventually_within(Duration::from_secs(60), "the services to serve", || async {
            platform
                .get(service, "/health/live")
                .await
                .status()
                .is_success()
                .then_some(())
        })
        .await;
    }
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("waiting@patients.example").await;
    let slot = platform.free_slots(&clinic.doctor_id, None).await[1].clone();
    let reserved = platform.reserve(&patient, &clinic.doctor_id, &slot).await;
    let payment_id = reserved["payment"]["id"].as_str().unwrap();
    let paid = platform.pay(&patient, payment_id, "pm_card_visa").await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let waiting = eventually_within(
        Duration::from_secs(30),
        "the payment's event to wait",
        || async {
            let (count, error): (i64, Option<String>) = sqlx::query_as(
                "select count(*), max(last_error) from payments.outbox where published_at is null",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (count > 0 && error.is_some()).then_some(count)
        },
    )
    .await;
    assert!(waiting > 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let id = reserved["id"].as_str().unwrap();
    assert_eq!(
        status_of(&platform, &patient, id).await,
        "PENDING",
        "the payment's event has not arrived"
    );

    // The broker's certificate is fixed: the services recover by themselves, nothing lost.
    broker.present(&trusted);
    for service in [Service::Appointments, Service::Payments, Service::Identity] {
        platform.wait_until_ready(service).await;
    }
    eventually_within(
        // The payment's event waits out the relay's backoff (at most a minute) and the
        // consumer's rejoin; a loaded machine takes longer.
        Duration::from_secs(180),
        "the appointment to become PAID",
        || async { (status_of(&platform, &patient, id).await == "PAID").then_some(()) },
    )
    .await;
    eventually_within(
        // A row that failed through the outage waits out its backoff (at most a minute), and a
        // consumer its rejoin, before it is sent again.
        Duration::from_secs(180),
        "every outbox to be published",
        || async {
            let left: i64 = sqlx::query_scalar(
                "select (select count(*) from payments.outbox where published_at is null)
                  + (select count(*) from appointments.outbox where published_at is null)
                  + (select count(*) from identity.outbox where published_at is null)",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            (left == 0).then_some(())
        },
    )
    .await;
    pool.close().await;
}

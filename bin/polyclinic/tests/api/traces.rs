//! Distributed tracing: spans exported over OTLP/HTTP to a collector started by the test,
//! one trace following a booking from the gateway through appointments and payments, and a
//! payment through the outbox, the bus and the consumers to the email that tells the patient.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use polyclinic_config::{EmailTransport, LogConfig, LogFormat};
use polyclinic_contracts::Event;
use polyclinic_contracts::appointments::AppointmentPaidV1;
use polyclinic_contracts::payments::PaymentAuthorizedV1;
use polyclinic_telemetry::OtlpSettings;
use polyclinic_testing::{Service, SmtpSink, TestPlatform, eventually, use_kafka};
use serde_json::{Value, json};

/// One exported span, as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: String,
    span_id: String,
    parent_id: Option<String>,
    name: String,
    kind: i64,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a JSON `ExportTraceServiceRequest`.
async fn receive(
    State(collector): State<Collector>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let refuse = |why: String| {
        collector.refused.lock().unwrap().push(why);
        StatusCode::BAD_REQUEST
    };
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return refuse(format!("content-type {:?}", headers.get("content-type")));
    }
    if headers.get("x-collector-key").and_then(|v| v.to_str().ok()) != Some("clinic") {
        return refuse("no x-collector-key from OTEL_EXPORTER_OTLP_HEADERS".to_owned());
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return refuse(format!("not JSON: {err}")),
    };
    let mut spans = collector.spans.lock().unwrap();
    for resource in request["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|attribute| attribute["key"] == "service.name")
            .and_then(|attribute| attribute["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                spans.push(Received {
                    service: service.clone(),
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_id: span["parentSpanId"].as_str().map(str::to_owned),
                    name: text("name"),
                    kind: span["kind"].as_i64().unwrap_or_default(),
                });
            }
        }
    }
    StatusCode::OK
}

impl Collector {
    async fn start() -> (Self, String) {
        let collector = Collector::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (collector, format!("http://{address}"))
    }

    fn trace(&self, trace_id: &str) -> Vec<Received> {
        let refused = self.refused.lock().unwrap();
        assert!(refused.is_empty(), "the collector refused: {refused:?}");
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|span| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

/// The one span of `spans` that `service` exported under a name starting with `name`.
fn find<'a>(spans: &'a [Received], service: &str, name: &str) -> Option<&'a Received> {
    let found: Vec<&Received> = spans
        .iter()
        .filter(|span| span.service == service && span.name.starts_with(name))
        .collect();
    assert!(
        found.len() <= 1,
        "more than one {service} span {name}: {found:#?}"
    );
    found.first().copied()
}

/// Waits until the trace has a span for each `(service, name)`; returns them in that order.
async fn spans_of(
    collector: &Collector,
    trace_id: &str,
    wanted: &[(&str, &str)],
) -> (Vec<Received>, Vec<Received>) {
    eventually(
        &format!("the spans {wanted:?} of trace {trace_id}"),
        || async {
            let spans = collector.trace(trace_id);
            let found: Option<Vec<Received>> = wanted
                .iter()
                .map(|(service, name)| find(&spans, service, name).cloned())
                .collect();
            found.map(|found| (found, spans))
        },
    )
    .await
}

fn assert_child(child: &Received, parent: &Received) {
    assert_eq!(
        child.parent_id.as_deref(),
        Some(parent.span_id.as_str()),
        "{} ({}) is a child of {} ({})",
        child.name,
        child.service,
        parent.name,
        parent.service
    );
}

/// Every span of the trace hangs off another span of it, or off the client's span.
fn assert_connected(spans: &[Received], client_span: &str) {
    let ids: HashMap<&str, &Received> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for span in spans {
        let parent = span
            .parent_id
            .as_deref()
            .expect("no span starts a trace of its own");
        assert!(
            parent == client_span || ids.contains_key(parent),
            "{} ({}) has a parent outside the trace: {spans:#?}",
            span.name,
            span.service
        );
    }
}

async fn one_trace_per_request_from_the_gateway_to_the_email(kafka: bool) {
    let (collector, url) = Collector::start().await;
    polyclinic_telemetry::init_with(
        &LogConfig {
            format: LogFormat::Pretty,
            filter: std::env::var("POLYCLINIC_TEST_LOG").unwrap_or_else(|_| "off".into()),
        },
        Some(OtlpSettings {
            endpoint: format!("{url}/v1/traces"),
            headers: vec![("x-collector-key".to_owned(), "clinic".to_owned())],
            service_name: "polyclinic".to_owned(),
        }),
    )
    .expect("this test's process has no other subscriber");
    let sink = SmtpSink::start().await;
    let platform = TestPlatform::start_with(&Service::ALL, |config, _| {
        config.email.transport = EmailTransport::Smtp;
        config.email.smtp_url = Some(format!("smtp://{}?tls=none", sink.address()));
        if kafka {
            use_kafka(config);
        }
    })
    .await;
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("traced@patients.example").await;
    let slot = platform.free_slots(&clinic.doctor_id, None).await[2].clone();

    // The patient's client starts the trace and sends its context with the booking.
    let booking_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let reserved = platform
        .client()
        .post(platform.url(Service::Gateway, "/api/appointments"))
        .bearer_auth(&patient)
        .header(
            "traceparent",
            format!("00-{booking_trace}-{client_span}-01"),
        )
        .json(&json!({"doctor_id": clinic.doctor_id, "starts_at": slot}))
        .send()
        .await
        .unwrap();
    assert_eq!(reserved.status(), StatusCode::CREATED);
    let reserved: Value = reserved.json().await.unwrap();

    let (booking, spans) = spans_of(
        &collector,
        booking_trace,
        &[
            ("gateway", "POST /api/appointments"),
            ("appointments", "POST /api/appointments"),
            ("payments", "POST /api/payments"),
        ],
    )
    .await;
    let [gateway, appointments, payments] = &booking[..] else {
        unreachable!()
    };
    assert_eq!(gateway.parent_id.as_deref(), Some(client_span));
    assert_child(appointments, gateway);
    assert_child(payments, appointments);
    assert!(
        [gateway, appointments, payments]
            .iter()
            .all(|span| span.kind == 2),
        "requests are server spans"
    );
    assert_connected(&spans, client_span);

    // Paying: the gateway, payments, the outbox and the bus to appointments, whose event goes
    // over the bus to notifications, which looks the patient up and sends the email.
    let payment_trace = "0af7651916cd43dd8448eb211c80319c";
    let payment_id = reserved["payment"]["id"].as_str().unwrap();
    let paid = platform
        .client()
        .post(platform.url(
            Service::Gateway,
            &format!("/api/payments/{payment_id}/confirm"),
        ))
        .bearer_auth(&patient)
        .header(
            "traceparent",
            format!("00-{payment_trace}-{client_span}-01"),
        )
        .json(&json!({"payment_method": "pm_card_visa"}))
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), StatusCode::OK);

    let authorized = PaymentAuthorizedV1::TYPE;
    let appointment_paid = AppointmentPaidV1::TYPE;
    let (chain, spans) = spans_of(
        &collector,
        payment_trace,
        &[
            ("gateway", "POST /api/payments"),
            ("payments", "POST /api/payments/{id}/confirm"),
            ("payments", &format!("publish {authorized}")),
            (
                "appointments",
                &format!("appointments-payments {authorized}"),
            ),
            ("appointments", &format!("publish {appointment_paid}")),
            (
                "notifications",
                &format!("notifications-mail {appointment_paid}"),
            ),
            ("notifications", "send email (smtp)"),
        ],
    )
    .await;
    let [
        gateway,
        confirm,
        publish_authorized,
        settle,
        publish_paid,
        mail,
        email,
    ] = &chain[..]
    else {
        unreachable!()
    };
    assert_eq!(gateway.parent_id.as_deref(), Some(client_span));
    assert_child(confirm, gateway);
    assert_child(publish_authorized, confirm);
    assert_child(settle, confirm);
    assert_child(publish_paid, settle);
    assert_child(mail, settle);
    // Notifications looks people up at identity unless it did within ten seconds (the
    // welcome email's lookup may still be fresh); a lookup is a child of the consumer's span.
    for lookup in spans.iter().filter(|span| span.service == "identity") {
        assert_child(lookup, mail);
    }
    assert_child(email, mail);
    assert_eq!(
        [publish_authorized.kind, settle.kind, mail.kind, email.kind],
        [4, 5, 5, 3],
        "producer, consumer, consumer, client"
    );
    assert_connected(&spans, client_span);

    // And the email that ends the trace did arrive: the welcome, then this one.
    eventually("the welcome and the payment's email", || async {
        let to_patient = sink
            .received()
            .iter()
            .filter(|email| email.to.iter().any(|to| to == "traced@patients.example"))
            .count();
        (to_patient == 2).then_some(())
    })
    .await;
    platform.stop().await.unwrap();
}

#[tokio::test]
async fn one_trace_follows_a_booking_and_its_payment_to_the_email_on_the_postgres_bus() {
    one_trace_per_request_from_the_gateway_to_the_email(false).await;
}

#[tokio::test]
async fn one_trace_follows_a_booking_and_its_payment_to_the_email_on_the_kafka_bus() {
    one_trace_per_request_from_the_gateway_to_the_email(true).await;
}

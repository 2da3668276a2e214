//! Distributed tracing: spans exported over OTLP (HTTP with JSON or protobuf, and gRPC) to
//! collectors started by the test, one trace following a booking from the gateway through
//! appointments and payments, and a payment through the outbox, the bus and the consumers to
//! the email that tells the patient; the W3C baggage travels with it; the sampler follows
//! the caller's decision.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use polyclinic_config::{EmailTransport, LogConfig, LogFormat};
use polyclinic_contracts::Event;
use polyclinic_contracts::appointments::{AppointmentPaidV1, AppointmentReservedV1};
use polyclinic_contracts::payments::PaymentAuthorizedV1;
use polyclinic_telemetry::{OtlpSettings, Protocol};
use polyclinic_testing::{Service, SmtpSink, TestPlatform, eventually, use_kafka};
use prost::Message;
use serde_json::{Value, json};

/// One exported span, as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    /// The string attributes of the span's resource.
    resource: HashMap<String, String>,
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

/// What every request to the collector must carry, from the settings' headers.
const KEY: (&str, &str) = ("x-collector-key", "clinic");

/// An OTLP/HTTP receiver: `POST /v1/traces` with an `ExportTraceServiceRequest`, in JSON
/// (read here by hand, as the OTLP specification writes it) or protobuf.
async fn receive(
    State(collector): State<Collector>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let refuse = |why: String| {
        collector.refused.lock().unwrap().push(why);
        StatusCode::BAD_REQUEST
    };
    if headers.get(KEY.0).and_then(|v| v.to_str().ok()) != Some(KEY.1) {
        return refuse("no x-collector-key from the settings' headers".to_owned());
    }
    match headers.get("content-type").and_then(|v| v.to_str().ok()) {
        Some("application/json") => match serde_json::from_slice(&body) {
            Ok(request) => collector.record_json(&request),
            Err(err) => return refuse(format!("not JSON: {err}")),
        },
        Some("application/x-protobuf") => match ExportTraceServiceRequest::decode(body) {
            Ok(request) => collector.record(request),
            Err(err) => return refuse(format!("not an ExportTraceServiceRequest: {err}")),
        },
        other => return refuse(format!("content-type {other:?}")),
    }
    StatusCode::OK
}

/// The OTLP/gRPC receiver.
#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if request.metadata().get(KEY.0).and_then(|v| v.to_str().ok()) != Some(KEY.1) {
            self.refused
                .lock()
                .unwrap()
                .push("no x-collector-key in the gRPC metadata".to_owned());
            return Err(tonic::Status::unauthenticated("no key"));
        }
        self.record(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Collector {
    fn record_json(&self, request: &Value) {
        let mut spans = self.spans.lock().unwrap();
        for resource in request["resourceSpans"].as_array().into_iter().flatten() {
            let attributes: HashMap<String, String> = resource["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|attribute| {
                    Some((
                        attribute["key"].as_str()?.to_owned(),
                        attribute["value"]["stringValue"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
                    spans.push(Received {
                        service: attributes.get("service.name").cloned().unwrap_or_default(),
                        resource: attributes.clone(),
                        trace_id: text("traceId").to_lowercase(),
                        span_id: text("spanId").to_lowercase(),
                        parent_id: span["parentSpanId"]
                            .as_str()
                            .filter(|id| !id.is_empty())
                            .map(str::to_lowercase),
                        name: text("name"),
                        kind: span["kind"].as_i64().unwrap_or_default(),
                    });
                }
            }
        }
    }

    fn record(&self, request: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.resource_spans {
            let attributes: HashMap<String, String> = resource
                .resource
                .into_iter()
                .flat_map(|resource| resource.attributes)
                .filter_map(|attribute| match attribute.value?.value? {
                    any_value::Value::StringValue(value) => Some((attribute.key, value)),
                    _ => None,
                })
                .collect();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: attributes.get("service.name").cloned().unwrap_or_default(),
                        resource: attributes.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_id: (!span.parent_span_id.is_empty())
                            .then(|| hex(&span.parent_span_id)),
                        name: span.name,
                        kind: i64::from(span.kind),
                    });
                }
            }
        }
    }

    /// A collector for `protocol`, and the endpoint to give the exporter.
    async fn start(protocol: Protocol) -> (Self, String) {
        let collector = Collector::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        match protocol {
            Protocol::HttpJson | Protocol::HttpProtobuf => {
                let app = Router::new()
                    .route("/v1/traces", post(receive))
                    .with_state(collector.clone());
                tokio::spawn(async move { axum::serve(listener, app).await });
                (collector, format!("http://{address}/v1/traces"))
            }
            Protocol::Grpc => {
                let server = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(collector.clone()));
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                tokio::spawn(async move { server.serve_with_incoming(incoming).await });
                (collector, format!("http://{address}"))
            }
        }
    }

    /// Installs this process's tracing, exporting to the collector over `protocol`.
    fn install(endpoint: String, protocol: Protocol) {
        let mut settings = OtlpSettings::new(endpoint, protocol);
        settings.headers = vec![(KEY.0.to_owned(), KEY.1.to_owned())];
        settings.resource = vec![("deployment.environment".to_owned(), "test".to_owned())];
        polyclinic_telemetry::init_with(
            &LogConfig {
                format: LogFormat::Pretty,
                filter: std::env::var("POLYCLINIC_TEST_LOG").unwrap_or_else(|_| "off".into()),
            },
            Some(settings),
        )
        .expect("this test's process has no other subscriber");
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

/// The baggage the patient's client sends; every service passes it on.
const BAGGAGE: &str = "clinic.site=north,app.release=2026.12";

async fn one_trace_per_request_from_the_gateway_to_the_email(kafka: bool, protocol: Protocol) {
    let (collector, endpoint) = Collector::start(protocol).await;
    Collector::install(endpoint, protocol);
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
        .header("baggage", BAGGAGE)
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
    for span in &spans {
        assert_eq!(span.resource["service.namespace"], "polyclinic", "{span:?}");
        assert_eq!(
            span.resource["deployment.environment"], "test",
            "OTEL_RESOURCE_ATTRIBUTES reach every service's resource: {span:?}"
        );
    }
    assert_eq!(
        baggage_of(&platform, "appointments", AppointmentReservedV1::TYPE).await,
        entries(BAGGAGE),
        "the gateway passed the baggage on to appointments, which wrote it in its event"
    );

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
        .header("baggage", BAGGAGE)
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
    assert_eq!(
        baggage_of(&platform, "payments", authorized).await,
        entries(BAGGAGE),
        "from the request to the event payments wrote"
    );
    assert_eq!(
        baggage_of(&platform, "appointments", appointment_paid).await,
        entries(BAGGAGE),
        "from payments' event, through appointments' consumer, to the event it wrote"
    );

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

/// The entries of the baggage of the last `event_type` event in `schema`'s outbox (a
/// baggage is a set: its order is not kept).
async fn baggage_of(platform: &TestPlatform, schema: &str, event_type: &str) -> BTreeSet<String> {
    let pool = sqlx::PgPool::connect(&platform.db().url()).await.unwrap();
    let envelope: Value = sqlx::query_scalar(&format!(
        "select envelope from {schema}.outbox where envelope->>'type' = $1 order by seq desc limit 1"
    ))
    .bind(event_type)
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    entries(
        envelope["baggage"]
            .as_str()
            .unwrap_or_else(|| panic!("no baggage in {envelope}")),
    )
}

fn entries(baggage: &str) -> BTreeSet<String> {
    baggage
        .split(',')
        .map(|entry| entry.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn one_trace_follows_a_booking_and_its_payment_to_the_email_on_the_postgres_bus_over_otlp_http_json()
 {
    one_trace_per_request_from_the_gateway_to_the_email(false, Protocol::HttpJson).await;
}

#[tokio::test]
async fn one_trace_follows_a_booking_and_its_payment_to_the_email_on_the_kafka_bus_over_otlp_grpc()
{
    one_trace_per_request_from_the_gateway_to_the_email(true, Protocol::Grpc).await;
}

#[tokio::test]
async fn spans_go_over_otlp_http_protobuf_and_a_caller_that_does_not_sample_is_followed() {
    let (collector, endpoint) = Collector::start(Protocol::HttpProtobuf).await;
    Collector::install(endpoint, Protocol::HttpProtobuf);
    let platform = TestPlatform::start(&[
        Service::Gateway,
        Service::Identity,
        Service::Appointments,
        Service::Payments,
    ])
    .await;
    let clinic = platform.clinic().await;
    let (_, patient) = platform.register_patient("sampled@patients.example").await;
    let slots = platform.free_slots(&clinic.doctor_id, None).await;
    let book = |slot: &str, traceparent: String| {
        platform
            .client()
            .post(platform.url(Service::Gateway, "/api/appointments"))
            .bearer_auth(&patient)
            .header("traceparent", traceparent)
            .json(&json!({"doctor_id": clinic.doctor_id, "starts_at": slot}))
            .send()
    };
    // The caller decided not to sample this trace: the default sampler
    // (parentbased_always_on) follows it, so none of its spans are exported...
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    let answer = book(&slots[1], format!("00-{unsampled}-00f067aa0ba902b7-00"))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    // ...while this one, sent after it, is.
    let sampled = "6bf92f3577b34da6a3ce929d0e0e4736";
    let answer = book(&slots[3], format!("00-{sampled}-00f067aa0ba902b7-01"))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::CREATED);
    let (booking, _) = spans_of(
        &collector,
        sampled,
        &[
            ("gateway", "POST /api/appointments"),
            ("appointments", "POST /api/appointments"),
            ("payments", "POST /api/payments"),
        ],
    )
    .await;
    assert_child(&booking[1], &booking[0]);
    assert_child(&booking[2], &booking[1]);
    // Spans are exported in the order they end; the sampled trace's arrived, so the
    // unsampled one's would have.
    assert_eq!(collector.trace(unsampled).len(), 0);
    platform.stop().await.unwrap();
}

//! Distributed tracing: `tracing` spans exported over OTLP/HTTP (JSON encoding), with the
//! W3C `traceparent` carried between services.
//!
//! The exporter is switched on by the standard variables: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! (the full URL) or `OTEL_EXPORTER_OTLP_ENDPOINT` (the collector's base URL; `/v1/traces` is
//! appended), `OTEL_EXPORTER_OTLP_HEADERS` (`name=value,...`, for a collector that wants a
//! key) and `OTEL_SERVICE_NAME` (spans that name no service of their own). Only the
//! `http/json` protocol is spoken; Jaeger, Tempo and the OpenTelemetry Collector accept it on
//! port 4318.
//!
//! Every span that the exporter sees gets a trace id and a span id when it is created: from
//! its parent span in this process, from a remote parent set with [`adopt`] (the caller's
//! `traceparent` header, or the one an event carries), or a new trace. [`traceparent_of`]
//! gives the header that makes the next hop a child of a span. Finished spans are batched
//! on a thread of their own and posted; when the collector is away they are dropped, and a
//! full queue drops new ones rather than block a request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tracing::span::{Attributes, Id, Record};
use tracing::{Span, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// The URL spans are posted to, `.../v1/traces`.
    pub endpoint: String,
    /// Extra request headers, such as an API key.
    pub headers: Vec<(String, String)>,
    /// `service.name` of spans that do not name a service.
    pub service_name: String,
}

impl OtlpSettings {
    /// The settings the standard `OTEL_*` variables describe, or `None` when no endpoint
    /// is set (tracing off).
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Option<Self> {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .collect();
        let endpoint = match vars.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(full) => full.trim().to_owned(),
            None => {
                let base = vars.get("OTEL_EXPORTER_OTLP_ENDPOINT")?;
                format!("{}/v1/traces", base.trim().trim_end_matches('/'))
            }
        };
        let headers = vars
            .get("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|list| {
                list.split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Some(Self {
            endpoint,
            headers,
            service_name: vars
                .get("OTEL_SERVICE_NAME")
                .cloned()
                .unwrap_or_else(|| "polyclinic".to_owned()),
        })
    }
}

/// What a span is in a trace (OTLP's `SpanKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

/// A W3C trace context: `00-<trace id>-<parent span id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header; anything malformed (or all-zero ids) is `None`, and
    /// the span starts a trace of its own.
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let hex = |text: &str, len: usize| {
            text.len() == len
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        // Version 00 has exactly four parts; later versions may append more.
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = u64::from_str_radix(span, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// How a span appears in a trace, set with [`adopt`] right after the span is created.
#[derive(Debug, Clone, Default)]
pub struct SpanShape<'a> {
    /// The span's name in the trace, such as `POST /api/appointments` (the `tracing` span's
    /// name otherwise).
    pub name: Option<String>,
    pub kind: Option<Kind>,
    /// The service the span belongs to (`service.name`); inherited from the parent span.
    pub service: Option<&'a str>,
    /// A remote parent: the `traceparent` a request or an event carried.
    pub parent: Option<&'a str>,
}

/// Gives `span` its place in a trace; does nothing when tracing is off. Call it before the
/// span has children.
pub fn adopt(span: &Span, shape: SpanShape<'_>) {
    with_state(span, |state| {
        if let Some(parent) = shape.parent.and_then(TraceParent::parse) {
            state.trace_id = parent.trace_id;
            state.parent_id = Some(parent.span_id);
            state.sampled = parent.sampled;
        }
        if let Some(name) = shape.name {
            state.name = name;
        }
        if let Some(kind) = shape.kind {
            state.kind = kind;
        }
        if let Some(service) = shape.service {
            state.service = Some(service.to_owned());
        }
    });
}

/// The `traceparent` that makes a call or an event a child of `span`; `None` when tracing
/// is off.
pub fn traceparent_of(span: &Span) -> Option<String> {
    with_state(span, |state| {
        TraceParent {
            trace_id: state.trace_id,
            span_id: state.span_id,
            sampled: state.sampled,
        }
        .to_string()
    })
}

/// The `traceparent` of the current span; `None` when tracing is off or outside any span.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

fn with_state<T>(span: &Span, f: impl FnOnce(&mut SpanState) -> T) -> Option<T> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<SpanState>().map(f)
    })
    .flatten()
}

/// What the layer keeps of an open span.
#[derive(Debug)]
struct SpanState {
    trace_id: u128,
    span_id: u64,
    parent_id: Option<u64>,
    sampled: bool,
    name: String,
    kind: Kind,
    service: Option<String>,
    start: SystemTime,
    attributes: Vec<(String, Value)>,
    error: Option<String>,
}

/// A finished span on its way to the exporter.
#[derive(Debug)]
struct Finished {
    state: SpanState,
    end: SystemTime,
}

enum Message {
    Span(Box<Finished>),
    Flush(mpsc::Sender<()>),
}

/// The `tracing` layer that gives spans trace context and hands finished ones to the
/// exporter thread.
pub struct OtlpLayer {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Flushes exported spans on [`Exporter::flush`]; the exporter thread runs for the life of
/// the process.
#[derive(Debug, Clone)]
pub struct Exporter {
    queue: SyncSender<Message>,
}

impl Exporter {
    /// Posts every span finished so far; waits up to `timeout`.
    pub fn flush(&self, timeout: Duration) {
        let (done, wait) = mpsc::channel();
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

/// Spans waiting for the exporter; past this, new ones are dropped.
const QUEUE: usize = 16_384;
/// Spans per request to the collector.
const BATCH: usize = 512;
/// How long a span waits at most for its batch to fill.
const LINGER: Duration = Duration::from_millis(500);

/// The layer and the handle of its exporter thread, posting to `settings.endpoint`.
pub fn layer(settings: OtlpSettings) -> std::io::Result<(OtlpLayer, Exporter)> {
    let (queue, receiver) = mpsc::sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let counted = dropped.clone();
    std::thread::Builder::new()
        .name("otlp-exporter".to_owned())
        .spawn(move || export_loop(&settings, &receiver, &counted))?;
    Ok((
        OtlpLayer {
            queue: queue.clone(),
            dropped,
        },
        Exporter { queue },
    ))
}

fn random_u128() -> u128 {
    loop {
        let id = uuid::Uuid::new_v4().as_u128();
        if id != 0 {
            return id;
        }
    }
}

fn random_u64() -> u64 {
    loop {
        let id = (uuid::Uuid::new_v4().as_u128() >> 64) as u64;
        if id != 0 {
            return id;
        }
    }
}

/// Collects a span's fields as OTLP attributes.
struct Fields<'a> {
    attributes: &'a mut Vec<(String, Value)>,
    error: &'a mut Option<String>,
}

impl Fields<'_> {
    fn put(&mut self, name: &str, value: Value) {
        if name == "error" {
            *self.error = Some(match &value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            });
        }
        match self.attributes.iter_mut().find(|(key, _)| key == name) {
            Some((_, existing)) => *existing = value,
            None => self.attributes.push((name.to_owned(), value)),
        }
    }
}

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field.name(), Value::from(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(field.name(), Value::from(value));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.put(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(field.name(), Value::from(value));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), Value::from(format!("{value:?}")));
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let inherited = span.parent().and_then(|parent| {
            parent.extensions().get::<SpanState>().map(|state| {
                (
                    state.trace_id,
                    state.span_id,
                    state.sampled,
                    state.service.clone(),
                )
            })
        });
        let (trace_id, parent_id, sampled, service) = match inherited {
            Some((trace_id, parent, sampled, service)) => {
                (trace_id, Some(parent), sampled, service)
            }
            None => (random_u128(), None, true, None),
        };
        let mut state = SpanState {
            trace_id,
            span_id: random_u64(),
            parent_id,
            sampled,
            name: span.name().to_owned(),
            kind: Kind::Internal,
            service,
            start: SystemTime::now(),
            attributes: Vec::new(),
            error: None,
        };
        attrs.record(&mut Fields {
            attributes: &mut state.attributes,
            error: &mut state.error,
        });
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>() {
            values.record(&mut Fields {
                attributes: &mut state.attributes,
                error: &mut state.error,
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(state) = span.extensions_mut().remove::<SpanState>() else {
            return;
        };
        if !state.sampled {
            return;
        }
        let finished = Box::new(Finished {
            state,
            end: SystemTime::now(),
        });
        if let Err(TrySendError::Full(_)) = self.queue.try_send(Message::Span(finished)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn export_loop(settings: &OtlpSettings, receiver: &Receiver<Message>, dropped: &AtomicU64) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("polyclinic: the span exporter could not start: {err}");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            eprintln!("polyclinic: the span exporter could not start: {err}");
            return;
        }
    };
    let mut batch: Vec<Finished> = Vec::new();
    let mut since: Option<Instant> = None;
    loop {
        let wait = since.map_or(LINGER, |at| LINGER.saturating_sub(at.elapsed()));
        let mut flushed = None;
        match receiver.recv_timeout(wait) {
            Ok(Message::Span(span)) => {
                batch.push(*span);
                since.get_or_insert_with(Instant::now);
            }
            Ok(Message::Flush(done)) => flushed = Some(done),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                runtime.block_on(post(&client, settings, &batch));
                return;
            }
        }
        let due = since.is_some_and(|at| at.elapsed() >= LINGER);
        if !batch.is_empty() && (due || flushed.is_some() || batch.len() >= BATCH) {
            runtime.block_on(post(&client, settings, &batch));
            batch.clear();
            since = None;
            let lost = dropped.swap(0, Ordering::Relaxed);
            if lost > 0 {
                tracing::warn!(spans = lost, "spans dropped: the export queue was full");
            }
        }
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

async fn post(client: &reqwest::Client, settings: &OtlpSettings, spans: &[Finished]) {
    if spans.is_empty() {
        return;
    }
    let mut request = client
        .post(&settings.endpoint)
        .header("content-type", "application/json")
        .body(encode(spans, &settings.service_name).to_string());
    for (name, value) in &settings.headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(answer) if answer.status().is_success() => {}
        Ok(answer) => {
            tracing::warn!(status = answer.status().as_u16(), endpoint = %settings.endpoint, spans = spans.len(), "the trace collector refused spans")
        }
        Err(err) => {
            tracing::warn!(error = %err, endpoint = %settings.endpoint, spans = spans.len(), "exporting spans failed")
        }
    }
}

fn nanos(at: SystemTime) -> String {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
        .to_string()
}

fn attribute(key: &str, value: &Value) -> Value {
    let value = match value {
        Value::Bool(flag) => json!({ "boolValue": flag }),
        Value::Number(number) if number.is_i64() || number.is_u64() => {
            json!({ "intValue": number.to_string() })
        }
        Value::Number(number) => json!({ "doubleValue": number.as_f64() }),
        Value::String(text) => json!({ "stringValue": text }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": value })
}

/// An OTLP `ExportTraceServiceRequest` in its JSON encoding: one resource per service.
fn encode(spans: &[Finished], default_service: &str) -> Value {
    let mut by_service: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for span in spans {
        let state = &span.state;
        let mut encoded = json!({
            "traceId": format!("{:032x}", state.trace_id),
            "spanId": format!("{:016x}", state.span_id),
            "name": state.name,
            "kind": state.kind as i32,
            "startTimeUnixNano": nanos(state.start),
            "endTimeUnixNano": nanos(span.end),
            "attributes": state.attributes.iter().map(|(key, value)| attribute(key, value)).collect::<Vec<_>>(),
            "status": match &state.error {
                Some(message) => json!({ "code": 2, "message": message }),
                None => json!({ "code": 0 }),
            },
        });
        if let Some(parent) = state.parent_id {
            encoded["parentSpanId"] = Value::from(format!("{parent:016x}"));
        }
        by_service
            .entry(state.service.as_deref().unwrap_or(default_service))
            .or_default()
            .push(encoded);
    }
    let resource_spans: Vec<Value> = by_service
        .into_iter()
        .map(|(service, spans)| {
            json!({
                "resource": { "attributes": [
                    attribute("service.name", &Value::from(service)),
                    attribute("service.namespace", &Value::from("polyclinic")),
                    attribute("service.version", &Value::from(env!("CARGO_PKG_VERSION"))),
                ]},
                "scopeSpans": [{
                    "scope": { "name": "polyclinic", "version": env!("CARGO_PKG_VERSION") },
                    "spans": spans,
                }],
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_standard_variables_choose_the_endpoint_and_no_endpoint_means_no_export() {
        assert_eq!(OtlpSettings::from_env(vars(&[("PATH", "/bin")])), None);
        let base = OtlpSettings::from_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=secret, tenant = clinic",
            ),
        ]))
        .unwrap();
        assert_eq!(base.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(base.service_name, "polyclinic");
        assert_eq!(
            base.headers,
            vec![
                ("x-api-key".to_owned(), "secret".to_owned()),
                ("tenant".to_owned(), "clinic".to_owned())
            ]
        );
        let full = OtlpSettings::from_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://tempo:4318/otlp/v1/traces",
            ),
            ("OTEL_SERVICE_NAME", "clinic-north"),
        ]))
        .unwrap();
        assert_eq!(full.endpoint, "http://tempo:4318/otlp/v1/traces");
        assert_eq!(full.service_name, "clinic-north");
    }

    #[test]
    fn a_traceparent_round_trips_and_malformed_ones_are_refused() {
        let header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parsed = TraceParent::parse(header).unwrap();
        assert_eq!(parsed.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(parsed.span_id, 0xb7ad6b7169203331);
        assert!(parsed.sampled);
        assert_eq!(parsed.to_string(), header);
        assert!(
            !TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
                .unwrap()
                .sampled
        );
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn spans_are_encoded_as_otlp_json_grouped_by_service() {
        let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let span = |service: Option<&str>, parent| Finished {
            state: SpanState {
                trace_id: 1,
                span_id: 2,
                parent_id: parent,
                sampled: true,
                name: "POST /api/appointments".to_owned(),
                kind: Kind::Server,
                service: service.map(str::to_owned),
                start,
                attributes: vec![
                    ("status".to_owned(), Value::from(201)),
                    ("route".to_owned(), Value::from("/api/appointments")),
                ],
                error: None,
            },
            end: start + Duration::from_millis(3),
        };
        let encoded = encode(
            &[span(Some("gateway"), None), span(None, Some(7))],
            "polyclinic",
        );
        let resources = encoded["resourceSpans"].as_array().unwrap();
        assert_eq!(resources.len(), 2);
        assert_eq!(
            resources[0]["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "gateway"}})
        );
        let gateway = &resources[0]["scopeSpans"][0]["spans"][0];
        assert_eq!(gateway["traceId"], "00000000000000000000000000000001");
        assert_eq!(gateway["spanId"], "0000000000000002");
        assert_eq!(gateway["kind"], 2);
        assert_eq!(gateway["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(gateway["endTimeUnixNano"], "1700000000003000000");
        assert_eq!(gateway.get("parentSpanId"), None);
        assert_eq!(
            gateway["attributes"][0],
            json!({"key": "status", "value": {"intValue": "201"}})
        );
        let other = &resources[1]["scopeSpans"][0]["spans"][0];
        assert_eq!(
            resources[1]["resource"]["attributes"][0]["value"]["stringValue"],
            "polyclinic"
        );
        assert_eq!(other["parentSpanId"], "0000000000000007");
    }
}

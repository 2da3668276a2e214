//! Distributed tracing through OpenTelemetry's own crates: `tracing` spans become
//! OpenTelemetry spans (`tracing-opentelemetry`), sampled and batched by the SDK
//! (`opentelemetry_sdk`) and exported over OTLP (`opentelemetry-otlp`): HTTP with protobuf
//! or JSON, or gRPC. The W3C trace context (`traceparent`, `tracestate`) and baggage travel
//! between services in HTTP headers and in every event's envelope.
//!
//! Export is configured by the standard variables ([`OtlpSettings::from_env`]). What is our
//! own here is the one thing the SDK has no notion of: one process (`polyclinic all`) runs
//! several services, and each span must reach the collector under its own service's
//! `service.name`. A span is given its service with [`continue_trace`]; its children
//! inherit it through the OpenTelemetry context; [`ServiceProcessor`] writes it on each
//! span as it starts, and [`ServiceExporter`] sends each service's spans under a resource of
//! its own (the process's resource with that `service.name`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How spans travel to the collector (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `grpc`: OTLP/gRPC, the collector's port 4317.
    Grpc,
    /// `http/protobuf` (the standard's default): OTLP/HTTP, port 4318.
    HttpProtobuf,
    /// `http/json`: OTLP/HTTP with the JSON encoding, port 4318.
    HttpJson,
}

impl Protocol {
    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "grpc" => Some(Self::Grpc),
            "http/protobuf" => Some(Self::HttpProtobuf),
            "http/json" => Some(Self::HttpJson),
            _ => None,
        }
    }
}

/// Which spans are kept (`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SamplerSetting {
    AlwaysOn,
    AlwaysOff,
    /// Keeps this fraction of traces, chosen by trace id.
    TraceIdRatio(f64),
    /// Follows the caller's decision (the `sampled` flag of its `traceparent`) and applies
    /// the inner rule to traces that start here. The standard's default is
    /// `ParentBased(AlwaysOn)`.
    ParentBased(ParentRoot),
}

/// The rule a parent-based sampler applies to traces that start here.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParentRoot {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
}

impl SamplerSetting {
    fn sampler(self) -> Sampler {
        match self {
            Self::AlwaysOn => Sampler::AlwaysOn,
            Self::AlwaysOff => Sampler::AlwaysOff,
            Self::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
            Self::ParentBased(root) => Sampler::ParentBased(Box::new(match root {
                ParentRoot::AlwaysOn => Sampler::AlwaysOn,
                ParentRoot::AlwaysOff => Sampler::AlwaysOff,
                ParentRoot::TraceIdRatio(ratio) => Sampler::TraceIdRatioBased(ratio),
            })),
        }
    }
}

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// The collector: for HTTP the full URL spans are posted to (`.../v1/traces`), for gRPC
    /// the server's address.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Extra request headers (gRPC metadata), such as an API key.
    pub headers: Vec<(String, String)>,
    /// How long one export may take.
    pub timeout: Duration,
    /// `service.name` of spans that belong to no Polyclinic service.
    pub service_name: String,
    /// Further resource attributes of every span (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource: Vec<(String, String)>,
    pub sampler: SamplerSetting,
    /// Values that were not understood, and what was used instead; logged once tracing is
    /// up.
    pub warnings: Vec<String>,
}

impl OtlpSettings {
    /// Settings for `endpoint` with the standard's defaults otherwise.
    pub fn new(endpoint: impl Into<String>, protocol: Protocol) -> Self {
        Self {
            endpoint: endpoint.into(),
            protocol,
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            service_name: "polyclinic".to_owned(),
            resource: Vec::new(),
            sampler: SamplerSetting::ParentBased(ParentRoot::AlwaysOn),
            warnings: Vec::new(),
        }
    }

    /// The settings the standard `OTEL_*` variables describe, or `None` when spans are not
    /// exported: no endpoint is set (and `OTEL_TRACES_EXPORTER` does not ask for `otlp`),
    /// `OTEL_TRACES_EXPORTER=none`, or `OTEL_SDK_DISABLED=true`.
    ///
    /// The signal-specific variables (`OTEL_EXPORTER_OTLP_TRACES_*`) win over the general
    /// ones. An HTTP endpoint from `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended;
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as it is.
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Option<Self> {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| (name, value.trim().to_owned()))
            .collect();
        let var = |name: &str| vars.get(name).map(String::as_str);
        let traces_or = |specific: &str, general: &str| var(specific).or_else(|| var(general));
        if var("OTEL_SDK_DISABLED").is_some_and(|flag| flag.eq_ignore_ascii_case("true")) {
            return None;
        }
        let mut warnings = Vec::new();
        let asked = match var("OTEL_TRACES_EXPORTER") {
            None => false,
            Some("none") => return None,
            Some("otlp") => true,
            Some(other) => {
                warnings.push(format!(
                    "OTEL_TRACES_EXPORTER={other} is not supported; spans are exported over OTLP"
                ));
                false
            }
        };
        let protocol = match traces_or(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ) {
            None => Protocol::HttpProtobuf,
            Some(text) => Protocol::parse(text).unwrap_or_else(|| {
                warnings.push(format!(
                    "OTLP protocol {text:?} is not one of grpc, http/protobuf, http/json; using http/protobuf"
                ));
                Protocol::HttpProtobuf
            }),
        };
        let endpoint = match (
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(full), _) => full.to_owned(),
            (None, Some(base)) if protocol == Protocol::Grpc => base.to_owned(),
            (None, Some(base)) => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None) if asked && protocol == Protocol::Grpc => {
                "http://localhost:4317".to_owned()
            }
            (None, None) if asked => "http://localhost:4318/v1/traces".to_owned(),
            (None, None) => return None,
        };
        let mut settings = Self::new(endpoint, protocol);
        settings.headers = traces_or(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
        )
        .map(key_values)
        .unwrap_or_default();
        if let Some(text) = traces_or(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "OTEL_EXPORTER_OTLP_TIMEOUT",
        ) {
            match text.parse::<u64>() {
                Ok(millis) => settings.timeout = Duration::from_millis(millis),
                Err(_) => warnings.push(format!(
                    "OTLP timeout {text:?} is not a number of milliseconds; using 10000"
                )),
            }
        }
        settings.resource = var("OTEL_RESOURCE_ATTRIBUTES")
            .map(key_values)
            .unwrap_or_default();
        let named = settings
            .resource
            .iter()
            .find(|(key, _)| key == "service.name")
            .map(|(_, value)| value.as_str());
        if let Some(name) = var("OTEL_SERVICE_NAME").or(named) {
            settings.service_name = name.to_owned();
        }
        let argument = var("OTEL_TRACES_SAMPLER_ARG");
        if let Some(name) = var("OTEL_TRACES_SAMPLER") {
            match parse_sampler(name, argument) {
                Ok(sampler) => settings.sampler = sampler,
                Err(why) => warnings.push(why),
            }
        }
        settings.warnings = warnings;
        Some(settings)
    }
}

/// `key=value,...` as the standard writes headers and resource attributes (values
/// percent-encoded).
fn key_values(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), percent_decode(value.trim())))
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let escaped = (bytes[at] == b'%')
            .then(|| text.get(at + 1..at + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                at += 3;
            }
            None => {
                decoded.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

fn parse_sampler(name: &str, argument: Option<&str>) -> Result<SamplerSetting, String> {
    let ratio = || {
        match argument {
        None => Ok(1.0),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .ok_or_else(|| {
                format!("OTEL_TRACES_SAMPLER_ARG={text} is not a ratio from 0 to 1; sampling every trace")
            }),
    }
    };
    Ok(match name {
        "always_on" => SamplerSetting::AlwaysOn,
        "always_off" => SamplerSetting::AlwaysOff,
        "traceidratio" => SamplerSetting::TraceIdRatio(ratio()?),
        "parentbased_always_on" => SamplerSetting::ParentBased(ParentRoot::AlwaysOn),
        "parentbased_always_off" => SamplerSetting::ParentBased(ParentRoot::AlwaysOff),
        "parentbased_traceidratio" => {
            SamplerSetting::ParentBased(ParentRoot::TraceIdRatio(ratio()?))
        }
        other => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER={other} is not supported; using parentbased_always_on"
            ));
        }
    })
}

/// The W3C headers that carry a trace: `traceparent`, `tracestate` and `baggage`, as a
/// request or an event brought them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub baggage: Option<String>,
}

/// The names of the headers a [`TraceContext`] travels in.
pub const TRACE_HEADERS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

impl TraceContext {
    /// The context a request's headers carry.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        TraceHeaders::of(headers).to_owned()
    }

    /// The context that makes the next hop (a call, an event) a child of `span`, with the
    /// baggage the span's trace carries; `None` when spans are not exported.
    pub fn of(span: &Span) -> Option<Self> {
        if !exporting() {
            return None;
        }
        let context = span.context();
        let mut carrier = Self::default();
        propagator().inject_context(&context, &mut carrier);
        carrier.traceparent.is_some().then_some(carrier)
    }

    /// [`TraceContext::of`] the current span.
    pub fn current() -> Option<Self> {
        Self::of(&Span::current())
    }

    /// Borrowed, for a [`TraceHeaders`] field.
    pub fn as_headers(&self) -> TraceHeaders<'_> {
        TraceHeaders {
            traceparent: self.traceparent.as_deref(),
            tracestate: self.tracestate.as_deref(),
            baggage: self.baggage.as_deref(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_headers().is_empty()
    }
}

impl Injector for TraceContext {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = Some(value),
            "tracestate" => self.tracestate = Some(value),
            "baggage" => self.baggage = Some(value),
            _ => {}
        }
    }
}

/// A [`TraceContext`] borrowed from the headers of a request (what a service passes on to
/// the services it calls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TraceHeaders<'a> {
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
    pub baggage: Option<&'a str>,
}

impl<'a> TraceHeaders<'a> {
    pub fn of(headers: &'a http::HeaderMap) -> Self {
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
        Self {
            traceparent: header("traceparent"),
            tracestate: header("tracestate"),
            baggage: header("baggage"),
        }
    }

    /// `(name, value)` of each header present.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &'a str)> + use<'a> {
        TRACE_HEADERS
            .into_iter()
            .zip([self.traceparent, self.tracestate, self.baggage])
            .filter_map(|(name, value)| Some((name, value?)))
    }

    pub fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }

    pub fn to_owned(&self) -> TraceContext {
        TraceContext {
            traceparent: self.traceparent.map(str::to_owned),
            tracestate: self.tracestate.map(str::to_owned),
            baggage: self.baggage.map(str::to_owned),
        }
    }
}

impl Extractor for TraceHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            "baggage" => self.baggage,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.pairs().map(|(name, _)| name).collect()
    }
}

/// The Polyclinic service a span belongs to, carried in the OpenTelemetry context so that
/// a span's children belong to it too.
#[derive(Debug, Clone)]
struct ServiceName(Arc<str>);

/// The span attribute that tells [`ServiceExporter`] a span's service; never exported.
const SERVICE_KEY: &str = "polyclinic.service";

/// Makes `span` part of `service` and, when `parent` carries a trace context (a request's
/// headers, an event's envelope), of the caller's trace, with the caller's baggage; without
/// one it stays in the current trace. Call it right after the span is created, before it
/// has children. Does nothing when spans are not exported.
pub fn continue_trace(span: &Span, service: &str, parent: TraceHeaders<'_>) {
    if !exporting() {
        return;
    }
    let context = if parent.is_empty() {
        Context::current()
    } else {
        propagator().extract(&parent)
    };
    // The span has just been created, so it has no children and can take a parent.
    let _ = span.set_parent(context.with_value(ServiceName(Arc::from(service))));
}

static EXPORTING: OnceLock<()> = OnceLock::new();

fn exporting() -> bool {
    EXPORTING.get().is_some()
}

fn propagator() -> &'static TextMapCompositePropagator {
    static PROPAGATOR: OnceLock<TextMapCompositePropagator> = OnceLock::new();
    PROPAGATOR.get_or_init(|| {
        TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ])
    })
}

/// Writes each span's service on it as it starts (from its context: [`continue_trace`] or
/// its parent), and turns an `error` field into the span's error status; then hands it to
/// the batching processor.
#[derive(Debug)]
struct ServiceProcessor<P> {
    inner: P,
}

impl<P: SpanProcessor> SpanProcessor for ServiceProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        if let Some(ServiceName(service)) = cx.get::<ServiceName>() {
            use opentelemetry::trace::Span as _;
            span.set_attribute(KeyValue::new(SERVICE_KEY, service.to_string()));
        }
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if span.status == Status::Unset
            && let Some(error) = span.attributes.iter().find(|kv| kv.key.as_str() == "error")
        {
            span.status = Status::error(error.value.to_string());
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Sends each service's spans under a resource of its own: an OTLP exporter per service,
/// made the first time the service has spans to send.
#[derive(Debug)]
struct ServiceExporter {
    settings: OtlpSettings,
    /// The provider's resource, which each service's copies with its own `service.name`.
    resource: Resource,
    http: Option<reqwest::blocking::Client>,
    exporters: Mutex<HashMap<String, Arc<opentelemetry_otlp::SpanExporter>>>,
}

impl ServiceExporter {
    fn new(settings: OtlpSettings) -> Result<Self, String> {
        let http = match settings.protocol {
            Protocol::Grpc => None,
            // reqwest's blocking client runs a runtime of its own: it is built on a thread
            // outside any async runtime, and shared by every service's exporter.
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let timeout = settings.timeout;
                let built = std::thread::spawn(move || {
                    reqwest::blocking::Client::builder()
                        .timeout(timeout)
                        .build()
                })
                .join()
                .map_err(|_| "the HTTP client could not be built".to_owned())?;
                Some(built.map_err(|err| err.to_string())?)
            }
        };
        let exporter = Self {
            settings,
            resource: Resource::builder_empty().build(),
            http,
            exporters: Mutex::new(HashMap::new()),
        };
        // Fail at start-up, not at the first span, when the settings cannot work.
        exporter.build(&exporter.settings.service_name)?;
        Ok(exporter)
    }

    fn build(&self, service: &str) -> Result<opentelemetry_otlp::SpanExporter, String> {
        let settings = &self.settings;
        let mut exporter = match settings.protocol {
            Protocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (name, value) in &settings.headers {
                    let name = tonic::metadata::MetadataKey::from_bytes(name.as_bytes())
                        .map_err(|_| format!("{name:?} is not a gRPC metadata name"))?;
                    let value = value
                        .parse()
                        .map_err(|_| format!("the value of {name} is not gRPC metadata"))?;
                    metadata.insert(name, value);
                }
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(&settings.endpoint)
                    .with_timeout(settings.timeout)
                    .with_metadata(metadata);
                if settings.endpoint.starts_with("https:") {
                    builder = builder.with_tls_config(
                        tonic::transport::ClientTlsConfig::new().with_webpki_roots(),
                    );
                }
                // tonic's channel lives on a runtime of its own, whatever the caller runs.
                let _entered = grpc_runtime()?.enter();
                builder.build()
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let protocol = if settings.protocol == Protocol::HttpJson {
                    opentelemetry_otlp::Protocol::HttpJson
                } else {
                    opentelemetry_otlp::Protocol::HttpBinary
                };
                let mut builder = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_endpoint(&settings.endpoint)
                    .with_protocol(protocol)
                    .with_timeout(settings.timeout)
                    .with_headers(settings.headers.iter().cloned().collect());
                if let Some(client) = &self.http {
                    builder = builder.with_http_client(client.clone());
                }
                builder.build()
            }
        }
        .map_err(|err| err.to_string())?;
        let attributes = self
            .resource
            .iter()
            .filter(|(key, _)| key.as_str() != "service.name")
            .map(|(key, value)| KeyValue::new(key.clone(), value.clone()));
        exporter.set_resource(
            &Resource::builder_empty()
                .with_attributes(attributes)
                .with_service_name(service.to_owned())
                .build(),
        );
        Ok(exporter)
    }

    fn exporter(&self, service: &str) -> Result<Arc<opentelemetry_otlp::SpanExporter>, String> {
        let mut exporters = self
            .exporters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(exporter) = exporters.get(service) {
            return Ok(exporter.clone());
        }
        let exporter = Arc::new(self.build(service)?);
        exporters.insert(service.to_owned(), exporter.clone());
        Ok(exporter)
    }
}

impl SpanExporter for ServiceExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut by_service: BTreeMap<String, Vec<SpanData>> = BTreeMap::new();
        for mut span in batch {
            let service = match span
                .attributes
                .iter()
                .position(|kv| kv.key.as_str() == SERVICE_KEY)
            {
                Some(at) => match span.attributes.swap_remove(at).value {
                    Value::String(name) => name.to_string(),
                    other => other.to_string(),
                },
                None => self.settings.service_name.clone(),
            };
            by_service.entry(service).or_default().push(span);
        }
        let mut outcome = Ok(());
        for (service, spans) in by_service {
            let sent = match self.exporter(&service) {
                // tonic's calls run on its runtime, not on the batch processor's thread.
                Ok(exporter) if self.settings.protocol == Protocol::Grpc => match grpc_runtime() {
                    Ok(runtime) => runtime
                        .spawn(async move { exporter.export(spans).await })
                        .await
                        .unwrap_or_else(|err| Err(OTelSdkError::InternalFailure(err.to_string()))),
                    Err(why) => Err(OTelSdkError::InternalFailure(why)),
                },
                Ok(exporter) => exporter.export(spans).await,
                Err(why) => Err(OTelSdkError::InternalFailure(why)),
            };
            if let Err(err) = sent {
                outcome = Err(err);
            }
        }
        outcome
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = resource.clone();
        self.exporters
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// The runtime tonic's channels run on: one worker, for the life of the process.
fn grpc_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-grpc")
        .enable_all()
        .build()
        .map_err(|err| format!("the gRPC exporter's runtime could not start: {err}"))?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// The tracer provider spans are exported through; [`Exporter::flush`] before exit.
#[derive(Debug, Clone)]
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Exports every span finished so far.
    pub fn flush(&self) {
        if let Err(err) = self.provider.force_flush() {
            tracing::warn!(error = %err, "the last spans could not be exported");
        }
    }
}

/// Spans waiting for export; past this, new ones are dropped rather than block a request.
const QUEUE: usize = 16_384;
/// Spans per export.
const BATCH: usize = 512;
/// How long a span waits at most for its batch.
const LINGER: Duration = Duration::from_millis(500);

/// The `tracing` layer that turns spans into OpenTelemetry spans exported as `settings`
/// say, and the handle that flushes them. Installs the W3C propagators.
pub fn layer<S>(
    settings: OtlpSettings,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        Exporter,
    ),
    String,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // Ours, then OTEL_RESOURCE_ATTRIBUTES (which may name this deployment's namespace),
    // then the service name.
    let mut attributes: BTreeMap<String, String> = BTreeMap::from([
        ("service.namespace".to_owned(), "polyclinic".to_owned()),
        (
            "service.version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
    ]);
    attributes.extend(settings.resource.iter().cloned());
    attributes.insert("service.name".to_owned(), settings.service_name.clone());
    let resource = Resource::builder_empty()
        .with_attributes(
            attributes
                .into_iter()
                .map(|(key, value)| KeyValue::new(key, value)),
        )
        .build();
    let sampler = settings.sampler.sampler();
    let exporter = ServiceExporter::new(settings)?;
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_max_export_batch_size(BATCH)
                .with_scheduled_delay(LINGER)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ServiceProcessor { inner: batch })
        .with_sampler(sampler)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("polyclinic");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false);
    let _ = EXPORTING.set(());
    Ok((layer, Exporter { provider }))
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
    fn no_endpoint_or_a_disabled_sdk_means_no_export() {
        assert_eq!(OtlpSettings::from_env(vars(&[("PATH", "/bin")])), None);
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318");
        assert_eq!(
            OtlpSettings::from_env(vars(&[endpoint, ("OTEL_SDK_DISABLED", "true")])),
            None
        );
        assert_eq!(
            OtlpSettings::from_env(vars(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])),
            None
        );
        let asked = OtlpSettings::from_env(vars(&[("OTEL_TRACES_EXPORTER", "otlp")])).unwrap();
        assert_eq!(asked.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(asked.protocol, Protocol::HttpProtobuf);
    }

    #[test]
    fn the_standard_variables_choose_endpoint_protocol_headers_and_timeout() {
        let base = OtlpSettings::from_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=secret, tenant = north%20clinic",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]))
        .unwrap();
        assert_eq!(base.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(base.protocol, Protocol::HttpProtobuf);
        assert_eq!(base.timeout, Duration::from_millis(2500));
        assert_eq!(base.service_name, "polyclinic");
        assert_eq!(
            base.headers,
            vec![
                ("x-api-key".to_owned(), "secret".to_owned()),
                ("tenant".to_owned(), "north clinic".to_owned())
            ]
        );
        assert!(base.warnings.is_empty(), "{:?}", base.warnings);

        let full = OtlpSettings::from_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://tempo:4318/otlp/v1/traces",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]))
        .unwrap();
        assert_eq!(full.endpoint, "http://tempo:4318/otlp/v1/traces");
        assert_eq!(full.protocol, Protocol::HttpJson);

        let grpc = OtlpSettings::from_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]))
        .unwrap();
        assert_eq!(grpc.endpoint, "http://collector:4317");
        assert_eq!(grpc.protocol, Protocol::Grpc);
    }

    #[test]
    fn the_service_name_and_resource_attributes_follow_the_standard_precedence() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let attributes = (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=production,service.name=from-attributes",
        );
        let from_attributes = OtlpSettings::from_env(vars(&[endpoint, attributes])).unwrap();
        assert_eq!(from_attributes.service_name, "from-attributes");
        assert_eq!(
            from_attributes.resource[0],
            ("deployment.environment".to_owned(), "production".to_owned())
        );
        let named = OtlpSettings::from_env(vars(&[
            endpoint,
            attributes,
            ("OTEL_SERVICE_NAME", "clinic-north"),
        ]))
        .unwrap();
        assert_eq!(named.service_name, "clinic-north");
    }

    #[test]
    fn the_sampler_variables_are_read_and_bad_values_fall_back_with_a_warning() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let sampler = |name: &str, argument: Option<&str>| {
            let mut list = vec![endpoint, ("OTEL_TRACES_SAMPLER", name)];
            if let Some(argument) = argument {
                list.push(("OTEL_TRACES_SAMPLER_ARG", argument));
            }
            let settings = OtlpSettings::from_env(vars(&list)).unwrap();
            (settings.sampler, settings.warnings.len())
        };
        let default = SamplerSetting::ParentBased(ParentRoot::AlwaysOn);
        assert_eq!(
            OtlpSettings::from_env(vars(&[endpoint])).unwrap().sampler,
            default
        );
        assert_eq!(sampler("always_off", None), (SamplerSetting::AlwaysOff, 0));
        assert_eq!(
            sampler("traceidratio", Some("0.25")),
            (SamplerSetting::TraceIdRatio(0.25), 0)
        );
        assert_eq!(
            sampler("parentbased_traceidratio", None),
            (
                SamplerSetting::ParentBased(ParentRoot::TraceIdRatio(1.0)),
                0
            )
        );
        assert_eq!(
            sampler("parentbased_always_off", None),
            (SamplerSetting::ParentBased(ParentRoot::AlwaysOff), 0)
        );
        assert_eq!(sampler("traceidratio", Some("2")), (default, 1));
        assert_eq!(sampler("jaeger_remote", None), (default, 1));
    }

    #[test]
    fn trace_headers_are_read_from_a_request_and_listed_in_order() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        headers.insert("baggage", "clinic=north".parse().unwrap());
        let trace = TraceHeaders::of(&headers);
        assert_eq!(trace.tracestate, None);
        assert_eq!(
            trace.pairs().collect::<Vec<_>>(),
            vec![
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                ),
                ("baggage", "clinic=north")
            ]
        );
        assert_eq!(trace.to_owned().as_headers(), trace);
        assert!(TraceHeaders::default().is_empty());
    }
}

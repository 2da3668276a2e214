//! Tracing set-up: one function that every Polyclinic process calls once at start-up.
//!
//! Logs are human-readable (`log.format = "pretty"`) or one JSON object per line
//! (`"json"`, for log collectors). Spans carry the request id, so every line a request
//! causes can be found from the `x-request-id` a client saw. With the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also exported over OTLP through
//! OpenTelemetry's crates ([`trace`]).

pub mod trace;

use polyclinic_config::{LogConfig, LogFormat};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use trace::{
    OtlpSettings, ParentRoot, Protocol, SamplerSetting, TRACE_HEADERS, TraceContext, TraceHeaders,
    continue_trace,
};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid configuration value for `log.filter`: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
    #[error("the span exporter could not start: {0}")]
    Exporter(String),
}

/// What [`init`] installed; [`Telemetry::flush`] before exit posts the last spans.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    exporter: Option<trace::Exporter>,
}

impl Telemetry {
    /// Exports the spans finished so far.
    pub fn flush(&self) {
        if let Some(exporter) = &self.exporter {
            exporter.flush();
        }
    }
}

/// Installs the global tracing subscriber described by `log`, exporting spans when the
/// process's `OTEL_*` variables name a collector.
pub fn init(log: &LogConfig) -> Result<Telemetry, TelemetryError> {
    init_with(log, OtlpSettings::from_env(std::env::vars()))
}

/// Like [`init`], with the span export given rather than read from the environment.
pub fn init_with(
    log: &LogConfig,
    mut otlp: Option<OtlpSettings>,
) -> Result<Telemetry, TelemetryError> {
    let filter =
        EnvFilter::try_new(&log.filter).map_err(|err| TelemetryError::Filter(err.to_string()))?;
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match log.format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
    };
    let warnings = otlp
        .as_mut()
        .map(|settings| std::mem::take(&mut settings.warnings))
        .unwrap_or_default();
    let (spans, exporter) = match otlp {
        Some(settings) => {
            let (layer, exporter) = trace::layer(settings).map_err(TelemetryError::Exporter)?;
            // The platform's own spans, whatever the log filter lets through.
            let ours = Targets::new()
                .with_target("polyclinic", LevelFilter::INFO)
                .with_default(LevelFilter::OFF);
            (Some(layer.with_filter(ours)), Some(exporter))
        }
        None => (None, None),
    };
    Registry::default()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(Telemetry { exporter })
}

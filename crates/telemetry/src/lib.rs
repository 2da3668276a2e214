//! Tracing set-up: one function that every Polyclinic process calls once at start-up.
//!
//! Logs are human-readable (`log.format = "pretty"`) or one JSON object per line
//! (`"json"`, for log collectors). Spans carry the request id, so every line a request
//! causes can be found from the `x-request-id` a client saw.

use polyclinic_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid configuration value for `log.filter`: {0}")]
    Filter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global tracing subscriber described by `log`.
pub fn init(log: &LogConfig) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_new(&log.filter).map_err(|err| TelemetryError::Filter(err.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match log.format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInstalled)
}

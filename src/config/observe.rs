//! Observability settings: `[metrics]`, `[log]` and `[tracing]`.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The ops listener serving `/metrics` (HOST:PORT; port 0 picks a free
    /// port). Unset: no listener, and nothing is recorded.
    pub listen: Option<String>,
    /// Studios with their own `studio` label; calls of later studios are
    /// counted under `other`, bounding the series count.
    pub max_studio_labels: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            max_studio_labels: 100,
        }
    }
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines; coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the fields of the enclosing spans.
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// OTLP/gRPC collector endpoint (`http://host:4317`) to export spans to.
    /// Unset: no spans are exported.
    pub otlp_endpoint: Option<String>,
}

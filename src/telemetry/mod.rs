//! Logs and traces: the process-wide `tracing` subscriber the binary
//! installs. Log lines go to stderr as text (coloured only on a terminal)
//! or JSON (`[log] format`); with `[tracing] otlp_endpoint` the same spans
//! are exported over OTLP/gRPC. Each AI call runs in an `ai_call` span
//! carrying request_id, studio_id, user_id and model, so every line logged
//! inside it names them; W3C `traceparent` continues a studio's trace
//! through City (see `propagate`).

pub mod propagate;

use std::io::IsTerminal;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogFormat, TracingConfig};

/// The installed subscriber's exporter; `shutdown` sends the spans still
/// buffered.
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(traces) = self.traces
            && let Err(err) = traces.shutdown()
        {
            eprintln!("warning: exporting the last spans failed: {err}");
        }
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Installs the global subscriber: `RUST_LOG` (default `info`) filters log
/// lines; spans for export are kept whatever the log level.
pub fn init(format: LogFormat, tracing: &TracingConfig) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = log_layer(format).with_filter(filter);
    let (traces, otel) = match &tracing.otlp_endpoint {
        Some(endpoint) => {
            let provider = tracer_provider(endpoint)?;
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("downcity"))
                .with_filter(EnvFilter::new("downcity=info"));
            propagate::install();
            (Some(provider), Some(layer))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Telemetry { traces })
}

fn log_layer(format: LogFormat) -> BoxedLayer {
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Json => layer
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
        // Colours only for a person at a terminal: a file or pipe gets plain text.
        LogFormat::Text => layer.with_ansi(colours_wanted()).boxed(),
    }
}

fn colours_wanted() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("the OTLP exporter for {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name("downcity")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The span of one AI call. Its `model` and GenAI attributes are recorded
/// as admission resolves the model and as the call ends; the prompt and
/// credentials never go in a span.
pub fn call_span(
    operation: &'static str,
    request_id: &str,
    studio_id: &str,
    user_id: &str,
    metadata: &http::HeaderMap,
) -> tracing::Span {
    use tracing::field::Empty;
    let span = tracing::info_span!(
        "ai_call",
        otel.name = operation,
        otel.kind = "server",
        otel.status_code = Empty,
        request_id,
        studio_id,
        user_id,
        model = Empty,
        gen_ai.operation.name = operation,
        gen_ai.system = Empty,
        gen_ai.request.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        rpc.grpc.status_code = Empty,
    );
    propagate::continue_trace(&span, metadata);
    span
}

/// The span of one attempt at an upstream, inside its call's span.
pub fn upstream_span(
    system: &'static str,
    provider_id: &str,
    upstream_model: &str,
) -> tracing::Span {
    tracing::info_span!(
        "upstream",
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        provider_id,
        gen_ai.system = system,
        gen_ai.request.model = upstream_model,
    )
}

//! W3C trace context through City: `traceparent` from a call's gRPC metadata
//! becomes the parent of its `ai_call` span, and the current span's context
//! goes out on upstream provider requests and before_call hooks, and is kept
//! with a call's after_call deliveries, which leave later. All of it is
//! skipped when no trace export is configured.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Set once the OTLP exporter is installed (the process's one subscriber).
static TRACING: AtomicBool = AtomicBool::new(false);

pub(super) fn install() {
    global::set_text_map_propagator(TraceContextPropagator::new());
    TRACING.store(true, Ordering::Relaxed);
}

fn enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

struct Metadata<'a>(&'a http::HeaderMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

struct Headers<'a>(&'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Makes the caller's trace (its `traceparent`, if any) the parent of `span`.
pub fn continue_trace(span: &Span, metadata: &http::HeaderMap) {
    if !enabled() {
        return;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&Metadata(metadata)));
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled (filtered out): nothing to continue.
        let _ = span.set_parent(parent);
    }
}

/// The current span's trace context as headers for an outgoing request.
pub fn trace_headers() -> http::HeaderMap {
    headers_of(&Span::current())
}

/// `span`'s W3C `traceparent`, for a request that leaves later (an
/// after_call delivery); `None` when tracing is off or the span is not traced.
pub fn traceparent(span: &Span) -> Option<String> {
    let headers = headers_of(span);
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    Some(value.to_string())
}

const TRACEPARENT: &str = "traceparent";

fn headers_of(span: &Span) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if enabled() {
        let context = span.context();
        global::get_text_map_propagator(|p| p.inject_context(&context, &mut Headers(&mut headers)));
    }
    headers
}

//! Prometheus metrics: one explicit registry per City (no globals), the
//! series City exports, and the ops listener serving `/metrics`.
//!
//! Recording is off unless `[metrics] listen` is set: every record method
//! then returns at once, so a City without metrics pays one branch per call.
//! `downcity_ai_calls_total` counts each AI call that passed auth once, by
//! the gRPC code it ended with: answered (`OK`), refused before any upstream
//! (invalid input, unknown model, over quota, denied by a hook), or failed.
//! Calls refused by auth itself (UNAUTHENTICATED) have no studio to label
//! and are counted only in `downcity_grpc_requests_total`.

mod grpc;
mod labels;
mod serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

pub use grpc::GrpcMetricsLayer;
pub use labels::code_name;
use labels::*;
pub use serve::MetricsListener;

use crate::error::Error;

/// Distinct model and provider label values kept before folding into `other`
/// (both come from the catalog, so this is only a safety net).
const MAX_CATALOG_LABELS: usize = 1000;

/// A histogram family whose buckets are fixed at construction.
#[derive(Clone)]
struct Buckets {
    start: f64,
    count: u16,
}

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(exponential_buckets(self.start, 2.0, self.count))
    }
}

/// Seconds from 5 ms to about 40 s.
const CALL_SECONDS: Buckets = Buckets {
    start: 0.005,
    count: 14,
};

type Counters<L> = Family<L, Counter<u64, AtomicU64>>;
type Histograms<L> = Family<L, Histogram, Buckets>;

/// What a call that reached its guard ended with, as the metrics see it.
pub struct CallRecord<'a> {
    pub studio: &'a str,
    pub model: &'a str,
    pub pathway: &'static str,
    pub code: tonic::Code,
    pub latency: Duration,
    pub ttft: Option<Duration>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_micros: i64,
}

pub struct Metrics {
    enabled: bool,
    registry: Registry,
    studios: BoundedValues,
    models: BoundedValues,
    providers: BoundedValues,
    calls: Counters<CallLabels>,
    call_seconds: Histograms<ModelLabels>,
    ttft_seconds: Histograms<ModelLabels>,
    input_tokens: Counters<StudioModelLabels>,
    output_tokens: Counters<StudioModelLabels>,
    cost_micros: Counters<StudioModelLabels>,
    in_flight: Gauge<i64, AtomicI64>,
    streams_open: Gauge<i64, AtomicI64>,
    quota_rejections: Counters<QuotaLabels>,
    usage_queue_depth: Gauge<i64, AtomicI64>,
    usage_batch_rows: Histogram,
    usage_commit_seconds: Histogram,
    hook_deliveries: Counters<StateLabels>,
    before_call_seconds: Histogram,
    provider_errors: Counters<ProviderLabels>,
    grpc_requests: Counters<GrpcLabels>,
}

impl Metrics {
    /// Metrics that are recorded (for a City serving `/metrics`), with per-studio
    /// labels for the first `max_studio_labels` studios seen.
    pub fn enabled(max_studio_labels: usize) -> Arc<Metrics> {
        Arc::new(Self::build(true, max_studio_labels))
    }

    /// Metrics that record nothing.
    pub fn disabled() -> Arc<Metrics> {
        Arc::new(Self::build(false, 0))
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn build(enabled: bool, max_studio_labels: usize) -> Metrics {
        let mut registry = Registry::with_prefix("downcity");
        let calls = Counters::<CallLabels>::default();
        let call_seconds = Family::new_with_constructor(CALL_SECONDS);
        let ttft_seconds = Family::new_with_constructor(CALL_SECONDS);
        let input_tokens = Counters::<StudioModelLabels>::default();
        let output_tokens = Counters::<StudioModelLabels>::default();
        let cost_micros = Counters::<StudioModelLabels>::default();
        let in_flight = Gauge::default();
        let streams_open = Gauge::default();
        let quota_rejections = Counters::<QuotaLabels>::default();
        let usage_queue_depth = Gauge::default();
        let usage_batch_rows = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let usage_commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let hook_deliveries = Counters::<StateLabels>::default();
        // Every outcome is a series from the start: zero, not absent.
        for state in ["delivered", "retry", "dead"] {
            let _ = hook_deliveries.get_or_create(&StateLabels { state });
        }
        let before_call_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let provider_errors = Counters::<ProviderLabels>::default();
        let grpc_requests = Counters::<GrpcLabels>::default();
        let r = &mut registry;
        r.register(
            "ai_calls",
            "AI calls that passed auth, by studio, model, pathway and gRPC code",
            calls.clone(),
        );
        r.register(
            "ai_call_duration_seconds",
            "AI call latency, admission to last byte",
            call_seconds.clone(),
        );
        r.register(
            "ai_time_to_first_token_seconds",
            "Time from admission to the first relayed stream piece",
            ttft_seconds.clone(),
        );
        r.register("ai_input_tokens", "Input tokens used", input_tokens.clone());
        r.register(
            "ai_output_tokens",
            "Output tokens used",
            output_tokens.clone(),
        );
        r.register(
            "ai_cost_micros",
            "Cost in micro-units of the catalog's currency",
            cost_micros.clone(),
        );
        r.register(
            "ai_calls_in_flight",
            "Admitted AI calls not yet settled",
            in_flight.clone(),
        );
        r.register(
            "ai_streams_open",
            "Streams being relayed",
            streams_open.clone(),
        );
        r.register(
            "quota_rejections",
            "Calls refused by a limit, by scope, limit and window",
            quota_rejections.clone(),
        );
        r.register(
            "usage_queue_depth",
            "Usage rows queued for the writer",
            usage_queue_depth.clone(),
        );
        r.register(
            "usage_batch_rows",
            "Rows per usage commit",
            usage_batch_rows.clone(),
        );
        r.register(
            "usage_commit_duration_seconds",
            "Time to commit one usage batch",
            usage_commit_seconds.clone(),
        );
        r.register(
            "hook_deliveries",
            "after_call delivery attempts, by outcome (delivered, retry, dead)",
            hook_deliveries.clone(),
        );
        r.register(
            "hook_before_call_duration_seconds",
            "Time spent asking a studio's before_call hooks",
            before_call_seconds.clone(),
        );
        r.register(
            "provider_errors",
            "Failed upstream attempts, by provider and reason",
            provider_errors.clone(),
        );
        r.register(
            "grpc_requests",
            "gRPC requests by method and code",
            grpc_requests.clone(),
        );
        r.register(
            "build",
            "The running City's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Metrics {
            enabled,
            registry,
            studios: BoundedValues::new(max_studio_labels),
            models: BoundedValues::new(MAX_CATALOG_LABELS),
            providers: BoundedValues::new(MAX_CATALOG_LABELS),
            calls,
            call_seconds,
            ttft_seconds,
            input_tokens,
            output_tokens,
            cost_micros,
            in_flight,
            streams_open,
            quota_rejections,
            usage_queue_depth,
            usage_batch_rows,
            usage_commit_seconds,
            hook_deliveries,
            before_call_seconds,
            provider_errors,
            grpc_requests,
        }
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// A call that reached its guard has ended (however it ended).
    pub fn call_ended(&self, call: &CallRecord<'_>) {
        if !self.enabled {
            return;
        }
        let studio = self.studios.get(call.studio);
        let model = self.models.get(call.model);
        let pair = StudioModelLabels {
            studio: studio.clone(),
            model: model.clone(),
        };
        self.input_tokens
            .get_or_create(&pair)
            .inc_by(call.input_tokens);
        self.output_tokens
            .get_or_create(&pair)
            .inc_by(call.output_tokens);
        self.cost_micros
            .get_or_create(&pair)
            .inc_by(call.cost_micros.max(0) as u64);
        let by_model = ModelLabels {
            model: model.clone(),
        };
        self.call_seconds
            .get_or_create(&by_model)
            .observe(call.latency.as_secs_f64());
        if let Some(ttft) = call.ttft {
            self.ttft_seconds
                .get_or_create(&by_model)
                .observe(ttft.as_secs_f64());
        }
        self.count_call(studio, model, call.pathway, call.code);
    }

    /// A call that passed auth was refused before it held anything: invalid
    /// input, unknown model, over quota, denied by a hook.
    pub fn call_refused(&self, studio: &str, model: &str, pathway: &'static str, err: &Error) {
        if !self.enabled {
            return;
        }
        if let Error::QuotaExceeded {
            scope,
            limit,
            window,
            ..
        } = err
        {
            let labels = QuotaLabels {
                scope,
                limit,
                window,
            };
            self.quota_rejections.get_or_create(&labels).inc();
        }
        let studio = self.studios.get(studio);
        let model = self.models.get(model);
        self.count_call(studio, model, pathway, err.code());
    }

    fn count_call(
        &self,
        studio: Arc<str>,
        model: Arc<str>,
        pathway: &'static str,
        code: tonic::Code,
    ) {
        let labels = CallLabels {
            studio,
            model,
            pathway,
            code: code_name(code),
        };
        self.calls.get_or_create(&labels).inc();
    }

    /// An upstream attempt failed.
    pub fn provider_failed(&self, err: &Error) {
        if !self.enabled {
            return;
        }
        if let Error::Provider { provider_id, .. } = err {
            let labels = ProviderLabels {
                provider: self.providers.get(provider_id),
                reason: err.reason(),
            };
            self.provider_errors.get_or_create(&labels).inc();
        }
    }

    /// Counts an admitted call until the returned token is dropped.
    pub fn call_admitted(self: &Arc<Self>) -> Open {
        Open::new(self, |m| &m.in_flight)
    }

    /// Counts an open stream until the returned token is dropped.
    pub fn stream_opened(self: &Arc<Self>) -> Open {
        Open::new(self, |m| &m.streams_open)
    }

    pub fn before_call_took(&self, took: Duration) {
        if self.enabled {
            self.before_call_seconds.observe(took.as_secs_f64());
        }
    }

    /// One after_call delivery attempt: `delivered`, `retry` or `dead`.
    pub fn hook_delivery(&self, state: &'static str) {
        if self.enabled {
            self.hook_deliveries
                .get_or_create(&StateLabels { state })
                .inc();
        }
    }

    /// One usage batch committed (or failed), and the rows still queued.
    pub fn usage_batch(&self, rows: usize, took: Duration, still_queued: usize) {
        if self.enabled {
            self.usage_batch_rows.observe(rows as f64);
            self.usage_commit_seconds.observe(took.as_secs_f64());
            self.usage_queue_depth.set(still_queued as i64);
        }
    }

    fn grpc_request(&self, method: Arc<str>, code: &'static str) {
        self.grpc_requests
            .get_or_create(&GrpcLabels { method, code })
            .inc();
    }
}

/// Holds one unit of a gauge (calls in flight, open streams) while alive.
pub struct Open {
    metrics: Option<Arc<Metrics>>,
    gauge: fn(&Metrics) -> &Gauge<i64, AtomicI64>,
}

impl Open {
    fn new(metrics: &Arc<Metrics>, gauge: fn(&Metrics) -> &Gauge<i64, AtomicI64>) -> Open {
        if !metrics.enabled {
            return Open {
                metrics: None,
                gauge,
            };
        }
        gauge(metrics).inc();
        Open {
            metrics: Some(metrics.clone()),
            gauge,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            (self.gauge)(metrics).dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(studio: &str) -> CallRecord<'_> {
        CallRecord {
            studio,
            model: "m",
            pathway: "text",
            code: tonic::Code::Ok,
            latency: Duration::from_millis(3),
            ttft: None,
            input_tokens: 2,
            output_tokens: 5,
            cost_micros: 7,
        }
    }

    #[test]
    fn calls_are_counted_by_studio_model_pathway_and_code() {
        let metrics = Metrics::enabled(1);
        metrics.call_ended(&record("a"));
        metrics.call_ended(&record("b"));
        let text = metrics.render();
        assert!(
            text.contains(
                r#"downcity_ai_calls_total{studio="a",model="m",pathway="text",code="OK"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"studio="other""#), "{text}");
        assert!(text.contains(r#"downcity_build_info{version="#), "{text}");
    }

    #[test]
    fn disabled_metrics_record_nothing() {
        let metrics = Metrics::disabled();
        metrics.call_ended(&record("a"));
        let _open = metrics.call_admitted();
        assert!(!metrics.render().contains("studio=\"a\""));
        assert!(metrics.render().contains("downcity_ai_calls_in_flight 0"));
    }
}

//! Closed-loop load: `concurrency` callers each send one call after the
//! other, for a fixed number of calls or a fixed time, after a warm-up whose
//! calls are not counted. Latencies go to HDR histograms (nanoseconds).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// The longest one call may take; a slower one counts as an error.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many calls (all callers together).
    Calls(u64),
    /// After this long.
    After(Duration),
}

/// One load run.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    pub warmup: Stop,
    pub measure: Stop,
}

/// What one call reports: `None` to record the whole call's latency, or the
/// latency to record instead (a stream's time to first token).
pub type CallResult = Result<Option<Duration>, String>;

/// One call of a load run: `caller` is the caller's index, `seq` a number
/// unique within the run (to spread calls over credentials).
pub trait Call: Clone + Send + Sync + 'static {
    fn call(&self, caller: usize, seq: u64) -> impl Future<Output = CallResult> + Send;
}

/// What a measured run saw.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub concurrency: usize,
    pub calls: u64,
    pub errors: u64,
    pub seconds: f64,
    pub calls_per_sec: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Runs the warm-up, then the measured part, and summarises the latter.
pub async fn run<C: Call>(load: Load, call: C) -> Summary {
    warm_up(load, call.clone()).await;
    measure(load, call).await
}

/// The warm-up of `run`, once the machine is quiet: for a caller that
/// reads something between it and `measure`.
pub async fn warm_up<C: Call>(load: Load, call: C) {
    // A target that was overloaded (LiteLLM) may still be working through
    // abandoned calls; the next row must not pay for that.
    crate::machine::wait_until_quiet().await;
    phase(load.concurrency, load.warmup, call).await;
}

/// The measured part of `run`, summarised.
pub async fn measure<C: Call>(load: Load, call: C) -> Summary {
    phase(load.concurrency, load.measure, call).await.summary()
}

/// The merged outcome of one phase.
struct Outcome {
    latency: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    concurrency: usize,
}

fn new_histogram() -> Histogram<u64> {
    // 1 ns to 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

async fn phase<C: Call>(concurrency: usize, stop: Stop, call: C) -> Outcome {
    let tickets = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let callers: Vec<_> = (0..concurrency)
        .map(|caller| {
            tokio::spawn(caller_loop(
                caller,
                stop,
                started,
                tickets.clone(),
                call.clone(),
            ))
        })
        .collect();
    let mut outcome = Outcome::empty(concurrency);
    for caller in callers {
        let part = caller.await.expect("a load caller panicked");
        outcome
            .latency
            .add(&part.latency)
            .expect("same histogram bounds");
        outcome.errors += part.errors;
        outcome.first_error = outcome.first_error.or(part.first_error);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

async fn caller_loop<C: Call>(
    caller: usize,
    stop: Stop,
    started: Instant,
    tickets: Arc<AtomicU64>,
    call: C,
) -> Outcome {
    let mut outcome = Outcome::empty(1);
    loop {
        let seq = tickets.fetch_add(1, Ordering::Relaxed);
        let done = match stop {
            Stop::Calls(calls) => seq >= calls,
            Stop::After(limit) => started.elapsed() >= limit,
        };
        if done {
            return outcome;
        }
        let sent = Instant::now();
        let result = tokio::time::timeout(CALL_LIMIT, call.call(caller, seq))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {CALL_LIMIT:?}")));
        let whole_call = sent.elapsed();
        match result {
            Ok(latency) => {
                let took = latency.unwrap_or(whole_call).as_nanos() as u64;
                outcome.latency.saturating_record(took.max(1));
            }
            Err(error) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(error);
            }
        }
    }
}

impl Outcome {
    fn empty(concurrency: usize) -> Outcome {
        Outcome {
            latency: new_histogram(),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            concurrency,
        }
    }

    fn summary(&self) -> Summary {
        let us = |ns: u64| ns as f64 / 1000.0;
        let h = &self.latency;
        let calls = h.len();
        let seconds = self.elapsed.as_secs_f64();
        Summary {
            concurrency: self.concurrency,
            calls,
            errors: self.errors,
            seconds,
            calls_per_sec: if seconds > 0.0 {
                calls as f64 / seconds
            } else {
                0.0
            },
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1000.0,
            first_error: self.first_error.clone(),
        }
    }
}

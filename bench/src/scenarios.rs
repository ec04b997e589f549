//! The scenarios of issue 7, each a small function over the targets: the
//! mock upstream directly, City, and (when it runs) LiteLLM.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::city::{Callers, HealthCall, StreamCall, TextCall};
use crate::http::{Chat, ChatCall, ChatStreamCall};
use crate::load::{self, Load, Stop, Summary};
use crate::procs::{RssSampler, rss_kib};

pub const DIRECT: &str = "direct (mock upstream)";
pub const CITY: &str = "City (mock provider)";
pub const CITY_FLOOR: &str = "City gRPC floor (health check)";
pub const LITELLM: &str = "LiteLLM → mock upstream";
pub const CITY_HTTP: &str = "City → openai_compatible → mock upstream";
/// The same Chat Completions call as LiteLLM's row, on the same protocol:
/// HTTP/1.1 JSON to City's OpenAI-compatible face, then openai_compatible.
pub const CITY_OPENAI: &str = "City OpenAI face (HTTP) → openai_compatible → mock upstream";
pub const CITY_DURABLE: &str = "fresh City (mock provider), durable usage writes";
pub const CITY_ASYNC: &str = "fresh City (mock provider), asynchronous usage writes";
pub const CITY_NO_WEB: &str = "fresh City (mock provider), durable, `[web] enabled = false`";
pub const CITY_METRICS: &str = "fresh City (mock provider), durable usage writes, metrics on";
pub const CITY_HOOKED: &str = "City (mock provider) + allowing before_call hook";

/// A City the bench starts: its name (config, data directory, log), its
/// row, and how its config differs from the default.
#[derive(Clone, Copy)]
pub struct Variant {
    pub name: &'static str,
    pub target: &'static str,
    /// `[usage] durability`, when set.
    pub durability: Option<&'static str>,
    /// `[web] enabled`.
    pub web: bool,
    /// `[metrics] listen` set: every call recorded.
    pub metrics: bool,
}

pub const FIRST: Variant = Variant {
    name: "city",
    target: CITY,
    durability: None,
    web: true,
    metrics: false,
};
pub const DURABLE: Variant = Variant {
    name: "city-durable",
    target: CITY_DURABLE,
    ..FIRST
};
pub const ASYNC: Variant = Variant {
    name: "city-async",
    target: CITY_ASYNC,
    durability: Some("async"),
    ..FIRST
};
pub const NO_WEB: Variant = Variant {
    name: "city-no-web",
    target: CITY_NO_WEB,
    web: false,
    ..FIRST
};
pub const METRICS: Variant = Variant {
    name: "city-metrics",
    target: CITY_METRICS,
    metrics: true,
    ..FIRST
};

/// The City model that holds a stream open (its mock waits this long
/// before each chunk).
pub const HOLD_MODEL: &str = "bench-hold";
pub const HOLD_DELAY_MS: u64 = 600_000;

/// The City model on the `openai_compatible` provider that points at the
/// mock upstream (see `city_config` in main.rs): scenarios 1–3 and 6
/// measure it as `CITY_HTTP` alongside the built-in mock.
pub const CITY_HTTP_MODEL: &str = "bench-upstream-text";

/// How much of each scenario to run.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Plan {
    pub quick: bool,
    pub studios: usize,
    pub users_per_studio: usize,
    pub warmup_calls: u64,
    pub latency_calls: u64,
    pub warmup_secs: u64,
    pub throughput_secs: u64,
    pub scaling_secs: u64,
    pub open_streams: usize,
    /// HTTP/2 connections the load callers share.
    pub connections: usize,
}

/// Streams being opened at once in scenario 3.
const OPENING_IN_FLIGHT: usize = 256;
/// Callers per connection when holding many streams open.
const STREAMS_PER_CONNECTION: usize = 100;
pub const SCALING: [usize; 5] = [1, 4, 16, 64, 256];
pub const THROUGHPUT_CONCURRENCY: usize = 64;

impl Plan {
    pub fn new(quick: bool) -> Plan {
        fn pick<T>(quick: bool, quick_value: T, full_value: T) -> T {
            if quick { quick_value } else { full_value }
        }
        Plan {
            quick,
            studios: 100,
            users_per_studio: 100,
            warmup_calls: pick(quick, 200, 1_000),
            latency_calls: pick(quick, 1_000, 5_000),
            warmup_secs: pick(quick, 1, 2),
            throughput_secs: pick(quick, 2, 15),
            scaling_secs: pick(quick, 1, 8),
            open_streams: pick(quick, 1_000, 100_000),
            connections: 4,
        }
    }

    /// `--probe`: quick, but enough calls at concurrency 1 to profile.
    pub fn probe() -> Plan {
        Plan {
            latency_calls: 5_000,
            ..Plan::new(true)
        }
    }

    fn latency(&self) -> Load {
        Load {
            concurrency: 1,
            warmup: Stop::Calls(self.warmup_calls),
            measure: Stop::Calls(self.latency_calls),
        }
    }

    /// Scenario 2's load: concurrency 64 for `throughput_secs`.
    pub fn throughput(&self) -> Load {
        self.timed(THROUGHPUT_CONCURRENCY, self.throughput_secs)
    }

    fn timed(&self, concurrency: usize, secs: u64) -> Load {
        Load {
            concurrency,
            warmup: Stop::After(Duration::from_secs(self.warmup_secs)),
            measure: Stop::After(Duration::from_secs(secs)),
        }
    }
}

/// One target's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    pub target: String,
    #[serde(flatten)]
    pub summary: Summary,
}

/// Scenario 3's second half.
#[derive(Debug, Clone, Serialize)]
pub struct OpenStreams {
    pub streams: usize,
    pub connections: usize,
    pub open_secs: f64,
    pub rss_before_kib: u64,
    pub rss_open_kib: u64,
    pub bytes_per_stream: f64,
}

/// What the load is sent to.
pub struct Targets {
    pub direct: Chat,
    pub litellm: Option<Chat>,
    /// City's OpenAI-compatible face, on `CITY_HTTP_MODEL`, over the users'
    /// tokens in turn.
    pub city_openai: Chat,
    pub city: Callers,
    /// The users of the studio with an allowing before_call hook (scenario 1).
    pub city_hooked: Option<Callers>,
    pub city_pid: u32,
}

/// Prints one row's figures as it is measured.
pub fn measured(target: &str, summary: Summary) -> Measured {
    eprintln!(
        "  {target:<50} c={:<4} {:>9.0} calls/s  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}",
        summary.concurrency, summary.calls_per_sec, summary.p50_us, summary.p99_us, summary.errors
    );
    Measured {
        target: target.to_string(),
        summary,
    }
}

impl Targets {
    /// Unary calls (Text; plain Chat Completions; City's health check as the
    /// floor of its gRPC stack) to every target; with `hooked`, also Text from
    /// the studio with a before_call hook, right after the same call without.
    pub async fn unary(&self, load: Load, hooked: bool) -> Vec<Measured> {
        let floor = HealthCall(self.city.clone());
        let mut rows = vec![
            measured(DIRECT, load::run(load, ChatCall(self.direct.clone())).await),
            measured(CITY_FLOOR, load::run(load, floor).await),
            measured(CITY, load::run(load, TextCall(self.city.clone())).await),
        ];
        if let Some(callers) = self.city_hooked.as_ref().filter(|_| hooked) {
            let call = TextCall(callers.clone());
            rows.push(measured(CITY_HOOKED, load::run(load, call).await));
        }
        let call = TextCall(self.city.with_model(CITY_HTTP_MODEL));
        rows.push(measured(CITY_HTTP, load::run(load, call).await));
        let call = ChatCall(self.city_openai.clone());
        rows.push(measured(CITY_OPENAI, load::run(load, call).await));
        if let Some(litellm) = &self.litellm {
            let call = ChatCall(litellm.clone());
            rows.push(measured(LITELLM, load::run(load, call).await));
        }
        rows
    }

    /// Streamed calls to every target, recording the time to first token.
    pub async fn streamed(&self, load: Load) -> Vec<Measured> {
        let mut rows = vec![
            measured(
                DIRECT,
                load::run(load, ChatStreamCall(self.direct.clone())).await,
            ),
            measured(CITY, load::run(load, StreamCall(self.city.clone())).await),
        ];
        let call = StreamCall(self.city.with_model(CITY_HTTP_MODEL));
        rows.push(measured(CITY_HTTP, load::run(load, call).await));
        let call = ChatStreamCall(self.city_openai.clone());
        rows.push(measured(CITY_OPENAI, load::run(load, call).await));
        if let Some(litellm) = &self.litellm {
            let call = ChatStreamCall(litellm.clone());
            rows.push(measured(LITELLM, load::run(load, call).await));
        }
        rows
    }
}

/// Scenario 1: added latency at concurrency 1 (and a before_call hook's).
pub async fn latency(plan: &Plan, targets: &Targets) -> Vec<Measured> {
    eprintln!("scenario 1: latency at concurrency 1");
    targets.unary(plan.latency(), true).await
}

/// Scenario 2 (and 4's "under load"): throughput at concurrency 64 for a
/// fixed time, sampling City's peak RSS meanwhile.
pub async fn throughput(plan: &Plan, targets: &Targets) -> (Vec<Measured>, u64) {
    eprintln!("scenario 2: throughput at concurrency {THROUGHPUT_CONCURRENCY}");
    let sampler = RssSampler::start(targets.city_pid);
    let rows = targets.unary(plan.throughput(), false).await;
    (rows, sampler.peak_kib().await)
}

/// Scenario 5: Text throughput at concurrency 64 for the same time as
/// scenario 2, on `city` only (a fresh City, durable or asynchronous usage
/// writes, named `target`).
pub async fn usage_throughput(plan: &Plan, city: &Callers, target: &str) -> Measured {
    eprintln!("scenario 5: {target}, concurrency {THROUGHPUT_CONCURRENCY}");
    measured(
        target,
        load::run(plan.throughput(), TextCall(city.clone())).await,
    )
}

/// Scenario 3, first half: time to first token at concurrency 1.
pub async fn stream_ttft(plan: &Plan, targets: &Targets) -> Vec<Measured> {
    eprintln!("scenario 3: StreamText time to first token");
    targets.streamed(plan.latency()).await
}

/// Scenario 3, second half: City's RSS per open stream (the streams are
/// held open by the hold model; `city` should have `stream_connections`).
pub async fn open_streams(
    plan: &Plan,
    city: &Callers,
    city_pid: u32,
) -> anyhow::Result<OpenStreams> {
    eprintln!("scenario 3: {} open streams", plan.open_streams);
    let rss_before_kib = settled_rss(city_pid).await;
    let started = Instant::now();
    let streams = city
        .open_streams(plan.open_streams, OPENING_IN_FLIGHT)
        .await?;
    let open_secs = started.elapsed().as_secs_f64();
    let rss_open_kib = settled_rss(city_pid).await;
    drop(streams);
    let grown = rss_open_kib.saturating_sub(rss_before_kib) as f64 * 1024.0;
    let result = OpenStreams {
        streams: plan.open_streams,
        connections: city.connections(),
        open_secs,
        rss_before_kib,
        rss_open_kib,
        bytes_per_stream: grown / plan.open_streams as f64,
    };
    eprintln!("  {:.0} bytes per open stream", result.bytes_per_stream);
    Ok(result)
}

/// Connections for `streams` open streams.
pub fn stream_connections(streams: usize) -> usize {
    streams.div_ceil(STREAMS_PER_CONNECTION).max(1)
}

/// RSS after a short pause for the process to settle.
pub async fn settled_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss_kib(pid).unwrap_or(0)
}

/// Scenario 6: throughput at 1, 4, 16, 64 and 256 callers.
pub async fn scaling(plan: &Plan, targets: &Targets) -> Vec<Measured> {
    eprintln!("scenario 6: scaling");
    let mut rows = Vec::new();
    for concurrency in SCALING {
        rows.extend(
            targets
                .unary(plan.timed(concurrency, plan.scaling_secs), false)
                .await,
        );
    }
    rows
}

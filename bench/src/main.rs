//! `downcity-bench`: starts the mock upstream, City (the release binary, as
//! its own process) and, when given, LiteLLM; runs the scenarios; writes the
//! raw figures as JSON and the tables into BENCHMARKS.md. `bench/run` is the
//! way to call it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use downcity_bench::city::{self, Callers, PROMPT};
use downcity_bench::http::{self, API_KEY, Chat};
use downcity_bench::launch::{
    ADMIN_KEY, Launcher, START_LIMIT, STOP_GRACE, UPSTREAM_MODEL, connect_and_populate,
};
use downcity_bench::machine::{self, Machine};
use downcity_bench::procs::Service;
use downcity_bench::replicas::{self, ONE_REPLICA, OnPostgres, Replicas, TWO_REPLICAS};
use downcity_bench::report::{Durability, HookCost, Memory, MetricsCost, Results};
use downcity_bench::scenarios::{
    self, ASYNC, CITY, CITY_HOOKED, CITY_HTTP_MODEL, DURABLE, FIRST, HOLD_MODEL, METRICS, Measured,
    NO_WEB, Plan, Targets, Variant,
};
use tokio::process::Command;

#[derive(Parser)]
#[command(about = "Runs Downcity's benchmark scenarios (use bench/run).")]
struct Args {
    /// A few seconds per scenario, fewer open streams (what CI runs).
    #[arg(long)]
    quick: bool,
    /// The `downcity` release binary.
    #[arg(long)]
    city_bin: PathBuf,
    /// The `mock-upstream` binary.
    #[arg(long)]
    upstream_bin: PathBuf,
    /// The `litellm` executable; without it LiteLLM is not measured.
    #[arg(long)]
    litellm: Option<PathBuf>,
    /// Why LiteLLM is not measured (recorded with the results).
    #[arg(long)]
    litellm_skipped: Option<String>,
    /// Scratch directory for data, configs and logs (emptied first).
    #[arg(long)]
    work_dir: PathBuf,
    /// Where to write the raw figures.
    #[arg(long)]
    results: PathBuf,
    /// The BENCHMARKS.md whose tables to regenerate.
    #[arg(long)]
    markdown: PathBuf,
    /// The run's date, as `date -u` prints it.
    #[arg(long)]
    date: String,
    /// The commit City and the harness were built from (`bench/run` passes
    /// `git rev-parse --short HEAD`, with `-dirty` for a changed tree).
    #[arg(long)]
    commit: Option<String>,
    /// Only scenarios 1–3's short latency and throughput runs, printed and
    /// not written: the quick loop while profiling City.
    #[arg(long)]
    probe: bool,
    /// With `--probe`: also hold this many StreamText calls open and print
    /// City's RSS per held stream (scenario 3's memory row).
    #[arg(long, requires = "probe")]
    probe_streams: Option<usize>,
    /// An extra `KEY=VALUE` environment variable for City (repeatable), e.g.
    /// `TOKIO_WORKER_THREADS=1` or `DOWNCITY_USAGE__DURABILITY=async`.
    #[arg(long, value_parser = parse_env)]
    city_env: Vec<(String, String)>,
    /// A file holding the URL of a PostgreSQL server for scenario 8
    /// (`scripts/pg-test-cluster start` writes DIR/url); its databases
    /// `bench_replicas_*` are made anew. Without it scenario 8 is skipped.
    #[arg(long)]
    postgres_url_file: Option<PathBuf>,
    /// Why scenario 8 is not measured (recorded with the results).
    #[arg(long)]
    postgres_skipped: Option<String>,
}

fn parse_env(pair: &str) -> Result<(String, String), String> {
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| format!("`{pair}` is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

/// Tokens in the mock upstream's answer: as many as City's mock echo of
/// `PROMPT` ("Echo:" and six words), so both answer alike.
const UPSTREAM_TOKENS: usize = 7;
const LITELLM_MODEL: &str = "bench-mock";
const LITELLM_START_LIMIT: Duration = Duration::from_secs(240);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.probe {
        return probe(&args).await;
    }
    // Interrupted, the run's future is dropped: every process it started
    // is killed (procs::Service) before the exit.
    let results = tokio::select! {
        results = run(&args) => Some(results?),
        _ = tokio::signal::ctrl_c() => None,
    };
    let Some(results) = results else {
        eprintln!("interrupted: the processes of the run are stopped");
        std::process::exit(130);
    };
    results.write_json(&args.results)?;
    results.write_markdown(&args.markdown)?;
    println!("{}", results.targets_text());
    eprintln!(
        "wrote {} and the tables of {}",
        args.results.display(),
        args.markdown.display()
    );
    Ok(())
}

/// The processes under test, started and populated.
struct Started {
    plan: Plan,
    machine: Machine,
    upstream: Service,
    launcher: Launcher,
    city: Service,
    city_addr: String,
    litellm: Option<(Service, String)>,
    targets: Targets,
    credentials: Vec<city::Credential>,
    skipped: Vec<String>,
    fresh_kib: u64,
    idle_after_setup_kib: u64,
    setup_secs: f64,
}

async fn start(args: &Args) -> anyhow::Result<Started> {
    let plan = if args.probe {
        Plan::probe()
    } else {
        Plan::new(args.quick)
    };
    let machine = Machine::describe();
    let work = &args.work_dir;
    if work.exists() {
        std::fs::remove_dir_all(work).with_context(|| format!("emptying {}", work.display()))?;
    }
    std::fs::create_dir_all(work)?;

    let (upstream, upstream_addr) = start_upstream(&args.upstream_bin, work).await?;
    let launcher = Launcher {
        bin: args.city_bin.clone(),
        env: args.city_env.clone(),
        work: work.clone(),
        upstream_addr: upstream_addr.clone(),
    };
    let (city, city_addr) = launcher.start(FIRST).await?;
    let city_pid = city.pid();
    let fresh_kib = scenarios::settled_rss(city_pid).await;

    eprintln!(
        "setup: {} studios × {} users",
        plan.studios, plan.users_per_studio
    );
    let setup_started = Instant::now();
    let (channels, credentials) = connect_and_populate(&city_addr, &plan).await?;
    let setup_secs = setup_started.elapsed().as_secs_f64();
    eprintln!(
        "setup: studio {} ({} users) with a before_call hook",
        city::HOOKED_STUDIO,
        plan.users_per_studio
    );
    let hooked_credentials = city::populate_hooked(
        channels[0].clone(),
        ADMIN_KEY,
        plan.users_per_studio,
        &format!("http://{upstream_addr}/hook"),
    )
    .await?;
    let idle_after_setup_kib = scenarios::settled_rss(city_pid).await;
    let mut skipped = Vec::new();
    let litellm = match &args.litellm {
        Some(bin) => match start_litellm(bin, work, &upstream_addr).await {
            Ok(litellm) => Some(litellm),
            Err(err) => {
                skipped.push(format!("LiteLLM: did not start ({err:#})"));
                None
            }
        },
        None => {
            let reason = args
                .litellm_skipped
                .as_deref()
                .unwrap_or("no executable given");
            skipped.push(format!("LiteLLM: {reason}"));
            None
        }
    };

    let client = http::client();
    let city_callers = Callers::new(
        channels,
        credentials.clone(),
        downcity::server::MOCK_TEXT_MODEL,
    );
    let targets = Targets {
        direct: Chat::new(
            client.clone(),
            &format!("http://{upstream_addr}/v1"),
            UPSTREAM_MODEL,
            PROMPT,
        ),
        litellm: litellm
            .as_ref()
            .map(|(_, base)| Chat::new(client.clone(), base, LITELLM_MODEL, PROMPT)),
        city_openai: Chat::new(
            client.clone(),
            &format!("http://{city_addr}/v1"),
            CITY_HTTP_MODEL,
            PROMPT,
        )
        .with_bearers(
            credentials
                .iter()
                .map(city::Credential::authorization)
                .collect(),
        ),
        city_hooked: Some(city_callers.with_credentials(hooked_credentials)),
        city: city_callers,
        city_pid,
    };
    Ok(Started {
        plan,
        machine,
        upstream,
        launcher,
        city,
        city_addr,
        litellm,
        targets,
        credentials,
        skipped,
        fresh_kib,
        idle_after_setup_kib,
        setup_secs,
    })
}

/// `--probe`: the short latency and throughput runs only.
async fn probe(args: &Args) -> anyhow::Result<()> {
    let started = start(args).await?;
    let plan = &started.plan;
    eprintln!(
        "memory: fresh {:.1} MiB, idle after the setup {:.1} MiB",
        started.fresh_kib as f64 / 1024.0,
        started.idle_after_setup_kib as f64 / 1024.0
    );
    if let Some(streams) = args.probe_streams {
        let plan = Plan {
            open_streams: streams,
            ..*plan
        };
        let holders =
            city::connect(&started.city_addr, scenarios::stream_connections(streams)).await?;
        let callers = Callers::new(holders, started.credentials.clone(), HOLD_MODEL);
        scenarios::open_streams(&plan, &callers, started.targets.city_pid).await?;
    }
    let latency = scenarios::latency(plan, &started.targets).await;
    if let Some(hook) = HookCost::from_latency(&latency) {
        eprintln!(
            "  before_call hook added: p50 {:.1} µs  p99 {:.1} µs",
            hook.added_p50_us, hook.added_p99_us
        );
    }
    scenarios::stream_ttft(plan, &started.targets).await;
    scenarios::throughput(plan, &started.targets).await;
    started.stop().await;
    Ok(())
}

impl Started {
    async fn stop(self) {
        drop(self.targets);
        if let Some((litellm, _)) = self.litellm {
            litellm.stop(STOP_GRACE).await;
        }
        self.city.stop(STOP_GRACE).await;
        self.upstream.stop(STOP_GRACE).await;
    }
}

async fn run(args: &Args) -> anyhow::Result<Results> {
    let started = start(args).await?;
    let (plan, targets) = (&started.plan, &started.targets);
    let latency = scenarios::latency(plan, targets).await;
    let (throughput, peak_under_throughput_kib) = scenarios::throughput(plan, targets).await;
    let stream_ttft = scenarios::stream_ttft(plan, targets).await;
    let scaling = scenarios::scaling(plan, targets).await;
    // Cancelling the held streams writes a usage row for each.
    let holders = city::connect(
        &started.city_addr,
        scenarios::stream_connections(plan.open_streams),
    )
    .await?;
    let open_streams = scenarios::open_streams(
        plan,
        &Callers::new(holders, started.credentials.clone(), HOLD_MODEL),
        targets.city_pid,
    )
    .await?;

    // Last, scenario 5 on a second City, alone: the first City and LiteLLM
    // stop first.
    let Started {
        plan,
        machine,
        upstream,
        launcher,
        city,
        litellm,
        targets,
        mut skipped,
        fresh_kib,
        idle_after_setup_kib,
        setup_secs,
        ..
    } = started;
    drop(targets);
    if let Some((litellm, _)) = litellm {
        litellm.stop(STOP_GRACE).await;
    }
    city.stop(STOP_GRACE).await;
    let durable = usage_throughput(&launcher, &plan, DURABLE, &mut skipped).await;
    let asynchronous = usage_throughput(&launcher, &plan, ASYNC, &mut skipped).await;
    let no_web = usage_throughput(&launcher, &plan, NO_WEB, &mut skipped).await;
    let metrics_on = usage_throughput(&launcher, &plan, METRICS, &mut skipped).await;
    let replicas = on_postgres(args, &launcher, &plan, &mut skipped).await;
    upstream.stop(STOP_GRACE).await;

    let scenario_2 = throughput
        .iter()
        .find(|m| m.target == CITY)
        .map_or(0.0, |m| m.summary.calls_per_sec);
    let before_call_hook = HookCost::from_latency(&latency);
    if before_call_hook.is_none() {
        skipped.push(format!("{CITY_HOOKED}: no figures"));
    }
    Ok(Results {
        mode: if plan.quick { "quick" } else { "full" },
        date: args.date.clone(),
        commit: args.commit.clone(),
        machine,
        load_average_end: machine::load_average(),
        plan,
        skipped,
        setup_secs,
        latency,
        before_call_hook,
        throughput,
        stream_ttft,
        open_streams,
        memory: Memory {
            fresh_kib,
            idle_after_setup_kib,
            peak_under_throughput_kib,
        },
        metrics_cost: MetricsCost {
            off_calls_per_sec: durable.as_ref().map(|m| m.summary.calls_per_sec),
            on_calls_per_sec: metrics_on.as_ref().map(|m| m.summary.calls_per_sec),
            on: metrics_on,
            note: "Off: scenario 5's durable City. On: a fresh City with the same config and \
                   `[metrics] listen` set (every call recorded), alone, Text at concurrency 64, \
                   as long as scenario 2; nothing scrapes it."
                .into(),
        },
        usage_durability: Durability {
            scenario_2_calls_per_sec: scenario_2,
            durable_calls_per_sec: durable.as_ref().map(|m| m.summary.calls_per_sec),
            asynchronous_calls_per_sec: asynchronous.as_ref().map(|m| m.summary.calls_per_sec),
            no_web_calls_per_sec: no_web.as_ref().map(|m| m.summary.calls_per_sec),
            durable,
            asynchronous,
            no_web,
            note: "Durable: City writes every unary call's usage row before it answers (group commit, \
                   SQLite WAL, synchronous=NORMAL). Asynchronous: `[usage] durability = \"async\"`. \
                   After the other scenarios (the first City and LiteLLM stopped), one fresh City of each \
                   kind, with the same config and setup, runs alone in turn: Text at concurrency 64, as long \
                   as scenario 2. The ratio is of these two; scenario 2's City row is shown for comparison. \
                   A third fresh City, durable with `[web] enabled = false`, measures the gRPC-Web/CORS \
                   layer's cost to native gRPC: the durable City (layer on, the default) against it."
                .into(),
        },
        scaling,
        replicas,
    })
}

/// Scenario 8, last: one replica, then two, on the PostgreSQL server of
/// `--postgres-url-file`. What cannot run is said in `skipped`.
async fn on_postgres(
    args: &Args,
    launcher: &Launcher,
    plan: &Plan,
    skipped: &mut Vec<String>,
) -> Replicas {
    let mut replicas = Replicas {
        one: None,
        two: None,
        note: replicas::note(plan.connections),
    };
    let Some(path) = &args.postgres_url_file else {
        let reason = args
            .postgres_skipped
            .as_deref()
            .unwrap_or("no server given");
        skipped.push(format!("8. PostgreSQL replicas: {reason}"));
        return replicas;
    };
    let url = match std::fs::read_to_string(path) {
        Ok(url) => url.trim().to_string(),
        Err(err) => {
            skipped.push(format!(
                "8. PostgreSQL replicas: reading {}: {err}",
                path.display()
            ));
            return replicas;
        }
    };
    let mut measure = async |count: usize, target: &str| -> Option<OnPostgres> {
        replicas::throughput(launcher, plan, &url, count, target)
            .await
            .map_err(|err| skipped.push(format!("8. {target}: {err:#}")))
            .ok()
    };
    replicas.one = measure(1, ONE_REPLICA).await;
    replicas.two = measure(2, TWO_REPLICAS).await;
    replicas
}

/// Scenario 5: a fresh City like the first, configured as `variant` says,
/// populated the same way, then Text at concurrency 64 on it alone. When
/// that fails, says why in `skipped` and the run goes on.
async fn usage_throughput(
    launcher: &Launcher,
    plan: &Plan,
    variant: Variant,
    skipped: &mut Vec<String>,
) -> Option<Measured> {
    fresh_city_throughput(launcher, plan, variant)
        .await
        .map_err(|err| skipped.push(format!("5. {}: {err:#}", variant.target)))
        .ok()
}

async fn fresh_city_throughput(
    launcher: &Launcher,
    plan: &Plan,
    variant: Variant,
) -> anyhow::Result<Measured> {
    let Variant { name, target, .. } = variant;
    let (city, addr) = launcher
        .start(variant)
        .await
        .with_context(|| format!("{name} did not start"))?;
    let measured = async {
        eprintln!(
            "setup ({name}): {} studios × {} users",
            plan.studios, plan.users_per_studio
        );
        let (channels, credentials) = connect_and_populate(&addr, plan).await?;
        let callers = Callers::new(channels, credentials, downcity::server::MOCK_TEXT_MODEL);
        anyhow::Ok(scenarios::usage_throughput(plan, &callers, target).await)
    }
    .await;
    city.stop(STOP_GRACE).await;
    measured
}

async fn start_upstream(bin: &Path, work: &Path) -> anyhow::Result<(Service, String)> {
    let mut command = Command::new(bin);
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--tokens",
        &UPSTREAM_TOKENS.to_string(),
    ]);
    let mut service = Service::spawn("mock-upstream", command, work).await?;
    let addr = service
        .wait_line(START_LIMIT, |line| {
            line.strip_prefix("listening on ").map(str::to_string)
        })
        .await?;
    Ok((service, addr))
}

async fn start_litellm(
    bin: &Path,
    work: &Path,
    upstream_addr: &str,
) -> anyhow::Result<(Service, String)> {
    let config = work.join("litellm.yaml");
    std::fs::write(&config, litellm_config(upstream_addr))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", &workers.to_string()])
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR")
        .env("LITELLM_TELEMETRY", "False");
    eprintln!("starting LiteLLM ({workers} workers)");
    let mut service = Service::spawn("litellm", command, work).await?;
    let health = format!("http://127.0.0.1:{port}/health/liveliness");
    let client = http::client();
    tokio::select! {
        ready = http::wait_ready(&client, &health, LITELLM_START_LIMIT) => ready?,
        // No line is awaited: this ends only when LiteLLM exits (or never starts).
        exited = service.wait_line(LITELLM_START_LIMIT, |_| None::<()>) => exited?,
    }
    Ok((service, format!("http://127.0.0.1:{port}/v1")))
}

fn litellm_config(upstream_addr: &str) -> String {
    format!(
        "model_list:\n  - model_name: {LITELLM_MODEL}\n    litellm_params:\n      model: openai/{UPSTREAM_MODEL}\n      \
         api_base: http://{upstream_addr}/v1\n      api_key: sk-bench\n\
         general_settings:\n  master_key: {API_KEY}\nlitellm_settings:\n  telemetry: false\n"
    )
}

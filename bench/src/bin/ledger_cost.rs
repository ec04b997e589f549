//! What a shared quota ledger costs per call: one reserve then one settle,
//! as City's `SharedLedger` makes them, against a PostgreSQL database (own
//! pool, synchronous_commit off) or a Redis server.
//!
//!   ledger-cost --url postgres://… [--ledger per-call|grouped|redis]
//!               [--redis 127.0.0.1:PORT] [--calls N] [--concurrency C]
//!
//! - per-call: `quota_reserve` and `quota_settle`, one stored-function call
//!   (one transaction, one round trip) each.
//! - grouped: City's way. Callers hand claims to one batcher task per kind
//!   (reserve, settle) that sends all waiting claims in one
//!   `quota_reserve_many` / `quota_settle_many` call; see `grouped.rs`.
//! - redis: a Lua script per reserve and per settle on a hash per scope;
//!   see `redis_ledger.rs` (measured only: City does not use Redis).
//!
//! Runs twice: every caller on one studio (the worst case: all queue on its
//! counter row) and each caller on a studio of its own. Prints one JSON line
//! per run.

#[path = "ledger_cost/grouped.rs"]
mod grouped;
#[path = "ledger_cost/redis_ledger.rs"]
mod redis_ledger;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Ledger {
    PerCall,
    Grouped,
    Redis,
}

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, value_enum, default_value_t = Ledger::PerCall)]
    ledger: Ledger,
    /// host:port of a Redis server (for --ledger redis).
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
}

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
/// What each call reserves and then uses: (requests, tokens, cost).
const RESERVED: [i64; 3] = [1, 15, 15];
const USED: [i64; 3] = [1, 5, 5];

/// One call's claim: its hold id, scopes and arrival.
pub struct Claim {
    pub id: String,
    pub studio: String,
    pub user: String,
    pub now: i64,
}

pub fn starts(now: i64) -> Vec<i64> {
    // The month start only needs to be stable within the run.
    vec![now - now % MINUTE, now - now % DAY, now - now % (30 * DAY)]
}

/// Limits that never refuse but are checked: tokens per day.
pub fn limits() -> Vec<Option<i64>> {
    vec![None, None, Some(i64::MAX / 4), None, None]
}

/// One reserve then one settle through the chosen ledger.
#[derive(Clone)]
enum Client {
    PerCall(Arc<PgPool>),
    Grouped(grouped::Grouped),
    Redis(Arc<redis_ledger::RedisLedger>),
}

impl Client {
    async fn call(&self, claim: Claim) -> anyhow::Result<()> {
        match self {
            Client::PerCall(pool) => per_call(pool, &claim).await,
            Client::Grouped(grouped) => {
                let answer = grouped.reserve(&claim).await?;
                anyhow::ensure!(answer.is_none(), "refused: {answer:?}");
                grouped.settle(&claim).await
            }
            Client::Redis(redis) => redis.call(&claim).await,
        }
    }
}

async fn per_call(pool: &PgPool, claim: &Claim) -> anyhow::Result<()> {
    let answer = reserve_one(pool, claim).await?;
    anyhow::ensure!(answer.is_none(), "refused: {answer:?}");
    settle_one(pool, claim).await?;
    Ok(())
}

async fn reserve_one(pool: &PgPool, claim: &Claim) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT quota_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&claim.id)
        .bind("bench-replica")
        .bind(&claim.studio)
        .bind(&claim.user)
        .bind(starts(claim.now))
        .bind(RESERVED.to_vec())
        .bind(limits())
        .bind(limits())
        .bind(claim.now)
        .fetch_one(pool)
        .await
}

/// `quota_settle` of one hold (in grouped's answer shape: one per claim).
async fn settle_one(pool: &PgPool, claim: &Claim) -> sqlx::Result<Vec<Option<String>>> {
    sqlx::query("SELECT quota_settle($1, $2, $3, $4, $5, $6)")
        .bind(&claim.id)
        .bind(&claim.studio)
        .bind(&claim.user)
        .bind(starts(claim.now))
        .bind(RESERVED.to_vec())
        .bind(USED.to_vec())
        .execute(pool)
        .await?;
    Ok(vec![None])
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn run(client: &Client, args: &Args, name: &str, shared_studio: bool) -> anyhow::Result<()> {
    let per_worker = args.calls / args.concurrency;
    let started = Instant::now();
    let mut workers = Vec::new();
    let run_id = now_ms();
    for worker in 0..args.concurrency {
        let client = client.clone();
        let studio = if shared_studio {
            "bench-one".to_string()
        } else {
            format!("bench-{worker}")
        };
        workers.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new(3).unwrap();
            for call in 0..per_worker {
                let claim = Claim {
                    id: format!("{studio}-{worker}-{call}-{run_id}"),
                    studio: studio.clone(),
                    user: "user".into(),
                    now: now_ms(),
                };
                let t = Instant::now();
                client.call(claim).await?;
                latencies.record(t.elapsed().as_micros() as u64).unwrap();
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Histogram::<u64>::new(3).unwrap();
    for worker in workers {
        all.add(worker.await??).unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "ledger": name,
            "studios": if shared_studio { "one" } else { "one per caller" },
            "concurrency": args.concurrency,
            "calls": all.len(),
            "calls_per_s": (all.len() as f64 / elapsed).round(),
            "mean_us": all.mean().round(),
            "p50_us": all.value_at_quantile(0.5),
            "p99_us": all.value_at_quantile(0.99),
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (client, name) = match args.ledger {
        Ledger::Redis => {
            let redis = redis_ledger::RedisLedger::connect(&args.redis, args.concurrency).await?;
            (Client::Redis(Arc::new(redis)), "redis (Lua)")
        }
        ledger => {
            // Opening the store applies City's migrations (the ledger's functions).
            let store = downcity::store::postgres::PostgresStore::open(&args.url)
                .await
                .context("opening the store")?;
            let options: PgConnectOptions = store.connect_options().clone();
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options.options([("synchronous_commit", "off")]))
                .await?;
            if ledger == Ledger::Grouped {
                let grouped = grouped::Grouped::start(pool);
                (Client::Grouped(grouped), "postgres grouped")
            } else {
                (Client::PerCall(Arc::new(pool)), "postgres per call")
            }
        }
    };
    for shared in [true, false] {
        run(&client, &args, name, shared).await?;
    }
    Ok(())
}

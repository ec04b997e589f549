//! What the shared quota ledger costs per call: reserve + settle (one stored
//! function each, one round trip each) against a PostgreSQL database, as
//! City's `SharedLedger` calls them (own pool, synchronous_commit off).
//!
//!   ledger-cost --url postgres://… [--calls N] [--concurrency C]
//!
//! Runs twice: every caller on one studio (the worst case: all queue on its
//! counter row) and each caller on a studio of its own. Prints one JSON line
//! per run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
}

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

fn starts(now: i64) -> Vec<i64> {
    // The month start only needs to be stable within the run.
    vec![now - now % MINUTE, now - now % DAY, now - now % (30 * DAY)]
}

async fn one_call(pool: &PgPool, id: &str, studio: &str, now: i64) -> anyhow::Result<()> {
    let limits: Vec<Option<i64>> = vec![None, None, Some(i64::MAX / 4), None, None];
    let answer: Option<String> =
        sqlx::query_scalar("SELECT quota_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(id)
            .bind("bench-replica")
            .bind(studio)
            .bind("user")
            .bind(starts(now))
            .bind(vec![1i64, 15, 15])
            .bind(&limits)
            .bind(&limits)
            .bind(now)
            .fetch_one(pool)
            .await?;
    anyhow::ensure!(answer.is_none(), "refused: {answer:?}");
    sqlx::query("SELECT quota_settle($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(studio)
        .bind("user")
        .bind(starts(now))
        .bind(vec![1i64, 15, 15])
        .bind(vec![1i64, 5, 5])
        .execute(pool)
        .await?;
    Ok(())
}

async fn run(pool: &PgPool, args: &Args, shared_studio: bool) -> anyhow::Result<()> {
    let per_worker = args.calls / args.concurrency;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let pool = pool.clone();
        let studio = if shared_studio {
            "bench-one".to_string()
        } else {
            format!("bench-{worker}")
        };
        workers.push(tokio::spawn(async move {
            let mut latencies = Histogram::<u64>::new(3).unwrap();
            for call in 0..per_worker {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as i64;
                let id = format!("{studio}-{worker}-{call}-{now}");
                let t = Instant::now();
                one_call(&pool, &id, &studio, now).await?;
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
            "ledger": "postgres",
            "studios": if shared_studio { "one" } else { "one per caller" },
            "concurrency": args.concurrency,
            "calls": all.len(),
            "calls_per_s": (all.len() as f64 / elapsed).round(),
            "p50_us": all.value_at_quantile(0.5),
            "p99_us": all.value_at_quantile(0.99),
        })
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
    let pool = Arc::new(pool);
    for shared in [true, false] {
        run(&pool, &args, shared).await?;
    }
    Ok(())
}

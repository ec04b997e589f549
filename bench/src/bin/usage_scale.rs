//! AggregateUsage and ListUsageRecords on a big PostgreSQL usage table:
//! fills it with N rows (INSERT … SELECT generate_series: 3 months, 1,000
//! studios, 10 users and 4 models each), then times, through City's store,
//! one studio's month by day and by model, and its newest page of rows.
//!
//!   usage-scale --url postgres://… [--rows N]
//!
//! Prints one JSON line.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use downcity::domain::{GroupBy, UsageFilter};
use downcity::store::Store;
use downcity::store::postgres::PostgresStore;
use sqlx::Connection;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 10_000_000)]
    rows: i64,
}

const DAY: i64 = 86_400_000;
const STUDIOS: i64 = 1_000;

/// `$2` rows, evenly over the `$4` ms before `$1`, on `$3` studios.
const FILL: &str = "INSERT INTO usage (request_id, studio_id, user_id, model_id, provider_id, \
    pathway, input_tokens, output_tokens, images, cost_micros, status_code, error_reason, \
    latency_us, create_ms) \
    SELECT 'r' || i, 's' || (i % $3), 'u' || (i / $3 % 10), 'm' || (i / $3 % 4), 'p', 'text', 10, 20, 0, \
    30, 0, '', 1000, $1 - $4 + i * ($4 / $2) \
    FROM generate_series(0, $2 - 1) AS i";

async fn timed<T>(what: impl std::future::Future<Output = T>) -> (T, f64) {
    let start = Instant::now();
    let out = what.await;
    (out, start.elapsed().as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = PostgresStore::open(&args.url).await.context("opening")?;
    let mut conn = sqlx::PgConnection::connect(&args.url).await?;
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    for month in 0..5 {
        sqlx::query("SELECT usage_ensure_partition($1)")
            .bind(end - month * 28 * DAY)
            .execute(&mut conn)
            .await?;
    }
    let (filled, fill_ms) = timed(
        sqlx::query(FILL)
            .bind(end)
            .bind(args.rows)
            .bind(STUDIOS)
            .bind(90 * DAY)
            .execute(&mut conn),
    )
    .await;
    filled?;
    sqlx::query("ANALYZE usage").execute(&mut conn).await?;
    let month = UsageFilter {
        studio_id: Some("s7".into()),
        start_ms: Some(end - 30 * DAY),
        end_ms: Some(end),
        ..Default::default()
    };
    let by_day = GroupBy {
        day: true,
        ..Default::default()
    };
    let by_model = GroupBy {
        model: true,
        ..Default::default()
    };
    // Once to warm the cache, as a dashboard asking twice would.
    store.aggregate_usage(&month, by_day, 0, 1000).await?;
    let (days, by_day_ms) = timed(store.aggregate_usage(&month, by_day, 0, 1000)).await;
    let (models, by_model_ms) = timed(store.aggregate_usage(&month, by_model, 0, 1000)).await;
    let studio = UsageFilter {
        studio_id: Some("s7".into()),
        ..Default::default()
    };
    let (page, page_ms) = timed(store.list_usage(&studio, None, 50)).await;
    let calls: i64 = days?.iter().map(|d| d.calls).sum();
    println!(
        "{}",
        serde_json::json!({
            "rows": args.rows,
            "fill_ms": fill_ms.round(),
            "studio_month_calls": calls,
            "aggregate_by_day_ms": by_day_ms,
            "aggregate_by_model_ms": by_model_ms,
            "models": models?.len(),
            "list_page_of_50_ms": page_ms,
            "page_rows": page?.len(),
        })
    );
    Ok(())
}

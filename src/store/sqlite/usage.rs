//! The usage table: newest-first pages, aggregates and retention (inserts:
//! `usage_sink`).
//!
//! Which index serves what: ListUsageRecords of one studio,
//! `usage_studio_seq (studio_id)` (it ends in the rowid, seq: no sort); of
//! everything, the rowid itself. AggregateUsage of a studio over a time range,
//! `usage_studio_time (studio_id, create_ms)`; without a studio,
//! `usage_time (create_ms)`, which retention uses too.

use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::domain::{GroupBy, Millis, UsageAggregateRow, UsageFilter, UsageRow};
use crate::error::Result;
use crate::store::UsageMaintenance;
use crate::store::months::retention_cutoff_ms;
use crate::store::rows;
use crate::store::sql::Conditions;

/// The calendar day (UTC) of a row.
const DAY: &str = "strftime('%Y-%m-%d', create_ms / 1000, 'unixepoch')";
const HOUR: &str = "strftime('%Y-%m-%dT%H', create_ms / 1000, 'unixepoch')";
const MONTH: &str = "strftime('%Y-%m', create_ms / 1000, 'unixepoch')";

pub(super) async fn list(
    pool: &SqlitePool,
    filter: &UsageFilter,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, UsageRow)>> {
    let mut where_ = Conditions::new("SELECT * FROM usage");
    push_filter(&mut where_, filter);
    if let Some(seq) = before_seq {
        where_.and("seq < ", seq);
    }
    let mut query = where_.finish();
    query
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(limit));
    let found = query.build().fetch_all(pool).await?;
    found.iter().map(rows::usage).collect()
}

pub(super) async fn aggregate(
    pool: &SqlitePool,
    filter: &UsageFilter,
    group_by: GroupBy,
    offset: u64,
    limit: u32,
) -> Result<Vec<UsageAggregateRow>> {
    // A user id is only unique within its studio, so users group by studio too.
    let dimensions = [
        ("studio_id", "studio_id", group_by.studio || group_by.user),
        ("user_id", "user_id", group_by.user),
        ("model_id", "model_id", group_by.model),
        ("month", MONTH, group_by.month),
        ("day", DAY, group_by.day),
        ("hour", HOUR, group_by.hour),
    ];
    let mut select = String::from("SELECT ");
    for (name, expr, on) in dimensions {
        let expr = if on { expr } else { "''" };
        select += &format!("{expr} AS {name}, ");
    }
    // COALESCE: with no GROUP BY, an empty match still yields one row of zeros.
    select += "count(*) AS calls, \
        count(*) FILTER (WHERE status_code != 0) AS failed_calls, \
        COALESCE(sum(input_tokens), 0) AS input_tokens, \
        COALESCE(sum(output_tokens), 0) AS output_tokens, \
        COALESCE(sum(images), 0) AS images, \
        COALESCE(sum(cost_micros), 0) AS cost_micros \
        FROM usage";

    let mut where_ = Conditions::new(&select);
    push_filter(&mut where_, filter);
    let mut query = where_.finish();
    let grouped: Vec<&str> = dimensions
        .iter()
        .filter(|(_, _, on)| *on)
        .map(|(name, _, _)| *name)
        .collect();
    if !grouped.is_empty() {
        let columns = grouped.join(", ");
        query.push(format!(" GROUP BY {columns} ORDER BY {columns}"));
    }
    push_limit(&mut query, offset, limit);
    let found = query.build().fetch_all(pool).await?;
    found.iter().map(rows::aggregate).collect()
}

fn push_filter(where_: &mut Conditions<Sqlite>, filter: &UsageFilter) {
    // Open rows (calls in flight) are not usage yet.
    where_.and("open = ", false);
    if let Some(studio_id) = &filter.studio_id {
        where_.and("studio_id = ", studio_id.as_str());
    }
    if let Some(user_id) = &filter.user_id {
        where_.and("user_id = ", user_id.as_str());
    }
    if let Some(model_id) = &filter.model_id {
        where_.and("model_id = ", model_id.as_str());
    }
    if let Some(start_ms) = filter.start_ms {
        where_.and("create_ms >= ", start_ms);
    }
    if let Some(end_ms) = filter.end_ms {
        where_.and("create_ms < ", end_ms);
    }
}

fn push_limit(query: &mut QueryBuilder<Sqlite>, offset: u64, limit: u32) {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    query
        .push(" LIMIT ")
        .push_bind(i64::from(limit))
        .push(" OFFSET ")
        .push_bind(offset);
}

/// Rows deleted per statement: each holds SQLite's one write lock briefly,
/// so the usage writer's commits slip in between.
const DELETE_BATCH: i64 = 1000;

/// Removes the rows before the retention cutoff in small batches, then gives
/// the freed pages back to the file system.
pub(super) async fn maintain(
    pool: &SqlitePool,
    now: Millis,
    retain_months: Option<u32>,
) -> Result<UsageMaintenance> {
    let Some(retain) = retain_months else {
        return Ok(UsageMaintenance::default());
    };
    let cutoff = retention_cutoff_ms(now, retain);
    let mut rows_deleted = 0;
    loop {
        // usage_time (create_ms) finds the oldest rows without a scan.
        let done = sqlx::query(
            "DELETE FROM usage WHERE seq IN \
             (SELECT seq FROM usage WHERE create_ms < ? ORDER BY create_ms LIMIT ?)",
        )
        .bind(cutoff)
        .bind(DELETE_BATCH)
        .execute(pool)
        .await?;
        rows_deleted += done.rows_affected();
        if done.rows_affected() < DELETE_BATCH as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    if rows_deleted > 0 {
        reclaim_space(pool).await?;
    }
    Ok(UsageMaintenance {
        rows_deleted,
        ..Default::default()
    })
}

/// Returns free pages to the file system, a step at a time. Only a file made
/// with auto_vacuum = INCREMENTAL (every file since retention exists) can; an
/// older one reuses the freed pages for new rows, so it stops growing too.
async fn reclaim_space(pool: &SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut *conn)
        .await?;
    const INCREMENTAL: i64 = 2;
    if mode != INCREMENTAL {
        return Ok(());
    }
    loop {
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&mut *conn)
            .await?;
        if free == 0 {
            return Ok(());
        }
        sqlx::query("PRAGMA incremental_vacuum(1000)")
            .execute(&mut *conn)
            .await?;
        tokio::task::yield_now().await;
    }
}

/// Rows still open at start were left by a crash (one process owns the
/// file): they stay as written at admission, the reserved estimate, and close.
pub(super) async fn settle_open_rows(pool: &SqlitePool) -> Result<()> {
    let settled = sqlx::query("UPDATE usage SET open = 0 WHERE open = 1")
        .execute(pool)
        .await?
        .rows_affected();
    if settled > 0 {
        tracing::warn!(
            rows = settled,
            "settled usage rows left open by a crash (counts: the reserved estimate)"
        );
    }
    Ok(())
}

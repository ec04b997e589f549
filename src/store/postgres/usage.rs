//! The usage table: newest-first pages, aggregates, and its monthly
//! partitions (inserts: `usage_sink`).
//!
//! Which index serves what (each partition has its own copy):
//! - ListUsageRecords of one studio: `usage_studio_seq (studio_id, seq)`,
//!   read backwards per partition and merged (Merge Append), so a page costs
//!   its rows, not the studio's; of everything: `usage_seq (seq)` likewise.
//! - AggregateUsage of a studio over a time range: partitions outside the
//!   range are pruned, then `usage_studio_time (studio_id, create_ms)`;
//!   without a studio, `usage_time (create_ms)` or the whole partitions.

use sqlx::{AssertSqlSafe, PgPool, Postgres, QueryBuilder};

use super::directory::fetch;
use crate::domain::{GroupBy, Millis, UsageAggregateRow, UsageFilter, UsageRow};
use crate::error::Result;
use crate::store::UsageMaintenance;
use crate::store::months::{month_index, month_start_ms, retention_cutoff_ms};
use crate::store::rows;
use crate::store::sql::Conditions;

/// Months ahead of the current one whose partitions always exist, so the
/// usage writer never waits on DDL at a month's turn.
const MONTHS_AHEAD: i64 = 2;

/// The advisory lock every partition DDL takes (also in usage_ensure_partition).
const PARTITION_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('downcity.usage_partitions'))";

/// UTC calendar fields of a row, bytewise-ordered like SQLite's strftime.
const DAY: &str =
    "to_char(to_timestamp(create_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD') COLLATE \"C\"";
const HOUR: &str = "to_char(to_timestamp(create_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24') COLLATE \"C\"";
const MONTH: &str =
    "to_char(to_timestamp(create_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM') COLLATE \"C\"";

pub(super) async fn list(
    pool: &PgPool,
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
    fetch(pool, query, rows::usage).await
}

pub(super) async fn aggregate(
    pool: &PgPool,
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
        let expr = if on { expr } else { "''::TEXT" };
        select += &format!("{expr} AS {name}, ");
    }
    // sum(BIGINT) is NUMERIC in PostgreSQL: cast back. COALESCE: with no
    // GROUP BY, an empty match still yields one row of zeros.
    select += "count(*) AS calls, \
        count(*) FILTER (WHERE status_code != 0) AS failed_calls, \
        COALESCE(sum(input_tokens), 0)::BIGINT AS input_tokens, \
        COALESCE(sum(output_tokens), 0)::BIGINT AS output_tokens, \
        COALESCE(sum(images), 0)::BIGINT AS images, \
        COALESCE(sum(cost_micros), 0)::BIGINT AS cost_micros \
        FROM usage";

    let mut where_ = Conditions::new(&select);
    push_filter(&mut where_, filter);
    let mut query = where_.finish();
    // By position: a dimension's alias may equal a column name.
    let grouped: Vec<String> = (1..)
        .zip(dimensions)
        .filter(|(_, (_, _, on))| *on)
        .map(|(position, _)| position.to_string())
        .collect();
    if !grouped.is_empty() {
        let columns = grouped.join(", ");
        query.push(format!(" GROUP BY {columns} ORDER BY {columns}"));
    }
    push_limit(&mut query, offset, limit);
    fetch(pool, query, rows::aggregate).await
}

fn push_filter(where_: &mut Conditions<Postgres>, filter: &UsageFilter) {
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

fn push_limit(query: &mut QueryBuilder<Postgres>, offset: u64, limit: u32) {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    query
        .push(" LIMIT ")
        .push_bind(i64::from(limit))
        .push(" OFFSET ")
        .push_bind(offset);
}

/// Creates the partitions of the current month and the next ones; returns
/// how many were missing.
pub(super) async fn ensure_partitions_ahead(pool: &PgPool, now: Millis) -> Result<u64> {
    let current = month_index(now);
    let mut created = 0;
    for month in current..=current + MONTHS_AHEAD {
        let made: bool = sqlx::query_scalar("SELECT usage_ensure_partition($1)")
            .bind(month_start_ms(month))
            .fetch_one(pool)
            .await?;
        created += u64::from(made);
    }
    Ok(created)
}

/// Partitions ahead, and with a retention, drops the partitions wholly
/// before the cutoff: a DROP TABLE per month, never a DELETE of rows.
pub(super) async fn maintain(
    pool: &PgPool,
    now: Millis,
    retain_months: Option<u32>,
) -> Result<UsageMaintenance> {
    let partitions_created = ensure_partitions_ahead(pool, now).await?;
    let Some(retain) = retain_months else {
        return Ok(UsageMaintenance {
            partitions_created,
            ..Default::default()
        });
    };
    let cutoff = month_index(retention_cutoff_ms(now, retain));
    let mut tx = pool.begin().await?;
    sqlx::query(PARTITION_LOCK).execute(&mut *tx).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::TEXT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'usage'::regclass ORDER BY 1",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut partitions_dropped = 0;
    for name in names {
        if partition_month(&name).is_some_and(|month| month < cutoff) {
            let drop = format!("DROP TABLE \"{name}\"");
            sqlx::query(AssertSqlSafe(drop)).execute(&mut *tx).await?;
            partitions_dropped += 1;
        }
    }
    tx.commit().await?;
    Ok(UsageMaintenance {
        partitions_created,
        partitions_dropped,
        rows_deleted: 0,
    })
}

/// The month index of a partition named `usage_YYYY_MM`.
fn partition_month(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("usage_")?;
    let (year, month) = rest.split_once('_')?;
    let (year, month): (i64, i64) = (year.parse().ok()?, month.parse().ok()?);
    (year > 0 && (1..=12).contains(&month) && rest.len() == 7).then_some(year * 12 + month - 1)
}

#[cfg(test)]
mod tests {
    use super::partition_month;

    #[test]
    fn partition_names_parse_to_months() {
        assert_eq!(partition_month("usage_2024_01"), Some(2024 * 12));
        assert_eq!(partition_month("usage_2024_12"), Some(2024 * 12 + 11));
        for other in [
            "usage_2024_13",
            "usage_24_01",
            "usage",
            "usage_2024_1",
            "stuff_2024_01",
        ] {
            assert_eq!(partition_month(other), None, "{other}");
        }
    }
}

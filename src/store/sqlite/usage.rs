//! The usage table: the group-commit insert, newest-first pages and aggregates.

use async_trait::async_trait;
use sqlx::{Connection, QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::rows::{self, to_json};
use super::sql::Conditions;
use crate::error::Result;
use crate::store::{DeliveryRecord, GroupBy, UsageAggregateRow, UsageFilter, UsageRow, UsageSink};

const INSERT: &str = "INSERT INTO usage (request_id, studio_id, user_id, model_id, provider_id, \
     pathway, input_tokens, output_tokens, images, cost_micros, status_code, error_reason, \
     latency_us, ttft_us, create_ms, metadata) ";

/// Rows per INSERT statement, largest first. A batch goes out in as few
/// statements as these sizes allow, and since only these few statement texts
/// exist, each stays prepared in the connection's statement cache.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// The calendar day (UTC) of a row.
const DAY: &str = "strftime('%Y-%m-%d', create_ms / 1000, 'unixepoch')";
const HOUR: &str = "strftime('%Y-%m-%dT%H', create_ms / 1000, 'unixepoch')";
const MONTH: &str = "strftime('%Y-%m', create_ms / 1000, 'unixepoch')";

/// The usage writer's own connection.
pub(super) struct Sink {
    connection: SqliteConnection,
}

impl Sink {
    pub(super) fn new(connection: SqliteConnection) -> Sink {
        Sink { connection }
    }
}

#[async_trait]
impl UsageSink for Sink {
    /// One row alone is one autocommitted statement; anything more is one
    /// transaction. Either way one commit (one WAL append) for the batch.
    async fn insert(&mut self, rows: &[UsageRow], outbox: &[DeliveryRecord]) -> Result<()> {
        if rows.len() + outbox.len() <= 1 {
            return insert_rows(&mut self.connection, rows).await;
        }
        let mut tx = self.connection.begin().await?;
        insert_rows(&mut tx, rows).await?;
        for delivery in outbox {
            super::hooks::insert_delivery(&mut tx, delivery).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn close(self: Box<Self>) {
        if let Err(err) = self.connection.close().await {
            tracing::warn!(%err, "closing the usage connection");
        }
    }
}

/// Inserts `rows` in multi-row statements of the `CHUNKS` sizes.
async fn insert_rows(connection: &mut SqliteConnection, mut rows: &[UsageRow]) -> Result<()> {
    for size in CHUNKS {
        while rows.len() >= size {
            let (chunk, rest) = rows.split_at(size);
            insert_chunk(connection, chunk).await?;
            rows = rest;
        }
    }
    Ok(())
}

async fn insert_chunk(connection: &mut SqliteConnection, rows: &[UsageRow]) -> Result<()> {
    let metadata = rows
        .iter()
        .map(|row| to_json(&row.metadata))
        .collect::<Result<Vec<_>>>()?;
    let mut query = QueryBuilder::<Sqlite>::new(INSERT);
    query.push_values(rows.iter().zip(metadata), |mut values, (row, metadata)| {
        values
            .push_bind(&row.request_id)
            .push_bind(&row.studio_id)
            .push_bind(&row.user_id)
            .push_bind(&row.model_id)
            .push_bind(&row.provider_id)
            .push_bind(&row.pathway)
            .push_bind(row.input_tokens)
            .push_bind(row.output_tokens)
            .push_bind(row.images)
            .push_bind(row.cost_micros)
            .push_bind(row.status_code)
            .push_bind(&row.error_reason)
            .push_bind(row.latency_us)
            .push_bind(row.ttft_us)
            .push_bind(row.create_ms)
            .push_bind(metadata);
    });
    query.build().persistent(true).execute(connection).await?;
    Ok(())
}

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

fn push_filter<'a>(where_: &mut Conditions<'a>, filter: &'a UsageFilter) {
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

fn push_limit(query: &mut QueryBuilder<'_, Sqlite>, offset: u64, limit: u32) {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    query
        .push(" LIMIT ")
        .push_bind(i64::from(limit))
        .push(" OFFSET ")
        .push_bind(offset);
}

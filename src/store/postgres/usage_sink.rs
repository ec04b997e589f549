//! The usage writer's connection to PostgreSQL: its own connection, driven
//! by a runtime of its own on the writer's thread (the `UsageSink` is
//! synchronous), so the writer never waits for the pool.
//!
//! A batch is one INSERT of all its rows (arrays bound per column and
//! UNNESTed: one prepared statement whatever the batch size) and, when it has
//! after_call deliveries, their INSERT in the same transaction. Rows opened at
//! admission are inserted open (with this replica's id, so a sweeper knows
//! whose they are); a settled row replaces its open row by one UPDATE.

use std::collections::HashSet;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::runtime::Runtime;

use crate::domain::{DeliveryRecord, UsageRow};
use crate::error::{Error, Result};
use crate::store::months::month_index;
use crate::store::rows::to_json;
use crate::store::{UsageBatch, UsageSink};

const INSERT_USAGE: &str = "INSERT INTO usage (request_id, studio_id, user_id, model_id, \
     provider_id, pathway, input_tokens, output_tokens, images, cost_micros, status_code, \
     error_reason, latency_us, ttft_us, create_ms, metadata, open, replica_id) \
     SELECT *, $17::BOOLEAN, $18::TEXT FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], \
     $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], \
     $10::BIGINT[], $11::INTEGER[], $12::TEXT[], $13::BIGINT[], $14::BIGINT[], $15::BIGINT[], \
     $16::TEXT[])";

/// Replaces open rows by final ones, found by (create_ms, request_id): the
/// index on create_ms, within the admission month's partition.
const SETTLE_USAGE: &str = "UPDATE usage u SET model_id = f.model_id, \
     provider_id = f.provider_id, input_tokens = f.input_tokens, \
     output_tokens = f.output_tokens, images = f.images, cost_micros = f.cost_micros, \
     status_code = f.status_code, error_reason = f.error_reason, latency_us = f.latency_us, \
     ttft_us = f.ttft_us, metadata = f.metadata, open = false \
     FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::INTEGER[], \
     $12::TEXT[], $13::BIGINT[], $14::BIGINT[], $15::BIGINT[], $16::TEXT[]) \
     AS f(request_id, studio_id, user_id, model_id, provider_id, pathway, input_tokens, \
     output_tokens, images, cost_micros, status_code, error_reason, latency_us, ttft_us, \
     create_ms, metadata) \
     WHERE u.create_ms = f.create_ms AND u.request_id = f.request_id RETURNING u.request_id";

const INSERT_DELIVERIES: &str = "INSERT INTO hook_outbox (id, hook_id, studio_id, request_id, \
     payload, state, attempts, last_error, next_attempt_ms, create_ms, deliver_ms, traceparent) \
     SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::INTEGER[], $8::TEXT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], \
     $12::TEXT[])";

/// SQLSTATE of "no partition of relation found for row".
const NO_PARTITION: &str = "23514";

pub(super) struct Sink {
    /// `Option` only so that `Drop` can shut it down from any context.
    runtime: Option<Runtime>,
    options: PgConnectOptions,
    /// Dropped after a failed batch: the next one reconnects (a restarted
    /// or failed-over server).
    connection: Option<PgConnection>,
    /// Months whose partition is known to exist.
    months: HashSet<i64>,
    /// Marks the rows this replica opens.
    replica_id: String,
}

impl Sink {
    /// Connects; called off the async runtime (the sink blocks).
    pub(super) fn open(options: PgConnectOptions, replica_id: String) -> Result<Sink> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("store: usage runtime: {e}")))?;
        let connection = runtime.block_on(PgConnection::connect_with(&options))?;
        Ok(Sink {
            runtime: Some(runtime),
            options,
            connection: Some(connection),
            months: HashSet::new(),
            replica_id,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // shutdown_background: never blocks, so dropping inside async code is fine.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl UsageSink for Sink {
    fn write(&mut self, batch: &UsageBatch<'_>) -> Result<()> {
        let runtime = self.runtime.take().expect("the runtime lives until drop");
        let done = runtime.block_on(self.write_batch(batch));
        self.runtime = Some(runtime);
        if done.is_err() {
            self.connection = None;
        }
        done
    }
}

impl Sink {
    async fn write_batch(&mut self, batch: &UsageBatch<'_>) -> Result<()> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => PgConnection::connect_with(&self.options).await?,
        };
        let mut done = self.write_on(&mut connection, batch).await;
        if done.as_ref().is_err_and(is_no_partition) {
            // A partition dropped by retention while this sink thought it
            // existed (a row far in the past): make it and try once more.
            self.months.clear();
            done = self.write_on(&mut connection, batch).await;
        }
        self.connection = Some(connection);
        Ok(done?)
    }

    async fn write_on(
        &mut self,
        connection: &mut PgConnection,
        batch: &UsageBatch<'_>,
    ) -> sqlx::Result<()> {
        for rows in [batch.opened, batch.rows] {
            self.ensure_partitions(connection, rows).await?;
        }
        let statements = [
            !batch.opened.is_empty(),
            !batch.settled.is_empty(),
            !batch.rows.is_empty(),
            !batch.outbox.is_empty(),
        ];
        if statements.iter().filter(|&&any| any).count() <= 1 && batch.settled.is_empty() {
            // One statement is its own transaction.
            insert_rows(connection, batch.opened, Some(&self.replica_id)).await?;
            return insert_rows(connection, batch.rows, None).await;
        }
        let mut tx = connection.begin().await?;
        insert_rows(&mut tx, batch.opened, Some(&self.replica_id)).await?;
        let missing = settle_rows(&mut tx, batch.settled).await?;
        insert_rows(&mut tx, &missing, None).await?;
        insert_rows(&mut tx, batch.rows, None).await?;
        if !batch.outbox.is_empty() {
            insert_deliveries(&mut tx, batch.outbox).await?;
        }
        tx.commit().await
    }

    /// Creates missing month partitions outside the batch's transaction, so
    /// their lock is held only for the DDL.
    async fn ensure_partitions(
        &mut self,
        connection: &mut PgConnection,
        rows: &[UsageRow],
    ) -> sqlx::Result<()> {
        for row in rows {
            let month = month_index(row.create_ms);
            if self.months.contains(&month) {
                continue;
            }
            sqlx::query("SELECT usage_ensure_partition($1)")
                .bind(row.create_ms)
                .execute(&mut *connection)
                .await?;
            self.months.insert(month);
        }
        Ok(())
    }
}

fn is_no_partition(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some(NO_PARTITION)
        && db.message().contains("no partition"))
}

/// Column `f` of every row.
fn column<T, R>(rows: &[R], f: impl Fn(&R) -> T) -> Vec<T> {
    rows.iter().map(f).collect()
}

/// Binds the 16 columns of `rows`, in INSERT_USAGE's order.
fn bind_rows<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    rows: &[UsageRow],
) -> sqlx::Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>> {
    let metadata = rows
        .iter()
        .map(|r| to_json(&r.metadata).map_err(|e| sqlx::Error::Encode(e.to_string().into())))
        .collect::<sqlx::Result<Vec<_>>>()?;
    Ok(query
        .bind(column(rows, |r| r.request_id.clone()))
        .bind(column(rows, |r| r.studio_id.clone()))
        .bind(column(rows, |r| r.user_id.clone()))
        .bind(column(rows, |r| r.model_id.clone()))
        .bind(column(rows, |r| r.provider_id.clone()))
        .bind(column(rows, |r| r.pathway.clone()))
        .bind(column(rows, |r| r.input_tokens))
        .bind(column(rows, |r| r.output_tokens))
        .bind(column(rows, |r| r.images))
        .bind(column(rows, |r| r.cost_micros))
        .bind(column(rows, |r| r.status_code))
        .bind(column(rows, |r| r.error_reason.clone()))
        .bind(column(rows, |r| r.latency_us))
        .bind(column(rows, |r| r.ttft_us))
        .bind(column(rows, |r| r.create_ms))
        .bind(metadata))
}

/// Inserts rows: open ones marked with `replica` (the replica that serves them).
async fn insert_rows(
    connection: &mut PgConnection,
    rows: &[UsageRow],
    replica: Option<&str>,
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    bind_rows(sqlx::query(INSERT_USAGE), rows)?
        .bind(replica.is_some())
        .bind(replica)
        .execute(connection)
        .await?;
    Ok(())
}

/// Replaces open rows by `rows`; returns those whose open row was not found
/// (never expected: the caller inserts them, so no row is lost).
async fn settle_rows(
    connection: &mut PgConnection,
    rows: &[UsageRow],
) -> sqlx::Result<Vec<UsageRow>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let settled: HashSet<String> = bind_rows(sqlx::query(SETTLE_USAGE), rows)?
        .fetch_all(&mut *connection)
        .await?
        .iter()
        .map(|row| sqlx::Row::get(row, 0))
        .collect();
    Ok(rows
        .iter()
        .filter(|row| !settled.contains(&row.request_id))
        .cloned()
        .collect())
}

async fn insert_deliveries(
    connection: &mut PgConnection,
    outbox: &[DeliveryRecord],
) -> sqlx::Result<()> {
    sqlx::query(INSERT_DELIVERIES)
        .bind(column(outbox, |d| d.id.clone()))
        .bind(column(outbox, |d| d.hook_id.clone()))
        .bind(column(outbox, |d| d.studio_id.clone()))
        .bind(column(outbox, |d| d.request_id.clone()))
        .bind(column(outbox, |d| d.payload.clone()))
        .bind(column(outbox, |d| d.state.as_str()))
        .bind(column(outbox, |d| d.attempts))
        .bind(column(outbox, |d| d.last_error.clone()))
        .bind(column(outbox, |d| d.next_attempt_ms))
        .bind(column(outbox, |d| d.create_ms))
        .bind(column(outbox, |d| d.deliver_ms))
        .bind(column(outbox, |d| d.traceparent.clone()))
        .execute(connection)
        .await?;
    Ok(())
}

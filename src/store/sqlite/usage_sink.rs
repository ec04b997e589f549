//! The usage writer's connection: synchronous SQLite (rusqlite, the same
//! libsqlite3 as sqlx) on the writer's own thread.
//!
//! sqlx runs each SQLite connection on a worker thread and hands every
//! statement to it and back; here the writer thread *is* the connection's
//! thread, so a batch costs one hand-off from the calls and one back, and its
//! statements run without any.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::domain::{DeliveryRecord, UsageRow};
use crate::error::Result;
use crate::store::rows::to_json;
use crate::store::{UsageBatch, UsageSink};

/// Rows per INSERT statement, largest first: a batch goes out in as few
/// statements as these sizes allow, each kept prepared by the connection.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

const INSERT_USAGE: &str = "INSERT INTO usage (request_id, studio_id, user_id, model_id, \
     provider_id, pathway, input_tokens, output_tokens, images, cost_micros, status_code, \
     error_reason, latency_us, ttft_us, create_ms, metadata, open) VALUES ";
/// Bound per row; `open` comes after them, as a literal.
const USAGE_COLUMNS: usize = 16;

/// Replaces a call's open row by its final one (found by the index on
/// create_ms, the call's admission time, then its request id).
const SETTLE_USAGE: &str = "UPDATE usage SET request_id = ?1, studio_id = ?2, user_id = ?3, \
     model_id = ?4, provider_id = ?5, pathway = ?6, input_tokens = ?7, output_tokens = ?8, \
     images = ?9, cost_micros = ?10, status_code = ?11, error_reason = ?12, latency_us = ?13, \
     ttft_us = ?14, create_ms = ?15, metadata = ?16, open = 0 \
     WHERE create_ms = ?15 AND request_id = ?1";

const INSERT_DELIVERY: &str = "INSERT INTO hook_outbox (id, hook_id, studio_id, request_id, \
     payload, state, attempts, last_error, next_attempt_ms, create_ms, deliver_ms, traceparent) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

pub(super) struct Sink {
    connection: Connection,
    /// The INSERT text for each of `CHUNKS`' sizes, in the same order.
    chunk_statements: ChunkStatements,
}

impl Sink {
    /// Opens its own connection to the (already migrated) database file.
    pub(super) fn open(path: &Path, synchronous_full: bool, busy: Duration) -> Result<Sink> {
        let connection = Connection::open(path)?;
        connection.busy_timeout(busy)?;
        let synchronous = if synchronous_full { "FULL" } else { "NORMAL" };
        connection.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; \
             PRAGMA foreign_keys = ON;"
        ))?;
        connection.set_prepared_statement_cache_capacity(2 * CHUNKS.len() + 2);
        Ok(Sink {
            connection,
            chunk_statements: chunk_statements(),
        })
    }
}

impl UsageSink for Sink {
    fn write(&mut self, batch: &UsageBatch<'_>) -> Result<()> {
        // IMMEDIATE: take the write lock up front rather than upgrading a
        // read lock, which could fail with SQLITE_BUSY mid-transaction.
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_rows(&tx, &self.chunk_statements.opened, batch.opened)?;
        let mut missing = Vec::new();
        for row in batch.settled {
            if settle_row(&tx, row)? == 0 {
                // The open row is not there (never expected): keep the row anyway.
                missing.push(row.clone());
            }
        }
        insert_rows(&tx, &self.chunk_statements.closed, &missing)?;
        insert_rows(&tx, &self.chunk_statements.closed, batch.rows)?;
        for delivery in batch.outbox {
            insert_delivery(&tx, delivery)?;
        }
        Ok(tx.commit()?)
    }
}

fn insert_rows(tx: &Transaction<'_>, statements: &[String], mut rows: &[UsageRow]) -> Result<()> {
    for (size, sql) in CHUNKS.iter().zip(statements) {
        while rows.len() >= *size {
            let (chunk, rest) = rows.split_at(*size);
            insert_chunk(tx, sql, chunk)?;
            rows = rest;
        }
    }
    Ok(())
}

/// The INSERT texts for each chunk size: of open rows and of final ones.
struct ChunkStatements {
    opened: Vec<String>,
    closed: Vec<String>,
}

fn chunk_statements() -> ChunkStatements {
    let texts = |open: u8| {
        let row = format!("({}, {open})", vec!["?"; USAGE_COLUMNS].join(", "));
        CHUNKS
            .iter()
            .map(|&size| format!("{INSERT_USAGE}{}", vec![row.as_str(); size].join(", ")))
            .collect()
    };
    ChunkStatements {
        opened: texts(1),
        closed: texts(0),
    }
}

/// Replaces the open row of the same call; returns the rows changed.
fn settle_row(tx: &Transaction<'_>, row: &UsageRow) -> Result<usize> {
    let mut statement = tx.prepare_cached(SETTLE_USAGE)?;
    let metadata = to_json(&row.metadata)?;
    Ok(statement.execute(params![
        row.request_id,
        row.studio_id,
        row.user_id,
        row.model_id,
        row.provider_id,
        row.pathway,
        row.input_tokens,
        row.output_tokens,
        row.images,
        row.cost_micros,
        row.status_code,
        row.error_reason,
        row.latency_us,
        row.ttft_us,
        row.create_ms,
        metadata,
    ])?)
}

fn insert_chunk(tx: &Transaction<'_>, sql: &str, rows: &[UsageRow]) -> Result<()> {
    let mut statement = tx.prepare_cached(sql)?;
    for (i, row) in rows.iter().enumerate() {
        let at = i * USAGE_COLUMNS;
        let metadata = to_json(&row.metadata)?;
        let values: [&dyn rusqlite::ToSql; USAGE_COLUMNS] = [
            &row.request_id,
            &row.studio_id,
            &row.user_id,
            &row.model_id,
            &row.provider_id,
            &row.pathway,
            &row.input_tokens,
            &row.output_tokens,
            &row.images,
            &row.cost_micros,
            &row.status_code,
            &row.error_reason,
            &row.latency_us,
            &row.ttft_us,
            &row.create_ms,
            &metadata,
        ];
        for (column, value) in values.into_iter().enumerate() {
            // Parameters are numbered from 1.
            statement.raw_bind_parameter(at + column + 1, value)?;
        }
    }
    statement.raw_execute()?;
    Ok(())
}

fn insert_delivery(tx: &Transaction<'_>, delivery: &DeliveryRecord) -> Result<()> {
    let mut statement = tx.prepare_cached(INSERT_DELIVERY)?;
    statement.execute(params![
        delivery.id,
        delivery.hook_id,
        delivery.studio_id,
        delivery.request_id,
        delivery.payload,
        delivery.state.as_str(),
        delivery.attempts,
        delivery.last_error,
        delivery.next_attempt_ms,
        delivery.create_ms,
        delivery.deliver_ms,
        delivery.traceparent,
    ])?;
    Ok(())
}

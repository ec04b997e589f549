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
use crate::store::UsageSink;
use crate::store::rows::to_json;

/// Rows per INSERT statement, largest first: a batch goes out in as few
/// statements as these sizes allow, each kept prepared by the connection.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

const INSERT_USAGE: &str = "INSERT INTO usage (request_id, studio_id, user_id, model_id, \
     provider_id, pathway, input_tokens, output_tokens, images, cost_micros, status_code, \
     error_reason, latency_us, ttft_us, create_ms, metadata) VALUES ";
const USAGE_COLUMNS: usize = 16;

const INSERT_DELIVERY: &str = "INSERT INTO hook_outbox (id, hook_id, studio_id, request_id, \
     payload, state, attempts, last_error, next_attempt_ms, create_ms, deliver_ms) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

pub(super) struct Sink {
    connection: Connection,
    /// The INSERT text for each of `CHUNKS`' sizes, in the same order.
    chunk_statements: Vec<String>,
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
        connection.set_prepared_statement_cache_capacity(CHUNKS.len() + 1);
        Ok(Sink {
            connection,
            chunk_statements: chunk_statements(),
        })
    }
}

impl UsageSink for Sink {
    fn insert(&mut self, rows: &[UsageRow], outbox: &[DeliveryRecord]) -> Result<()> {
        // IMMEDIATE: take the write lock up front rather than upgrading a
        // read lock, which could fail with SQLITE_BUSY mid-transaction.
        let tx = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_rows(&tx, &self.chunk_statements, rows)?;
        for delivery in outbox {
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

/// The INSERT text for each chunk size.
fn chunk_statements() -> Vec<String> {
    let row = format!("({})", vec!["?"; USAGE_COLUMNS].join(", "));
    CHUNKS
        .iter()
        .map(|&size| format!("{INSERT_USAGE}{}", vec![row.as_str(); size].join(", ")))
        .collect()
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
    ])?;
    Ok(())
}

//! The hooks table and the after_call outbox, leased per delivery: several
//! replicas share one outbox, and each due delivery goes to one of them.

use sqlx::PgPool;

use super::directory::fetch;
use crate::domain::{AttemptOutcome, DeliveryFilter, DeliveryRecord, HookRecord, Millis};
use crate::error::{Error, Result};
use crate::store::rows::{delivery, delivery_record, hook, to_json};
use crate::store::sql::{Conditions, not_found};

/// How long a replica holds the deliveries it took: longer than one batch of
/// attempts takes (hook timeouts are seconds), short enough that a dead
/// replica's deliveries are soon sent by another.
pub(super) const LEASE_MS: Millis = 60_000;

pub(super) async fn all(pool: &PgPool) -> Result<Vec<HookRecord>> {
    let found = sqlx::query("SELECT * FROM hooks ORDER BY id")
        .fetch_all(pool)
        .await?;
    found.iter().map(hook).collect()
}

pub(super) async fn upsert(pool: &PgPool, hook: &HookRecord) -> Result<()> {
    let events: Vec<&str> = hook.events.iter().map(|e| e.as_str()).collect();
    sqlx::query(
        "INSERT INTO hooks (id, studio_id, url, events, timeout_ms, fail_closed, include_prompt, \
         secret, create_ms, update_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (id) DO UPDATE SET url = excluded.url, events = excluded.events, \
         timeout_ms = excluded.timeout_ms, fail_closed = excluded.fail_closed, \
         include_prompt = excluded.include_prompt, secret = excluded.secret, \
         update_ms = excluded.update_ms",
    )
    .bind(&hook.id)
    .bind(&hook.studio_id)
    .bind(&hook.url)
    .bind(to_json(&events)?)
    .bind(hook.timeout_ms)
    .bind(hook.fail_closed)
    .bind(hook.include_prompt)
    .bind(hook.secret.as_slice())
    .bind(hook.create_ms)
    .bind(hook.update_ms)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn delete(pool: &PgPool, id: &str, at: Millis) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("DELETE FROM hooks WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(not_found("hook", id));
    }
    sqlx::query(
        "UPDATE hook_outbox SET state = 'dead', last_error = 'the hook was deleted', \
         next_attempt_ms = $1, lease_until_ms = NULL WHERE hook_id = $2 AND state = 'pending'",
    )
    .bind(at)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Takes up to `limit` due deliveries that no live lease holds, and leases
/// them. SKIP LOCKED: replicas taking at once get disjoint sets, never wait.
pub(super) async fn due(pool: &PgPool, now: Millis, limit: u32) -> Result<Vec<DeliveryRecord>> {
    let found = sqlx::query(
        "UPDATE hook_outbox SET lease_until_ms = $1 + $3 WHERE seq IN ( \
           SELECT seq FROM hook_outbox WHERE state = 'pending' AND next_attempt_ms <= $1 \
           AND COALESCE(lease_until_ms, 0) <= $1 \
           ORDER BY next_attempt_ms, seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING *",
    )
    .bind(now)
    .bind(i64::from(limit))
    .bind(LEASE_MS)
    .fetch_all(pool)
    .await?;
    let mut due = found.iter().map(delivery).collect::<Result<Vec<_>>>()?;
    // RETURNING keeps no order: oldest first, as the trait promises.
    due.sort_by_key(|(seq, d)| (d.next_attempt_ms, *seq));
    Ok(due.into_iter().map(|(_, d)| d).collect())
}

/// When the next pending delivery may be taken: due, and its lease (if any) over.
pub(super) async fn next_due(pool: &PgPool) -> Result<Option<Millis>> {
    let next: Option<Millis> = sqlx::query_scalar(
        "SELECT MIN(GREATEST(next_attempt_ms, COALESCE(lease_until_ms, 0))) \
         FROM hook_outbox WHERE state = 'pending'",
    )
    .fetch_one(pool)
    .await?;
    Ok(next)
}

/// Records an outcome and gives the lease up.
pub(super) async fn record_attempt(
    pool: &PgPool,
    id: &str,
    outcome: &AttemptOutcome,
) -> Result<()> {
    let query = match outcome {
        AttemptOutcome::Delivered { at } => sqlx::query(
            "UPDATE hook_outbox SET state = 'delivered', attempts = attempts + 1, \
             deliver_ms = $1, last_error = '', lease_until_ms = NULL \
             WHERE id = $2 AND state = 'pending'",
        )
        .bind(*at)
        .bind(id),
        AttemptOutcome::Failed {
            error,
            next_attempt_ms,
        } => sqlx::query(
            "UPDATE hook_outbox SET attempts = attempts + 1, last_error = $1, \
             state = CASE WHEN $2::BIGINT IS NULL THEN 'dead' ELSE 'pending' END, \
             next_attempt_ms = COALESCE($2, next_attempt_ms), lease_until_ms = NULL \
             WHERE id = $3 AND state = 'pending'",
        )
        .bind(error)
        .bind(*next_attempt_ms)
        .bind(id),
    };
    query.execute(pool).await?;
    Ok(())
}

pub(super) async fn get_delivery(pool: &PgPool, id: &str) -> Result<Option<DeliveryRecord>> {
    let row = sqlx::query("SELECT * FROM hook_outbox WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(delivery_record).transpose()
}

pub(super) async fn list(
    pool: &PgPool,
    filter: &DeliveryFilter,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, DeliveryRecord)>> {
    let mut where_ = Conditions::new("SELECT * FROM hook_outbox");
    where_.and("studio_id = ", filter.studio_id.as_str());
    if let Some(hook_id) = &filter.hook_id {
        where_.and("hook_id = ", hook_id.as_str());
    }
    if let Some(state) = filter.state {
        where_.and("state = ", state.as_str());
    }
    if let Some(seq) = before_seq {
        where_.and("seq < ", seq);
    }
    let mut query = where_.finish();
    query
        .push(" ORDER BY seq DESC LIMIT ")
        .push_bind(i64::from(limit));
    fetch(pool, query, delivery).await
}

pub(super) async fn redeliver(pool: &PgPool, id: &str, at: Millis) -> Result<DeliveryRecord> {
    let row = sqlx::query(
        "UPDATE hook_outbox SET state = 'pending', attempts = 0, last_error = '', \
         next_attempt_ms = $1, deliver_ms = NULL, lease_until_ms = NULL WHERE id = $2 \
         RETURNING *",
    )
    .bind(at)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => delivery_record(&row),
        None => Err(Error::NotFound {
            resource: "hook delivery",
            id: id.to_string(),
        }),
    }
}

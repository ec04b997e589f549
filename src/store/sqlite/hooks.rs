//! The hooks table and the after_call outbox.

use sqlx::SqlitePool;

use crate::domain::{AttemptOutcome, DeliveryFilter, DeliveryRecord, HookRecord, Millis};
use crate::error::{Error, Result};
use crate::store::rows::{delivery, delivery_record, hook, to_json};
use crate::store::sql::Conditions;

pub(super) async fn all(pool: &SqlitePool) -> Result<Vec<HookRecord>> {
    let found = sqlx::query("SELECT * FROM hooks ORDER BY id")
        .fetch_all(pool)
        .await?;
    found.iter().map(hook).collect()
}

pub(super) async fn upsert(pool: &SqlitePool, hook: &HookRecord) -> Result<()> {
    let events: Vec<&str> = hook.events.iter().map(|e| e.as_str()).collect();
    sqlx::query(
        "INSERT INTO hooks (id, studio_id, url, events, timeout_ms, fail_closed, include_prompt, \
         secret, create_ms, update_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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

pub(super) async fn delete(pool: &SqlitePool, id: &str, at: Millis) -> Result<()> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query("DELETE FROM hooks WHERE id = ?")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound {
            resource: "hook",
            id: id.to_string(),
        });
    }
    sqlx::query(
        "UPDATE hook_outbox SET state = 'dead', last_error = 'the hook was deleted', \
         next_attempt_ms = ? WHERE hook_id = ? AND state = 'pending'",
    )
    .bind(at)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn due(pool: &SqlitePool, now: Millis, limit: u32) -> Result<Vec<DeliveryRecord>> {
    let found = sqlx::query(
        "SELECT * FROM hook_outbox WHERE state = 'pending' AND next_attempt_ms <= ? \
         ORDER BY next_attempt_ms, seq LIMIT ?",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    found.iter().map(delivery_record).collect()
}

pub(super) async fn next_due(pool: &SqlitePool) -> Result<Option<Millis>> {
    let next: Option<Millis> =
        sqlx::query_scalar("SELECT MIN(next_attempt_ms) FROM hook_outbox WHERE state = 'pending'")
            .fetch_one(pool)
            .await?;
    Ok(next)
}

pub(super) async fn record_attempt(
    pool: &SqlitePool,
    id: &str,
    outcome: &AttemptOutcome,
) -> Result<()> {
    let query = match outcome {
        AttemptOutcome::Delivered { at } => sqlx::query(
            "UPDATE hook_outbox SET state = 'delivered', attempts = attempts + 1, \
             deliver_ms = ?, last_error = '' WHERE id = ? AND state = 'pending'",
        )
        .bind(*at)
        .bind(id),
        AttemptOutcome::Failed {
            error,
            next_attempt_ms,
        } => sqlx::query(
            "UPDATE hook_outbox SET attempts = attempts + 1, last_error = ?, \
             state = CASE WHEN ? IS NULL THEN 'dead' ELSE 'pending' END, \
             next_attempt_ms = COALESCE(?, next_attempt_ms) WHERE id = ? AND state = 'pending'",
        )
        .bind(error)
        .bind(*next_attempt_ms)
        .bind(*next_attempt_ms)
        .bind(id),
    };
    query.execute(pool).await?;
    Ok(())
}

pub(super) async fn get_delivery(pool: &SqlitePool, id: &str) -> Result<Option<DeliveryRecord>> {
    let row = sqlx::query("SELECT * FROM hook_outbox WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(delivery_record).transpose()
}

pub(super) async fn list(
    pool: &SqlitePool,
    filter: &DeliveryFilter,
    before_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<(i64, DeliveryRecord)>> {
    let mut where_ = Conditions::new("SELECT * FROM hook_outbox");
    where_.and("studio_id = ", filter.studio_id.clone());
    if let Some(hook_id) = &filter.hook_id {
        where_.and("hook_id = ", hook_id.clone());
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
    let found = query.build().fetch_all(pool).await?;
    found.iter().map(delivery).collect()
}

pub(super) async fn redeliver(pool: &SqlitePool, id: &str, at: Millis) -> Result<DeliveryRecord> {
    let row = sqlx::query(
        "UPDATE hook_outbox SET state = 'pending', attempts = 0, last_error = '', \
         next_attempt_ms = ?, deliver_ms = NULL WHERE id = ? RETURNING *",
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

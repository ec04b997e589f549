//! Providers, models and the default model of each pathway.

use sqlx::error::ErrorKind;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool};

use super::directory::fetch;
use crate::domain::{Millis, ModelRecord, Pathway, ProviderRecord, SealedKey};
use crate::error::Result;
use crate::store::PageQuery;
use crate::store::rows;
use crate::store::sql::{self, Conditions, missing_on_fk, not_found, paged, violates};

pub(super) async fn list<T>(
    pool: &PgPool,
    table: &str,
    page: &PageQuery,
    convert: fn(&PgRow) -> Result<T>,
) -> Result<Vec<T>> {
    let query = paged(Conditions::new(&format!("SELECT * FROM {table}")), page);
    fetch(pool, query, convert).await
}

pub(super) async fn upsert_provider(pool: &PgPool, provider: &ProviderRecord) -> Result<()> {
    // The API key columns are left alone: set_provider_api_key owns them.
    sqlx::query(
        "INSERT INTO providers (id, kind, base_url, update_ms, headers, \
         connect_timeout_ms, first_byte_timeout_ms, total_timeout_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
         base_url = excluded.base_url, update_ms = excluded.update_ms, \
         headers = excluded.headers, connect_timeout_ms = excluded.connect_timeout_ms, \
         first_byte_timeout_ms = excluded.first_byte_timeout_ms, \
         total_timeout_ms = excluded.total_timeout_ms",
    )
    .bind(&provider.id)
    .bind(provider.kind.as_str())
    .bind(&provider.base_url)
    .bind(provider.update_ms)
    .bind(rows::to_json(&provider.headers)?)
    .bind(provider.timeouts.connect_ms)
    .bind(provider.timeouts.first_byte_ms)
    .bind(provider.timeouts.total_ms)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn set_provider_api_key(
    pool: &PgPool,
    id: &str,
    key: Option<&SealedKey>,
    at: Millis,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE providers SET api_key = $1, api_key_hint = $2, api_key_update_ms = $3 \
         WHERE id = $4",
    )
    .bind(key.map(|k| k.ciphertext.as_slice()))
    .bind(key.map_or("", |k| k.hint.as_str()))
    .bind(at)
    .bind(id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(not_found("provider", id));
    }
    Ok(())
}

pub(super) async fn reseal(
    pool: &PgPool,
    keys: &[(String, SealedKey)],
    hook_secrets: &[(String, Vec<u8>)],
    settings: &[(String, String)],
) -> Result<()> {
    let mut tx = pool.begin().await?;
    for (id, secret) in hook_secrets {
        sqlx::query("UPDATE hooks SET secret = $1 WHERE id = $2")
            .bind(secret.as_slice())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for (id, key) in keys {
        sqlx::query("UPDATE providers SET api_key = $1, api_key_hint = $2 WHERE id = $3")
            .bind(key.ciphertext.as_slice())
            .bind(&key.hint)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for (key, value) in settings {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Deletes the row of `table` with this id: `false` if a foreign key
/// refused the delete, NOT_FOUND if there is no such row.
async fn delete(pool: &PgPool, table: &str, resource: &'static str, id: &str) -> Result<bool> {
    let sql = format!("DELETE FROM {table} WHERE id = $1");
    match sqlx::query(AssertSqlSafe(sql)).bind(id).execute(pool).await {
        Ok(done) if done.rows_affected() == 0 => Err(not_found(resource, id)),
        Ok(_) => Ok(true),
        Err(e) if violates(&e, ErrorKind::ForeignKeyViolation) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn delete_provider(pool: &PgPool, id: &str) -> Result<()> {
    // The foreign key from models refuses the delete atomically.
    if delete(pool, "providers", "provider", id).await? {
        return Ok(());
    }
    let model: Option<String> =
        sqlx::query_scalar("SELECT id FROM models WHERE provider_id = $1 ORDER BY id LIMIT 1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Err(sql::provider_in_use(id, model))
}

pub(super) async fn upsert_model(pool: &PgPool, model: &ModelRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO models (id, display_name, provider_id, upstream_model, pathway, \
         enabled, max_output_tokens, max_input_tokens, input_micros_per_mtok, \
         output_micros_per_mtok, micros_per_image, fallback_model_ids, options, update_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
         provider_id = excluded.provider_id, upstream_model = excluded.upstream_model, \
         pathway = excluded.pathway, enabled = excluded.enabled, \
         max_output_tokens = excluded.max_output_tokens, \
         max_input_tokens = excluded.max_input_tokens, \
         input_micros_per_mtok = excluded.input_micros_per_mtok, \
         output_micros_per_mtok = excluded.output_micros_per_mtok, \
         micros_per_image = excluded.micros_per_image, \
         fallback_model_ids = excluded.fallback_model_ids, \
         options = excluded.options, update_ms = excluded.update_ms",
    )
    .bind(&model.id)
    .bind(&model.display_name)
    .bind(&model.provider_id)
    .bind(&model.upstream_model)
    .bind(model.pathway.as_str())
    .bind(model.enabled)
    .bind(model.max_output_tokens)
    .bind(model.max_input_tokens)
    .bind(model.input_micros_per_mtok)
    .bind(model.output_micros_per_mtok)
    .bind(model.micros_per_image)
    .bind(rows::to_json(&model.fallback_model_ids)?)
    .bind(rows::to_json(&model.options)?)
    .bind(model.update_ms)
    .execute(pool)
    .await
    .map_err(|e| missing_on_fk(e, "provider", &model.provider_id))?;
    Ok(())
}

pub(super) async fn delete_model(pool: &PgPool, id: &str) -> Result<()> {
    // The foreign key from defaults refuses the delete atomically.
    // Fallback lists may still name the model; routing skips unknown ids.
    if delete(pool, "models", "model", id).await? {
        return Ok(());
    }
    let pathway: Option<String> =
        sqlx::query_scalar("SELECT pathway FROM defaults WHERE model_id = $1 LIMIT 1")
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Err(sql::model_is_default(id, pathway))
}

pub(super) async fn set_default_model(
    pool: &PgPool,
    pathway: Pathway,
    model_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO defaults (pathway, model_id) VALUES ($1, $2) \
         ON CONFLICT (pathway) DO UPDATE SET model_id = excluded.model_id",
    )
    .bind(pathway.as_str())
    .bind(model_id)
    .execute(pool)
    .await
    .map_err(|e| missing_on_fk(e, "model", model_id))?;
    Ok(())
}

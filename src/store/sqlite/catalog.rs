//! Providers, models and the default model of each pathway.

use super::SqliteStore;
use crate::domain::{Millis, ModelRecord, Pathway, ProviderRecord, SealedKey};
use crate::error::Result;
use crate::store::sql::{Conditions, missing_on_fk, not_found, paged};
use crate::store::{PageQuery, rows};

pub(super) async fn upsert_provider(store: &SqliteStore, provider: &ProviderRecord) -> Result<()> {
    // The API key columns are left alone: set_provider_api_key owns them.
    sqlx::query(
        "INSERT INTO providers (id, kind, base_url, update_ms, headers, \
         connect_timeout_ms, first_byte_timeout_ms, total_timeout_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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
    .execute(&store.pool)
    .await?;
    Ok(())
}

pub(super) async fn set_provider_api_key(
    store: &SqliteStore,
    id: &str,
    key: Option<&SealedKey>,
    at: Millis,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE providers SET api_key = ?, api_key_hint = ?, api_key_update_ms = ? \
         WHERE id = ?",
    )
    .bind(key.map(|k| k.ciphertext.as_slice()))
    .bind(key.map_or("", |k| k.hint.as_str()))
    .bind(at)
    .bind(id)
    .execute(&store.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(not_found("provider", id));
    }
    Ok(())
}

pub(super) async fn reseal(
    store: &SqliteStore,
    keys: &[(String, SealedKey)],
    hook_secrets: &[(String, Vec<u8>)],
    settings: &[(String, String)],
) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    for (id, secret) in hook_secrets {
        sqlx::query("UPDATE hooks SET secret = ? WHERE id = ?")
            .bind(secret.as_slice())
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for (id, key) in keys {
        sqlx::query("UPDATE providers SET api_key = ?, api_key_hint = ? WHERE id = ?")
            .bind(key.ciphertext.as_slice())
            .bind(&key.hint)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    for (key, value) in settings {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
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

pub(super) async fn delete_provider(store: &SqliteStore, id: &str) -> Result<()> {
    // The foreign key from models refuses the delete atomically.
    if store.delete("providers", "provider", id).await? {
        Ok(())
    } else {
        Err(store.provider_in_use(id).await?)
    }
}

pub(super) async fn list_providers(
    store: &SqliteStore,
    page: &PageQuery,
) -> Result<Vec<ProviderRecord>> {
    let query = paged(Conditions::new("SELECT * FROM providers"), page);
    store.fetch(query, rows::provider).await
}

pub(super) async fn upsert_model(store: &SqliteStore, model: &ModelRecord) -> Result<()> {
    // ON CONFLICT updates in place: a REPLACE would delete the row first
    // and trip the foreign key of a default that names it.
    sqlx::query(
        "INSERT INTO models (id, display_name, provider_id, upstream_model, pathway, \
         enabled, max_output_tokens, max_input_tokens, input_micros_per_mtok, \
         output_micros_per_mtok, micros_per_image, fallback_model_ids, options, update_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
    .execute(&store.pool)
    .await
    .map_err(|e| missing_on_fk(e, "provider", &model.provider_id))?;
    Ok(())
}

pub(super) async fn delete_model(store: &SqliteStore, id: &str) -> Result<()> {
    // The foreign key from defaults refuses the delete atomically.
    // Fallback lists may still name the model; routing skips unknown ids.
    if store.delete("models", "model", id).await? {
        Ok(())
    } else {
        Err(store.model_is_default(id).await?)
    }
}

pub(super) async fn list_models(store: &SqliteStore, page: &PageQuery) -> Result<Vec<ModelRecord>> {
    let query = paged(Conditions::new("SELECT * FROM models"), page);
    store.fetch(query, rows::model).await
}

pub(super) async fn set_default_model(
    store: &SqliteStore,
    pathway: Pathway,
    model_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO defaults (pathway, model_id) VALUES (?, ?) \
         ON CONFLICT (pathway) DO UPDATE SET model_id = excluded.model_id",
    )
    .bind(pathway.as_str())
    .bind(model_id)
    .execute(&store.pool)
    .await
    .map_err(|e| missing_on_fk(e, "model", model_id))?;
    Ok(())
}

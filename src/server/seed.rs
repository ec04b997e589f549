//! What City writes at start: the admin key, the master key's canary, the
//! built-in mock catalog (once per store), and the config file's entries —
//! applied through the same services as the admin API, after the whole file
//! was validated and every studio it names was found.

use std::collections::HashMap;

use anyhow::Context;

use crate::auth::secret;
use crate::catalog::{CatalogCache, KeyChange};
use crate::config::{Config, Entries};
use crate::domain::{
    DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_OUTPUT_TOKENS, ModelRecord, Pathway, ProviderKind,
    ProviderRecord, now_ms,
};
use crate::error::Error;
use crate::hooks::Hooks;
use crate::keys::{self, MasterKey};
use crate::quota::Quotas;
use crate::store::Store;

pub(super) const ADMIN_KEY_SETTING: &str = "admin_key_sha256";
const BUILTIN_CATALOG_SETTING: &str = "builtin_catalog_seeded";

/// The built-in provider and models every fresh City starts with.
pub const MOCK_PROVIDER: &str = "mock";
pub const MOCK_TEXT_MODEL: &str = "mock-text";
pub const MOCK_IMAGE_MODEL: &str = "mock-image";

/// The admin key's hash: from the config, else the stored one, else a new
/// key (returned so it can be shown once).
pub(super) async fn admin_key(
    config: &Config,
    store: &dyn Store,
) -> anyhow::Result<([u8; 32], Option<String>)> {
    if let Some(key) = config.admin_key.as_deref().filter(|k| !k.is_empty()) {
        return Ok((secret::hash_secret(key), None));
    }
    if let Some(stored) = store.get_setting(ADMIN_KEY_SETTING).await? {
        let hash: [u8; 32] = hex::decode(&stored)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .context("the stored admin key hash is corrupt")?;
        return Ok((hash, None));
    }
    let key = secret::mint_admin_key();
    let hash = secret::hash_secret(&key);
    store
        .put_setting(ADMIN_KEY_SETTING, &hex::encode(hash))
        .await?;
    Ok((hash, Some(key)))
}

/// The master key, checked against the store's canary. Without one, a store
/// that holds sealed keys refuses to start.
pub(super) async fn master_key(
    configured: Option<MasterKey>,
    store: &dyn Store,
) -> anyhow::Result<Option<MasterKey>> {
    match configured {
        Some(key) => {
            key.check_canary(store).await?;
            Ok(Some(key))
        }
        None if keys::store_has_master_key(store).await? => anyhow::bail!(
            "this store holds provider API keys sealed under a master key, and none is \
             configured: set DOWNCITY_MASTER_KEY or master_key_file"
        ),
        None => Ok(None),
    }
}

/// Adds the mock provider and its two default models, once per store.
pub(super) async fn builtin_catalog(store: &dyn Store) -> anyhow::Result<()> {
    if store.get_setting(BUILTIN_CATALOG_SETTING).await?.is_some() {
        return Ok(());
    }
    store
        .upsert_provider(&ProviderRecord {
            id: MOCK_PROVIDER.into(),
            kind: ProviderKind::Mock,
            base_url: String::new(),
            update_ms: now_ms(),
            headers: Default::default(),
            timeouts: Default::default(),
            api_key: None,
            api_key_update_ms: None,
        })
        .await?;
    for (id, name, pathway) in [
        (MOCK_TEXT_MODEL, "Mock text (built in)", Pathway::Text),
        (MOCK_IMAGE_MODEL, "Mock image (built in)", Pathway::Image),
    ] {
        let model = ModelRecord {
            id: id.into(),
            display_name: name.into(),
            provider_id: MOCK_PROVIDER.into(),
            upstream_model: id.into(),
            pathway,
            enabled: true,
            max_output_tokens: DEFAULT_MAX_OUTPUT_TOKENS,
            max_input_tokens: DEFAULT_MAX_INPUT_TOKENS,
            input_micros_per_mtok: 0,
            output_micros_per_mtok: 0,
            micros_per_image: 0,
            fallback_model_ids: Vec::new(),
            options: Default::default(),
            update_ms: now_ms(),
        };
        store.upsert_model(&model).await?;
        store.set_default_model(pathway, id).await?;
    }
    store.put_setting(BUILTIN_CATALOG_SETTING, "1").await?;
    Ok(())
}

/// Provider API keys and hook secrets of the config are sealed under the
/// master key: without one, the config is refused before anything is written.
pub(super) fn check_secrets(
    entries: &Entries,
    master_key: Option<&MasterKey>,
) -> anyhow::Result<()> {
    if master_key.is_some() {
        return Ok(());
    }
    let secret = entries
        .providers
        .iter()
        .find(|p| p.api_key.is_some())
        .map(|p| {
            (
                format!("[[providers]] `{}`", p.record.id),
                "provider API keys",
            )
        })
        .or_else(|| {
            let hook = entries.hooks.first()?;
            Some((format!("[[hooks]] `{}`", hook.record.id), "hook secrets"))
        });
    match secret {
        Some((entry, what)) => {
            Err(anyhow::Error::new(Error::MasterKeyMissing { what })
                .context(format!("config {entry}")))
        }
        None => Ok(()),
    }
}

/// Every studio the config's limits and hooks name must exist: checked
/// (reading only) before any entry is written.
pub(super) async fn check_studios(entries: &Entries, store: &dyn Store) -> anyhow::Result<()> {
    for (studio, entry) in entries.studios() {
        if store.get_studio(studio).await?.is_none() {
            anyhow::bail!(
                "config {entry}: studio `{studio}` does not exist; create it first \
                 (downcity admin studios create --id {studio})"
            );
        }
    }
    Ok(())
}

/// The config's catalog must hold together with what the store has (and the
/// built-in catalog a fresh store gets): each model's provider exists and
/// has the model's pathway; each default names an enabled model of its
/// pathway. Checked (reading only) before anything is written, so a refused
/// file leaves the store as it was.
pub(super) async fn check_catalog(entries: &Entries, store: &dyn Store) -> anyhow::Result<()> {
    let stored = store.catalog_snapshot().await?;
    let fresh = store.get_setting(BUILTIN_CATALOG_SETTING).await?.is_none();
    let mut providers: HashMap<&str, ProviderKind> = stored
        .providers
        .iter()
        .map(|p| (p.id.as_str(), p.kind))
        .collect();
    let mut models: HashMap<&str, (Pathway, bool)> = stored
        .models
        .iter()
        .map(|m| (m.id.as_str(), (m.pathway, m.enabled)))
        .collect();
    if fresh {
        providers.insert(MOCK_PROVIDER, ProviderKind::Mock);
        models.insert(MOCK_TEXT_MODEL, (Pathway::Text, true));
        models.insert(MOCK_IMAGE_MODEL, (Pathway::Image, true));
    }
    for provider in &entries.providers {
        providers.insert(provider.record.id.as_str(), provider.record.kind);
    }
    for model in &entries.models {
        let Some(kind) = providers.get(model.provider_id.as_str()) else {
            anyhow::bail!(
                "config [[models]] `{}`: provider `{}` does not exist",
                model.id,
                model.provider_id
            );
        };
        if !kind.supports(model.pathway) {
            anyhow::bail!(
                "config [[models]] `{}`: provider `{}` ({kind}) has no {} pathway",
                model.id,
                model.provider_id,
                model.pathway
            );
        }
        models.insert(model.id.as_str(), (model.pathway, model.enabled));
    }
    for (pathway, id) in &entries.defaults {
        if models.get(id.as_str()) != Some(&(*pathway, true)) {
            anyhow::bail!(
                "config [defaults] {pathway} = `{id}`: no enabled {pathway} model has that id"
            );
        }
    }
    Ok(())
}

/// Applies the config's entries through the services the admin API uses.
pub(super) async fn apply(
    entries: Entries,
    catalog: &CatalogCache,
    quotas: &Quotas,
    hooks: &Hooks,
) -> anyhow::Result<()> {
    for provider in entries.providers {
        let id = provider.record.id.clone();
        // The same key again would only move its update time.
        let key = match provider.api_key {
            Some(key) if !catalog.has_api_key(&id, &key) => KeyChange::Set(key),
            _ => KeyChange::Keep,
        };
        catalog
            .upsert_provider(provider.record, key)
            .await
            .with_context(|| format!("config [[providers]] `{id}`"))?;
    }
    for model in entries.models {
        let id = model.id.clone();
        catalog
            .upsert_model(model)
            .await
            .with_context(|| format!("config [[models]] `{id}`"))?;
    }
    for (pathway, model) in entries.defaults {
        catalog
            .set_default(pathway, &model)
            .await
            .with_context(|| format!("config [defaults] {pathway} = `{model}`"))?;
    }
    let limits = entries.limits.len();
    for record in entries.limits {
        let studio = record.studio_id.clone();
        quotas
            .set_limits(&studio, record.target, record.values)
            .await
            .with_context(|| format!("config [[limits]] of studio `{studio}`"))?;
    }
    if limits > 0 {
        tracing::info!(entries = limits, "applied the config's limits");
    }
    for hook in entries.hooks {
        let id = hook.record.id.clone();
        hooks
            .upsert_with_secret(hook.record, Some(&hook.secret))
            .await
            .with_context(|| format!("config [[hooks]] `{id}`"))?;
    }
    Ok(())
}

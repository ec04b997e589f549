//! Starting and serving City: open the store, fill the caches, start the
//! usage writer, then serve gRPC until the shutdown signal, and flush.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::api::admin::AdminApi;
use crate::api::ai::AiApi;
use crate::auth::{AdminAuth, Directory, UserAuth, secret};
use crate::catalog::CatalogCache;
use crate::config::{Config, HookConfig, LimitsConfig, ModelConfig, ProviderConfig};
use crate::gateway::Gateway;
use crate::hooks::Hooks;
use crate::hooks::dispatch::Dispatcher;
use crate::keys::{self, ApiKey, MasterKey};
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::ai_service_server::AiServiceServer;
use crate::quota::Quotas;
use crate::store::maintenance::UsageMaintainer;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    HookEvent, HookRecord, LimitsRecord, ModelRecord, Pathway, ProviderKind, ProviderRecord,
    ProviderTimeouts, Store,
};
use crate::usage::{UsageWriter, WriterHandle};

const ADMIN_KEY_SETTING: &str = "admin_key_sha256";
const BUILTIN_CATALOG_SETTING: &str = "builtin_catalog_seeded";

/// The built-in provider and models every fresh City starts with.
pub const MOCK_PROVIDER: &str = "mock";
pub const MOCK_TEXT_MODEL: &str = "mock-text";
pub const MOCK_IMAGE_MODEL: &str = "mock-image";

/// A City with its state loaded, ready to serve.
pub struct City {
    config: Config,
    store: Arc<dyn Store>,
    directory: Arc<Directory>,
    catalog: Arc<CatalogCache>,
    quotas: Arc<Quotas>,
    usage: UsageWriter,
    usage_task: WriterHandle,
    hooks: Arc<Hooks>,
    generated_admin_key: Option<String>,
}

impl City {
    /// Opens the store (running migrations), loads the caches, seeds the
    /// built-in catalog once and applies the config's catalog.
    pub async fn start(config: Config) -> anyhow::Result<City> {
        let store = open_store(&config).await?;
        let (admin_key_hash, generated_admin_key) = admin_key(&config, store.as_ref()).await?;
        let master_key = master_key(&config, store.as_ref()).await?;
        seed_builtin_catalog(store.as_ref()).await?;
        apply_config_catalog(&config, store.as_ref(), master_key.as_ref()).await?;
        // Before the snapshot, so the quota cache loads them.
        apply_config_limits(&config.limits, store.as_ref()).await?;
        let snapshot = store.snapshot().await?;
        let directory = Arc::new(Directory::new(store.clone(), admin_key_hash, &snapshot));
        let quotas = Arc::new(Quotas::load(store.clone(), &snapshot).await?);
        let hooks = Arc::new(Hooks::load(store.clone(), master_key.clone()).await?);
        apply_config_hooks(&config.hooks, &hooks).await?;
        let catalog =
            Arc::new(CatalogCache::load_with_master_key(store.clone(), master_key).await?);
        let (usage, usage_task) = UsageWriter::start(
            store.usage_sink().await?,
            config.usage.queue_capacity,
            config.usage.durability,
            Some(hooks.clone()),
        )
        .context("starting the usage writer")?;
        Ok(City {
            config,
            store,
            directory,
            catalog,
            quotas,
            usage,
            usage_task,
            hooks,
            generated_admin_key,
        })
    }

    pub fn directory(&self) -> &Arc<Directory> {
        &self.directory
    }

    /// The admin key this start generated, to show once; `None` when it
    /// came from the config or from an earlier start.
    pub fn generated_admin_key(&self) -> Option<&str> {
        self.generated_admin_key.as_deref()
    }

    /// Replaces the admin key with a new one and returns it (for `--dev`
    /// when the key written earlier is gone).
    pub async fn rotate_admin_key(&mut self) -> anyhow::Result<String> {
        let key = secret::mint_admin_key();
        let hash = secret::hash_secret(&key);
        self.store
            .put_setting(ADMIN_KEY_SETTING, &hex::encode(hash))
            .await?;
        self.directory.set_admin_key_hash(hash);
        self.generated_admin_key = Some(key.clone());
        Ok(key)
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then lets
    /// in-flight calls finish (bounded by the grace period) and commits every
    /// queued usage row before returning.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let City {
            config,
            store,
            directory,
            catalog,
            quotas,
            usage,
            usage_task,
            hooks,
            ..
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AiServiceServer<AiApi>>().await;
        health.set_serving::<AdminServiceServer<AdminApi>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let gateway = Arc::new(Gateway::new(
            catalog.clone(),
            quotas.clone(),
            usage,
            hooks.clone(),
        ));
        let ai = AiServiceServer::with_interceptor(
            AiApi::new(gateway),
            UserAuth {
                directory: directory.clone(),
            },
        );
        let admin = AdminServiceServer::with_interceptor(
            AdminApi::new(
                directory.clone(),
                catalog,
                quotas,
                store.clone(),
                hooks.clone(),
            ),
            AdminAuth { directory },
        );

        // Pending deliveries from before a restart are picked up at once.
        let dispatcher = Dispatcher::start(hooks, config.hook_delivery);
        let maintainer = UsageMaintainer::start(store.clone(), config.usage.retain_months);
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections, finishing in-flight calls");
            let _ = stopping_tx.send(true);
        };
        let server = Server::builder()
            .timeout(Duration::from_secs(config.server.request_timeout_secs))
            .concurrency_limit_per_connection(config.server.max_concurrent_calls_per_connection)
            .load_shed(true)
            .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(ai)
            .add_service(admin)
            .serve_with_incoming_shutdown(incoming, signal);
        let grace = Duration::from_secs(config.server.shutdown_grace_secs);
        tokio::select! {
            result = server => result.context("serving gRPC")?,
            () = grace_expired(stopping_rx, grace) => {
                tracing::warn!(?grace, "grace period over; dropping the calls still in flight");
            }
        }
        health.set_not_serving::<AiServiceServer<AiApi>>().await;
        // The writer ends once every sender (held by handlers and relays) is
        // gone, after committing everything queued.
        usage_task.finish().await;
        dispatcher.stop().await;
        maintainer.stop().await;
        store.close().await;
        tracing::info!("usage flushed; City stopped");
        Ok(())
    }
}

/// The store the config names: PostgreSQL when `[store] url` is set, else
/// the SQLite file.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(url) = &config.store.url {
        let store = PostgresStore::open(&url.0)
            .await
            .with_context(|| format!("opening the store at {}", PostgresStore::describe(&url.0)))?;
        return Ok(Arc::new(store));
    }
    let path = config.sqlite_path();
    let store = SqliteStore::open(&path, config.store.synchronous_full)
        .await
        .with_context(|| format!("opening the store at {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Serves City on `listener` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    City::start(config).await?.serve(listener, shutdown).await
}

/// Resolves once shutdown has begun and `grace` has passed.
async fn grace_expired(mut stopping: tokio::sync::watch::Receiver<bool>, grace: Duration) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        // The server ended on its own; never fire.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(grace).await;
}

/// The admin key's hash: from the config, else the stored one, else a new
/// key (returned so it can be shown once).
async fn admin_key(
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
async fn master_key(config: &Config, store: &dyn Store) -> anyhow::Result<Option<MasterKey>> {
    match keys::configured_master_key(config)? {
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

/// Stores the API key a config provider names with `api_key_env`, sealed,
/// unless the stored one is already the same.
async fn apply_config_api_key(
    provider: &ProviderConfig,
    store: &dyn Store,
    master_key: Option<&MasterKey>,
) -> anyhow::Result<()> {
    let Some(var) = &provider.api_key_env else {
        return Ok(());
    };
    let key = match std::env::var(var) {
        Ok(key) if !key.is_empty() => ApiKey::new(key),
        _ => {
            tracing::warn!(provider = %provider.id, var, "api_key_env names an unset variable; keeping the stored key");
            return Ok(());
        }
    };
    let master_key = master_key.with_context(|| {
        format!(
            "provider `{}` takes its API key from {var}, but City has no master key to \
             encrypt it with: set DOWNCITY_MASTER_KEY or master_key_file",
            provider.id
        )
    })?;
    let stored = store
        .catalog_snapshot()
        .await?
        .providers
        .into_iter()
        .find(|p| p.id == provider.id)
        .and_then(|p| p.api_key);
    let same = stored
        .as_ref()
        .and_then(|sealed| master_key.open(&provider.id, sealed).ok())
        .is_some_and(|old| old == key);
    if !same {
        let sealed = master_key.seal(&provider.id, &key);
        store
            .set_provider_api_key(&provider.id, Some(&sealed), crate::store::now_ms())
            .await?;
    }
    Ok(())
}

/// Adds the mock provider and its two default models, once per store.
async fn seed_builtin_catalog(store: &dyn Store) -> anyhow::Result<()> {
    if store.get_setting(BUILTIN_CATALOG_SETTING).await?.is_some() {
        return Ok(());
    }
    store
        .upsert_provider(&ProviderRecord {
            id: MOCK_PROVIDER.into(),
            kind: ProviderKind::Mock,
            base_url: String::new(),
            update_ms: crate::store::now_ms(),
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
        let model = ModelConfig {
            id: id.into(),
            display_name: name.into(),
            provider: MOCK_PROVIDER.into(),
            upstream_model: id.into(),
            pathway: pathway.as_str().into(),
            enabled: true,
            max_output_tokens: crate::config::default_max_output_tokens(),
            max_input_tokens: crate::config::default_max_input_tokens(),
            input_micros_per_mtok: 0,
            output_micros_per_mtok: 0,
            micros_per_image: 0,
            fallback: Vec::new(),
            options: Default::default(),
        };
        store.upsert_model(&model_record(&model)?).await?;
        store.set_default_model(pathway, id).await?;
    }
    store.put_setting(BUILTIN_CATALOG_SETTING, "1").await?;
    Ok(())
}

/// Loads the config file's providers, models and defaults into the store.
async fn apply_config_catalog(
    config: &Config,
    store: &dyn Store,
    master_key: Option<&MasterKey>,
) -> anyhow::Result<()> {
    for provider in &config.providers {
        let kind = ProviderKind::parse(&provider.kind).with_context(|| {
            format!(
                "provider `{}`: unknown kind `{}`",
                provider.id, provider.kind
            )
        })?;
        store
            .upsert_provider(&ProviderRecord {
                id: provider.id.clone(),
                kind,
                base_url: provider.base_url.clone(),
                update_ms: crate::store::now_ms(),
                headers: provider.headers.clone(),
                timeouts: ProviderTimeouts {
                    connect_ms: provider.connect_timeout_ms.map(|ms| ms as i64),
                    first_byte_ms: provider.first_byte_timeout_ms.map(|ms| ms as i64),
                    total_ms: provider.total_timeout_ms.map(|ms| ms as i64),
                },
                api_key: None,
                api_key_update_ms: None,
            })
            .await?;
        apply_config_api_key(provider, store, master_key).await?;
    }
    for model in &config.models {
        store.upsert_model(&model_record(model)?).await?;
    }
    for (pathway, model) in [
        (Pathway::Text, &config.defaults.text),
        (Pathway::Image, &config.defaults.image),
    ] {
        if let Some(model) = model {
            store.set_default_model(pathway, model).await?;
        }
    }
    Ok(())
}

/// Writes the config file's `[[limits]]` to the store, each replacing its
/// target's limits whole. Every named studio must exist already.
async fn apply_config_limits(limits: &[LimitsConfig], store: &dyn Store) -> anyhow::Result<()> {
    let mut records: Vec<LimitsRecord> = Vec::with_capacity(limits.len());
    for entry in limits {
        let what = match (&entry.user, entry.user_default) {
            (Some(user), _) => format!("limits of studio `{}` user `{user}`", entry.studio),
            (None, true) => format!("default user limits of studio `{}`", entry.studio),
            (None, false) => format!("limits of studio `{}`", entry.studio),
        };
        let invalid = |problem: String| anyhow::anyhow!("config [[limits]], {what}: {problem}");
        let target = entry.target().map_err(invalid)?;
        let values = entry.values().map_err(invalid)?;
        if store.get_studio(&entry.studio).await?.is_none() {
            anyhow::bail!(
                "config [[limits]], {what}: studio `{}` does not exist; create it first \
                 (downcity admin studios create --id {})",
                entry.studio,
                entry.studio
            );
        }
        let duplicate = records
            .iter()
            .any(|r| r.studio_id == entry.studio && r.target == target);
        if duplicate {
            return Err(invalid("given more than once".to_owned()));
        }
        records.push(LimitsRecord {
            studio_id: entry.studio.clone(),
            target,
            values,
            update_ms: crate::store::now_ms(),
        });
    }
    for record in &records {
        store.put_limits(record).await?;
    }
    if !records.is_empty() {
        tracing::info!(entries = records.len(), "applied the config's limits");
    }
    Ok(())
}

/// Creates or replaces the config file's `[[hooks]]`, each with the secret
/// its `secret_env` names. Every named studio must exist already.
async fn apply_config_hooks(entries: &[HookConfig], hooks: &Hooks) -> anyhow::Result<()> {
    for entry in entries {
        let invalid =
            |problem: String| anyhow::anyhow!("config [[hooks]] `{}`: {problem}", entry.id);
        let events = entry
            .events
            .iter()
            .map(|e| HookEvent::parse(e).ok_or_else(|| invalid(format!("unknown event `{e}`"))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let fail_closed = match entry.failure_policy.as_str() {
            "fail_open" => false,
            "fail_closed" => true,
            other => return Err(invalid(format!("unknown failure_policy `{other}`"))),
        };
        let secret = std::env::var(&entry.secret_env)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "secret_env names an unset variable `{}`",
                    entry.secret_env
                ))
            })?;
        if entry.id.is_empty() || events.is_empty() {
            return Err(invalid("needs an id and at least one event".into()));
        }
        if !(1..=crate::hooks::MAX_TIMEOUT_MS).contains(&entry.timeout_ms) {
            return Err(invalid("timeout_ms out of range".into()));
        }
        let record = HookRecord {
            id: entry.id.clone(),
            studio_id: entry.studio.clone(),
            url: entry.url.clone(),
            events,
            timeout_ms: entry.timeout_ms,
            fail_closed,
            include_prompt: entry.include_prompt,
            secret: Vec::new(),
            create_ms: 0,
            update_ms: 0,
        };
        if !record.studio_id.is_empty()
            && hooks.store().get_studio(&record.studio_id).await?.is_none()
        {
            return Err(invalid(format!(
                "studio `{}` does not exist",
                record.studio_id
            )));
        }
        hooks
            .upsert_with_secret(record, Some(&secret))
            .await
            .map_err(|e| invalid(e.to_string()))?;
    }
    Ok(())
}

fn model_record(model: &ModelConfig) -> anyhow::Result<ModelRecord> {
    let pathway = Pathway::parse(&model.pathway)
        .with_context(|| format!("model `{}`: pathway must be text or image", model.id))?;
    Ok(ModelRecord {
        id: model.id.clone(),
        display_name: model.display_name.clone(),
        provider_id: model.provider.clone(),
        upstream_model: model.upstream_model.clone(),
        pathway,
        enabled: model.enabled,
        max_output_tokens: model.max_output_tokens,
        max_input_tokens: model.max_input_tokens,
        input_micros_per_mtok: model.input_micros_per_mtok,
        output_micros_per_mtok: model.output_micros_per_mtok,
        micros_per_image: model.micros_per_image,
        fallback_model_ids: model.fallback.clone(),
        options: model.options.clone(),
        update_ms: crate::store::now_ms(),
    })
}

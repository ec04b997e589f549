//! Starting and serving City: open the store, fill the caches, start the
//! usage writer, then serve gRPC until the shutdown signal, and flush.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

use crate::api::admin::AdminApi;
use crate::api::ai::{AiApi, CallCaps};
use crate::api::openai::OpenAiFace;
use crate::auth::{AdminAuth, Directory, UserAuth, WebOrigins, secret};
use crate::catalog::CatalogCache;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::hooks::Hooks;
use crate::hooks::dispatch::Dispatcher;
use crate::metrics::{Metrics, MetricsListener};
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::ai_service_server::AiServiceServer;
use crate::quota::{Quotas, SharedLedger};
use crate::store::Store;
use crate::store::maintenance::{ReplicaPresence, UsageMaintainer};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::usage::{UsageWriter, WriterHandle};

mod console;
mod offer;
mod replicas;
mod routes;
mod seed;
pub mod transport;
mod web;

use offer::Offer;
use transport::{AcceptPolicy, Tls};

use replicas::{CacheSync, Caches};
use seed::ADMIN_KEY_SETTING;
pub use seed::{MOCK_IMAGE_MODEL, MOCK_PROVIDER, MOCK_TEXT_MODEL};

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
    metrics: Arc<Metrics>,
    metrics_listener: Option<MetricsListener>,
    generated_admin_key: Option<String>,
}

impl City {
    /// Validates the config file's entries, opens the store (running
    /// migrations), loads the caches, seeds the built-in catalog once and
    /// applies the config's entries. An invalid config writes nothing.
    pub async fn start(config: Config) -> anyhow::Result<City> {
        let entries = config.entries()?;
        // Transport settings and TLS files are checked before the store is touched.
        routes::check(&config.server)?;
        Tls::from_config(&config.tls)?;
        web::check(&config.web)?;
        let configured_master_key = config.master_key()?;
        seed::check_secrets(&entries, configured_master_key.as_ref())?;
        let (store, shared_ledger) = open_stores(&config).await?;
        seed::check_studios(&entries, store.as_ref()).await?;
        seed::check_catalog(&entries, store.as_ref()).await?;
        let (admin_key_hash, generated_admin_key) =
            seed::admin_key(&config, store.as_ref()).await?;
        let master_key = seed::master_key(configured_master_key, store.as_ref()).await?;
        seed::builtin_catalog(store.as_ref()).await?;
        let snapshot = store.snapshot().await?;
        let directory = Arc::new(Directory::new(store.clone(), admin_key_hash, &snapshot));
        let quotas = Arc::new(Quotas::load(store.clone(), &snapshot, shared_ledger).await?);
        let hooks = Arc::new(Hooks::load(store.clone(), master_key.clone()).await?);
        let catalog = Arc::new(CatalogCache::load(store.clone(), master_key).await?);
        seed::apply(entries, &catalog, &quotas, &hooks).await?;
        let (metrics, metrics_listener) = open_metrics(&config).await?;
        let (usage, usage_task) = UsageWriter::start(
            store.usage_sink().await?,
            config.usage.queue_capacity,
            config.usage.durability,
            Some(hooks.clone()),
            metrics.clone(),
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
            metrics,
            metrics_listener,
            generated_admin_key,
        })
    }

    /// Where `/metrics` is served, when `[metrics] listen` is set.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
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
        self.serve_on(listener, None, shutdown).await
    }

    /// Like `serve`, with AdminService on `admin_listener` alone when given
    /// (AIService and health then on `listener`).
    pub async fn serve_on(
        self,
        listener: TcpListener,
        admin_listener: Option<TcpListener>,
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
            metrics,
            metrics_listener,
            ..
        } = self;
        let _metrics_server = metrics_listener.map(|l| AbortOnDrop(l.serve(metrics.clone())));
        routes::check(&config.server)?;
        let tls = Tls::from_config(&config.tls)?;
        let watcher = tls.clone().map(|tls| {
            let every = Duration::from_millis(config.tls.reload_interval_ms.max(10));
            AbortOnDrop(tls.watch(every))
        });
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<AiServiceServer<AiApi>>().await;
        health.set_serving::<AdminServiceServer<AdminApi>>().await;

        // Shutdown in two steps: `draining` refuses new calls at once,
        // `stopping` stops the calls still running once the grace is over.
        let draining = CancellationToken::new();
        let stopping = CancellationToken::new();
        let cache_sync = CacheSync::start(
            store.as_ref(),
            Caches {
                directory: directory.clone(),
                catalog: catalog.clone(),
                quotas: quotas.clone(),
                hooks: hooks.clone(),
            },
            Duration::from_secs(config.store.refresh_secs),
        )
        .await
        .context("listening for other replicas' changes")?;
        let gateway = Arc::new(
            Gateway::new(
                catalog.clone(),
                quotas.clone(),
                usage,
                hooks.clone(),
                stopping.clone(),
            )
            .with_metrics(metrics.clone()),
        );
        let max_request = config.server.max_request_bytes;
        let caps = CallCaps {
            max_messages: config.server.max_messages_per_call,
            max_prompt_bytes: config.server.max_prompt_bytes_per_call,
        };
        let openai = crate::api::openai::router(OpenAiFace {
            gateway: gateway.clone(),
            directory: directory.clone(),
            draining: draining.clone(),
            caps,
            max_request_bytes: max_request,
        });
        let origins = Arc::new(WebOrigins::new(
            &config.web.allowed_origins,
            directory.clone(),
        )?);
        let ai = InterceptedService::new(
            AiServiceServer::new(AiApi::new(gateway).with_caps(caps))
                .max_decoding_message_size(max_request),
            UserAuth {
                directory: directory.clone(),
                origins: origins.clone(),
                draining: draining.clone(),
            },
        );
        let admin = InterceptedService::new(
            AdminServiceServer::new(AdminApi::new(
                directory.clone(),
                catalog,
                quotas,
                store.clone(),
                hooks.clone(),
            ))
            .max_decoding_message_size(max_request),
            AdminAuth {
                directory,
                origins: origins.clone(),
                draining: draining.clone(),
            },
        );

        // Pending deliveries from before a restart are picked up at once.
        let dispatcher = Dispatcher::start(hooks, config.hook_delivery, metrics.clone());
        let maintainer = UsageMaintainer::start(store.clone(), config.usage.retain_months);
        // Only replicas sharing a store need to say they live.
        let presence = config.store.url.as_ref().map(|_| {
            let lease = Duration::from_millis(config.store.replica_lease_ms.max(30));
            ReplicaPresence::start(store.clone(), lease)
        });
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let drain_delay = Duration::from_millis(config.server.drain_delay_ms);
        let reporter = health.clone();
        tokio::spawn(async move {
            shutdown.await;
            // Load balancers see NOT_SERVING before any listener closes.
            set_not_serving(&reporter).await;
            draining.cancel();
            tracing::info!(
                "shutting down: NOT_SERVING, new calls refused, finishing in-flight calls"
            );
            tokio::time::sleep(drain_delay).await;
            let _ = stopping_tx.send(true);
        });
        let policy = AcceptPolicy {
            tls,
            max_connections: config.server.max_connections,
            header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
        };
        let offer = if admin_listener.is_some() {
            Offer::Ai
        } else {
            Offer::Everything
        };
        let web = web::layer(&config.web, origins);
        let mut main = routes::server(&config.server, web, console::same_origin(offer), &metrics);
        let mut main = main
            .add_routes(console::beside_admin(
                offer,
                Routes::from(routes::reflection(offer)?.into_axum_router().merge(openai)),
            ))
            .add_service(health_service.clone())
            .add_service(ai);
        if offer == Offer::Everything {
            main = main.add_service(admin.clone());
        }
        let main = main.serve_with_incoming_shutdown(
            transport::incoming(listener, policy.clone()),
            stopped(stopping_rx.clone()),
        );
        let admin_server = match admin_listener {
            None => None,
            Some(admin_listener) => Some(
                routes::server(
                    &config.server,
                    web::WebLayer::disabled(),
                    console::same_origin(Offer::Admin),
                    &metrics,
                )
                .add_routes(console::beside_admin(
                    Offer::Admin,
                    routes::reflection(Offer::Admin)?,
                ))
                .add_service(health_service)
                .add_service(admin)
                .serve_with_incoming_shutdown(
                    transport::incoming(admin_listener, policy),
                    stopped(stopping_rx.clone()),
                ),
            ),
        };
        let mut server = tokio::spawn(async move {
            let admin_server = async {
                match admin_server {
                    Some(admin_server) => admin_server.await.context("serving the admin listener"),
                    None => Ok(()),
                }
            };
            tokio::try_join!(async { main.await.context("serving gRPC") }, admin_server).map(|_| ())
        });
        let grace = Duration::from_secs(config.server.shutdown_grace_secs);
        tokio::select! {
            result = &mut server => result.context("the gRPC server task")??,
            () = grace_expired(stopping_rx, grace) => {
                tracing::warn!(?grace, "grace period over; stopping the calls still in flight");
                stopping.cancel();
                // Stopped calls record their rows and end; then the connections close.
                if tokio::time::timeout(AFTER_STOP, &mut server).await.is_err() {
                    server.abort();
                }
            }
        }
        drop(watcher);
        set_not_serving(&health).await;
        // The writer ends once every sender (held by handlers and relays) is
        // gone, after committing everything queued; bounded all the same.
        usage_task.finish(AFTER_STOP).await;
        dispatcher.stop().await;
        maintainer.stop().await;
        if let Some(presence) = presence {
            presence.stop().await;
        }
        if let Some(cache_sync) = cache_sync {
            cache_sync.stop().await;
        }
        store.close().await;
        tracing::info!("usage flushed; City stopped");
        Ok(())
    }
}

/// Resolves once shutdown has begun (after the drain delay).
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Stops a background task when its owner goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The metrics registry, recording only when `[metrics] listen` is set, and
/// that listener, bound.
async fn open_metrics(config: &Config) -> anyhow::Result<(Arc<Metrics>, Option<MetricsListener>)> {
    match &config.metrics.listen {
        Some(listen) => Ok((
            Metrics::enabled(config.metrics.max_studio_labels),
            Some(MetricsListener::bind(listen).await?),
        )),
        None => Ok((Metrics::disabled(), None)),
    }
}

/// The store the config names: PostgreSQL when `[store] url` is set, else
/// the SQLite file.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_stores(config).await?.0)
}

/// The store and, with PostgreSQL, the quota ledger every replica shares;
/// with SQLite (one City) none: counters stay in memory, off the database.
async fn open_stores(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Option<SharedLedger>)> {
    if let Some(url) = &config.store.url {
        let store = PostgresStore::open(&url.0)
            .await
            .with_context(|| format!("opening the store at {}", PostgresStore::describe(&url.0)))?;
        let ledger = SharedLedger::connect(store.connect_options(), store.replica_id())
            .await
            .context("connecting the quota ledger")?;
        return Ok((Arc::new(store), Some(ledger)));
    }
    let path = config.sqlite_path();
    let store = SqliteStore::open(&path, config.store.synchronous_full)
        .await
        .with_context(|| format!("opening the store at {}", path.display()))?;
    Ok((Arc::new(store), None))
}

/// How long stopped calls get to record their rows and close, and the
/// writer to commit them: shutdown ends within the grace plus about 2 × this.
const AFTER_STOP: Duration = Duration::from_millis(500);

async fn set_not_serving(health: &tonic_health::server::HealthReporter) {
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    health.set_not_serving::<AiServiceServer<AiApi>>().await;
    health
        .set_not_serving::<AdminServiceServer<AdminApi>>()
        .await;
}

/// Resolves once shutdown has begun and `grace` has passed.
async fn grace_expired(mut stopping: tokio::sync::watch::Receiver<bool>, grace: Duration) {
    if stopping.wait_for(|stopping| *stopping).await.is_err() {
        // The server ended on its own; never fire.
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(grace).await;
}

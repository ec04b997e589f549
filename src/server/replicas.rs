//! Keeping this replica's caches in step with writes made on the others:
//! each change the store announces reloads the cache it names; a lost
//! listening connection, and a periodic tick as a safety net, reload all.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Directory;
use crate::catalog::CatalogCache;
use crate::hooks::Hooks;
use crate::quota::Quotas;
use crate::store::{Change, ChangeEvent, ChangeFeed, Store};

/// The caches a replica holds in memory.
#[derive(Clone)]
pub(super) struct Caches {
    pub directory: Arc<Directory>,
    pub catalog: Arc<CatalogCache>,
    pub quotas: Arc<Quotas>,
    pub hooks: Arc<Hooks>,
}

impl Caches {
    async fn reload(&self, change: Change) {
        let reloaded = match change {
            Change::Directory => self.directory.reload().await,
            Change::Catalog => self.catalog.reload().await,
            Change::Quotas => self.quotas.reload().await,
            Change::Hooks => self.hooks.reload().await,
        };
        match reloaded {
            Ok(()) => tracing::debug!(cache = change.name(), "reloaded"),
            Err(e) => tracing::warn!(cache = change.name(), error = %e, "reloading failed"),
        }
    }

    async fn reload_all(&self) {
        for change in Change::ALL {
            self.reload(change).await;
        }
    }
}

/// The background task that applies other replicas' writes.
pub(super) struct CacheSync {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl CacheSync {
    /// Starts following the store's changes; `None` when the store has no
    /// other writers (SQLite).
    pub async fn start(
        store: &dyn Store,
        caches: Caches,
        refresh: Duration,
    ) -> anyhow::Result<Option<CacheSync>> {
        let Some(feed) = store.changes().await? else {
            return Ok(None);
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(follow(feed, caches, refresh, stop.clone()));
        Ok(Some(CacheSync { stop, task }))
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn follow(mut feed: ChangeFeed, caches: Caches, refresh: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(refresh.max(Duration::from_secs(1)));
    // The first tick fires at once: a write made between loading the caches
    // and listening is not missed.
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => caches.reload_all().await,
            event = feed.next() => match event {
                Some(ChangeEvent::Changed(change)) => caches.reload(change).await,
                Some(ChangeEvent::Resync) => caches.reload_all().await,
                None => {
                    tracing::warn!("the store stopped announcing changes; periodic reloads only");
                    periodic_only(caches, tick, stop).await;
                    return;
                }
            },
        }
    }
}

async fn periodic_only(caches: Caches, mut tick: tokio::time::Interval, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => caches.reload_all().await,
        }
    }
}

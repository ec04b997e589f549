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
        self.reload_each(&Change::ALL).await;
    }

    async fn reload_each(&self, changes: &[Change]) {
        for &change in changes {
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
                Some(first) => caches.reload_each(&pending(first, &mut feed)).await,
                None => {
                    tracing::warn!("the store stopped announcing changes; periodic reloads only");
                    periodic_only(caches, tick, stop).await;
                    return;
                }
            },
        }
    }
}

/// The caches to reload for `first` and every event already waiting behind
/// it, each once: a burst of writes (say, many tokens issued) costs one
/// reload, not one per write. The reload reads after all of them committed.
fn pending(first: ChangeEvent, feed: &mut ChangeFeed) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut event = Some(first);
    while let Some(next) = event {
        match next {
            ChangeEvent::Resync => return Change::ALL.to_vec(),
            ChangeEvent::Changed(change) if !changes.contains(&change) => changes.push(change),
            ChangeEvent::Changed(_) => {}
        }
        event = feed.next_ready();
    }
    changes
}

async fn periodic_only(caches: Caches, mut tick: tokio::time::Interval, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => caches.reload_all().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_of(events: &[ChangeEvent]) -> ChangeFeed {
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        for &event in events {
            sender.try_send(event).unwrap();
        }
        ChangeFeed::new(receiver)
    }

    #[test]
    fn a_burst_of_announcements_reloads_each_cache_once() {
        let mut feed = feed_of(&[
            ChangeEvent::Changed(Change::Directory),
            ChangeEvent::Changed(Change::Hooks),
            ChangeEvent::Changed(Change::Directory),
        ]);
        let changes = pending(ChangeEvent::Changed(Change::Directory), &mut feed);
        assert_eq!(changes, vec![Change::Directory, Change::Hooks]);
        assert!(feed.next_ready().is_none(), "the burst was consumed");
    }

    #[test]
    fn a_resync_in_a_burst_reloads_everything() {
        let mut feed = feed_of(&[ChangeEvent::Resync]);
        let changes = pending(ChangeEvent::Changed(Change::Quotas), &mut feed);
        assert_eq!(changes, Change::ALL.to_vec());
    }
}

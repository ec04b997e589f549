//! Usage maintenance in the background: once at start, then every hour,
//! `Store::maintain_usage` prepares the coming months' storage and removes
//! usage older than `[usage] retain_months`. Off the hot path: calls never
//! wait for it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Store;
use crate::domain::now_ms;

/// How often maintenance runs; a month's turn is never more than this late.
const INTERVAL: Duration = Duration::from_secs(3600);

/// The running maintenance task; `stop` ends it.
pub struct UsageMaintainer {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl UsageMaintainer {
    pub fn start(store: Arc<dyn Store>, retain_months: Option<u32>) -> UsageMaintainer {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(store, retain_months, stopped));
        UsageMaintainer { stop, task }
    }

    /// Stops it; a pass cut short resumes at the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(%err, "usage maintenance task failed");
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    retain_months: Option<u32>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            done = store.maintain_usage(now_ms(), retain_months) => match done {
                Ok(done) if done != Default::default() => tracing::info!(
                    rows_deleted = done.rows_deleted,
                    partitions_dropped = done.partitions_dropped,
                    partitions_created = done.partitions_created,
                    "usage maintenance"
                ),
                Ok(_) => {}
                Err(err) => tracing::error!(%err, "usage maintenance failed"),
            },
            _ = stopped.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(INTERVAL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A replica's heartbeat and sweeper in one task: every third of the lease
/// it says it lives (`Store::keep_alive`), which also settles what replicas
/// silent for a whole lease left behind.
pub struct ReplicaPresence {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ReplicaPresence {
    pub fn start(store: Arc<dyn Store>, lease: Duration) -> ReplicaPresence {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(keep_alive(store, lease, stopped));
        ReplicaPresence { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(%err, "replica heartbeat task failed");
        }
    }
}

async fn keep_alive(store: Arc<dyn Store>, lease: Duration, mut stopped: watch::Receiver<bool>) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut every = tokio::time::interval(lease / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.changed() => return,
        }
        match store.keep_alive(now_ms(), lease_ms).await {
            Ok(0) => {}
            Ok(settled) => tracing::warn!(
                rows = settled,
                "settled usage rows a dead replica left open (counts: the reserved estimate)"
            ),
            Err(err) => tracing::error!(%err, "replica heartbeat failed"),
        }
    }
}

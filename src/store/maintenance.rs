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

//! The usage writer: calls hand it rows through a bounded channel; one task
//! drains whatever is queued into a single transaction (group commit) and
//! then tells each waiting call that its row is durable.
//!
//! Under load, many calls share one commit, so durable-before-answer costs
//! one commit per batch rather than per call.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::store::{Store, UsageRow};

/// Most rows in one transaction.
const MAX_BATCH: usize = 512;

struct Job {
    row: UsageRow,
    committed: oneshot::Sender<Result<(), Arc<str>>>,
}

/// The sending side; cheap to clone. The writer stops once every clone is gone.
#[derive(Clone)]
pub struct UsageWriter {
    jobs: mpsc::Sender<Job>,
}

/// The writer task; await `finish` after the last sender is dropped.
pub struct WriterHandle(JoinHandle<()>);

impl WriterHandle {
    /// Waits until every queued row is committed.
    pub async fn finish(self) {
        if let Err(err) = self.0.await {
            tracing::error!(%err, "usage writer task failed");
        }
    }
}

impl UsageWriter {
    pub fn start(store: Arc<dyn Store>, capacity: usize) -> (UsageWriter, WriterHandle) {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(run(store, queue));
        (UsageWriter { jobs }, WriterHandle(task))
    }

    /// Queues a row and waits until it is committed.
    pub async fn record(&self, row: UsageRow) -> Result<()> {
        let (committed, done) = oneshot::channel();
        self.jobs
            .send(Job { row, committed })
            .await
            .map_err(|_| Error::internal("usage writer has stopped"))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Internal(format!("usage write failed: {message}"))),
            Err(_) => Err(Error::internal("usage writer dropped the row")),
        }
    }
}

async fn run(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut rows: Vec<UsageRow> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        rows.extend(batch.iter_mut().map(|job| std::mem::take(&mut job.row)));
        let outcome = store.insert_usage(&rows).await.map_err(|err| {
            tracing::error!(%err, rows = rows.len(), "usage batch failed");
            Arc::<str>::from(err.to_string())
        });
        for job in batch.drain(..) {
            // A caller that went away no longer waits; its row is committed anyway.
            let _ = job.committed.send(outcome.clone());
        }
        rows.clear();
    }
}

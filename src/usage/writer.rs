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
use crate::hooks::Hooks;
use crate::store::{DeliveryRecord, Store, UsageRow};

/// Most rows in one transaction.
const MAX_BATCH: usize = 512;

struct Job {
    row: UsageRow,
    /// The row's after_call deliveries, committed with it.
    outbox: Vec<DeliveryRecord>,
    committed: oneshot::Sender<Result<(), Arc<str>>>,
}

/// The sending side; cheap to clone. The writer stops once every clone is gone.
#[derive(Clone)]
pub struct UsageWriter {
    jobs: mpsc::Sender<Job>,
    hooks: Option<Arc<Hooks>>,
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
    /// Starts the writer; with `hooks`, each row's after_call deliveries
    /// go into the outbox in the row's transaction.
    pub fn start(
        store: Arc<dyn Store>,
        capacity: usize,
        hooks: Option<Arc<Hooks>>,
    ) -> (UsageWriter, WriterHandle) {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(run(store, queue, hooks.clone()));
        (UsageWriter { jobs, hooks }, WriterHandle(task))
    }

    /// Queues a row and waits until it is committed.
    pub async fn record(&self, row: UsageRow) -> Result<()> {
        let (committed, done) = oneshot::channel();
        let outbox = self
            .hooks
            .as_ref()
            .map(|hooks| hooks.outbox_for(&row))
            .unwrap_or_default();
        self.jobs
            .send(Job {
                row,
                outbox,
                committed,
            })
            .await
            .map_err(|_| Error::internal("usage writer has stopped"))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Internal(format!("usage write failed: {message}"))),
            Err(_) => Err(Error::internal("usage writer dropped the row")),
        }
    }
}

async fn run(store: Arc<dyn Store>, mut queue: mpsc::Receiver<Job>, hooks: Option<Arc<Hooks>>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut rows: Vec<UsageRow> = Vec::with_capacity(MAX_BATCH);
    let mut outbox: Vec<DeliveryRecord> = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for job in batch.iter_mut() {
            rows.push(std::mem::take(&mut job.row));
            outbox.append(&mut job.outbox);
        }
        let written = if outbox.is_empty() {
            store.insert_usage(&rows).await
        } else {
            store.insert_usage_with_outbox(&rows, &outbox).await
        };
        let outcome = written.map_err(|err| {
            tracing::error!(%err, rows = rows.len(), "usage batch failed");
            Arc::<str>::from(err.to_string())
        });
        if let Some(hooks) = hooks
            .as_ref()
            .filter(|_| !outbox.is_empty() && outcome.is_ok())
        {
            hooks.wake();
        }
        outbox.clear();
        for job in batch.drain(..) {
            // A caller that went away no longer waits; its row is committed anyway.
            let _ = job.committed.send(outcome.clone());
        }
        rows.clear();
    }
}

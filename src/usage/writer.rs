//! The usage writer: calls hand it rows through a bounded channel; one task
//! drains whatever is queued into a single transaction (group commit) and
//! then tells each waiting call that its row is durable.
//!
//! Under load, many calls share one commit, so durable-before-answer costs
//! one commit per batch rather than per call. With `Durability::Async` a
//! call only queues its row (waiting only when the queue is full).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::store::{DeliveryRecord, UsageRow, UsageSink};

/// Most rows in one transaction.
const MAX_BATCH: usize = 512;

struct Job {
    row: UsageRow,
    /// The row's after_call deliveries, committed with it.
    outbox: Vec<DeliveryRecord>,
    /// Absent when the caller does not wait (asynchronous durability).
    committed: Option<oneshot::Sender<Result<(), Arc<str>>>>,
}

/// The sending side; cheap to clone. The writer stops once every clone is gone.
#[derive(Clone)]
pub struct UsageWriter {
    jobs: mpsc::Sender<Job>,
    hooks: Option<Arc<Hooks>>,
    durability: Durability,
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
        sink: Box<dyn UsageSink>,
        capacity: usize,
        durability: Durability,
        hooks: Option<Arc<Hooks>>,
    ) -> (UsageWriter, WriterHandle) {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(run(sink, queue, hooks.clone()));
        let writer = UsageWriter {
            jobs,
            hooks,
            durability,
        };
        (writer, WriterHandle(task))
    }

    /// Queues a row and, when durable, waits until it is committed.
    pub async fn record(&self, row: UsageRow) -> Result<()> {
        let (committed, done) = match self.durability {
            Durability::Durable => {
                let (committed, done) = oneshot::channel();
                (Some(committed), Some(done))
            }
            Durability::Async => (None, None),
        };
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
        let Some(done) = done else { return Ok(()) };
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Internal(format!("usage write failed: {message}"))),
            Err(_) => Err(Error::internal("usage writer dropped the row")),
        }
    }
}

async fn run(
    mut sink: Box<dyn UsageSink>,
    mut queue: mpsc::Receiver<Job>,
    hooks: Option<Arc<Hooks>>,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut rows: Vec<UsageRow> = Vec::with_capacity(MAX_BATCH);
    let mut outbox: Vec<DeliveryRecord> = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        for job in batch.iter_mut() {
            rows.push(std::mem::take(&mut job.row));
            outbox.append(&mut job.outbox);
        }
        let written = sink.insert(&rows, &outbox).await;
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
        for committed in batch.drain(..).filter_map(|job| job.committed) {
            // A caller that went away no longer waits; its row is committed anyway.
            let _ = committed.send(outcome.clone());
        }
        rows.clear();
    }
    sink.close().await;
}

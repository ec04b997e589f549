//! The usage writer: calls hand it rows through a bounded channel; one
//! thread drains whatever is queued into a single transaction (group commit)
//! and then tells each waiting call that its row is durable. A thread rather
//! than a task: the commit blocks on the disk, and the thread owns the
//! connection, so a batch costs one hand-off there and one back.
//!
//! Under load, many calls share one commit, so durable-before-answer costs
//! one commit per batch rather than per call. With `Durability::Async` a
//! call only queues its row (waiting only when the queue is full).

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

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

/// The writer thread; await `finish` after the last sender is dropped.
pub struct WriterHandle(JoinHandle<()>);

impl WriterHandle {
    /// Waits until every queued row is committed.
    pub async fn finish(self) {
        let thread = self.0;
        let joined = tokio::task::spawn_blocking(move || thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!("usage writer thread failed");
        }
    }
}

impl UsageWriter {
    /// Starts the writer thread; with `hooks`, each row's after_call deliveries
    /// go into the outbox in the row's transaction.
    pub fn start(
        sink: Box<dyn UsageSink>,
        capacity: usize,
        durability: Durability,
        hooks: Option<Arc<Hooks>>,
    ) -> std::io::Result<(UsageWriter, WriterHandle)> {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let run_hooks = hooks.clone();
        let thread = std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(sink, queue, run_hooks))?;
        let writer = UsageWriter {
            jobs,
            hooks,
            durability,
        };
        Ok((writer, WriterHandle(thread)))
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

fn run(mut sink: Box<dyn UsageSink>, mut queue: mpsc::Receiver<Job>, hooks: Option<Arc<Hooks>>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut rows: Vec<UsageRow> = Vec::with_capacity(MAX_BATCH);
    let mut outbox: Vec<DeliveryRecord> = Vec::new();
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            let Ok(job) = queue.try_recv() else { break };
            batch.push(job);
        }
        for job in batch.iter_mut() {
            rows.push(std::mem::take(&mut job.row));
            outbox.append(&mut job.outbox);
        }
        let written = sink.insert(&rows, &outbox);
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
}

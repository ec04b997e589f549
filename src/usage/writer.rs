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
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::domain::{DeliveryRecord, UsageRow};
use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::metrics::Metrics;
use crate::store::{UsageBatch, UsageSink};

/// When a call's usage row is committed relative to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The answer (and a stream's final message) leaves after the row is
    /// committed: a client that saw its answer can count on the row.
    Durable,
    /// The row is queued and committed moments later; a crash in between
    /// loses the rows still queued. Calls never wait for the disk.
    Async,
}

/// Most rows in one transaction.
const MAX_BATCH: usize = 512;

/// What a row is to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// Written at admission, open until its call settles it.
    Opened,
    /// A call's final row, replacing the open row it wrote.
    Settled,
    /// A call's final row; it wrote no open row.
    Final,
}

struct Job {
    row: UsageRow,
    kind: RowKind,
    /// The row's after_call deliveries, committed with it.
    outbox: Vec<DeliveryRecord>,
    /// Absent when the caller does not wait (asynchronous durability).
    committed: Option<oneshot::Sender<Result<(), Arc<str>>>>,
}

/// The sending side; cheap to clone. The writer stops once every clone is gone.
#[derive(Clone)]
pub struct UsageWriter {
    jobs: mpsc::Sender<Message>,
    hooks: Option<Arc<Hooks>>,
    durability: Durability,
}

/// What the writer's queue carries.
// Every message but the last is a row: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
enum Message {
    Row(Job),
    /// Commit what is queued, then stop (see `WriterHandle::finish`).
    Stop,
}

/// The writer thread; `finish` ends it once the calls are done.
pub struct WriterHandle {
    thread: JoinHandle<()>,
    /// Does not keep the queue open: only to ask for a stop.
    jobs: mpsc::WeakSender<Message>,
}

impl WriterHandle {
    /// Waits until every queued row is committed. The thread ends by itself
    /// once the last sender is gone; if one is still held after `patience`
    /// (a call that ignored the shutdown), the rows queued so far are
    /// committed and the writer stops anyway, so shutdown stays bounded.
    pub async fn finish(self, patience: Duration) {
        let thread = self.thread;
        let mut joined = tokio::task::spawn_blocking(move || thread.join());
        let joined = match tokio::time::timeout(patience, &mut joined).await {
            Ok(joined) => joined,
            Err(_) => {
                if let Some(jobs) = self.jobs.upgrade() {
                    tracing::warn!(
                        "a call still holds the usage writer; stopping it after the queued rows"
                    );
                    let _ = jobs.send(Message::Stop).await;
                }
                joined.await
            }
        };
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
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(UsageWriter, WriterHandle)> {
        let (jobs, queue) = mpsc::channel(capacity.max(1));
        let run_hooks = hooks.clone();
        let thread = std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(sink, queue, run_hooks, &metrics))?;
        let handle = WriterHandle {
            thread,
            jobs: jobs.downgrade(),
        };
        let writer = UsageWriter {
            jobs,
            hooks,
            durability,
        };
        Ok((writer, handle))
    }

    /// Queues a row of this kind and, when durable, waits until it is committed.
    pub async fn record_as(
        &self,
        row: UsageRow,
        kind: RowKind,
        traceparent: Option<String>,
    ) -> Result<()> {
        self.slot()
            .await?
            .send_as(row, kind, traceparent)
            .wait()
            .await
    }

    /// Waits for room in the queue. The row is then handed over by
    /// `Slot::send`, which does not wait: a caller dropped while waiting here
    /// still holds its row, and one dropped after `send` has lost nothing.
    pub async fn slot(&self) -> Result<Slot> {
        let permit = self
            .jobs
            .clone()
            .reserve_owned()
            .await
            .map_err(|_| Error::internal("usage writer has stopped"))?;
        Ok(Slot {
            permit,
            hooks: self.hooks.clone(),
            durability: self.durability,
        })
    }
}

/// Room for one row in the writer's queue.
pub struct Slot {
    permit: mpsc::OwnedPermit<Message>,
    hooks: Option<Arc<Hooks>>,
    durability: Durability,
}

impl Slot {
    /// Hands a row of this kind to the writer at once; a final one (settled
    /// or not) with its after_call deliveries, which carry the call's
    /// `traceparent`.
    pub fn send_as(self, row: UsageRow, kind: RowKind, traceparent: Option<String>) -> Committed {
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
            .filter(|_| kind != RowKind::Opened)
            .map(|hooks| hooks.outbox_for(&row, traceparent))
            .unwrap_or_default();
        self.permit.send(Message::Row(Job {
            row,
            kind,
            outbox,
            committed,
        }));
        Committed(done)
    }
}

/// A row handed to the writer; `wait` resolves once it is committed (at once
/// under asynchronous durability). The row is committed whether or not
/// anyone waits.
pub struct Committed(Option<oneshot::Receiver<Result<(), Arc<str>>>>);

impl Committed {
    pub async fn wait(self) -> Result<()> {
        let Some(done) = self.0 else { return Ok(()) };
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(Error::Internal(format!("usage write failed: {message}"))),
            Err(_) => Err(Error::internal("usage writer dropped the row")),
        }
    }
}

fn run(
    mut sink: Box<dyn UsageSink>,
    mut queue: mpsc::Receiver<Message>,
    hooks: Option<Arc<Hooks>>,
    metrics: &Metrics,
) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut rows = Rows::default();
    let mut outbox: Vec<DeliveryRecord> = Vec::new();
    let mut stop = false;
    while !stop {
        let Some(first) = queue.blocking_recv() else {
            break;
        };
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Row(job) => batch.push(job),
                Message::Stop => stop = true,
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        for job in batch.iter_mut() {
            rows.of(job.kind).push(std::mem::take(&mut job.row));
            outbox.append(&mut job.outbox);
        }
        let started = Instant::now();
        let written = sink.write(&UsageBatch {
            opened: &rows.opened,
            settled: &rows.settled,
            rows: &rows.finals,
            outbox: &outbox,
        });
        let rows_len = rows.len();
        metrics.usage_batch(rows_len, started.elapsed(), queue.len());
        let outcome = written.map_err(|err| {
            tracing::error!(%err, rows = rows_len, "usage batch failed");
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

/// One batch's rows by kind, kept between batches for their capacity.
#[derive(Default)]
struct Rows {
    opened: Vec<UsageRow>,
    settled: Vec<UsageRow>,
    finals: Vec<UsageRow>,
}

impl Rows {
    fn of(&mut self, kind: RowKind) -> &mut Vec<UsageRow> {
        match kind {
            RowKind::Opened => &mut self.opened,
            RowKind::Settled => &mut self.settled,
            RowKind::Final => &mut self.finals,
        }
    }

    fn len(&self) -> usize {
        self.opened.len() + self.settled.len() + self.finals.len()
    }

    fn clear(&mut self) {
        self.opened.clear();
        self.settled.clear();
        self.finals.clear();
    }
}

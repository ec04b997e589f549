//! The usage writer: calls hand it rows through a bounded channel; one
//! thread drains whatever is queued into a single transaction (group commit)
//! and then tells each waiting call that its row is durable. A thread rather
//! than a task: the commit blocks on the disk, and the thread owns the
//! connection, so a batch costs one hand-off there and one back.
//!
//! Under load, many calls share one commit, so durable-before-answer costs
//! one commit per batch rather than per call. With `Durability::Async` a
//! call only queues its row (waiting only when the queue is full).
//!
//! When nothing is queued and the writer is idle, a durable call on a sink
//! whose commit never waits on a disk or a network (SQLite without fsync,
//! `UsageSink::commits_inline`) commits its own row on its own task: a
//! one-row commit takes tens of microseconds, less than waking the writer's
//! thread and being woken by it. The sink's slow upkeep (a WAL checkpoint)
//! stays on the writer's thread.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::domain::{DeliveryRecord, UsageRow};
use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::metrics::Metrics;
use crate::store::{UsageBatch, UsageSink};

type Outcome = std::result::Result<(), Arc<str>>;

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
    committed: Option<oneshot::Sender<Outcome>>,
}

/// The sending side; cheap to clone. The writer stops once every clone is gone.
#[derive(Clone)]
pub struct UsageWriter {
    jobs: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    durability: Durability,
}

/// What the writer's thread and a call committing inline share.
struct Shared {
    /// `None` once the writer's thread has ended.
    sink: Mutex<Option<Box<dyn UsageSink>>>,
    /// A durable call may commit its own row when the writer is idle.
    inline: bool,
    hooks: Option<Arc<Hooks>>,
    metrics: Arc<Metrics>,
}

impl Shared {
    fn sink(&self) -> MutexGuard<'_, Option<Box<dyn UsageSink>>> {
        self.sink.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits one batch and wakes the hook dispatcher for its deliveries.
    fn commit(&self, sink: &mut dyn UsageSink, batch: &UsageBatch<'_>, queued: usize) -> Outcome {
        let started = Instant::now();
        let written = sink.write(batch);
        self.metrics
            .usage_batch(batch.len(), started.elapsed(), queued);
        let outcome = written.map_err(|err| {
            tracing::error!(%err, rows = batch.len(), "usage batch failed");
            Arc::<str>::from(err.to_string())
        });
        if let Some(hooks) = self
            .hooks
            .as_ref()
            .filter(|_| !batch.outbox.is_empty() && outcome.is_ok())
        {
            hooks.wake();
        }
        outcome
    }
}

/// What the writer's queue carries.
// Every message but the last is a row: boxing it would allocate per call.
#[allow(clippy::large_enum_variant)]
enum Message {
    Row(Job),
    /// The sink's upkeep is due after inline commits.
    Upkeep,
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
        let shared = Arc::new(Shared {
            inline: durability == Durability::Durable && sink.commits_inline(),
            sink: Mutex::new(Some(sink)),
            hooks,
            metrics,
        });
        let run_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || run(&run_shared, queue))?;
        let handle = WriterHandle {
            thread,
            jobs: jobs.downgrade(),
        };
        let writer = UsageWriter {
            jobs,
            shared,
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
        // Nothing queued but this slot: the writer may be idle.
        let alone = self.jobs.capacity() + 1 == self.jobs.max_capacity();
        Ok(Slot {
            permit,
            shared: self.shared.clone(),
            durability: self.durability,
            inline: alone && self.shared.inline,
        })
    }
}

/// Room for one row in the writer's queue.
pub struct Slot {
    permit: mpsc::OwnedPermit<Message>,
    shared: Arc<Shared>,
    durability: Durability,
    /// The row may be committed on the calling task (see the module's doc).
    inline: bool,
}

impl Slot {
    /// Hands a row of this kind to the writer at once; a final one (settled
    /// or not) with its after_call deliveries, which carry the call's
    /// `traceparent`.
    pub fn send_as(self, row: UsageRow, kind: RowKind, traceparent: Option<String>) -> Committed {
        let outbox = self
            .shared
            .hooks
            .as_ref()
            .filter(|_| kind != RowKind::Opened)
            .map(|hooks| hooks.outbox_for(&row, traceparent))
            .unwrap_or_default();
        if self.inline
            && let Some((outcome, upkeep_due)) = self.commit_inline(&row, kind, &outbox)
        {
            if upkeep_due {
                self.permit.send(Message::Upkeep);
            }
            return Committed(Commit::Done(outcome));
        }
        let (committed, done) = match self.durability {
            Durability::Durable => {
                let (committed, done) = oneshot::channel();
                (Some(committed), Commit::Queued(done))
            }
            Durability::Async => (None, Commit::Done(Ok(()))),
        };
        self.permit.send(Message::Row(Job {
            row,
            kind,
            outbox,
            committed,
        }));
        Committed(done)
    }

    /// Commits the row here, unless the writer holds the sink (or has ended):
    /// the outcome, and whether the sink's upkeep is due.
    fn commit_inline(
        &self,
        row: &UsageRow,
        kind: RowKind,
        outbox: &[DeliveryRecord],
    ) -> Option<(Outcome, bool)> {
        let mut sink = self.shared.sink.try_lock().ok()?;
        let sink = sink.as_mut()?;
        let row = std::slice::from_ref(row);
        let batch = match kind {
            RowKind::Opened => UsageBatch {
                opened: row,
                ..Default::default()
            },
            RowKind::Settled => UsageBatch {
                settled: row,
                outbox,
                ..Default::default()
            },
            RowKind::Final => UsageBatch {
                rows: row,
                outbox,
                ..Default::default()
            },
        };
        let outcome = self.shared.commit(sink.as_mut(), &batch, 0);
        Some((outcome, sink.upkeep_due()))
    }
}

/// A row handed to the writer; `wait` resolves once it is committed (at once
/// under asynchronous durability, or when the call committed it itself). The
/// row is committed whether or not anyone waits.
pub struct Committed(Commit);

enum Commit {
    Queued(oneshot::Receiver<Outcome>),
    Done(Outcome),
}

impl Committed {
    pub async fn wait(self) -> Result<()> {
        let outcome = match self.0 {
            Commit::Done(outcome) => outcome,
            Commit::Queued(done) => done
                .await
                .map_err(|_| Error::internal("usage writer dropped the row"))?,
        };
        outcome.map_err(|message| Error::Internal(format!("usage write failed: {message}")))
    }
}

fn run(shared: &Shared, mut queue: mpsc::Receiver<Message>) {
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
                Message::Upkeep => {}
                Message::Stop => stop = true,
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        for job in batch.iter_mut() {
            rows.of(job.kind).push(std::mem::take(&mut job.row));
            outbox.append(&mut job.outbox);
        }
        let outcome = write_batch(shared, &rows, &outbox, queue.len());
        outbox.clear();
        for committed in batch.drain(..).filter_map(|job| job.committed) {
            // A caller that went away no longer waits; its row is committed anyway.
            let _ = committed.send(outcome.clone());
        }
        rows.clear();
    }
    // Calls still holding a writer now find no sink, and queue (in vain).
    shared.sink().take();
}

/// Commits the batch (when it has rows) and runs the sink's upkeep if due.
fn write_batch(shared: &Shared, rows: &Rows, outbox: &[DeliveryRecord], queued: usize) -> Outcome {
    let mut sink = shared.sink();
    let Some(sink) = sink.as_mut() else {
        return Err("the usage sink is closed".into());
    };
    let batch = UsageBatch {
        opened: &rows.opened,
        settled: &rows.settled,
        rows: &rows.finals,
        outbox,
    };
    let outcome = if batch.is_empty() {
        Ok(())
    } else {
        shared.commit(sink.as_mut(), &batch, queued)
    };
    if sink.upkeep_due()
        && let Err(err) = sink.upkeep()
    {
        tracing::warn!(%err, "usage sink upkeep (WAL checkpoint) failed");
    }
    outcome
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

    fn clear(&mut self) {
        self.opened.clear();
        self.settled.clear();
        self.finals.clear();
    }
}

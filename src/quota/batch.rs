//! Grouped reserves and settles for the shared ledger. A claim sent while
//! its kind (reserve or settle) has nothing queued or in flight goes at once,
//! alone, through the single-call function: one round trip, as without
//! grouping. Else
//! it joins a bounded queue, and one task per kind sends every claim waiting
//! (never waiting for more) in one stored-function call, `quota_reserve_many`
//! or `quota_settle_many` (migration 0005). One transaction then takes each
//! studio's counter row lock once per group, not once per call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::ledger::Hold;
use super::limits::{Amount, LimitKind};
use super::window::Window;
use crate::domain::{LimitValues, Millis, now_ms};

/// At most this many claims in one call (the arrays stay small).
const MAX_GROUP: usize = 256;
/// Claims waiting for their group; a full queue makes callers wait.
const QUEUE: usize = 4096;

/// A reserve's answer: `None` reserved, `Some(limit)` refused (as
/// quota_reserve words it), or why the group failed.
pub type Answer = Result<Option<String>, Arc<str>>;

pub struct ReserveClaim {
    pub hold: Hold,
    pub create_ms: Millis,
    pub studio_limits: LimitValues,
    pub user_limits: LimitValues,
}

pub struct SettleClaim {
    pub hold: Hold,
    pub used: Amount,
}

/// A claim and where its answer goes (for a settle: `()` once done).
struct Job<C, A> {
    claim: C,
    answer: oneshot::Sender<A>,
}

/// One kind's queue, and how many of its calls are in flight.
struct Lane<C, A> {
    queue: mpsc::Sender<Job<C, A>>,
    busy: Arc<AtomicUsize>,
}

impl<C, A> Lane<C, A> {
    /// Marks a call in flight if nothing is queued or in flight: the caller
    /// then sends its claim alone, at once.
    fn alone(&self) -> Option<InFlight> {
        let idle = self.queue.capacity() == self.queue.max_capacity()
            && self.busy.load(Ordering::Acquire) == 0;
        idle.then(|| InFlight::new(&self.busy))
    }

    /// Queues a claim for the next group; `None` if the batcher is gone.
    async fn grouped(&self, claim: C) -> Option<A> {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Job { claim, answer }).await.ok()?;
        answered.await.ok()
    }
}

/// A call in flight on a lane, until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(busy: &Arc<AtomicUsize>) -> InFlight {
        busy.fetch_add(1, Ordering::AcqRel);
        InFlight(busy.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The two lanes, and what a claim sent alone needs. The group tasks end
/// when the batcher is dropped.
pub struct Batcher {
    reserves: Lane<ReserveClaim, Answer>,
    settles: Lane<SettleClaim, ()>,
    pool: PgPool,
    replica_id: Arc<str>,
}

impl Batcher {
    pub fn start(pool: PgPool, replica_id: &str) -> Batcher {
        let (reserves, reserve_queue) = mpsc::channel(QUEUE);
        let (settles, settle_queue) = mpsc::channel(QUEUE);
        let batcher = Batcher {
            reserves: Lane {
                queue: reserves,
                busy: Arc::default(),
            },
            settles: Lane {
                queue: settles,
                busy: Arc::default(),
            },
            pool,
            replica_id: replica_id.into(),
        };
        tokio::spawn(reserve_groups(
            reserve_queue,
            batcher.reserves.busy.clone(),
            (batcher.pool.clone(), batcher.replica_id.clone()),
            batcher.settles.queue.clone(),
        ));
        tokio::spawn(settle_groups(
            settle_queue,
            batcher.settles.busy.clone(),
            batcher.pool.clone(),
        ));
        batcher
    }

    /// Reserves one claim: alone and at once when nothing else waits, else
    /// in the next group. The reserve runs to its end on a task of its own
    /// even if the caller stops waiting (its hold is then released).
    pub async fn reserve(&self, claim: ReserveClaim) -> Option<Answer> {
        let Some(in_flight) = self.reserves.alone() else {
            return self.reserves.grouped(claim).await;
        };
        let (answer, answered) = oneshot::channel();
        let (pool, replica_id) = (self.pool.clone(), self.replica_id.clone());
        let settles = self.settles.queue.clone();
        tokio::spawn(async move {
            let answers = reserve_many(&pool, &replica_id, std::slice::from_ref(&claim)).await;
            drop(in_flight);
            deliver(vec![claim], vec![answer], answers, &settles).await;
        });
        answered.await.ok()
    }

    /// Settles one hold, alone and at once or in the next group; like a
    /// reserve, it runs to its end even if the caller stops waiting.
    pub async fn settle(&self, claim: SettleClaim) {
        let Some(in_flight) = self.settles.alone() else {
            self.settles.grouped(claim).await;
            return;
        };
        let pool = self.pool.clone();
        let settled = tokio::spawn(async move {
            settle_many(&pool, &[claim]).await;
            drop(in_flight);
        });
        let _ = settled.await;
    }
}

async fn reserve_groups(
    mut queue: mpsc::Receiver<Job<ReserveClaim, Answer>>,
    busy: Arc<AtomicUsize>,
    (pool, replica_id): (PgPool, Arc<str>),
    settles: mpsc::Sender<Job<SettleClaim, ()>>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let in_flight = InFlight::new(&busy);
        let (claims, senders): (Vec<_>, Vec<_>) =
            group.drain(..).map(|job| (job.claim, job.answer)).unzip();
        let answers = reserve_many(&pool, &replica_id, &claims).await;
        drop(in_flight);
        deliver(claims, senders, answers, &settles).await;
    }
}

/// Hands each claim its answer. A claim admitted for a call that went away
/// meanwhile is released: nobody would settle its hold.
async fn deliver(
    claims: Vec<ReserveClaim>,
    senders: Vec<oneshot::Sender<Answer>>,
    answers: Vec<Answer>,
    settles: &mpsc::Sender<Job<SettleClaim, ()>>,
) {
    for ((claim, sender), answer) in claims.into_iter().zip(senders).zip(answers) {
        let admitted = matches!(answer, Ok(None));
        if let (Err(_), true) = (sender.send(answer), admitted) {
            let (answer, _) = oneshot::channel();
            let release = SettleClaim {
                hold: claim.hold,
                used: Amount::default(),
            };
            let _ = settles
                .send(Job {
                    claim: release,
                    answer,
                })
                .await;
        }
    }
}

/// Reserves a group of claims in one call: one answer per claim, in order.
/// A group of one goes through `quota_reserve`, cheaper than its array
/// twin for a single claim, and answering the same.
async fn reserve_many(pool: &PgPool, replica_id: &str, group: &[ReserveClaim]) -> Vec<Answer> {
    let answers = match group {
        [claim] => reserve_one(pool, replica_id, claim).await.map(|a| vec![a]),
        _ => reserve_group(pool, replica_id, group).await,
    };
    let failure = match answers {
        Ok(answers) if answers.len() == group.len() => {
            return answers.into_iter().map(Ok).collect();
        }
        Ok(_) => "quota_reserve_many answered a wrong count".to_string(),
        Err(err) => err.to_string(),
    };
    tracing::warn!(error = failure, "reserving quota failed");
    vec![Err(failure.into()); group.len()]
}

async fn reserve_one(
    pool: &PgPool,
    replica_id: &str,
    claim: &ReserveClaim,
) -> sqlx::Result<Option<String>> {
    let hold = &claim.hold;
    sqlx::query_scalar("SELECT quota_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&*hold.call_id)
        .bind(replica_id)
        .bind(&*hold.studio_id)
        .bind(&*hold.user_id)
        .bind(starts(now_ms()))
        .bind(triple(hold.amount))
        .bind(flat_limits(&claim.studio_limits))
        .bind(flat_limits(&claim.user_limits))
        .bind(claim.create_ms)
        .fetch_one(pool)
        .await
}

async fn reserve_group(
    pool: &PgPool,
    replica_id: &str,
    group: &[ReserveClaim],
) -> sqlx::Result<Vec<Option<String>>> {
    let holds = Columns::of(group.iter().map(|claim| &claim.hold));
    let limits = |of: fn(&ReserveClaim) -> &LimitValues| -> Vec<Option<i64>> {
        group
            .iter()
            .flat_map(|claim| flat_limits(of(claim)))
            .collect()
    };
    sqlx::query_scalar("SELECT quota_reserve_many($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(holds.ids)
        .bind(replica_id)
        .bind(holds.studios)
        .bind(holds.users)
        .bind(starts(now_ms()))
        .bind(holds.amounts)
        .bind(limits(|claim| &claim.studio_limits))
        .bind(limits(|claim| &claim.user_limits))
        .bind(
            group
                .iter()
                .map(|claim| claim.create_ms)
                .collect::<Vec<_>>(),
        )
        .fetch_one(pool)
        .await
}

async fn settle_groups(
    mut queue: mpsc::Receiver<Job<SettleClaim, ()>>,
    busy: Arc<AtomicUsize>,
    pool: PgPool,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let in_flight = InFlight::new(&busy);
        let (claims, senders): (Vec<_>, Vec<_>) =
            group.drain(..).map(|job| (job.claim, job.answer)).unzip();
        settle_many(&pool, &claims).await;
        drop(in_flight);
        for sender in senders {
            let _ = sender.send(());
        }
    }
}

/// Settles a group of holds in one call (a group of one through
/// `quota_settle`). One retry: a dropped connection is replaced by the pool.
/// Beyond that the holds stay until this replica's heartbeat lapses (the
/// sweeper then counts their calls from their rows).
async fn settle_many(pool: &PgPool, group: &[SettleClaim]) {
    for _ in 0..2 {
        let settled = match group {
            [claim] => settle_one(pool, claim).await,
            _ => settle_group(pool, group).await,
        };
        match settled {
            Ok(()) => return,
            Err(err) => tracing::warn!(%err, "settling quota holds failed"),
        }
    }
}

async fn settle_one(pool: &PgPool, claim: &SettleClaim) -> sqlx::Result<()> {
    let hold = &claim.hold;
    sqlx::query("SELECT quota_settle($1, $2, $3, $4, $5, $6)")
        .bind(&*hold.call_id)
        .bind(&*hold.studio_id)
        .bind(&*hold.user_id)
        .bind(starts(now_ms()))
        .bind(triple(hold.amount))
        .bind(triple(claim.used))
        .execute(pool)
        .await?;
    Ok(())
}

async fn settle_group(pool: &PgPool, group: &[SettleClaim]) -> sqlx::Result<()> {
    let holds = Columns::of(group.iter().map(|claim| &claim.hold));
    let used: Vec<i64> = group.iter().flat_map(|claim| triple(claim.used)).collect();
    sqlx::query("SELECT quota_settle_many($1, $2, $3, $4, $5, $6)")
        .bind(holds.ids)
        .bind(holds.studios)
        .bind(holds.users)
        .bind(starts(now_ms()))
        .bind(holds.amounts)
        .bind(used)
        .execute(pool)
        .await?;
    Ok(())
}

/// Holds as the stored functions take them: a column per field, amounts
/// flat (requests, tokens, cost per hold).
#[derive(Default)]
struct Columns {
    ids: Vec<String>,
    studios: Vec<String>,
    users: Vec<String>,
    amounts: Vec<i64>,
}

impl Columns {
    fn of<'a>(holds: impl Iterator<Item = &'a Hold>) -> Columns {
        let mut columns = Columns::default();
        for hold in holds {
            columns.ids.push(hold.call_id.to_string());
            columns.studios.push(hold.studio_id.to_string());
            columns.users.push(hold.user_id.to_string());
            columns.amounts.extend(triple(hold.amount));
        }
        columns
    }
}

/// The starts of the minute, day and month holding `now`.
fn starts(now: Millis) -> Vec<i64> {
    Window::ALL.iter().map(|w| w.bounds(now).0).collect()
}

/// (requests, tokens, cost), as the stored functions take amounts.
fn triple(amount: Amount) -> [i64; 3] {
    [amount.requests, amount.tokens, amount.cost_micros]
}

/// The five limits in `LimitKind::ALL`'s order; unset ones NULL.
fn flat_limits(values: &LimitValues) -> Vec<Option<i64>> {
    LimitKind::ALL.iter().map(|kind| kind.of(values)).collect()
}

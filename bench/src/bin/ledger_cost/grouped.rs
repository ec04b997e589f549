//! The grouped ledger as City's `SharedLedger` runs it (src/quota/batch.rs,
//! not reachable from here): a claim goes at once, alone, on a task of its
//! own when its kind (reserve or settle) has nothing queued or in flight;
//! else it is queued, and one task per kind sends every claim waiting (never
//! waiting for more) in one `quota_reserve_many` / `quota_settle_many` call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use super::{Claim, RESERVED, USED, limits, now_ms, settle_one, starts};

const MAX_GROUP: usize = 256;

type Row = (String, String, String, i64);
type Answer = Result<Vec<Option<String>>, String>;

struct Job {
    row: Row,
    answer: oneshot::Sender<Result<Option<String>, String>>,
}

#[derive(Clone, Copy)]
enum Kind {
    Reserve,
    Settle,
}

#[derive(Clone)]
struct Lane {
    kind: Kind,
    pool: PgPool,
    queue: mpsc::Sender<Job>,
    busy: Arc<AtomicUsize>,
}

#[derive(Clone)]
pub struct Grouped {
    reserves: Lane,
    settles: Lane,
}

impl Grouped {
    pub fn start(pool: PgPool) -> Grouped {
        let lane = |kind| {
            let (queue, jobs) = mpsc::channel(4096);
            let lane = Lane {
                kind,
                pool: pool.clone(),
                queue,
                busy: Arc::default(),
            };
            tokio::spawn(groups(jobs, lane.clone()));
            lane
        };
        Grouped {
            reserves: lane(Kind::Reserve),
            settles: lane(Kind::Settle),
        }
    }

    pub async fn reserve(&self, claim: &Claim) -> anyhow::Result<Option<String>> {
        self.reserves.claim(claim).await
    }

    pub async fn settle(&self, claim: &Claim) -> anyhow::Result<()> {
        self.settles.claim(claim).await.map(|_| ())
    }
}

impl Lane {
    async fn claim(&self, claim: &Claim) -> anyhow::Result<Option<String>> {
        let row = (
            claim.id.clone(),
            claim.studio.clone(),
            claim.user.clone(),
            claim.now,
        );
        let idle = self.queue.capacity() == self.queue.max_capacity()
            && self.busy.load(Ordering::Acquire) == 0;
        if idle {
            // On a task of its own, as City runs it: it ends even if the
            // caller stops waiting.
            self.busy.fetch_add(1, Ordering::AcqRel);
            let lane = self.clone();
            let answer = tokio::spawn(async move {
                let answer = lane.send(vec![row]).await;
                lane.busy.fetch_sub(1, Ordering::AcqRel);
                answer
            })
            .await?;
            return Ok(answer.map_err(anyhow::Error::msg)?.pop().flatten());
        }
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Job { row, answer })
            .await
            .map_err(|_| anyhow::anyhow!("batcher gone"))?;
        answered.await?.map_err(anyhow::Error::msg)
    }

    /// A group of one goes through the single-call functions (cheaper).
    async fn send(&self, rows: Vec<Row>) -> Answer {
        let sent = match (self.kind, rows.len()) {
            (Kind::Reserve, 1) => reserve_one(&self.pool, &claim_of(&rows[0])).await,
            (Kind::Settle, 1) => settle_one(&self.pool, &claim_of(&rows[0])).await,
            (Kind::Reserve, _) => reserve_many(&self.pool, rows).await,
            (Kind::Settle, _) => settle_many(&self.pool, rows).await,
        };
        sent.map_err(|err| err.to_string())
    }
}

async fn groups(mut queue: mpsc::Receiver<Job>, lane: Lane) {
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut jobs, MAX_GROUP).await > 0 {
        let rows = jobs.iter().map(|job| job.row.clone()).collect();
        lane.busy.fetch_add(1, Ordering::AcqRel);
        let answers = lane.send(rows).await;
        lane.busy.fetch_sub(1, Ordering::AcqRel);
        for (i, job) in jobs.drain(..).enumerate() {
            let answer = match &answers {
                Ok(answers) => Ok(answers[i].clone()),
                Err(err) => Err(err.clone()),
            };
            let _ = job.answer.send(answer);
        }
    }
}

type Columns = (Vec<String>, Vec<String>, Vec<String>, Vec<i64>);

fn columns(rows: Vec<Row>) -> Columns {
    let mut columns: Columns = Default::default();
    for (id, studio, user, at_ms) in rows {
        columns.0.push(id);
        columns.1.push(studio);
        columns.2.push(user);
        columns.3.push(at_ms);
    }
    columns
}

fn repeat<T: Clone>(one: &[T], times: usize) -> Vec<T> {
    one.iter()
        .cloned()
        .cycle()
        .take(one.len() * times)
        .collect()
}

async fn reserve_many(pool: &PgPool, rows: Vec<Row>) -> sqlx::Result<Vec<Option<String>>> {
    let n = rows.len();
    let (ids, studios, users, at_ms) = columns(rows);
    sqlx::query_scalar("SELECT quota_reserve_many($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(ids)
        .bind("bench-replica")
        .bind(studios)
        .bind(users)
        .bind(starts(now_ms()))
        .bind(repeat(&RESERVED, n))
        .bind(repeat(&limits(), n))
        .bind(repeat(&limits(), n))
        .bind(at_ms)
        .fetch_one(pool)
        .await
}

async fn settle_many(pool: &PgPool, rows: Vec<Row>) -> sqlx::Result<Vec<Option<String>>> {
    let n = rows.len();
    let (ids, studios, users, _) = columns(rows);
    sqlx::query("SELECT quota_settle_many($1, $2, $3, $4, $5, $6)")
        .bind(ids)
        .bind(studios)
        .bind(users)
        .bind(starts(now_ms()))
        .bind(repeat(&RESERVED, n))
        .bind(repeat(&USED, n))
        .execute(pool)
        .await?;
    Ok(vec![None; n])
}

fn claim_of(row: &Row) -> Claim {
    Claim {
        id: row.0.clone(),
        studio: row.1.clone(),
        user: row.2.clone(),
        now: row.3,
    }
}

async fn reserve_one(pool: &PgPool, claim: &Claim) -> sqlx::Result<Vec<Option<String>>> {
    super::reserve_one(pool, claim)
        .await
        .map(|answer| vec![answer])
}

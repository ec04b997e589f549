//! The ledger several replicas share: counters in PostgreSQL. Reserves and
//! settles go through a per-replica batcher (batch.rs): a claim goes at once
//! when nothing else is waiting; under load, whatever claims are waiting go
//! in one stored-function call (`quota_reserve_many`, migration 0005), which
//! locks each studio's counter row, then its users', once for
//! the group, and checks and applies the claims in arrival order, each as
//! the single-call `quota_reserve` (migration 0003) would: concurrent calls
//! on any replica queue on the row and none admits past a limit.
//!
//! Its own small pool commits without waiting for the WAL flush
//! (`synchronous_commit = off`): a row lock is then held for microseconds,
//! not a disk flush. A server crash may lose the last moments of counter
//! changes (the usage rows, committed durably, stay the truth); a replica
//! crash loses nothing: its holds name it and lapse with its heartbeat.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use super::batch::{Batcher, ReserveClaim, SettleClaim};
use super::ledger::{Claim, Counts, Hold, QuotaExceeded, QuotaLedger, Refusal, WindowCount};
use super::limits::{Amount, LimitKind};
use super::window::Window;
use crate::domain::Millis;
use crate::error::{Error, Result};

/// Connections for reserves, settles and standing reads: each is one short
/// round trip (under load the batcher's two tasks use two).
const LEDGER_CONNECTIONS: u32 = 8;

pub struct SharedLedger {
    pool: PgPool,
    batcher: Batcher,
}

impl SharedLedger {
    pub async fn connect(options: &PgConnectOptions, replica_id: &str) -> Result<SharedLedger> {
        let options = options.clone().options([("synchronous_commit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(LEDGER_CONNECTIONS)
            .connect_with(options)
            .await?;
        let batcher = Batcher::start(pool.clone(), replica_id);
        Ok(SharedLedger { pool, batcher })
    }

    async fn read_counts(&self, studio_id: &str, user_id: &str, now: Millis) -> Result<Counts> {
        let row = sqlx::query("SELECT * FROM quota_counters WHERE studio_id = $1 AND user_id = $2")
            .bind(studio_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Counts::default());
        };
        let get = |column: &str| -> Result<i64> { Ok(row.try_get(column)?) };
        let reserved = Amount {
            requests: get("res_requests")?,
            tokens: get("res_tokens")?,
            cost_micros: get("res_cost")?,
        };
        // A window the clock has left counts nothing used any more.
        let current = |column: &str, window: Window| -> Result<bool> {
            Ok(get(column)? >= window.bounds(now).0)
        };
        let mut counts = Counts::default();
        let minute = current("minute_start", Window::Minute)?;
        let day = current("day_start", Window::Day)?;
        let month = current("month_start", Window::Month)?;
        let used = |on: bool, value: i64| if on { value } else { 0 };
        counts.windows[Window::Minute.index()] = WindowCount {
            start: Window::Minute.bounds(now).0,
            used: Amount {
                requests: used(minute, get("used_rpm")?),
                tokens: used(minute, get("used_tpm")?),
                cost_micros: 0,
            },
            reserved,
        };
        counts.windows[Window::Day.index()] = WindowCount {
            start: Window::Day.bounds(now).0,
            used: Amount {
                requests: 0,
                tokens: used(day, get("used_tpd")?),
                cost_micros: used(day, get("used_cpd")?),
            },
            reserved,
        };
        counts.windows[Window::Month.index()] = WindowCount {
            start: Window::Month.bounds(now).0,
            used: Amount {
                requests: 0,
                tokens: 0,
                cost_micros: used(month, get("used_cpm")?),
            },
            reserved,
        };
        Ok(counts)
    }
}

/// The limit named by quota_reserve's answer ('studio:K' or 'user:K').
fn exceeded(answer: &str, claim: &Claim<'_>, now: Millis) -> QuotaExceeded {
    let (scope, index) = answer.split_once(':').unwrap_or(("studio", "0"));
    let (scope, values) = if scope == "user" {
        ("user", claim.user_limits)
    } else {
        ("studio", claim.studio_limits)
    };
    let kind = LimitKind::ALL[index.parse::<usize>().unwrap_or(0).min(4)];
    QuotaExceeded {
        scope,
        kind,
        value: kind.of(values).unwrap_or_default(),
        reset_ms: kind.window().bounds(now).1,
    }
}

#[async_trait]
impl QuotaLedger for SharedLedger {
    async fn reserve(&self, claim: Claim<'_>, now: Millis) -> Result<Hold, Refusal> {
        let hold = || Hold {
            call_id: claim.call_id.into(),
            studio_id: claim.studio_id.clone(),
            user_id: claim.user_id.clone(),
            amount: claim.amount,
        };
        let reserve = ReserveClaim {
            hold: hold(),
            create_ms: claim.create_ms,
            studio_limits: *claim.studio_limits,
            user_limits: *claim.user_limits,
        };
        match self.batcher.reserve(reserve).await {
            Some(Ok(None)) => Ok(hold()),
            Some(Ok(Some(answer))) if answer == "duplicate" => Err(Refusal::Failed(
                Error::internal(format!("quota hold {} exists already", claim.call_id)),
            )),
            Some(Ok(Some(answer))) => Err(Refusal::Exceeded(exceeded(&answer, &claim, now))),
            Some(Err(message)) => Err(Refusal::Failed(Error::Internal(format!(
                "quota ledger: {message}"
            )))),
            None => Err(Refusal::Failed(Error::internal(
                "the quota batcher has stopped",
            ))),
        }
    }

    async fn settle(&self, hold: Hold, used: Amount, _now: Millis) {
        self.batcher.settle(SettleClaim { hold, used }).await;
    }

    async fn counts(
        &self,
        studio_id: &str,
        user_id: Option<&str>,
        now: Millis,
    ) -> (Counts, Option<Counts>) {
        let studio = self.read_counts(studio_id, "", now).await;
        let user = match user_id {
            Some(user) => Some(self.read_counts(studio_id, user, now).await),
            None => None,
        };
        let or_empty = |counts: Result<Counts>| {
            counts.unwrap_or_else(|err| {
                tracing::warn!(%err, "reading quota counters failed");
                Counts::default()
            })
        };
        (or_empty(studio), user.map(or_empty))
    }
}

//! The ledger several replicas share: counters in PostgreSQL, changed by one
//! stored function per reserve and per settle (see migration 0002). Each
//! reserve locks the studio's counter row, then the user's, checks every
//! limit and adds the hold in one transaction, so concurrent calls on any
//! replica queue on the row and none admits past a limit.
//!
//! Its own small pool commits without waiting for the WAL flush
//! (`synchronous_commit = off`): a row lock is then held for microseconds,
//! not a disk flush. A server crash may lose the last moments of counter
//! changes (the usage rows, committed durably, stay the truth); a replica
//! crash loses nothing: its holds name it and lapse with its heartbeat.

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};

use super::ledger::{Claim, Counts, Hold, QuotaExceeded, QuotaLedger, Refusal, WindowCount};
use super::limits::{Amount, LimitKind};
use super::window::Window;
use crate::domain::{LimitValues, Millis};
use crate::error::Result;

/// Connections for reserves and settles: each is one short round trip.
const LEDGER_CONNECTIONS: u32 = 8;

pub struct SharedLedger {
    pool: PgPool,
    replica_id: String,
}

impl SharedLedger {
    pub async fn connect(options: &PgConnectOptions, replica_id: &str) -> Result<SharedLedger> {
        let options = options.clone().options([("synchronous_commit", "off")]);
        let pool = PgPoolOptions::new()
            .max_connections(LEDGER_CONNECTIONS)
            .connect_with(options)
            .await?;
        Ok(SharedLedger {
            pool,
            replica_id: replica_id.to_string(),
        })
    }

    async fn settle_hold(&self, hold: &Hold, used: Amount, now: Millis) -> Result<()> {
        sqlx::query("SELECT quota_settle($1, $2, $3, $4, $5, $6)")
            .bind(&*hold.call_id)
            .bind(&*hold.studio_id)
            .bind(&*hold.user_id)
            .bind(starts(now))
            .bind(triple(hold.amount))
            .bind(triple(used))
            .execute(&self.pool)
            .await?;
        Ok(())
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

/// The starts of the minute, day and month holding `now`.
fn starts(now: Millis) -> Vec<i64> {
    Window::ALL.iter().map(|w| w.bounds(now).0).collect()
}

/// (requests, tokens, cost), as the stored functions take amounts.
fn triple(amount: Amount) -> Vec<i64> {
    vec![amount.requests, amount.tokens, amount.cost_micros]
}

/// The five limits in `LimitKind::ALL`'s order; unset ones NULL.
fn limits(values: &LimitValues) -> Vec<Option<i64>> {
    LimitKind::ALL.iter().map(|kind| kind.of(values)).collect()
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
        let answer: Option<String> =
            sqlx::query_scalar("SELECT quota_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                .bind(claim.call_id)
                .bind(&self.replica_id)
                .bind(&**claim.studio_id)
                .bind(&**claim.user_id)
                .bind(starts(now))
                .bind(triple(claim.amount))
                .bind(limits(claim.studio_limits))
                .bind(limits(claim.user_limits))
                .bind(claim.create_ms)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| Refusal::Failed(e.into()))?;
        match answer {
            Some(answer) => Err(Refusal::Exceeded(exceeded(&answer, &claim, now))),
            None => Ok(Hold {
                call_id: claim.call_id.into(),
                studio_id: claim.studio_id.clone(),
                user_id: claim.user_id.clone(),
                amount: claim.amount,
            }),
        }
    }

    async fn settle(&self, hold: Hold, used: Amount, now: Millis) {
        // One retry: a dropped connection is replaced by the pool. Beyond
        // that the hold stays until this replica's heartbeat lapses.
        for _ in 0..2 {
            match self.settle_hold(&hold, used, now).await {
                Ok(()) => return,
                Err(err) => tracing::warn!(%err, "settling a quota hold failed"),
            }
        }
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

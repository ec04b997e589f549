//! The ledger: per studio and per user, what is used and reserved in the
//! current minute, day and month. `reserve` checks every limit and reserves
//! only if all admit the amount, in one atomic step: no check-then-charge race.
//!
//! `QuotaLedger` is the seam for a shared backend (PostgreSQL or Redis) when
//! several replicas must share counters; `MemoryLedger` serves one City.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::limits::{Amount, LimitKind};
use super::window::Window;
use crate::domain::{LimitValues, Millis};

/// A limit that would be exceeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// "studio" or "user".
    pub scope: &'static str,
    pub kind: LimitKind,
    pub value: i64,
    /// When the window ends.
    pub reset_ms: Millis,
}

/// Why a reservation was not made.
#[derive(Debug)]
pub enum Refusal {
    Exceeded(QuotaExceeded),
    /// The shared ledger could not be reached.
    Failed(crate::error::Error),
}

/// A call's request to reserve `amount` under both scopes' limits.
pub struct Claim<'a> {
    /// The call's request id: names its hold in a shared ledger.
    pub call_id: &'a str,
    /// When the call arrived (its usage row's create_ms).
    pub create_ms: Millis,
    pub studio_id: &'a Arc<str>,
    pub user_id: &'a Arc<str>,
    pub studio_limits: &'a LimitValues,
    pub user_limits: &'a LimitValues,
    pub amount: Amount,
}

/// What a successful `reserve` holds until the call settles.
#[derive(Debug)]
pub struct Hold {
    pub call_id: Box<str>,
    pub studio_id: Arc<str>,
    pub user_id: Arc<str>,
    pub amount: Amount,
}

/// Used and reserved in one scope's current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCount {
    pub start: Millis,
    pub used: Amount,
    pub reserved: Amount,
}

/// Counts of one scope in each window (indexed by `Window::index`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub windows: [WindowCount; 3],
}

impl Counts {
    /// Starts a fresh window where the clock has moved past the old one.
    /// Reservations carry over: their calls are still in flight.
    fn roll(&mut self, now: Millis) {
        for window in Window::ALL {
            let start = window.bounds(now).0;
            let count = &mut self.windows[window.index()];
            if count.start != start {
                count.start = start;
                count.used = Amount::default();
            }
        }
    }

    fn exceeded(
        &self,
        limits: &LimitValues,
        amount: Amount,
        scope: &'static str,
        now: Millis,
    ) -> Option<QuotaExceeded> {
        LimitKind::ALL.into_iter().find_map(|kind| {
            let value = kind.of(limits)?;
            let count = &self.windows[kind.window().index()];
            let metric = kind.metric();
            let wanted = count.used.get(metric) + count.reserved.get(metric) + amount.get(metric);
            (wanted > value).then(|| QuotaExceeded {
                scope,
                kind,
                value,
                reset_ms: kind.window().bounds(now).1,
            })
        })
    }

    fn add_reserved(&mut self, amount: Amount) {
        for count in &mut self.windows {
            count.reserved = count.reserved.plus(amount);
        }
    }

    fn settle(&mut self, reserved: Amount, used: Amount) {
        for count in &mut self.windows {
            count.reserved = count.reserved.minus(reserved);
            count.used = count.used.plus(used);
        }
    }
}

/// Where counters live.
#[async_trait]
pub trait QuotaLedger: Send + Sync + 'static {
    /// Reserves `claim.amount` in the studio's and the user's counters if
    /// every limit admits it; otherwise changes nothing.
    async fn reserve(&self, claim: Claim<'_>, now: Millis) -> Result<Hold, Refusal>;
    /// Replaces a hold by what the call really used (zero for a call that
    /// never ran).
    async fn settle(&self, hold: Hold, used: Amount, now: Millis);
    /// The studio's counts and, if named, the user's.
    async fn counts(
        &self,
        studio_id: &str,
        user_id: Option<&str>,
        now: Millis,
    ) -> (Counts, Option<Counts>);
}

type ScopeKey = (Arc<str>, Option<Arc<str>>);

/// Counters in this process's memory, behind one mutex held for a few map
/// look-ups (never across an await).
#[derive(Default)]
pub struct MemoryLedger {
    counters: Mutex<HashMap<ScopeKey, Counts>>,
}

impl MemoryLedger {
    /// Records usage that happened before this City started (read from the
    /// usage rows), so a restart does not reset the windows.
    pub fn seed(&self, studio_id: &str, user_id: &str, window: Window, used: Amount, now: Millis) {
        let mut counters = self.counters.lock().expect("ledger lock");
        let keys = [
            (Arc::from(studio_id), None),
            (Arc::from(studio_id), Some(Arc::from(user_id))),
        ];
        for key in keys {
            let counts = counters.entry(key).or_default();
            counts.roll(now);
            let count = &mut counts.windows[window.index()];
            count.used = count.used.plus(used);
        }
    }
}

#[async_trait]
impl QuotaLedger for MemoryLedger {
    async fn reserve(&self, claim: Claim<'_>, now: Millis) -> Result<Hold, Refusal> {
        let studio_key = (claim.studio_id.clone(), None);
        let user_key = (claim.studio_id.clone(), Some(claim.user_id.clone()));
        let mut counters = self.counters.lock().expect("ledger lock");
        let mut studio = counters.get(&studio_key).copied().unwrap_or_default();
        let mut user = counters.get(&user_key).copied().unwrap_or_default();
        studio.roll(now);
        user.roll(now);
        if let Some(exceeded) = studio.exceeded(claim.studio_limits, claim.amount, "studio", now) {
            return Err(Refusal::Exceeded(exceeded));
        }
        if let Some(exceeded) = user.exceeded(claim.user_limits, claim.amount, "user", now) {
            return Err(Refusal::Exceeded(exceeded));
        }
        studio.add_reserved(claim.amount);
        user.add_reserved(claim.amount);
        counters.insert(studio_key, studio);
        counters.insert(user_key, user);
        Ok(Hold {
            call_id: Box::default(),
            studio_id: claim.studio_id.clone(),
            user_id: claim.user_id.clone(),
            amount: claim.amount,
        })
    }

    async fn settle(&self, hold: Hold, used: Amount, now: Millis) {
        let mut counters = self.counters.lock().expect("ledger lock");
        for key in [
            (hold.studio_id.clone(), None),
            (hold.studio_id, Some(hold.user_id)),
        ] {
            let counts = counters.entry(key).or_default();
            counts.roll(now);
            counts.settle(hold.amount, used);
        }
    }

    async fn counts(
        &self,
        studio_id: &str,
        user_id: Option<&str>,
        now: Millis,
    ) -> (Counts, Option<Counts>) {
        let counters = self.counters.lock().expect("ledger lock");
        let read = |key: ScopeKey| {
            let mut counts = counters.get(&key).copied().unwrap_or_default();
            counts.roll(now);
            counts
        };
        let studio = read((studio_id.into(), None));
        let user = user_id.map(|user| read((studio_id.into(), Some(user.into()))));
        (studio, user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(tokens: i64) -> Amount {
        Amount {
            requests: 1,
            tokens,
            cost_micros: 0,
        }
    }

    async fn reserve(
        ledger: &MemoryLedger,
        user: &str,
        limits: &LimitValues,
        tokens: i64,
        now: Millis,
    ) -> Result<Hold, Refusal> {
        let studio: Arc<str> = "s".into();
        let user: Arc<str> = user.into();
        let none = LimitValues::default();
        let claim = Claim {
            call_id: "call",
            create_ms: now,
            studio_id: &studio,
            user_id: &user,
            studio_limits: &none,
            user_limits: limits,
            amount: amount(tokens),
        };
        ledger.reserve(claim, now).await
    }

    #[tokio::test]
    async fn reservations_count_until_settled_and_windows_reset() {
        let ledger = MemoryLedger::default();
        let limits = LimitValues {
            tokens_per_minute: Some(100),
            ..Default::default()
        };
        let now = 1_000_000 * 60_000;
        let hold = reserve(&ledger, "u", &limits, 60, now).await.unwrap();
        let Err(Refusal::Exceeded(exceeded)) = reserve(&ledger, "u", &limits, 60, now).await else {
            panic!("reserved over the limit");
        };
        assert_eq!(
            (exceeded.scope, exceeded.kind),
            ("user", LimitKind::TokensPerMinute)
        );
        assert_eq!(exceeded.reset_ms, now + 60_000);
        // Another user has their own counters.
        reserve(&ledger, "v", &limits, 60, now).await.unwrap();
        // Settling below the reservation frees the difference.
        ledger.settle(hold, amount(10), now).await;
        reserve(&ledger, "u", &limits, 90, now).await.unwrap();
        // The next minute starts from zero used (the 90 is still in flight).
        let later = now + 60_000;
        reserve(&ledger, "u", &limits, 10, later).await.unwrap();
        assert!(reserve(&ledger, "u", &limits, 1, later).await.is_err());
    }
}

//! Quotas: limits per studio and per user, model allow-lists, and the
//! reserve-then-settle flow around every AI call.
//!
//! Before the upstream call, a call reserves its worst case (prompt estimate
//! plus max_tokens, priced) against every limit that applies; afterwards the
//! reservation becomes the real usage. A call that dies releases its hold
//! (the `Reservation` guard), so nothing stays reserved.

mod batch;
mod ledger;
mod limits;
mod shared;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

pub use ledger::{Counts, MemoryLedger, QuotaLedger};
pub use limits::{Amount, LimitKind};
use limits::{above_ceiling, tighter};
pub use shared::SharedLedger;
pub use window::Window;

use ledger::{Claim, Hold, Refusal};

use crate::auth::UserCaller;
use crate::domain::{GroupBy, LimitTarget, LimitValues, LimitsRecord, Millis, UsageFilter, now_ms};
use crate::error::{Error, Result};
use crate::store::{Snapshot, Store};

/// One studio's limits and allow-list.
#[derive(Default)]
struct StudioPolicy {
    /// The operator's studio-wide limits: a ceiling.
    ceiling: LimitValues,
    /// The studio's own studio-wide limits (its key's, at most the ceiling).
    own: LimitValues,
    /// What binds studio-wide, the tighter of the two, kept ready so that
    /// reserving reads one value.
    studio: LimitValues,
    user_default: LimitValues,
    users: HashMap<String, LimitValues>,
    /// `None`: every model.
    allowed_models: Option<HashSet<String>>,
}

impl StudioPolicy {
    fn limits_of(&self, target: &LimitTarget) -> LimitValues {
        match target {
            LimitTarget::Studio => self.ceiling,
            LimitTarget::StudioOwn => self.own,
            LimitTarget::UserDefault => self.user_default,
            LimitTarget::User(user) => self.users.get(user).copied().unwrap_or_default(),
        }
    }

    fn set(&mut self, target: &LimitTarget, values: LimitValues) {
        match target {
            LimitTarget::Studio => {
                self.ceiling = values;
                self.studio = tighter(&self.ceiling, &self.own);
            }
            LimitTarget::StudioOwn => {
                self.own = values;
                self.studio = tighter(&self.ceiling, &self.own);
            }
            LimitTarget::UserDefault => self.user_default = values,
            LimitTarget::User(user) if values == LimitValues::default() => {
                self.users.remove(user);
            }
            LimitTarget::User(user) => {
                self.users.insert(user.clone(), values);
            }
        }
    }

    /// The limits that bind one user: their own, else the studio-wide default.
    fn user_limits(&self, user_id: &str) -> LimitValues {
        self.users
            .get(user_id)
            .copied()
            .unwrap_or(self.user_default)
    }
}

/// A limit's state in its current window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub scope: &'static str,
    pub kind: LimitKind,
    pub value: i64,
    pub used: i64,
    pub reserved: i64,
    pub reset_ms: Millis,
}

/// Limits (cached, written through) and the ledger that enforces them.
pub struct Quotas {
    store: Arc<dyn Store>,
    policies: RwLock<HashMap<String, StudioPolicy>>,
    /// One admin write at a time (read, store write, cache update), so
    /// racing writes leave the cache as the store ends up: never older.
    writes: tokio::sync::Mutex<()>,
    ledger: Arc<dyn QuotaLedger>,
}

impl Quotas {
    /// Loads the limits from a snapshot. Without a shared ledger, counters
    /// live in this process, seeded with the usage already recorded in the
    /// current windows; a shared one keeps its own.
    pub async fn load(
        store: Arc<dyn Store>,
        snapshot: &Snapshot,
        shared: Option<SharedLedger>,
    ) -> Result<Self> {
        let ledger: Arc<dyn QuotaLedger> = match shared {
            Some(shared) => Arc::new(shared),
            None => {
                let ledger = MemoryLedger::default();
                seed_from_usage(store.as_ref(), &ledger).await?;
                Arc::new(ledger)
            }
        };
        Ok(Quotas {
            store,
            policies: RwLock::new(policies_of(snapshot)),
            writes: tokio::sync::Mutex::new(()),
            ledger,
        })
    }

    /// Re-reads limits and allow-lists from the store (a write made on
    /// another replica); the ledger stays. Waits for this replica's writes,
    /// so the state installed is never older than one of them.
    pub async fn reload(&self) -> Result<()> {
        let _one_write = self.writes.lock().await;
        let snapshot = self.store.snapshot().await?;
        *self.policies.write().expect("quota lock") = policies_of(&snapshot);
        Ok(())
    }

    /// Whether the studio may see and use this model.
    pub fn model_allowed(&self, studio_id: &str, model_id: &str) -> bool {
        let policies = self.policies.read().expect("quota lock");
        match policies
            .get(studio_id)
            .and_then(|p| p.allowed_models.as_ref())
        {
            Some(allowed) => allowed.contains(model_id),
            None => true,
        }
    }

    /// Reserves `amount` for call `call_id` (arrived at `create_ms`), or
    /// fails with QUOTA_EXCEEDED.
    pub async fn reserve(
        &self,
        caller: &UserCaller,
        (call_id, create_ms): (&str, Millis),
        amount: Amount,
    ) -> Result<Reservation> {
        let (studio_limits, user_limits) = {
            let policies = self.policies.read().expect("quota lock");
            match policies.get(&*caller.studio_id) {
                Some(policy) => (policy.studio, policy.user_limits(&caller.user_id)),
                None => (LimitValues::default(), LimitValues::default()),
            }
        };
        let claim = Claim {
            call_id,
            create_ms,
            studio_id: &caller.studio_id,
            user_id: &caller.user_id,
            studio_limits: &studio_limits,
            user_limits: &user_limits,
            amount,
        };
        let now = now_ms();
        match self.ledger.reserve(claim, now).await {
            Ok(hold) => Ok(Reservation {
                ledger: self.ledger.clone(),
                hold: Some(hold),
                on_drop: Amount::default(),
            }),
            Err(Refusal::Failed(err)) => Err(err),
            Err(Refusal::Exceeded(exceeded)) => Err(Error::QuotaExceeded {
                scope: exceeded.scope,
                limit: exceeded.kind.name(),
                value: exceeded.value,
                window: exceeded.kind.window().as_str(),
                reset_ms: exceeded.reset_ms,
                now_ms: now,
            }),
        }
    }

    /// Replaces the limits of one target; they bind from the next call on.
    /// A studio's own limits may not exceed the operator's (a ceiling that
    /// binds anyway: this refusal says so rather than storing a no-op).
    pub async fn set_limits(
        &self,
        studio_id: &str,
        target: LimitTarget,
        values: LimitValues,
    ) -> Result<LimitValues> {
        let _one_write = self.writes.lock().await;
        let record = LimitsRecord {
            studio_id: studio_id.to_string(),
            target,
            values,
            update_ms: now_ms(),
        };
        record.validate()?;
        if record.target == LimitTarget::StudioOwn {
            let ceiling = self.limits(studio_id, &LimitTarget::Studio);
            if let Some((kind, value, ceiling)) = above_ceiling(&record.values, &ceiling) {
                return Err(Error::LimitAboveCeiling {
                    limit: kind.name(),
                    value,
                    ceiling,
                });
            }
        }
        self.store.put_limits(&record).await?;
        let mut policies = self.policies.write().expect("quota lock");
        policies
            .entry(record.studio_id)
            .or_default()
            .set(&record.target, values);
        Ok(values)
    }

    pub fn limits(&self, studio_id: &str, target: &LimitTarget) -> LimitValues {
        let policies = self.policies.read().expect("quota lock");
        policies
            .get(studio_id)
            .map(|p| p.limits_of(target))
            .unwrap_or_default()
    }

    /// Replaces a studio's allow-list; empty allows every model.
    pub async fn set_allowed_models(&self, studio_id: &str, model_ids: Vec<String>) -> Result<()> {
        let _one_write = self.writes.lock().await;
        self.store.set_allowed_models(studio_id, &model_ids).await?;
        let mut policies = self.policies.write().expect("quota lock");
        let policy = policies.entry(studio_id.to_string()).or_default();
        policy.allowed_models = (!model_ids.is_empty()).then(|| model_ids.into_iter().collect());
        Ok(())
    }

    /// The studio's allow-list, sorted; empty when every model is allowed.
    pub fn allowed_models(&self, studio_id: &str) -> Vec<String> {
        let policies = self.policies.read().expect("quota lock");
        let mut models: Vec<String> = policies
            .get(studio_id)
            .and_then(|p| p.allowed_models.as_ref())
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default();
        models.sort();
        models
    }

    /// Every limit that applies to the studio (and the user), with its state.
    pub async fn standing(&self, studio_id: &str, user_id: Option<&str>) -> Vec<Standing> {
        let (studio_limits, user_limits) = {
            let policies = self.policies.read().expect("quota lock");
            let policy = policies.get(studio_id);
            let studio = policy.map(|p| p.studio).unwrap_or_default();
            let user = user_id.map(|u| policy.map(|p| p.user_limits(u)).unwrap_or_default());
            (studio, user)
        };
        let now = now_ms();
        let (studio_counts, user_counts) = self.ledger.counts(studio_id, user_id, now).await;
        let mut standing = standings("studio", &studio_limits, &studio_counts, now);
        if let (Some(limits), Some(counts)) = (user_limits, user_counts) {
            standing.extend(standings("user", &limits, &counts, now));
        }
        standing
    }
}

fn standings(
    scope: &'static str,
    limits: &LimitValues,
    counts: &Counts,
    now: Millis,
) -> Vec<Standing> {
    LimitKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let value = kind.of(limits)?;
            let count = &counts.windows[kind.window().index()];
            Some(Standing {
                scope,
                kind,
                value,
                used: count.used.get(kind.metric()),
                reserved: count.reserved.get(kind.metric()),
                reset_ms: kind.window().bounds(now).1,
            })
        })
        .collect()
}

/// Seeds the ledger with the usage rows of the current minute, day and month.
async fn seed_from_usage(store: &dyn Store, ledger: &MemoryLedger) -> Result<()> {
    const PAGE: u32 = 10_000;
    let now = now_ms();
    for window in Window::ALL {
        let filter = UsageFilter {
            start_ms: Some(window.bounds(now).0),
            ..Default::default()
        };
        let by_user = GroupBy {
            user: true,
            ..Default::default()
        };
        let mut offset = 0;
        loop {
            let rows = store
                .aggregate_usage(&filter, by_user, offset, PAGE)
                .await?;
            for row in &rows {
                let used = Amount {
                    requests: row.calls,
                    tokens: row.input_tokens + row.output_tokens,
                    cost_micros: row.cost_micros,
                };
                if row.calls > 0 {
                    ledger.seed(&row.studio_id, &row.user_id, window, used, now);
                }
            }
            if rows.len() < PAGE as usize {
                break;
            }
            offset += u64::from(PAGE);
        }
    }
    Ok(())
}

/// Each studio's limits and allow-list, as a snapshot has them.
fn policies_of(snapshot: &Snapshot) -> HashMap<String, StudioPolicy> {
    let mut policies: HashMap<String, StudioPolicy> = HashMap::new();
    for record in &snapshot.limits {
        policies
            .entry(record.studio_id.clone())
            .or_default()
            .set(&record.target, record.values);
    }
    for (studio_id, models) in &snapshot.allowed_models {
        policies
            .entry(studio_id.clone())
            .or_default()
            .allowed_models = Some(models.iter().cloned().collect());
    }
    policies
}

/// A call's hold on its quota. `settle` turns it into real usage; dropped
/// unsettled (the call died), it is released.
pub struct Reservation {
    ledger: Arc<dyn QuotaLedger>,
    hold: Option<Hold>,
    /// What a drop settles to: nothing, unless the call's row was sent.
    on_drop: Amount,
}

impl Reservation {
    /// Makes a drop settle to `used` (the call's row is on its way).
    pub fn settling_to(mut self, used: Amount) -> Reservation {
        self.on_drop = used;
        self
    }

    pub async fn settle(mut self, used: Amount) {
        if let Some(hold) = self.hold.take() {
            self.ledger.settle(hold, used, now_ms()).await;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(hold) = self.hold.take() else { return };
        let (ledger, used) = (self.ledger.clone(), self.on_drop);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { ledger.settle(hold, used, now_ms()).await });
        }
    }
}

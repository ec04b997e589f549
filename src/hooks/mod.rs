//! Business hooks: a studio's (or City-wide) webhooks around each AI call.
//!
//! - `before_call` (before.rs): synchronous, after the quota reservation and
//!   before the provider call; may deny the call or attach usage metadata.
//! - `after_call` (dispatch.rs): the usage row, written to an outbox in the
//!   row's own transaction and delivered at least once with backoff.
//!
//! Every request is signed as Standard Webhooks says (signing.rs). Hooks are
//! cached in memory (loaded at start, written through on admin changes), so a
//! studio without hooks pays one map lookup per call.

mod before;
pub mod dispatch;
pub mod signing;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

pub use before::BeforeCall;
use signing::SigningKey;

use crate::domain::{
    DeliveryRecord, DeliveryState, HookEvent, HookRecord, Millis, UsageRow, now_ms,
};
use crate::error::{Error, Result};
use crate::keys::MasterKey;
use crate::store::Store;

/// A hook ready to call: its record and its opened signing key.
#[derive(Debug)]
pub struct LiveHook {
    pub record: HookRecord,
    key: SigningKey,
}

impl LiveHook {
    fn timeout(&self) -> Duration {
        Duration::from_millis(self.record.timeout_ms.max(1) as u64)
    }

    fn has(&self, event: HookEvent) -> bool {
        self.record.events.contains(&event)
    }
}

/// The hooks that see one studio's calls (its own and the City-wide ones).
#[derive(Debug, Default)]
struct CallHooks {
    before: Vec<Arc<LiveHook>>,
    after: Vec<Arc<LiveHook>>,
}

#[derive(Default)]
struct State {
    /// Studios with hooks of their own (City-wide ones merged in).
    by_studio: HashMap<String, Arc<CallHooks>>,
    /// The City-wide hooks, for every other studio.
    city_wide: Option<Arc<CallHooks>>,
    by_id: BTreeMap<String, Arc<LiveHook>>,
}

/// The hook cache, the HTTP client that calls hooks, and the dispatcher's wake-up.
pub struct Hooks {
    store: Arc<dyn Store>,
    master_key: Option<MasterKey>,
    client: reqwest::Client,
    state: RwLock<State>,
    /// One admin write at a time (read, store write, cache update), so
    /// racing writes leave the cache as the store ends up: never older.
    writes: tokio::sync::Mutex<()>,
    wake: Notify,
}

impl Hooks {
    /// Loads every hook, opening its secret with the master key.
    pub async fn load(store: Arc<dyn Store>, master_key: Option<MasterKey>) -> Result<Hooks> {
        let client = crate::outbound::client_builder()
            .build()
            .map_err(Error::internal)?;
        let hooks = Hooks {
            store,
            master_key,
            client,
            state: RwLock::default(),
            writes: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
        };
        hooks.rebuild(hooks.read_all().await?);
        Ok(hooks)
    }

    /// Re-reads every hook from the store (a write made on another
    /// replica). Waits for this replica's writes, so the state installed is
    /// never older than one of them.
    pub async fn reload(&self) -> Result<()> {
        let _one_write = self.writes.lock().await;
        let live = self.read_all().await?;
        self.rebuild(live);
        Ok(())
    }

    /// Every hook in the store, its secret opened.
    async fn read_all(&self) -> Result<BTreeMap<String, Arc<LiveHook>>> {
        let mut live = BTreeMap::new();
        for record in self.store.all_hooks().await? {
            let hook = self.live(record)?;
            live.insert(hook.record.id.clone(), Arc::new(hook));
        }
        Ok(live)
    }

    fn master_key(&self) -> Result<&MasterKey> {
        self.master_key.as_ref().ok_or(Error::MasterKeyMissing {
            what: "hook secrets",
        })
    }

    fn live(&self, record: HookRecord) -> Result<LiveHook> {
        let secret = self
            .master_key()?
            .open_secret(&crate::keys::hook_secret_ad(&record.id), &record.secret)?;
        let key = SigningKey::from_secret(&secret)
            .ok_or_else(|| Error::Internal(format!("hook `{}`: bad secret", record.id)))?;
        Ok(LiveHook { record, key })
    }

    /// Recomputes the per-studio view from every hook.
    fn rebuild(&self, by_id: BTreeMap<String, Arc<LiveHook>>) {
        let mut city = CallHooks::default();
        let mut own: HashMap<String, CallHooks> = HashMap::new();
        for hook in by_id.values() {
            let target = if hook.record.studio_id.is_empty() {
                &mut city
            } else {
                own.entry(hook.record.studio_id.clone()).or_default()
            };
            if hook.has(HookEvent::BeforeCall) {
                target.before.push(hook.clone());
            }
            if hook.has(HookEvent::AfterCall) {
                target.after.push(hook.clone());
            }
        }
        let by_studio = own
            .into_iter()
            .map(|(studio, mut hooks)| {
                hooks.before.extend(city.before.iter().cloned());
                hooks.after.extend(city.after.iter().cloned());
                (studio, Arc::new(hooks))
            })
            .collect();
        let city_wide = (!city.before.is_empty() || !city.after.is_empty()).then(|| Arc::new(city));
        *self.state.write().expect("hooks lock") = State {
            by_studio,
            city_wide,
            by_id,
        };
    }

    /// The hooks of a studio's calls: one map lookup.
    fn for_studio(&self, studio_id: &str) -> Option<Arc<CallHooks>> {
        let state = self.state.read().expect("hooks lock");
        state
            .by_studio
            .get(studio_id)
            .or(state.city_wide.as_ref())
            .cloned()
    }

    /// Whether a studio's calls go through any before_call hook.
    pub fn has_before_call(&self, studio_id: &str) -> bool {
        self.for_studio(studio_id)
            .is_some_and(|hooks| !hooks.before.is_empty())
    }

    /// A hook by id.
    pub fn get(&self, id: &str) -> Option<Arc<LiveHook>> {
        self.state
            .read()
            .expect("hooks lock")
            .by_id
            .get(id)
            .cloned()
    }

    /// The hooks of one studio (empty: the City-wide ones), ordered by id.
    pub fn list(&self, studio_id: &str) -> Vec<HookRecord> {
        let state = self.state.read().expect("hooks lock");
        state
            .by_id
            .values()
            .filter(|h| h.record.studio_id == studio_id)
            .map(|h| h.record.clone())
            .collect()
    }

    /// Creates a hook (empty id, returning its new secret) or replaces an
    /// existing one: the admin API's UpsertHook. An id that names no hook is
    /// NOT_FOUND. `create_ms`, the id's studio and the secret of an existing
    /// hook stay.
    pub async fn upsert(&self, record: HookRecord) -> Result<(HookRecord, Option<String>)> {
        self.upsert_inner(record, None, false).await
    }

    /// As `upsert`, for hooks declared in the config file: their fixed id is
    /// created when missing, and the `secret` (`whsec_...`) given replaces
    /// the hook's.
    pub async fn upsert_with_secret(
        &self,
        record: HookRecord,
        given_secret: Option<&str>,
    ) -> Result<(HookRecord, Option<String>)> {
        self.upsert_inner(record, given_secret, true).await
    }

    async fn upsert_inner(
        &self,
        mut record: HookRecord,
        given_secret: Option<&str>,
        create_missing: bool,
    ) -> Result<(HookRecord, Option<String>)> {
        let _one_write = self.writes.lock().await;
        record.validate()?;
        let master_key = self.master_key()?;
        let now = now_ms();
        record.update_ms = now;
        // A set of events: each once, in call order.
        record.events.sort_unstable();
        record.events.dedup();
        let existing = if record.id.is_empty() {
            record.id = format!("hk_{}", hex::encode(rand::random::<[u8; 8]>()));
            None
        } else {
            let existing = self.get(&record.id);
            if existing.is_none() && !create_missing {
                return Err(Error::NotFound {
                    resource: "hook",
                    id: record.id,
                });
            }
            existing
        };
        let secret = match existing {
            Some(old) if old.record.studio_id != record.studio_id && given_secret.is_none() => {
                return Err(Error::NotFound {
                    resource: "hook",
                    id: record.id,
                });
            }
            Some(old) if given_secret.is_none() => {
                record.secret = old.record.secret.clone();
                record.create_ms = old.record.create_ms;
                None
            }
            old => {
                let secret = match given_secret {
                    Some(secret) => {
                        SigningKey::from_secret(secret).ok_or_else(|| {
                            Error::invalid("secret", "must be `whsec_` and base64")
                        })?;
                        secret.to_string()
                    }
                    None => signing::generate_secret(),
                };
                record.secret =
                    master_key.seal_secret(&crate::keys::hook_secret_ad(&record.id), &secret);
                record.create_ms = old.map_or(now, |old| old.record.create_ms);
                Some(secret)
            }
        };
        self.store.upsert_hook(&record).await?;
        let live = Arc::new(self.live(record.clone())?);
        let mut by_id = self.state.read().expect("hooks lock").by_id.clone();
        by_id.insert(record.id.clone(), live);
        self.rebuild(by_id);
        Ok((record, secret))
    }

    /// Deletes a hook of this studio (empty: City-wide).
    pub async fn delete(&self, studio_id: &str, id: &str) -> Result<()> {
        let _one_write = self.writes.lock().await;
        let not_found = || Error::NotFound {
            resource: "hook",
            id: id.to_string(),
        };
        let hook = self.get(id).ok_or_else(not_found)?;
        if hook.record.studio_id != studio_id {
            return Err(not_found());
        }
        self.store.delete_hook(id, now_ms()).await?;
        let mut by_id = self.state.read().expect("hooks lock").by_id.clone();
        by_id.remove(id);
        self.rebuild(by_id);
        Ok(())
    }

    /// The after_call deliveries of a usage row, one per after_call hook;
    /// empty (one map lookup) for a studio without any.
    pub fn outbox_for(&self, row: &UsageRow, traceparent: Option<String>) -> Vec<DeliveryRecord> {
        let Some(hooks) = self.for_studio(&row.studio_id) else {
            return Vec::new();
        };
        if hooks.after.is_empty() {
            return Vec::new();
        }
        let payload = after_call_payload(row);
        let now = now_ms();
        hooks
            .after
            .iter()
            .map(|hook| DeliveryRecord {
                id: format!("msg_{}", hex::encode(rand::random::<[u8; 16]>())),
                hook_id: hook.record.id.clone(),
                studio_id: hook.record.studio_id.clone(),
                request_id: row.request_id.clone(),
                payload: payload.clone(),
                state: DeliveryState::Pending,
                attempts: 0,
                last_error: String::new(),
                next_attempt_ms: now,
                create_ms: now,
                deliver_ms: None,
                traceparent: traceparent.clone(),
            })
            .collect()
    }

    /// Tells the dispatcher that deliveries are due.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}

/// The JSON body of an after_call delivery.
fn after_call_payload(row: &UsageRow) -> String {
    serde_json::json!({
        "type": "after_call",
        "timestamp": row.create_ms,
        "data": {
            "request_id": row.request_id,
            "studio_id": row.studio_id,
            "user_id": row.user_id,
            "model": row.model_id,
            "provider": row.provider_id,
            "pathway": row.pathway,
            "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens,
            "images": row.images,
            "cost_micros": row.cost_micros,
            "status_code": row.status_code,
            "error_reason": row.error_reason,
            "latency_us": row.latency_us,
            "ttft_us": row.ttft_us,
            "create_ms": row.create_ms,
            "metadata": row.metadata,
        }
    })
    .to_string()
}

/// Milliseconds as a duration, never negative.
fn after(ms: Millis) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

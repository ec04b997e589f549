//! Durable state behind City: the records, and the `Store` trait that every
//! backend (SQLite now, PostgreSQL for several replicas) implements.
//!
//! The hot path never reads the store: caches load a `Snapshot` at start and
//! are updated on every admin write. Only admin calls and the usage writer
//! touch the store while City serves.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::domain::{
    AttemptOutcome, DeliveryFilter, DeliveryRecord, GroupBy, HookRecord, LimitsRecord, Millis,
    ModelRecord, Pathway, ProviderRecord, SealedKey, StudioKeyRecord, StudioRecord,
    UsageAggregateRow, UsageFilter, UsageRow, UserTokenRecord,
};
use crate::error::Result;

pub mod maintenance;
pub mod months;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;

/// What one pass of usage maintenance did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsageMaintenance {
    /// Rows deleted (SQLite).
    pub rows_deleted: u64,
    /// Monthly partitions dropped (PostgreSQL).
    pub partitions_dropped: u64,
    /// Monthly partitions created ahead (PostgreSQL).
    pub partitions_created: u64,
}

/// Everything the caches hold, read once at start (and on refresh).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub studios: Vec<StudioRecord>,
    pub studio_keys: Vec<StudioKeyRecord>,
    pub user_tokens: Vec<UserTokenRecord>,
    pub providers: Vec<ProviderRecord>,
    pub models: Vec<ModelRecord>,
    pub defaults: HashMap<Pathway, String>,
    pub limits: Vec<LimitsRecord>,
    /// Studio id → the only models it may use (absent: every model).
    pub allowed_models: HashMap<String, Vec<String>>,
}

/// The catalog part of a snapshot: what a catalog change reloads.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    pub providers: Vec<ProviderRecord>,
    pub models: Vec<ModelRecord>,
    pub defaults: HashMap<Pathway, String>,
}

/// Which cache an admin write changed (what the other replicas reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Studios, studio keys and user tokens.
    Directory,
    /// Providers, models and defaults.
    Catalog,
    /// Limits and model allow-lists.
    Quotas,
    Hooks,
}

impl Change {
    pub const ALL: [Change; 4] = [
        Change::Directory,
        Change::Catalog,
        Change::Quotas,
        Change::Hooks,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Change::Directory => "directory",
            Change::Catalog => "catalog",
            Change::Quotas => "quotas",
            Change::Hooks => "hooks",
        }
    }

    pub fn from_name(name: &str) -> Option<Change> {
        Change::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// What a replica hears from the store about writes made elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeEvent {
    /// One cache changed.
    Changed(Change),
    /// Announcements may have been missed (the connection was lost):
    /// reload everything.
    Resync,
}

/// The stream of `ChangeEvent`s; dropping it stops listening.
pub struct ChangeFeed(tokio::sync::mpsc::Receiver<ChangeEvent>);

impl ChangeFeed {
    pub fn new(receiver: tokio::sync::mpsc::Receiver<ChangeEvent>) -> Self {
        ChangeFeed(receiver)
    }

    /// The next event; `None` once the store stopped listening.
    pub async fn next(&mut self) -> Option<ChangeEvent> {
        self.0.recv().await
    }

    /// An event already waiting, without waiting for one.
    pub fn next_ready(&mut self) -> Option<ChangeEvent> {
        self.0.try_recv().ok()
    }
}

/// A page request: keyset pagination after the last key of the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub after: Option<String>,
    pub limit: u32,
}

/// Durable state. Writes that break a uniqueness rule return
/// `Error::AlreadyExists`; updates of missing rows return `Error::NotFound`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Loads everything the caches hold.
    async fn snapshot(&self) -> Result<Snapshot>;
    /// Replaces the limits of one target; all-`None` values remove them.
    async fn put_limits(&self, limits: &LimitsRecord) -> Result<()>;
    /// Replaces a studio's model allow-list; empty allows every model.
    async fn set_allowed_models(&self, studio_id: &str, model_ids: &[String]) -> Result<()>;

    /// Writes made by other processes sharing this store, as they commit;
    /// `None` when no other process can write (SQLite: one process).
    async fn changes(&self) -> Result<Option<ChangeFeed>> {
        Ok(None)
    }

    /// Closes the store; called once, after the last write.
    async fn close(&self);
    /// Loads providers, models and defaults only.
    async fn catalog_snapshot(&self) -> Result<CatalogSnapshot>;

    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;

    async fn insert_studio(&self, studio: &StudioRecord) -> Result<()>;
    async fn update_studio(&self, studio: &StudioRecord) -> Result<()>;
    async fn get_studio(&self, id: &str) -> Result<Option<StudioRecord>>;
    /// Ordered by id.
    async fn list_studios(&self, page: &PageQuery) -> Result<Vec<StudioRecord>>;

    async fn insert_studio_key(&self, key: &StudioKeyRecord) -> Result<()>;
    async fn get_studio_key(&self, id: &str) -> Result<Option<StudioKeyRecord>>;
    /// Sets `revoke_ms` if not yet set; returns the key after the change.
    async fn revoke_studio_key(&self, id: &str, at: Millis) -> Result<StudioKeyRecord>;
    /// Ordered by id.
    async fn list_studio_keys(
        &self,
        studio_id: &str,
        page: &PageQuery,
    ) -> Result<Vec<StudioKeyRecord>>;

    async fn insert_user_token(&self, token: &UserTokenRecord) -> Result<()>;
    async fn get_user_token(&self, id: &str) -> Result<Option<UserTokenRecord>>;
    /// Sets `revoke_ms` if not yet set; returns the token after the change.
    async fn revoke_user_token(&self, id: &str, at: Millis) -> Result<UserTokenRecord>;
    /// Ordered by id; `user_id` filters when set.
    async fn list_user_tokens(
        &self,
        studio_id: &str,
        user_id: Option<&str>,
        page: &PageQuery,
    ) -> Result<Vec<UserTokenRecord>>;

    async fn upsert_provider(&self, provider: &ProviderRecord) -> Result<()>;
    /// Sets (`Some`) or clears (`None`) a provider's sealed API key.
    /// Fails with `NotFound` when the provider does not exist.
    async fn set_provider_api_key(
        &self,
        id: &str,
        key: Option<&SealedKey>,
        at: Millis,
    ) -> Result<()>;
    /// Replaces sealed API keys, sealed hook secrets (hook id → secret) and
    /// settings in one transaction (re-keying).
    async fn reseal(
        &self,
        keys: &[(String, SealedKey)],
        hook_secrets: &[(String, Vec<u8>)],
        settings: &[(String, String)],
    ) -> Result<()>;
    /// Fails with `Error::ProviderInUse` while a model uses it.
    async fn delete_provider(&self, id: &str) -> Result<()>;
    /// Ordered by id.
    async fn list_providers(&self, page: &PageQuery) -> Result<Vec<ProviderRecord>>;

    /// Fails with `NotFound` when the provider does not exist.
    async fn upsert_model(&self, model: &ModelRecord) -> Result<()>;
    /// Fails with `Error::ModelIsDefault` while it is a default.
    async fn delete_model(&self, id: &str) -> Result<()>;
    /// Ordered by id.
    async fn list_models(&self, page: &PageQuery) -> Result<Vec<ModelRecord>>;
    async fn set_default_model(&self, pathway: Pathway, model_id: &str) -> Result<()>;

    /// A connection of its own for the usage writer, the store's one
    /// steady writer: it never waits for a pool, and its cache stays warm.
    async fn usage_sink(&self) -> Result<Box<dyn UsageSink>>;
    /// Keeps the usage table ready and bounded, off the hot path: prepares
    /// storage for the coming months and, with `retain_months`, removes the
    /// rows before `months::retention_cutoff_ms` (whole months).
    async fn maintain_usage(
        &self,
        now: Millis,
        retain_months: Option<u32>,
    ) -> Result<UsageMaintenance>;

    /// Says this replica is alive and settles what dead ones left: their
    /// quota holds and their open usage rows (kept as estimated). Returns
    /// the rows settled. One process alone (SQLite) settles its own at start.
    async fn keep_alive(&self, _now: Millis, _lease_ms: i64) -> Result<u64> {
        Ok(0)
    }

    /// Every hook, ordered by id.
    async fn all_hooks(&self) -> Result<Vec<HookRecord>>;
    /// Creates or replaces a hook (its `create_ms` stays).
    async fn upsert_hook(&self, hook: &HookRecord) -> Result<()>;
    /// Deletes a hook and marks its pending deliveries dead.
    async fn delete_hook(&self, id: &str, at: Millis) -> Result<()>;
    /// Pending deliveries due at `now`, oldest first.
    async fn due_deliveries(&self, now: Millis, limit: u32) -> Result<Vec<DeliveryRecord>>;
    /// The earliest next attempt of any pending delivery.
    async fn next_delivery_ms(&self) -> Result<Option<Millis>>;
    /// Records an attempt's outcome.
    async fn record_attempt(&self, id: &str, outcome: &AttemptOutcome) -> Result<()>;
    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>>;
    /// Newest first; `before_seq` continues a previous page. Returns each
    /// delivery with its sequence number.
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, DeliveryRecord)>>;
    /// Makes a delivery pending again, due at `at`, with no attempts.
    async fn redeliver(&self, id: &str, at: Millis) -> Result<DeliveryRecord>;
    /// Newest first; `before_seq` is the sequence number of the last row of
    /// the previous page. Returns each row with its sequence number.
    async fn list_usage(
        &self,
        filter: &UsageFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, UsageRow)>>;
    /// Ordered by the grouped dimensions; `offset` rows skipped.
    async fn aggregate_usage(
        &self,
        filter: &UsageFilter,
        group_by: GroupBy,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<UsageAggregateRow>>;
}

/// One group commit's rows.
#[derive(Default)]
pub struct UsageBatch<'a> {
    /// Rows of calls just admitted, written open (their counts: the reserved
    /// estimate) so that a crash still leaves a row to settle.
    pub opened: &'a [UsageRow],
    /// Final rows of calls whose open row was written: each replaces it.
    pub settled: &'a [UsageRow],
    /// Final rows of calls that never opened one.
    pub rows: &'a [UsageRow],
    /// The after_call deliveries of the final rows.
    pub outbox: &'a [DeliveryRecord],
}

/// Where usage rows are committed. The usage writer owns it and calls it
/// from a thread of its own, so it may block; nothing else shares it.
pub trait UsageSink: Send {
    /// Writes a batch atomically (group commit): all of it or, on error,
    /// none. Opened rows are written before settled ones replace them.
    fn write(&mut self, batch: &UsageBatch<'_>) -> Result<()>;

    /// Inserts final rows and their after_call deliveries atomically.
    fn insert(&mut self, rows: &[UsageRow], outbox: &[DeliveryRecord]) -> Result<()> {
        self.write(&UsageBatch {
            rows,
            outbox,
            ..Default::default()
        })
    }
}

//! Durable state behind City: the records, and the `Store` trait that every
//! backend (SQLite now, PostgreSQL for several replicas) implements.
//!
//! The hot path never reads the store: caches load a `Snapshot` at start and
//! are updated on every admin write. Only admin calls and the usage writer
//! touch the store while City serves.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use crate::error::Result;

pub mod maintenance;
pub mod months;
pub mod postgres;
mod rows;
mod sql;
pub mod sqlite;

/// Milliseconds since the Unix epoch, the time unit of every record.
pub type Millis = i64;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// Whether a studio may make calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StudioStatus {
    Active,
    Suspended,
}

/// The kind of AI call a model serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pathway {
    Text,
    Image,
}

impl Pathway {
    pub const ALL: [Pathway; 2] = [Pathway::Text, Pathway::Image];

    pub fn as_str(self) -> &'static str {
        match self {
            Pathway::Text => "text",
            Pathway::Image => "image",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Pathway::Text),
            "image" => Some(Pathway::Image),
            _ => None,
        }
    }
}

/// The upstream protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Mock,
    OpenAi,
    OpenAiCompatible,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 5] = [
        ProviderKind::Mock,
        ProviderKind::OpenAi,
        ProviderKind::OpenAiCompatible,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Mock => "mock",
            ProviderKind::OpenAi => "openai",
            ProviderKind::OpenAiCompatible => "openai_compatible",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    /// Whether this protocol has the pathway (Anthropic generates no images).
    pub fn supports(self, pathway: Pathway) -> bool {
        !(self == ProviderKind::Anthropic && pathway == Pathway::Image)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudioRecord {
    pub id: String,
    pub display_name: String,
    pub status: StudioStatus,
    pub create_ms: Millis,
    pub update_ms: Millis,
}

/// A studio's bearer key. Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudioKeyRecord {
    pub id: String,
    pub studio_id: String,
    pub display_name: String,
    pub secret_hash: [u8; 32],
    pub create_ms: Millis,
    pub revoke_ms: Option<Millis>,
}

/// An end user's bearer token. Only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTokenRecord {
    pub id: String,
    pub studio_id: String,
    pub user_id: String,
    pub secret_hash: [u8; 32],
    pub create_ms: Millis,
    pub expire_ms: Option<Millis>,
    pub revoke_ms: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub id: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub update_ms: Millis,
    /// Extra HTTP headers sent with every upstream request.
    pub headers: BTreeMap<String, String>,
    pub timeouts: ProviderTimeouts,
    /// The API key, sealed. Written only by `set_provider_api_key`:
    /// `upsert_provider` leaves the stored key as it is.
    pub api_key: Option<SealedKey>,
    /// When the key was last set or cleared.
    pub api_key_update_ms: Option<Millis>,
}

/// Per-provider timeouts in milliseconds; `None` takes City's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderTimeouts {
    pub connect_ms: Option<i64>,
    pub first_byte_ms: Option<i64>,
    pub total_ms: Option<i64>,
}

/// A provider API key encrypted under the master key (see `crate::keys`),
/// with its last 4 characters for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub ciphertext: Vec<u8>,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    pub id: String,
    pub display_name: String,
    pub provider_id: String,
    pub upstream_model: String,
    pub pathway: Pathway,
    pub enabled: bool,
    pub max_output_tokens: i32,
    pub max_input_tokens: i32,
    pub input_micros_per_mtok: i64,
    pub output_micros_per_mtok: i64,
    pub micros_per_image: i64,
    pub fallback_model_ids: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub update_ms: Millis,
}

/// One AI call as recorded: exactly one per call that passed auth and validation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UsageRow {
    pub request_id: String,
    pub studio_id: String,
    pub user_id: String,
    pub model_id: String,
    pub provider_id: String,
    /// `Pathway::as_str`.
    pub pathway: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub images: i64,
    pub cost_micros: i64,
    /// gRPC status code; 0 is OK.
    pub status_code: i32,
    /// ErrorInfo reason of a failed call; empty on success.
    pub error_reason: String,
    pub latency_us: i64,
    /// Time to first streamed piece; `None` for unary calls.
    pub ttft_us: Option<i64>,
    pub create_ms: Millis,
    pub metadata: BTreeMap<String, String>,
}

/// When a hook is called; ordered as in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookEvent {
    BeforeCall,
    AfterCall,
}

impl HookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::BeforeCall => "before_call",
            HookEvent::AfterCall => "after_call",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "before_call" => Some(HookEvent::BeforeCall),
            "after_call" => Some(HookEvent::AfterCall),
            _ => None,
        }
    }
}

/// A studio's webhook (City-wide when `studio_id` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRecord {
    pub id: String,
    pub studio_id: String,
    pub url: String,
    pub events: Vec<HookEvent>,
    pub timeout_ms: i64,
    /// A failed before_call fails the call (else it proceeds).
    pub fail_closed: bool,
    pub include_prompt: bool,
    /// The `whsec_...` signing secret, sealed under the master key.
    pub secret: Vec<u8>,
    pub create_ms: Millis,
    pub update_ms: Millis,
}

/// Where an after_call delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }
}

/// One after_call delivery in the outbox; `id` is its stable `webhook-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub hook_id: String,
    pub studio_id: String,
    pub request_id: String,
    /// The JSON body sent.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub last_error: String,
    pub next_attempt_ms: Millis,
    pub create_ms: Millis,
    pub deliver_ms: Option<Millis>,
}

/// Which deliveries a listing covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub studio_id: String,
    pub hook_id: Option<String>,
    pub state: Option<DeliveryState>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered {
        at: Millis,
    },
    /// Failed; retried at `next_attempt_ms`, or dead when `None`.
    Failed {
        error: String,
        next_attempt_ms: Option<Millis>,
    },
}

/// Which usage rows a query covers. `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub studio_id: Option<String>,
    pub user_id: Option<String>,
    pub model_id: Option<String>,
    /// Inclusive.
    pub start_ms: Option<Millis>,
    /// Exclusive.
    pub end_ms: Option<Millis>,
}

/// Dimensions an aggregate groups by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupBy {
    pub studio: bool,
    /// Implies grouping by studio too: a user id is only unique within its studio.
    pub user: bool,
    pub model: bool,
    /// Calendar day, UTC.
    pub day: bool,
    /// Hour, UTC.
    pub hour: bool,
    /// Calendar month, UTC.
    pub month: bool,
}

/// One group of summed usage. Fields not grouped by are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageAggregateRow {
    pub studio_id: String,
    pub user_id: String,
    pub model_id: String,
    /// YYYY-MM-DD (UTC).
    pub day: String,
    /// YYYY-MM-DDTHH (UTC).
    pub hour: String,
    /// YYYY-MM (UTC).
    pub month: String,
    pub calls: i64,
    pub failed_calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub images: i64,
    pub cost_micros: i64,
}

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

/// Caps on usage; `None` means no limit. Windows are UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitValues {
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub tokens_per_day: Option<i64>,
    pub cost_micros_per_day: Option<i64>,
    pub cost_micros_per_month: Option<i64>,
}

/// What a set of limits applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitTarget {
    /// The studio as a whole.
    Studio,
    /// Each user of the studio without limits of their own.
    UserDefault,
    /// One user.
    User(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsRecord {
    pub studio_id: String,
    pub target: LimitTarget,
    pub values: LimitValues,
    pub update_ms: Millis,
}

/// The catalog part of a snapshot: what a catalog change reloads.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    pub providers: Vec<ProviderRecord>,
    pub models: Vec<ModelRecord>,
    pub defaults: HashMap<Pathway, String>,
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
    /// Fails with `FailedPrecondition` (reason PROVIDER_IN_USE) while a model uses it.
    async fn delete_provider(&self, id: &str) -> Result<()>;
    /// Ordered by id.
    async fn list_providers(&self, page: &PageQuery) -> Result<Vec<ProviderRecord>>;

    /// Fails with `NotFound` when the provider does not exist.
    async fn upsert_model(&self, model: &ModelRecord) -> Result<()>;
    /// Fails with `FailedPrecondition` (reason MODEL_IS_DEFAULT) while it is a default.
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

/// Where usage rows are committed. The usage writer owns it and calls it
/// from a thread of its own, so it may block; nothing else shares it.
pub trait UsageSink: Send {
    /// Inserts the rows and their after_call deliveries atomically (group
    /// commit): all of them or, on error, none.
    fn insert(&mut self, rows: &[UsageRow], outbox: &[DeliveryRecord]) -> Result<()>;
}

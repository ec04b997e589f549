//! The store several City replicas share: one PostgreSQL database.
//!
//! The same contract as `SqliteStore` (the conformance suite runs on both):
//! each write is one statement or one transaction, constraint failures map to
//! the errors the `Store` trait promises. Migrations (their own folder) run at
//! start under sqlx's advisory lock, so replicas starting together apply them
//! once; a database migrated by a newer City is refused.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Row};

use super::{
    CatalogSnapshot, Change, ChangeFeed, PageQuery, Snapshot, Store, UsageMaintenance, UsageSink,
};
use crate::domain::{
    AttemptOutcome, DeliveryFilter, DeliveryRecord, GroupBy, HookRecord, LimitsRecord, Millis,
    ModelRecord, Pathway, ProviderRecord, SealedKey, StudioKeyRecord, StudioRecord,
    UsageAggregateRow, UsageFilter, UsageRow, UserTokenRecord, now_ms,
};
use crate::error::{Error, Result};
use crate::store::rows;

mod catalog;
mod directory;
mod hooks;
mod listen;
mod usage;
mod usage_sink;

/// Connections per replica for admin calls, snapshots and the dispatcher;
/// the usage writer has its own. Several replicas share the server's
/// `max_connections` (100 by default).
const MAX_CONNECTIONS: u32 = 8;

/// The PostgreSQL implementation of `Store`. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// This process among the replicas: marks its quota holds and open rows.
    replica_id: String,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and
    /// brings the schema up to date.
    pub async fn open(url: &str) -> Result<PostgresStore> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| Error::Internal(format!("store: the PostgreSQL URL is invalid: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options.clone())
            .await?;
        migrate(&pool).await?;
        let replica_id = format!("{:032x}", rand::random::<u128>());
        let store = PostgresStore {
            pool,
            options,
            replica_id,
        };
        store.keep_alive(now_ms(), i64::MAX).await?;
        usage::ensure_partitions_ahead(&store.pool, now_ms()).await?;
        Ok(store)
    }

    /// Where the store is, without credentials, for messages.
    pub fn describe(url: &str) -> String {
        match url.parse::<PgConnectOptions>() {
            Ok(o) => format!(
                "postgres://{}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default()
            ),
            Err(_) => "an invalid PostgreSQL URL".to_string(),
        }
    }

    /// How to connect (for a pool of another kind, such as the quota ledger's).
    pub fn connect_options(&self) -> &PgConnectOptions {
        &self.options
    }

    /// This process's id among the replicas.
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Tells every replica (this one too) which cache a committed write changed.
    async fn changed(&self, change: Change) {
        listen::notify(&self.pool, change).await;
    }

    /// The row of `table` with this id.
    async fn get<T>(
        &self,
        table: &str,
        id: &str,
        convert: fn(&PgRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let sql = format!("SELECT * FROM {table} WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(convert).transpose()
    }
}

/// Applies the migrations. sqlx holds a PostgreSQL advisory lock (keyed by
/// the database) while it does, so replicas starting together queue there.
async fn migrate(pool: &PgPool) -> Result<()> {
    let migrator = sqlx::migrate!("src/store/migrations/postgres");
    match migrator.run(pool).await {
        Ok(()) => Ok(()),
        Err(MigrateError::VersionMissing(version)) => Err(Error::Internal(format!(
            "store: the database has migration {version}, which this City does not know: it was \
             migrated by a newer City; run that version (or newer) instead"
        ))),
        Err(e) => Err(Error::Internal(format!("store: migrating: {e}"))),
    }
}

/// Every row of a table, ordered by its key (the first column).
async fn all<T>(
    conn: &mut PgConnection,
    table: &str,
    convert: fn(&PgRow) -> Result<T>,
) -> Result<Vec<T>> {
    let sql = format!("SELECT * FROM {table} ORDER BY 1");
    let found = sqlx::query(AssertSqlSafe(sql)).fetch_all(conn).await?;
    found.iter().map(convert).collect()
}

/// Studio id → its allowed model ids.
async fn allowed_models(conn: &mut PgConnection) -> Result<HashMap<String, Vec<String>>> {
    let pairs: Vec<(String, String)> = sqlx::query_as(
        "SELECT studio_id, model_id FROM studio_models ORDER BY studio_id, model_id",
    )
    .fetch_all(conn)
    .await?;
    let mut allowed: HashMap<String, Vec<String>> = HashMap::new();
    for (studio_id, model_id) in pairs {
        allowed.entry(studio_id).or_default().push(model_id);
    }
    Ok(allowed)
}

fn default_entry(row: &PgRow) -> Result<(Pathway, String)> {
    Ok((rows::pathway(row)?, row.try_get("model_id")?))
}

/// Opens a read-only transaction that sees one consistent state throughout.
async fn consistent_read(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

#[async_trait]
impl Store for PostgresStore {
    async fn snapshot(&self) -> Result<Snapshot> {
        let mut tx = consistent_read(&self.pool).await?;
        let snapshot = Snapshot {
            studios: all(&mut tx, "studios", rows::studio).await?,
            studio_keys: all(&mut tx, "studio_keys", rows::studio_key).await?,
            user_tokens: all(&mut tx, "user_tokens", rows::user_token).await?,
            providers: all(&mut tx, "providers", rows::provider).await?,
            models: all(&mut tx, "models", rows::model).await?,
            defaults: all(&mut tx, "defaults", default_entry)
                .await?
                .into_iter()
                .collect(),
            limits: all(&mut tx, "limits", rows::limits).await?,
            allowed_models: allowed_models(&mut tx).await?,
        };
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn put_limits(&self, limits: &LimitsRecord) -> Result<()> {
        directory::put_limits(&self.pool, limits).await?;
        self.changed(Change::Quotas).await;
        Ok(())
    }

    async fn set_allowed_models(&self, studio_id: &str, model_ids: &[String]) -> Result<()> {
        directory::set_allowed_models(&self.pool, studio_id, model_ids).await?;
        self.changed(Change::Quotas).await;
        Ok(())
    }

    async fn changes(&self) -> Result<Option<ChangeFeed>> {
        listen::subscribe(self.options.clone()).await.map(Some)
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn catalog_snapshot(&self) -> Result<CatalogSnapshot> {
        let mut tx = consistent_read(&self.pool).await?;
        let snapshot = CatalogSnapshot {
            providers: all(&mut tx, "providers", rows::provider).await?,
            models: all(&mut tx, "models", rows::model).await?,
            defaults: all(&mut tx, "defaults", default_entry)
                .await?
                .into_iter()
                .collect(),
        };
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let value = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        directory::put_setting(&self.pool, key, value).await
    }

    async fn insert_studio(&self, studio: &StudioRecord) -> Result<()> {
        directory::insert_studio(&self.pool, studio).await?;
        self.changed(Change::Directory).await;
        Ok(())
    }

    async fn update_studio(&self, studio: &StudioRecord) -> Result<()> {
        directory::update_studio(&self.pool, studio).await?;
        self.changed(Change::Directory).await;
        Ok(())
    }

    async fn get_studio(&self, id: &str) -> Result<Option<StudioRecord>> {
        self.get("studios", id, rows::studio).await
    }

    async fn list_studios(&self, page: &PageQuery) -> Result<Vec<StudioRecord>> {
        directory::list_studios(&self.pool, page).await
    }

    async fn insert_studio_key(&self, key: &StudioKeyRecord) -> Result<()> {
        directory::insert_studio_key(&self.pool, key).await?;
        self.changed(Change::Directory).await;
        Ok(())
    }

    async fn get_studio_key(&self, id: &str) -> Result<Option<StudioKeyRecord>> {
        self.get("studio_keys", id, rows::studio_key).await
    }

    async fn revoke_studio_key(&self, id: &str, at: Millis) -> Result<StudioKeyRecord> {
        let revoked = directory::revoke(
            &self.pool,
            "studio_keys",
            "studio key",
            id,
            at,
            rows::studio_key,
        )
        .await?;
        self.changed(Change::Directory).await;
        Ok(revoked)
    }

    async fn list_studio_keys(
        &self,
        studio_id: &str,
        page: &PageQuery,
    ) -> Result<Vec<StudioKeyRecord>> {
        directory::list_studio_keys(&self.pool, studio_id, page).await
    }

    async fn insert_user_token(&self, token: &UserTokenRecord) -> Result<()> {
        directory::insert_user_token(&self.pool, token).await?;
        self.changed(Change::Directory).await;
        Ok(())
    }

    async fn get_user_token(&self, id: &str) -> Result<Option<UserTokenRecord>> {
        self.get("user_tokens", id, rows::user_token).await
    }

    async fn revoke_user_token(&self, id: &str, at: Millis) -> Result<UserTokenRecord> {
        let revoked = directory::revoke(
            &self.pool,
            "user_tokens",
            "user token",
            id,
            at,
            rows::user_token,
        )
        .await?;
        self.changed(Change::Directory).await;
        Ok(revoked)
    }

    async fn list_user_tokens(
        &self,
        studio_id: &str,
        user_id: Option<&str>,
        page: &PageQuery,
    ) -> Result<Vec<UserTokenRecord>> {
        directory::list_user_tokens(&self.pool, studio_id, user_id, page).await
    }

    async fn upsert_provider(&self, provider: &ProviderRecord) -> Result<()> {
        catalog::upsert_provider(&self.pool, provider).await?;
        self.changed(Change::Catalog).await;
        Ok(())
    }

    async fn set_provider_api_key(
        &self,
        id: &str,
        key: Option<&SealedKey>,
        at: Millis,
    ) -> Result<()> {
        catalog::set_provider_api_key(&self.pool, id, key, at).await?;
        self.changed(Change::Catalog).await;
        Ok(())
    }

    async fn reseal(
        &self,
        keys: &[(String, SealedKey)],
        hook_secrets: &[(String, Vec<u8>)],
        settings: &[(String, String)],
    ) -> Result<()> {
        catalog::reseal(&self.pool, keys, hook_secrets, settings).await
    }

    async fn delete_provider(&self, id: &str) -> Result<()> {
        catalog::delete_provider(&self.pool, id).await?;
        self.changed(Change::Catalog).await;
        Ok(())
    }

    async fn list_providers(&self, page: &PageQuery) -> Result<Vec<ProviderRecord>> {
        catalog::list(&self.pool, "providers", page, rows::provider).await
    }

    async fn upsert_model(&self, model: &ModelRecord) -> Result<()> {
        catalog::upsert_model(&self.pool, model).await?;
        self.changed(Change::Catalog).await;
        Ok(())
    }

    async fn delete_model(&self, id: &str) -> Result<()> {
        catalog::delete_model(&self.pool, id).await?;
        self.changed(Change::Catalog).await;
        Ok(())
    }

    async fn list_models(&self, page: &PageQuery) -> Result<Vec<ModelRecord>> {
        catalog::list(&self.pool, "models", page, rows::model).await
    }

    async fn set_default_model(&self, pathway: Pathway, model_id: &str) -> Result<()> {
        catalog::set_default_model(&self.pool, pathway, model_id).await?;
        self.changed(Change::Catalog).await;
        Ok(())
    }

    async fn usage_sink(&self) -> Result<Box<dyn UsageSink>> {
        let (options, replica_id) = (self.options.clone(), self.replica_id.clone());
        let sink = tokio::task::spawn_blocking(move || usage_sink::Sink::open(options, replica_id))
            .await
            .map_err(|e| Error::Internal(format!("store: opening the usage connection: {e}")))??;
        Ok(Box::new(sink))
    }

    async fn maintain_usage(
        &self,
        now: Millis,
        retain_months: Option<u32>,
    ) -> Result<UsageMaintenance> {
        usage::maintain(&self.pool, now, retain_months).await
    }

    async fn keep_alive(&self, now: Millis, lease_ms: i64) -> Result<u64> {
        sqlx::query(
            "INSERT INTO replicas (id, heartbeat_ms) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_ms = EXCLUDED.heartbeat_ms",
        )
        .bind(&self.replica_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let settled: i64 = sqlx::query_scalar("SELECT replicas_sweep($1, $2)")
            .bind(now)
            .bind(lease_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(settled as u64)
    }

    async fn all_hooks(&self) -> Result<Vec<HookRecord>> {
        hooks::all(&self.pool).await
    }

    async fn upsert_hook(&self, hook: &HookRecord) -> Result<()> {
        hooks::upsert(&self.pool, hook).await?;
        self.changed(Change::Hooks).await;
        Ok(())
    }

    async fn delete_hook(&self, id: &str, at: Millis) -> Result<()> {
        hooks::delete(&self.pool, id, at).await?;
        self.changed(Change::Hooks).await;
        Ok(())
    }

    async fn due_deliveries(&self, now: Millis, limit: u32) -> Result<Vec<DeliveryRecord>> {
        hooks::due(&self.pool, now, limit).await
    }

    async fn next_delivery_ms(&self) -> Result<Option<Millis>> {
        hooks::next_due(&self.pool).await
    }

    async fn record_attempt(&self, id: &str, outcome: &AttemptOutcome) -> Result<()> {
        hooks::record_attempt(&self.pool, id, outcome).await
    }

    async fn get_delivery(&self, id: &str) -> Result<Option<DeliveryRecord>> {
        hooks::get_delivery(&self.pool, id).await
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, DeliveryRecord)>> {
        hooks::list(&self.pool, filter, before_seq, limit).await
    }

    async fn redeliver(&self, id: &str, at: Millis) -> Result<DeliveryRecord> {
        hooks::redeliver(&self.pool, id, at).await
    }

    async fn list_usage(
        &self,
        filter: &UsageFilter,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, UsageRow)>> {
        usage::list(&self.pool, filter, before_seq, limit).await
    }

    async fn aggregate_usage(
        &self,
        filter: &UsageFilter,
        group_by: GroupBy,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<UsageAggregateRow>> {
        usage::aggregate(&self.pool, filter, group_by, offset, limit).await
    }
}

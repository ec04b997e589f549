//! The embedded default store: one SQLite file in WAL mode.
//!
//! Every write is a single statement (or, for usage, a single transaction),
//! so SQLite's one writer is held only briefly and constraint checks are
//! atomic with the write they guard. Constraint failures are mapped to the
//! errors the `Store` trait promises.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::{CatalogSnapshot, PageQuery, Snapshot, Store, UsageMaintenance, UsageSink};
use crate::domain::{
    AttemptOutcome, DeliveryFilter, DeliveryRecord, GroupBy, HookRecord, LimitValues, LimitsRecord,
    Millis, ModelRecord, Pathway, ProviderRecord, SealedKey, StudioKeyRecord, StudioRecord,
    UsageAggregateRow, UsageFilter, UsageRow, UserTokenRecord,
};
use crate::error::{Error, Result};
use crate::store::sql::{
    Conditions, already_exists, insert_error, not_found, paged, studio_missing, violates,
};
use crate::store::{rows, sql};

mod catalog;
mod hooks;
mod usage;
mod usage_sink;

/// Reads may run beside the one writer in WAL mode; more connections than
/// this only queue on SQLite's write lock.
const MAX_CONNECTIONS: u32 = 4;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite implementation of `Store`. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    synchronous_full: bool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and brings its schema up
    /// to date. `synchronous_full` trades write latency for surviving a power
    /// loss without losing the last commits; NORMAL in WAL mode never corrupts.
    pub async fn open(path: &Path, synchronous_full: bool) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| Error::Internal(format!("store: creating {}: {e}", dir.display())))?;
        }
        let synchronous = if synchronous_full {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Takes effect in a new file only (before its first table): lets
            // usage retention give deleted rows' pages back to the disk.
            .auto_vacuum(SqliteAutoVacuum::Incremental);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        sqlx::migrate!("src/store/migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| Error::Internal(format!("store: migrating: {e}")))?;
        usage::settle_open_rows(&pool).await?;
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
            synchronous_full,
        })
    }

    /// The row of `table` with this id.
    async fn get<T>(
        &self,
        table: &str,
        id: &str,
        convert: fn(&SqliteRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let sql = format!("SELECT * FROM {table} WHERE id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(convert).transpose()
    }

    async fn fetch<T>(
        &self,
        mut query: QueryBuilder<Sqlite>,
        convert: fn(&SqliteRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let found = query.build().fetch_all(&self.pool).await?;
        found.iter().map(convert).collect()
    }

    /// Runs the insert of a studio key or user token (errors as `insert_error`).
    async fn insert_credential(
        &self,
        insert: Query<'static, Sqlite, SqliteArguments>,
        resource: &'static str,
        id: &str,
        studio_id: &str,
    ) -> Result<()> {
        insert
            .execute(&self.pool)
            .await
            .map_err(|e| insert_error(e, resource, id, studio_id))?;
        Ok(())
    }

    /// Sets `revoke_ms` unless already set, so the first revocation time stays.
    async fn revoke<T>(
        &self,
        table: &str,
        resource: &'static str,
        id: &str,
        at: Millis,
        convert: fn(&SqliteRow) -> Result<T>,
    ) -> Result<T> {
        let sql = format!(
            "UPDATE {table} SET revoke_ms = COALESCE(revoke_ms, ?) WHERE id = ? RETURNING *"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(at)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => convert(&row),
            None => Err(not_found(resource, id)),
        }
    }

    /// Deletes the row of `table` with this id: `false` if a foreign key
    /// refused the delete, NOT_FOUND if there is no such row.
    async fn delete(&self, table: &str, resource: &'static str, id: &str) -> Result<bool> {
        let sql = format!("DELETE FROM {table} WHERE id = ?");
        match sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .execute(&self.pool)
            .await
        {
            Ok(done) if done.rows_affected() == 0 => Err(not_found(resource, id)),
            Ok(_) => Ok(true),
            Err(e) if violates(&e, ErrorKind::ForeignKeyViolation) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Names a model still using the provider, for the PROVIDER_IN_USE message.
    async fn provider_in_use(&self, id: &str) -> Result<Error> {
        let model: Option<String> =
            sqlx::query_scalar("SELECT id FROM models WHERE provider_id = ? ORDER BY id LIMIT 1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(sql::provider_in_use(id, model))
    }

    /// Names the pathway the model is default of, for the MODEL_IS_DEFAULT message.
    async fn model_is_default(&self, id: &str) -> Result<Error> {
        let pathway: Option<String> =
            sqlx::query_scalar("SELECT pathway FROM defaults WHERE model_id = ? LIMIT 1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(sql::model_is_default(id, pathway))
    }
}

/// Every row of a table, ordered by its key (the first column).
async fn all<T>(
    conn: &mut SqliteConnection,
    table: &str,
    convert: fn(&SqliteRow) -> Result<T>,
) -> Result<Vec<T>> {
    let sql = format!("SELECT * FROM {table} ORDER BY 1");
    let found = sqlx::query(AssertSqlSafe(sql)).fetch_all(conn).await?;
    found.iter().map(convert).collect()
}

/// Studio id → its allowed model ids.
async fn allowed_models(conn: &mut SqliteConnection) -> Result<HashMap<String, Vec<String>>> {
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

fn default_entry(row: &SqliteRow) -> Result<(Pathway, String)> {
    Ok((rows::pathway(row)?, row.try_get("model_id")?))
}

#[async_trait]
impl Store for SqliteStore {
    async fn snapshot(&self) -> Result<Snapshot> {
        // One read transaction, so the caches see a single consistent state.
        let mut tx = self.pool.begin().await?;
        let snapshot = Snapshot {
            studios: all(&mut tx, "studios", rows::studio).await?,
            studio_keys: all(&mut tx, "studio_keys", rows::studio_key).await?,
            user_tokens: all(&mut tx, "user_tokens", rows::user_token).await?,
            providers: all(&mut tx, "providers", rows::provider).await?,
            models: all(&mut tx, "models", rows::model).await?,
            defaults: all(&mut tx, "defaults", default_entry)
                .await?
                .into_iter()
                .collect::<HashMap<_, _>>(),
            limits: all(&mut tx, "limits", rows::limits).await?,
            allowed_models: allowed_models(&mut tx).await?,
        };
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn put_limits(&self, limits: &LimitsRecord) -> Result<()> {
        let (target, user_id) = rows::limit_target_columns(&limits.target);
        let v = &limits.values;
        let query = if *v == LimitValues::default() {
            sqlx::query("DELETE FROM limits WHERE studio_id = ? AND target = ? AND user_id = ?")
                .bind(&limits.studio_id)
                .bind(target)
                .bind(user_id)
        } else {
            sqlx::query(
                "INSERT INTO limits (studio_id, target, user_id, requests_per_minute, tokens_per_minute, \
                 tokens_per_day, cost_micros_per_day, cost_micros_per_month, update_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (studio_id, target, user_id) DO UPDATE SET \
                 requests_per_minute = excluded.requests_per_minute, \
                 tokens_per_minute = excluded.tokens_per_minute, \
                 tokens_per_day = excluded.tokens_per_day, \
                 cost_micros_per_day = excluded.cost_micros_per_day, \
                 cost_micros_per_month = excluded.cost_micros_per_month, \
                 update_ms = excluded.update_ms",
            )
            .bind(&limits.studio_id)
            .bind(target)
            .bind(user_id)
            .bind(v.requests_per_minute)
            .bind(v.tokens_per_minute)
            .bind(v.tokens_per_day)
            .bind(v.cost_micros_per_day)
            .bind(v.cost_micros_per_month)
            .bind(limits.update_ms)
        };
        query
            .execute(&self.pool)
            .await
            .map_err(|e| studio_missing(e, &limits.studio_id))?;
        Ok(())
    }

    async fn set_allowed_models(&self, studio_id: &str, model_ids: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM studio_models WHERE studio_id = ?")
            .bind(studio_id)
            .execute(&mut *tx)
            .await?;
        for model_id in model_ids {
            sqlx::query("INSERT OR IGNORE INTO studio_models (studio_id, model_id) VALUES (?, ?)")
                .bind(studio_id)
                .bind(model_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| studio_missing(e, studio_id))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn close(&self) {
        // Closing every connection checkpoints the WAL before exit.
        self.pool.close().await;
    }

    async fn catalog_snapshot(&self) -> Result<CatalogSnapshot> {
        let mut tx = self.pool.begin().await?;
        let snapshot = CatalogSnapshot {
            providers: all(&mut tx, "providers", rows::provider).await?,
            models: all(&mut tx, "models", rows::model).await?,
            defaults: all(&mut tx, "defaults", default_entry)
                .await?
                .into_iter()
                .collect::<HashMap<_, _>>(),
        };
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let value = sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(value)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn insert_studio(&self, studio: &StudioRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO studios (id, display_name, status, create_ms, update_ms, allowed_origins) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&studio.id)
        .bind(&studio.display_name)
        .bind(rows::status_str(studio.status))
        .bind(studio.create_ms)
        .bind(studio.update_ms)
        .bind(rows::origins_text(&studio.allowed_origins))
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if violates(&e, ErrorKind::UniqueViolation) {
                already_exists("studio", &studio.id)
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    async fn update_studio(&self, studio: &StudioRecord) -> Result<()> {
        // create_ms is fixed at insert.
        let done = sqlx::query(
            "UPDATE studios SET display_name = ?, status = ?, update_ms = ?, allowed_origins = ? \
             WHERE id = ?",
        )
        .bind(&studio.display_name)
        .bind(rows::status_str(studio.status))
        .bind(studio.update_ms)
        .bind(rows::origins_text(&studio.allowed_origins))
        .bind(&studio.id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(not_found("studio", &studio.id));
        }
        Ok(())
    }

    async fn get_studio(&self, id: &str) -> Result<Option<StudioRecord>> {
        self.get("studios", id, rows::studio).await
    }

    async fn list_studios(&self, page: &PageQuery) -> Result<Vec<StudioRecord>> {
        let query = paged(Conditions::new("SELECT * FROM studios"), page);
        self.fetch(query, rows::studio).await
    }

    async fn insert_studio_key(&self, key: &StudioKeyRecord) -> Result<()> {
        let insert = sqlx::query(
            "INSERT INTO studio_keys \
             (id, studio_id, display_name, secret_hash, create_ms, revoke_ms) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.studio_id)
        .bind(&key.display_name)
        .bind(key.secret_hash.as_slice())
        .bind(key.create_ms)
        .bind(key.revoke_ms);
        self.insert_credential(insert, "studio key", &key.id, &key.studio_id)
            .await
    }

    async fn get_studio_key(&self, id: &str) -> Result<Option<StudioKeyRecord>> {
        self.get("studio_keys", id, rows::studio_key).await
    }

    async fn revoke_studio_key(&self, id: &str, at: Millis) -> Result<StudioKeyRecord> {
        self.revoke("studio_keys", "studio key", id, at, rows::studio_key)
            .await
    }

    async fn list_studio_keys(
        &self,
        studio_id: &str,
        page: &PageQuery,
    ) -> Result<Vec<StudioKeyRecord>> {
        let mut where_ = Conditions::new("SELECT * FROM studio_keys");
        where_.and("studio_id = ", studio_id);
        self.fetch(paged(where_, page), rows::studio_key).await
    }

    async fn insert_user_token(&self, token: &UserTokenRecord) -> Result<()> {
        let insert = sqlx::query(
            "INSERT INTO user_tokens \
             (id, studio_id, user_id, secret_hash, create_ms, expire_ms, revoke_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&token.id)
        .bind(&token.studio_id)
        .bind(&token.user_id)
        .bind(token.secret_hash.as_slice())
        .bind(token.create_ms)
        .bind(token.expire_ms)
        .bind(token.revoke_ms);
        self.insert_credential(insert, "user token", &token.id, &token.studio_id)
            .await
    }

    async fn get_user_token(&self, id: &str) -> Result<Option<UserTokenRecord>> {
        self.get("user_tokens", id, rows::user_token).await
    }

    async fn revoke_user_token(&self, id: &str, at: Millis) -> Result<UserTokenRecord> {
        self.revoke("user_tokens", "user token", id, at, rows::user_token)
            .await
    }

    async fn list_user_tokens(
        &self,
        studio_id: &str,
        user_id: Option<&str>,
        page: &PageQuery,
    ) -> Result<Vec<UserTokenRecord>> {
        let mut where_ = Conditions::new("SELECT * FROM user_tokens");
        where_.and("studio_id = ", studio_id);
        if let Some(user_id) = user_id {
            where_.and("user_id = ", user_id);
        }
        self.fetch(paged(where_, page), rows::user_token).await
    }

    async fn upsert_provider(&self, provider: &ProviderRecord) -> Result<()> {
        catalog::upsert_provider(self, provider).await
    }

    async fn set_provider_api_key(
        &self,
        id: &str,
        key: Option<&SealedKey>,
        at: Millis,
    ) -> Result<()> {
        catalog::set_provider_api_key(self, id, key, at).await
    }

    async fn reseal(
        &self,
        keys: &[(String, SealedKey)],
        hook_secrets: &[(String, Vec<u8>)],
        settings: &[(String, String)],
    ) -> Result<()> {
        catalog::reseal(self, keys, hook_secrets, settings).await
    }

    async fn delete_provider(&self, id: &str) -> Result<()> {
        catalog::delete_provider(self, id).await
    }

    async fn list_providers(&self, page: &PageQuery) -> Result<Vec<ProviderRecord>> {
        catalog::list_providers(self, page).await
    }

    async fn upsert_model(&self, model: &ModelRecord) -> Result<()> {
        catalog::upsert_model(self, model).await
    }

    async fn delete_model(&self, id: &str) -> Result<()> {
        catalog::delete_model(self, id).await
    }

    async fn list_models(&self, page: &PageQuery) -> Result<Vec<ModelRecord>> {
        catalog::list_models(self, page).await
    }

    async fn set_default_model(&self, pathway: Pathway, model_id: &str) -> Result<()> {
        catalog::set_default_model(self, pathway, model_id).await
    }

    async fn usage_sink(&self) -> Result<Box<dyn UsageSink>> {
        let (path, full) = (self.path.clone(), self.synchronous_full);
        let sink =
            tokio::task::spawn_blocking(move || usage_sink::Sink::open(&path, full, BUSY_TIMEOUT))
                .await
                .map_err(|e| {
                    Error::Internal(format!("store: opening the usage connection: {e}"))
                })??;
        Ok(Box::new(sink))
    }

    async fn maintain_usage(
        &self,
        now: Millis,
        retain_months: Option<u32>,
    ) -> Result<UsageMaintenance> {
        usage::maintain(&self.pool, now, retain_months).await
    }

    async fn all_hooks(&self) -> Result<Vec<HookRecord>> {
        hooks::all(&self.pool).await
    }

    async fn upsert_hook(&self, hook: &HookRecord) -> Result<()> {
        hooks::upsert(&self.pool, hook).await
    }

    async fn delete_hook(&self, id: &str, at: Millis) -> Result<()> {
        hooks::delete(&self.pool, id, at).await
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

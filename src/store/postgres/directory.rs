//! Studios, their keys and users' tokens, limits, allow-lists and settings.

use sqlx::error::ErrorKind;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, PgPool, Postgres, QueryBuilder};

use crate::domain::{
    LimitValues, LimitsRecord, Millis, StudioKeyRecord, StudioRecord, UserTokenRecord,
};
use crate::error::Result;
use crate::store::PageQuery;
use crate::store::rows;
use crate::store::sql::{
    Conditions, already_exists, insert_error, not_found, paged, studio_missing, violates,
};

pub(super) async fn fetch<T>(
    pool: &PgPool,
    mut query: QueryBuilder<Postgres>,
    convert: fn(&PgRow) -> Result<T>,
) -> Result<Vec<T>> {
    let found = query.build().fetch_all(pool).await?;
    found.iter().map(convert).collect()
}

pub(super) async fn put_setting(pool: &PgPool, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(key)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn insert_studio(pool: &PgPool, studio: &StudioRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO studios (id, display_name, status, create_ms, update_ms, allowed_origins) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&studio.id)
    .bind(&studio.display_name)
    .bind(rows::status_str(studio.status))
    .bind(studio.create_ms)
    .bind(studio.update_ms)
    .bind(rows::origins_text(&studio.allowed_origins))
    .execute(pool)
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

pub(super) async fn update_studio(pool: &PgPool, studio: &StudioRecord) -> Result<()> {
    // create_ms is fixed at insert.
    let done = sqlx::query(
        "UPDATE studios SET display_name = $1, status = $2, update_ms = $3, allowed_origins = $4 \
         WHERE id = $5",
    )
    .bind(&studio.display_name)
    .bind(rows::status_str(studio.status))
    .bind(studio.update_ms)
    .bind(rows::origins_text(&studio.allowed_origins))
    .bind(&studio.id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(not_found("studio", &studio.id));
    }
    Ok(())
}

pub(super) async fn list_studios(pool: &PgPool, page: &PageQuery) -> Result<Vec<StudioRecord>> {
    let query = paged(Conditions::new("SELECT * FROM studios"), page);
    fetch(pool, query, rows::studio).await
}

pub(super) async fn insert_studio_key(pool: &PgPool, key: &StudioKeyRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO studio_keys (id, studio_id, display_name, secret_hash, create_ms, revoke_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.id)
    .bind(&key.studio_id)
    .bind(&key.display_name)
    .bind(key.secret_hash.as_slice())
    .bind(key.create_ms)
    .bind(key.revoke_ms)
    .execute(pool)
    .await
    .map_err(|e| insert_error(e, "studio key", &key.id, &key.studio_id))?;
    Ok(())
}

pub(super) async fn list_studio_keys(
    pool: &PgPool,
    studio_id: &str,
    page: &PageQuery,
) -> Result<Vec<StudioKeyRecord>> {
    let mut where_ = Conditions::new("SELECT * FROM studio_keys");
    where_.and("studio_id = ", studio_id);
    fetch(pool, paged(where_, page), rows::studio_key).await
}

pub(super) async fn insert_user_token(pool: &PgPool, token: &UserTokenRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO user_tokens \
         (id, studio_id, user_id, secret_hash, create_ms, expire_ms, revoke_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&token.id)
    .bind(&token.studio_id)
    .bind(&token.user_id)
    .bind(token.secret_hash.as_slice())
    .bind(token.create_ms)
    .bind(token.expire_ms)
    .bind(token.revoke_ms)
    .execute(pool)
    .await
    .map_err(|e| insert_error(e, "user token", &token.id, &token.studio_id))?;
    Ok(())
}

pub(super) async fn list_user_tokens(
    pool: &PgPool,
    studio_id: &str,
    user_id: Option<&str>,
    page: &PageQuery,
) -> Result<Vec<UserTokenRecord>> {
    let mut where_ = Conditions::new("SELECT * FROM user_tokens");
    where_.and("studio_id = ", studio_id);
    if let Some(user_id) = user_id {
        where_.and("user_id = ", user_id);
    }
    fetch(pool, paged(where_, page), rows::user_token).await
}

/// Sets `revoke_ms` unless already set, so the first revocation time stays.
pub(super) async fn revoke<T>(
    pool: &PgPool,
    table: &str,
    resource: &'static str,
    id: &str,
    at: Millis,
    convert: fn(&PgRow) -> Result<T>,
) -> Result<T> {
    let sql =
        format!("UPDATE {table} SET revoke_ms = COALESCE(revoke_ms, $1) WHERE id = $2 RETURNING *");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(at)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => convert(&row),
        None => Err(not_found(resource, id)),
    }
}

pub(super) async fn put_limits(pool: &PgPool, limits: &LimitsRecord) -> Result<()> {
    let (target, user_id) = rows::limit_target_columns(&limits.target);
    let v = &limits.values;
    let query = if *v == LimitValues::default() {
        sqlx::query("DELETE FROM limits WHERE studio_id = $1 AND target = $2 AND user_id = $3")
            .bind(&limits.studio_id)
            .bind(target)
            .bind(user_id)
    } else {
        sqlx::query(
            "INSERT INTO limits (studio_id, target, user_id, requests_per_minute, \
             tokens_per_minute, tokens_per_day, cost_micros_per_day, cost_micros_per_month, \
             update_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
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
        .execute(pool)
        .await
        .map_err(|e| studio_missing(e, &limits.studio_id))?;
    Ok(())
}

pub(super) async fn set_allowed_models(
    pool: &PgPool,
    studio_id: &str,
    model_ids: &[String],
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM studio_models WHERE studio_id = $1")
        .bind(studio_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO studio_models (studio_id, model_id) \
         SELECT $1, model_id FROM UNNEST($2::TEXT[]) AS ids (model_id) ON CONFLICT DO NOTHING",
    )
    .bind(studio_id)
    .bind(model_ids)
    .execute(&mut *tx)
    .await
    .map_err(|e| studio_missing(e, studio_id))?;
    tx.commit().await?;
    Ok(())
}

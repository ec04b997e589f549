//! Row → record conversions, and the TEXT spelling of enums and JSON columns.
//!
//! A value the schema should never hold (an unknown enum, a bad hash length,
//! malformed JSON) is an internal error: it means the file was edited by hand
//! or written by a newer City.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::domain::{
    LimitTarget, LimitValues, LimitsRecord, ModelRecord, Pathway, ProviderKind, ProviderRecord,
    StudioKeyRecord, StudioRecord, StudioStatus, UsageAggregateRow, UsageRow, UserTokenRecord,
};
use crate::error::{Error, Result};

pub(super) fn status_str(status: StudioStatus) -> &'static str {
    match status {
        StudioStatus::Active => "active",
        StudioStatus::Suspended => "suspended",
    }
}

fn parse_status(s: &str) -> Result<StudioStatus> {
    match s {
        "active" => Ok(StudioStatus::Active),
        "suspended" => Ok(StudioStatus::Suspended),
        other => Err(corrupt("studio status", other)),
    }
}

fn corrupt(what: &str, value: &str) -> Error {
    Error::Internal(format!("store: unknown {what} `{value}`"))
}

/// JSON text of a map or list column.
pub(super) fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("store: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| Error::Internal(format!("store: {column}: {e}")))
}

fn secret_hash(row: &SqliteRow) -> Result<[u8; 32]> {
    let bytes: Vec<u8> = row.try_get("secret_hash")?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::Internal(format!("store: secret_hash of {} bytes", bytes.len())))
}

pub(super) fn studio(row: &SqliteRow) -> Result<StudioRecord> {
    Ok(StudioRecord {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        status: parse_status(row.try_get("status")?)?,
        create_ms: row.try_get("create_ms")?,
        update_ms: row.try_get("update_ms")?,
    })
}

pub(super) fn studio_key(row: &SqliteRow) -> Result<StudioKeyRecord> {
    Ok(StudioKeyRecord {
        id: row.try_get("id")?,
        studio_id: row.try_get("studio_id")?,
        display_name: row.try_get("display_name")?,
        secret_hash: secret_hash(row)?,
        create_ms: row.try_get("create_ms")?,
        revoke_ms: row.try_get("revoke_ms")?,
    })
}

pub(super) fn user_token(row: &SqliteRow) -> Result<UserTokenRecord> {
    Ok(UserTokenRecord {
        id: row.try_get("id")?,
        studio_id: row.try_get("studio_id")?,
        user_id: row.try_get("user_id")?,
        secret_hash: secret_hash(row)?,
        create_ms: row.try_get("create_ms")?,
        expire_ms: row.try_get("expire_ms")?,
        revoke_ms: row.try_get("revoke_ms")?,
    })
}

pub(super) fn provider(row: &SqliteRow) -> Result<ProviderRecord> {
    let kind: &str = row.try_get("kind")?;
    Ok(ProviderRecord {
        id: row.try_get("id")?,
        kind: ProviderKind::parse(kind).ok_or_else(|| corrupt("provider kind", kind))?,
        base_url: row.try_get("base_url")?,
        update_ms: row.try_get("update_ms")?,
        headers: from_json::<BTreeMap<String, String>>(row, "headers")?,
        timeouts: crate::domain::ProviderTimeouts {
            connect_ms: row.try_get("connect_timeout_ms")?,
            first_byte_ms: row.try_get("first_byte_timeout_ms")?,
            total_ms: row.try_get("total_timeout_ms")?,
        },
        api_key: row
            .try_get::<Option<Vec<u8>>, _>("api_key")?
            .map(|ciphertext| -> Result<_> {
                Ok(crate::domain::SealedKey {
                    ciphertext,
                    hint: row.try_get("api_key_hint")?,
                })
            })
            .transpose()?,
        api_key_update_ms: row.try_get("api_key_update_ms")?,
    })
}

pub(super) fn pathway(row: &SqliteRow) -> Result<Pathway> {
    let pathway: &str = row.try_get("pathway")?;
    Pathway::parse(pathway).ok_or_else(|| corrupt("pathway", pathway))
}

pub(super) fn model(row: &SqliteRow) -> Result<ModelRecord> {
    Ok(ModelRecord {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        provider_id: row.try_get("provider_id")?,
        upstream_model: row.try_get("upstream_model")?,
        pathway: pathway(row)?,
        enabled: row.try_get("enabled")?,
        max_output_tokens: row.try_get("max_output_tokens")?,
        max_input_tokens: row.try_get("max_input_tokens")?,
        input_micros_per_mtok: row.try_get("input_micros_per_mtok")?,
        output_micros_per_mtok: row.try_get("output_micros_per_mtok")?,
        micros_per_image: row.try_get("micros_per_image")?,
        fallback_model_ids: from_json::<Vec<String>>(row, "fallback_model_ids")?,
        options: from_json::<BTreeMap<String, String>>(row, "options")?,
        update_ms: row.try_get("update_ms")?,
    })
}

/// A usage row with its sequence number.
pub(super) fn usage(row: &SqliteRow) -> Result<(i64, UsageRow)> {
    let usage = UsageRow {
        request_id: row.try_get("request_id")?,
        studio_id: row.try_get("studio_id")?,
        user_id: row.try_get("user_id")?,
        model_id: row.try_get("model_id")?,
        provider_id: row.try_get("provider_id")?,
        pathway: row.try_get("pathway")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        images: row.try_get("images")?,
        cost_micros: row.try_get("cost_micros")?,
        status_code: row.try_get("status_code")?,
        error_reason: row.try_get("error_reason")?,
        latency_us: row.try_get("latency_us")?,
        ttft_us: row.try_get("ttft_us")?,
        create_ms: row.try_get("create_ms")?,
        metadata: from_json::<BTreeMap<String, String>>(row, "metadata")?,
    };
    Ok((row.try_get("seq")?, usage))
}

pub(super) fn aggregate(row: &SqliteRow) -> Result<UsageAggregateRow> {
    Ok(UsageAggregateRow {
        studio_id: row.try_get("studio_id")?,
        user_id: row.try_get("user_id")?,
        model_id: row.try_get("model_id")?,
        day: row.try_get("day")?,
        hour: row.try_get("hour")?,
        month: row.try_get("month")?,
        calls: row.try_get("calls")?,
        failed_calls: row.try_get("failed_calls")?,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        images: row.try_get("images")?,
        cost_micros: row.try_get("cost_micros")?,
    })
}

pub(super) fn limits(row: &SqliteRow) -> Result<LimitsRecord> {
    let target: String = row.try_get("target")?;
    let user_id: String = row.try_get("user_id")?;
    let target = match target.as_str() {
        "studio" => LimitTarget::Studio,
        "studio_own" => LimitTarget::StudioOwn,
        "user_default" => LimitTarget::UserDefault,
        "user" => LimitTarget::User(user_id),
        other => {
            return Err(Error::Internal(format!(
                "store: unknown limit target `{other}`"
            )));
        }
    };
    Ok(LimitsRecord {
        studio_id: row.try_get("studio_id")?,
        target,
        values: LimitValues {
            requests_per_minute: row.try_get("requests_per_minute")?,
            tokens_per_minute: row.try_get("tokens_per_minute")?,
            tokens_per_day: row.try_get("tokens_per_day")?,
            cost_micros_per_day: row.try_get("cost_micros_per_day")?,
            cost_micros_per_month: row.try_get("cost_micros_per_month")?,
        },
        update_ms: row.try_get("update_ms")?,
    })
}

/// The (target, user_id) columns of a limit target.
pub(super) fn limit_target_columns(target: &LimitTarget) -> (&'static str, &str) {
    match target {
        LimitTarget::Studio => ("studio", ""),
        LimitTarget::StudioOwn => ("studio_own", ""),
        LimitTarget::UserDefault => ("user_default", ""),
        LimitTarget::User(user_id) => ("user", user_id),
    }
}

//! Row → record conversions shared by the backends, and the TEXT spelling of
//! enums and JSON columns (the same in SQLite and PostgreSQL).
//!
//! A value the schema should never hold (an unknown enum, a bad hash length,
//! malformed JSON) is an internal error: it means the database was edited by
//! hand or written by a newer City.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use crate::domain::{
    DeliveryRecord, DeliveryState, HookEvent, HookRecord, LimitTarget, LimitValues, LimitsRecord,
    ModelRecord, Pathway, ProviderKind, ProviderRecord, StudioKeyRecord, StudioRecord,
    StudioStatus, UsageAggregateRow, UsageRow, UserTokenRecord,
};
use crate::error::{Error, Result};

/// The column reads the conversions need, for either backend's rows. Each
/// backend stores a Rust type in its own SQL type (an i32 is INTEGER in
/// PostgreSQL, a bool is BOOLEAN), so one conversion serves both.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int32(&self, column: &str) -> Result<i32>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;
}

macro_rules! columns_of {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, column: &str) -> Result<String> {
                Ok(self.try_get(column)?)
            }
            fn int(&self, column: &str) -> Result<i64> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>> {
                Ok(self.try_get(column)?)
            }
            fn int32(&self, column: &str) -> Result<i32> {
                Ok(self.try_get(column)?)
            }
            fn flag(&self, column: &str) -> Result<bool> {
                Ok(self.try_get(column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>> {
                Ok(self.try_get(column)?)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
                Ok(self.try_get(column)?)
            }
        }
    };
}

columns_of!(SqliteRow);
columns_of!(PgRow);

pub(crate) fn status_str(status: StudioStatus) -> &'static str {
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
pub(crate) fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("store: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(row: &impl Columns, column: &str) -> Result<T> {
    let text = row.text(column)?;
    serde_json::from_str(&text).map_err(|e| Error::Internal(format!("store: {column}: {e}")))
}

fn secret_hash(row: &impl Columns) -> Result<[u8; 32]> {
    let bytes = row.bytes("secret_hash")?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::Internal(format!("store: secret_hash of {} bytes", bytes.len())))
}

pub(crate) fn studio(row: &impl Columns) -> Result<StudioRecord> {
    Ok(StudioRecord {
        id: row.text("id")?,
        display_name: row.text("display_name")?,
        status: parse_status(&row.text("status")?)?,
        create_ms: row.int("create_ms")?,
        update_ms: row.int("update_ms")?,
        allowed_origins: row
            .text("allowed_origins")?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    })
}

/// A studio's origins as stored: separated by spaces (an origin holds none).
pub(crate) fn origins_text(origins: &[String]) -> String {
    origins.join(" ")
}

pub(crate) fn studio_key(row: &impl Columns) -> Result<StudioKeyRecord> {
    Ok(StudioKeyRecord {
        id: row.text("id")?,
        studio_id: row.text("studio_id")?,
        display_name: row.text("display_name")?,
        secret_hash: secret_hash(row)?,
        create_ms: row.int("create_ms")?,
        revoke_ms: row.opt_int("revoke_ms")?,
    })
}

pub(crate) fn user_token(row: &impl Columns) -> Result<UserTokenRecord> {
    Ok(UserTokenRecord {
        id: row.text("id")?,
        studio_id: row.text("studio_id")?,
        user_id: row.text("user_id")?,
        secret_hash: secret_hash(row)?,
        create_ms: row.int("create_ms")?,
        expire_ms: row.opt_int("expire_ms")?,
        revoke_ms: row.opt_int("revoke_ms")?,
    })
}

pub(crate) fn provider(row: &impl Columns) -> Result<ProviderRecord> {
    let kind = row.text("kind")?;
    Ok(ProviderRecord {
        id: row.text("id")?,
        kind: ProviderKind::parse(&kind).ok_or_else(|| corrupt("provider kind", &kind))?,
        base_url: row.text("base_url")?,
        update_ms: row.int("update_ms")?,
        headers: from_json::<BTreeMap<String, String>>(row, "headers")?,
        timeouts: crate::domain::ProviderTimeouts {
            connect_ms: row.opt_int("connect_timeout_ms")?,
            first_byte_ms: row.opt_int("first_byte_timeout_ms")?,
            total_ms: row.opt_int("total_timeout_ms")?,
        },
        api_key: row
            .opt_bytes("api_key")?
            .map(|ciphertext| -> Result<_> {
                Ok(crate::domain::SealedKey {
                    ciphertext,
                    hint: row.text("api_key_hint")?,
                })
            })
            .transpose()?,
        api_key_update_ms: row.opt_int("api_key_update_ms")?,
    })
}

pub(crate) fn pathway(row: &impl Columns) -> Result<Pathway> {
    let pathway = row.text("pathway")?;
    Pathway::parse(&pathway).ok_or_else(|| corrupt("pathway", &pathway))
}

pub(crate) fn model(row: &impl Columns) -> Result<ModelRecord> {
    Ok(ModelRecord {
        id: row.text("id")?,
        display_name: row.text("display_name")?,
        provider_id: row.text("provider_id")?,
        upstream_model: row.text("upstream_model")?,
        pathway: pathway(row)?,
        enabled: row.flag("enabled")?,
        max_output_tokens: row.int32("max_output_tokens")?,
        max_input_tokens: row.int32("max_input_tokens")?,
        input_micros_per_mtok: row.int("input_micros_per_mtok")?,
        output_micros_per_mtok: row.int("output_micros_per_mtok")?,
        micros_per_image: row.int("micros_per_image")?,
        fallback_model_ids: from_json::<Vec<String>>(row, "fallback_model_ids")?,
        options: from_json::<BTreeMap<String, String>>(row, "options")?,
        update_ms: row.int("update_ms")?,
    })
}

/// A usage row with its sequence number.
pub(crate) fn usage(row: &impl Columns) -> Result<(i64, UsageRow)> {
    let usage = UsageRow {
        request_id: row.text("request_id")?,
        studio_id: row.text("studio_id")?,
        user_id: row.text("user_id")?,
        model_id: row.text("model_id")?,
        provider_id: row.text("provider_id")?,
        pathway: row.text("pathway")?,
        input_tokens: row.int("input_tokens")?,
        output_tokens: row.int("output_tokens")?,
        images: row.int("images")?,
        cost_micros: row.int("cost_micros")?,
        status_code: row.int32("status_code")?,
        error_reason: row.text("error_reason")?,
        latency_us: row.int("latency_us")?,
        ttft_us: row.opt_int("ttft_us")?,
        create_ms: row.int("create_ms")?,
        metadata: from_json::<BTreeMap<String, String>>(row, "metadata")?,
    };
    Ok((row.int("seq")?, usage))
}

pub(crate) fn aggregate(row: &impl Columns) -> Result<UsageAggregateRow> {
    Ok(UsageAggregateRow {
        studio_id: row.text("studio_id")?,
        user_id: row.text("user_id")?,
        model_id: row.text("model_id")?,
        day: row.text("day")?,
        hour: row.text("hour")?,
        month: row.text("month")?,
        calls: row.int("calls")?,
        failed_calls: row.int("failed_calls")?,
        input_tokens: row.int("input_tokens")?,
        output_tokens: row.int("output_tokens")?,
        images: row.int("images")?,
        cost_micros: row.int("cost_micros")?,
    })
}

pub(crate) fn limits(row: &impl Columns) -> Result<LimitsRecord> {
    let target = row.text("target")?;
    let user_id = row.text("user_id")?;
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
        studio_id: row.text("studio_id")?,
        target,
        values: LimitValues {
            requests_per_minute: row.opt_int("requests_per_minute")?,
            tokens_per_minute: row.opt_int("tokens_per_minute")?,
            tokens_per_day: row.opt_int("tokens_per_day")?,
            cost_micros_per_day: row.opt_int("cost_micros_per_day")?,
            cost_micros_per_month: row.opt_int("cost_micros_per_month")?,
        },
        update_ms: row.int("update_ms")?,
    })
}

/// The (target, user_id) columns of a limit target.
pub(crate) fn limit_target_columns(target: &LimitTarget) -> (&'static str, &str) {
    match target {
        LimitTarget::Studio => ("studio", ""),
        LimitTarget::StudioOwn => ("studio_own", ""),
        LimitTarget::UserDefault => ("user_default", ""),
        LimitTarget::User(user_id) => ("user", user_id),
    }
}

pub(crate) fn hook(row: &impl Columns) -> Result<HookRecord> {
    let names: Vec<String> = from_json(row, "events")?;
    let events = names
        .iter()
        .map(|name| HookEvent::parse(name).ok_or_else(|| corrupt("hook event", name)))
        .collect::<Result<Vec<_>>>()?;
    Ok(HookRecord {
        id: row.text("id")?,
        studio_id: row.text("studio_id")?,
        url: row.text("url")?,
        events,
        timeout_ms: row.int("timeout_ms")?,
        fail_closed: row.flag("fail_closed")?,
        include_prompt: row.flag("include_prompt")?,
        secret: row.bytes("secret")?,
        create_ms: row.int("create_ms")?,
        update_ms: row.int("update_ms")?,
    })
}

/// An outbox delivery with its sequence number.
pub(crate) fn delivery(row: &impl Columns) -> Result<(i64, DeliveryRecord)> {
    let state = row.text("state")?;
    let record = DeliveryRecord {
        id: row.text("id")?,
        hook_id: row.text("hook_id")?,
        studio_id: row.text("studio_id")?,
        request_id: row.text("request_id")?,
        payload: row.text("payload")?,
        state: DeliveryState::parse(&state).ok_or_else(|| corrupt("delivery state", &state))?,
        attempts: row.int32("attempts")?,
        last_error: row.text("last_error")?,
        next_attempt_ms: row.int("next_attempt_ms")?,
        create_ms: row.int("create_ms")?,
        deliver_ms: row.opt_int("deliver_ms")?,
        traceparent: row.opt_text("traceparent")?,
    };
    Ok((row.int("seq")?, record))
}

/// A delivery without its sequence number.
pub(crate) fn delivery_record(row: &impl Columns) -> Result<DeliveryRecord> {
    delivery(row).map(|(_, record)| record)
}

//! Usage rows and the queries over them.

use std::collections::BTreeMap;

use super::Millis;

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

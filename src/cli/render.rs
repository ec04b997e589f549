//! How the admin CLI shows response messages: as tables, or as JSON.
//!
//! The generated messages do not derive `Serialize`, so each shown message
//! builds its JSON by hand, after the proto3 JSON mapping with two
//! simplifications: field names stay as in the proto (`snake_case`) and
//! 64-bit integers are JSON numbers rather than strings. Enums are their
//! proto names, timestamps RFC 3339 strings and durations `"1.5s"` strings;
//! unset messages are `null`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use comfy_table::{Table, presets};
use serde_json::{Value, json};
use tonic::Code;

use super::client::Listing;
use crate::proto::{
    Model, Pathway, Provider, ProviderKind, Studio, StudioKey, StudioStatus, UsageAggregate,
    UsageRecord, UserToken,
};

/// The canonical name of a gRPC code, as in `google.rpc.Code`.
pub(super) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A proto enum, to show by name.
trait ProtoEnum: TryFrom<i32> {
    /// The prefix every value's name starts with, dropped in tables.
    const PREFIX: &'static str;
    fn name(&self) -> &'static str;
}

macro_rules! proto_enum {
    ($($enum:ident => $prefix:literal),*) => {$(
        impl ProtoEnum for $enum {
            const PREFIX: &'static str = $prefix;
            fn name(&self) -> &'static str {
                self.as_str_name()
            }
        }
    )*};
}

proto_enum!(StudioStatus => "STUDIO_STATUS_", Pathway => "PATHWAY_", ProviderKind => "PROVIDER_KIND_");

/// The full proto name, or the number of a value this build does not know.
fn enum_json<E: ProtoEnum>(value: i32) -> Value {
    E::try_from(value).map_or(Value::from(value), |e| Value::from(e.name()))
}

/// The name without its prefix (`ACTIVE`), or the number.
fn enum_cell<E: ProtoEnum>(value: i32) -> String {
    E::try_from(value).map_or(value.to_string(), |e| {
        let name = e.name();
        name.strip_prefix(E::PREFIX).unwrap_or(name).to_owned()
    })
}

/// Seconds from the epoch to 9999-12-31T23:59:59Z: what RFC 3339 can show.
const RFC3339_SECONDS: std::ops::Range<i64> = 0..253_402_300_800;

/// A timestamp as RFC 3339 in UTC, to the second or to the nanosecond.
fn timestamp(ts: &prost_types::Timestamp, full: bool) -> String {
    let in_range = RFC3339_SECONDS.contains(&ts.seconds) && (0..1_000_000_000).contains(&ts.nanos);
    if !in_range {
        return format!("{}.{:09}s since epoch", ts.seconds, ts.nanos);
    }
    let time = SystemTime::UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos as u32);
    if full {
        humantime::format_rfc3339(time).to_string()
    } else {
        humantime::format_rfc3339_seconds(time).to_string()
    }
}

fn ts_cell(ts: Option<&prost_types::Timestamp>) -> String {
    ts.map(|t| timestamp(t, false)).unwrap_or_default()
}

fn ts_json(ts: Option<&prost_types::Timestamp>) -> Value {
    ts.map_or(Value::Null, |t| Value::from(timestamp(t, true)))
}

/// A duration in the proto3 JSON form: `"1.500s"`.
fn duration_json(d: Option<&prost_types::Duration>) -> Value {
    d.map_or(Value::Null, |d| {
        let nanos = i128::from(d.seconds) * 1_000_000_000 + i128::from(d.nanos);
        let sign = if nanos < 0 { "-" } else { "" };
        let (secs, frac) = (nanos.abs() / 1_000_000_000, nanos.abs() % 1_000_000_000);
        let text = match frac {
            0 => format!("{sign}{secs}s"),
            f if f % 1_000_000 == 0 => format!("{sign}{secs}.{:03}s", f / 1_000_000),
            f if f % 1_000 == 0 => format!("{sign}{secs}.{:06}s", f / 1_000),
            f => format!("{sign}{secs}.{f:09}s"),
        };
        Value::from(text)
    })
}

/// A duration for people, to the microsecond (City adds microseconds): `1ms 234us`.
fn duration_cell(d: Option<&prost_types::Duration>) -> String {
    d.and_then(|d| Duration::try_from(*d).ok())
        .map(|d| {
            let micros = Duration::from_micros(d.as_micros() as u64);
            humantime::format_duration(micros).to_string()
        })
        .unwrap_or_default()
}

/// `k=v, k=v`, sorted by key.
fn map_cell(map: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(", ")
}

/// A message the CLI can show as a table row and as JSON.
pub(super) trait Render {
    /// The table's column names.
    const COLUMNS: &'static [&'static str];
    /// Whether to drop columns that are empty in every row.
    const SPARSE: bool = false;
    /// One cell per column.
    fn cells(&self) -> Vec<String>;
    fn to_json(&self) -> Value;
}

impl Render for Studio {
    const COLUMNS: &'static [&'static str] = &["ID", "NAME", "STATUS", "CREATED", "UPDATED"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.display_name.clone(),
            enum_cell::<StudioStatus>(self.status),
            ts_cell(self.create_time.as_ref()),
            ts_cell(self.update_time.as_ref()),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "display_name": self.display_name,
            "status": enum_json::<StudioStatus>(self.status),
            "create_time": ts_json(self.create_time.as_ref()),
            "update_time": ts_json(self.update_time.as_ref()),
        })
    }
}

impl Render for StudioKey {
    const COLUMNS: &'static [&'static str] = &["ID", "STUDIO", "NAME", "CREATED", "REVOKED"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.studio_id.clone(),
            self.display_name.clone(),
            ts_cell(self.create_time.as_ref()),
            ts_cell(self.revoke_time.as_ref()),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "studio_id": self.studio_id,
            "display_name": self.display_name,
            "create_time": ts_json(self.create_time.as_ref()),
            "revoke_time": ts_json(self.revoke_time.as_ref()),
        })
    }
}

impl Render for UserToken {
    const COLUMNS: &'static [&'static str] =
        &["ID", "STUDIO", "USER", "CREATED", "EXPIRES", "REVOKED"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.studio_id.clone(),
            self.user_id.clone(),
            ts_cell(self.create_time.as_ref()),
            self.expire_time
                .as_ref()
                .map_or_else(|| "never".to_owned(), |t| timestamp(t, false)),
            ts_cell(self.revoke_time.as_ref()),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "studio_id": self.studio_id,
            "user_id": self.user_id,
            "create_time": ts_json(self.create_time.as_ref()),
            "expire_time": ts_json(self.expire_time.as_ref()),
            "revoke_time": ts_json(self.revoke_time.as_ref()),
        })
    }
}

impl Render for Provider {
    const COLUMNS: &'static [&'static str] = &["ID", "KIND", "BASE_URL", "UPDATED"];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            enum_cell::<ProviderKind>(self.kind),
            self.base_url.clone(),
            ts_cell(self.update_time.as_ref()),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "kind": enum_json::<ProviderKind>(self.kind),
            "base_url": self.base_url,
            "update_time": ts_json(self.update_time.as_ref()),
        })
    }
}

impl Render for Model {
    const COLUMNS: &'static [&'static str] = &[
        "ID",
        "NAME",
        "PROVIDER",
        "UPSTREAM",
        "PATHWAY",
        "ENABLED",
        "DEFAULT",
        "MAX_OUT",
        "MAX_IN",
        "IN_MICROS/MTOK",
        "OUT_MICROS/MTOK",
        "MICROS/IMAGE",
        "FALLBACKS",
        "OPTIONS",
        "UPDATED",
    ];

    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.display_name.clone(),
            self.provider_id.clone(),
            self.upstream_model.clone(),
            enum_cell::<Pathway>(self.pathway),
            self.enabled.to_string(),
            self.is_default.to_string(),
            self.max_output_tokens.to_string(),
            self.max_input_tokens.to_string(),
            self.input_micros_per_mtok.to_string(),
            self.output_micros_per_mtok.to_string(),
            self.micros_per_image.to_string(),
            self.fallback_model_ids.join(", "),
            map_cell(&self.options),
            ts_cell(self.update_time.as_ref()),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "display_name": self.display_name,
            "provider_id": self.provider_id,
            "upstream_model": self.upstream_model,
            "pathway": enum_json::<Pathway>(self.pathway),
            "enabled": self.enabled,
            "is_default": self.is_default,
            "max_output_tokens": self.max_output_tokens,
            "max_input_tokens": self.max_input_tokens,
            "input_micros_per_mtok": self.input_micros_per_mtok,
            "output_micros_per_mtok": self.output_micros_per_mtok,
            "micros_per_image": self.micros_per_image,
            "fallback_model_ids": self.fallback_model_ids,
            "options": self.options,
            "update_time": ts_json(self.update_time.as_ref()),
        })
    }
}

impl Render for UsageRecord {
    const COLUMNS: &'static [&'static str] = &[
        "TIME",
        "REQUEST",
        "STUDIO",
        "USER",
        "MODEL",
        "PROVIDER",
        "PATHWAY",
        "IN_TOKENS",
        "OUT_TOKENS",
        "IMAGES",
        "COST_MICROS",
        "STATUS",
        "LATENCY",
        "TTFT",
        "METADATA",
    ];

    fn cells(&self) -> Vec<String> {
        let mut status = code_name(Code::from_i32(self.status_code)).to_owned();
        if !self.error_reason.is_empty() {
            status = format!("{status} ({})", self.error_reason);
        }
        vec![
            ts_cell(self.create_time.as_ref()),
            self.request_id.clone(),
            self.studio_id.clone(),
            self.user_id.clone(),
            self.model_id.clone(),
            self.provider_id.clone(),
            enum_cell::<Pathway>(self.pathway),
            self.input_tokens.to_string(),
            self.output_tokens.to_string(),
            self.images.to_string(),
            self.cost_micros.to_string(),
            status,
            duration_cell(self.latency.as_ref()),
            duration_cell(self.time_to_first_token.as_ref()),
            map_cell(&self.metadata),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "request_id": self.request_id,
            "studio_id": self.studio_id,
            "user_id": self.user_id,
            "model_id": self.model_id,
            "provider_id": self.provider_id,
            "pathway": enum_json::<Pathway>(self.pathway),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "images": self.images,
            "cost_micros": self.cost_micros,
            "status_code": self.status_code,
            "error_reason": self.error_reason,
            "latency": duration_json(self.latency.as_ref()),
            "time_to_first_token": duration_json(self.time_to_first_token.as_ref()),
            "create_time": ts_json(self.create_time.as_ref()),
            "metadata": self.metadata,
        })
    }
}

impl Render for UsageAggregate {
    const COLUMNS: &'static [&'static str] = &[
        "STUDIO",
        "USER",
        "MODEL",
        "DAY",
        "CALLS",
        "FAILED",
        "IN_TOKENS",
        "OUT_TOKENS",
        "IMAGES",
        "COST_MICROS",
    ];
    // Only the grouped dimensions are filled in.
    const SPARSE: bool = true;

    fn cells(&self) -> Vec<String> {
        vec![
            self.studio_id.clone(),
            self.user_id.clone(),
            self.model_id.clone(),
            self.day.clone(),
            self.calls.to_string(),
            self.failed_calls.to_string(),
            self.input_tokens.to_string(),
            self.output_tokens.to_string(),
            self.images.to_string(),
            self.cost_micros.to_string(),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "studio_id": self.studio_id,
            "user_id": self.user_id,
            "model_id": self.model_id,
            "day": self.day,
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "images": self.images,
            "cost_micros": self.cost_micros,
        })
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table
}

/// One row per item; with `sparse`, columns empty in every row are dropped.
fn rows_table(columns: &[&str], rows: Vec<Vec<String>>, sparse: bool) -> Table {
    let keep: Vec<bool> = (0..columns.len())
        .map(|c| !sparse || rows.is_empty() || rows.iter().any(|row| !row[c].is_empty()))
        .collect();
    let pick = |cells: Vec<String>| -> Vec<String> {
        cells
            .into_iter()
            .zip(&keep)
            .filter_map(|(cell, keep)| keep.then_some(cell))
            .collect()
    };
    let mut table = new_table();
    table.set_header(pick(columns.iter().map(|c| c.to_string()).collect()));
    for row in rows {
        table.add_row(pick(row));
    }
    table
}

/// One `COLUMN | value` row per field of one item.
fn item_table<T: Render>(item: &T) -> Table {
    let mut table = new_table();
    for (column, cell) in T::COLUMNS.iter().zip(item.cells()) {
        table.add_row(vec![column.to_string(), cell]);
    }
    table
}

/// Prints responses on stdout, as tables or as JSON.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    pub(super) json: bool,
}

impl Output {
    fn print_json(value: &Value) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(value)?);
        Ok(())
    }

    fn item_json<T: Render>(field: &str, item: Option<&T>) -> serde_json::Map<String, Value> {
        let mut object = serde_json::Map::new();
        object.insert(field.to_owned(), item.map_or(Value::Null, T::to_json));
        object
    }

    /// A response holding one message in `field`.
    pub(super) fn item<T: Render>(&self, field: &str, item: Option<&T>) -> Result<()> {
        if self.json {
            return Self::print_json(&Value::Object(Self::item_json(field, item)));
        }
        match item {
            Some(item) => println!("{}", item_table(item)),
            None => println!("(the response holds no {field})"),
        }
        Ok(())
    }

    /// A response holding one message in `field` and its one-time `secret`.
    pub(super) fn item_with_secret<T: Render>(
        &self,
        field: &str,
        item: Option<&T>,
        secret: &str,
    ) -> Result<()> {
        if self.json {
            let mut object = Self::item_json(field, item);
            object.insert("secret".to_owned(), Value::from(secret));
            return Self::print_json(&Value::Object(object));
        }
        self.item(field, item)?;
        println!();
        println!("Secret (shown only this once; City keeps only its hash, so store it now):");
        println!("{secret}");
        Ok(())
    }

    /// One or more pages of a list response.
    pub(super) fn list<T: Render>(&self, listing: &Listing<T>) -> Result<()> {
        if self.json {
            return Self::print_json(&json!({
                listing.field: listing.items.iter().map(T::to_json).collect::<Vec<_>>(),
                "next_page_token": listing.next_page_token,
            }));
        }
        if listing.items.is_empty() {
            println!("No {} found.", listing.field);
        } else {
            let rows = listing.items.iter().map(T::cells).collect();
            println!("{}", rows_table(T::COLUMNS, rows, T::SPARSE));
        }
        if !listing.next_page_token.is_empty() {
            eprintln!(
                "More {} exist: pass --all, or a larger --page-size.",
                listing.field
            );
        }
        Ok(())
    }

    /// An empty response to deleting `what`.
    pub(super) fn deleted(&self, what: &str, id: &str) -> Result<()> {
        if self.json {
            return Self::print_json(&json!({}));
        }
        println!("Deleted {what} `{id}`.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        let t = ts(1_700_000_000, 250_000_000);
        assert_eq!(ts_cell(Some(&t)), "2023-11-14T22:13:20Z");
        assert_eq!(ts_json(Some(&t)), json!("2023-11-14T22:13:20.250000000Z"));
        assert_eq!(ts_cell(None), "");
        assert_eq!(ts_json(None), Value::Null);
    }

    #[test]
    fn out_of_range_timestamps_do_not_panic() {
        assert_eq!(ts_cell(Some(&ts(-1, 0))), "-1.000000000s since epoch");
        assert!(ts_cell(Some(&ts(i64::MAX, 0))).ends_with("since epoch"));
        assert!(ts_cell(Some(&ts(0, -5))).ends_with("since epoch"));
    }

    #[test]
    fn durations_follow_the_proto3_json_form() {
        let d = |seconds, nanos| Some(prost_types::Duration { seconds, nanos });
        assert_eq!(duration_json(d(3, 0).as_ref()), json!("3s"));
        assert_eq!(duration_json(d(1, 500_000_000).as_ref()), json!("1.500s"));
        assert_eq!(duration_json(d(0, 1_000).as_ref()), json!("0.000001s"));
        assert_eq!(duration_json(d(0, 7).as_ref()), json!("0.000000007s"));
        assert_eq!(duration_json(d(-1, -500_000_000).as_ref()), json!("-1.500s"));
        assert_eq!(duration_cell(d(1, 234_567_000).as_ref()), "1s 234ms 567us");
    }

    #[test]
    fn enums_show_by_name_or_number() {
        let active = StudioStatus::Active as i32;
        assert_eq!(enum_cell::<StudioStatus>(active), "ACTIVE");
        assert_eq!(enum_json::<StudioStatus>(active), json!("STUDIO_STATUS_ACTIVE"));
        assert_eq!(enum_cell::<Pathway>(42), "42");
        assert_eq!(enum_json::<Pathway>(42), json!(42));
    }

    #[test]
    fn every_render_has_one_cell_per_column() {
        fn check<T: Render + Default>() {
            assert_eq!(T::default().cells().len(), T::COLUMNS.len());
        }
        check::<Studio>();
        check::<StudioKey>();
        check::<UserToken>();
        check::<Provider>();
        check::<Model>();
        check::<UsageRecord>();
        check::<UsageAggregate>();
    }

    #[test]
    fn sparse_tables_drop_empty_columns() {
        let rows = vec![
            vec!["s1".to_owned(), String::new(), "3".to_owned()],
            vec!["s2".to_owned(), String::new(), "4".to_owned()],
        ];
        let table = rows_table(&["STUDIO", "USER", "CALLS"], rows.clone(), true).to_string();
        assert!(table.contains("STUDIO") && !table.contains("USER"), "{table}");
        let table = rows_table(&["STUDIO", "USER", "CALLS"], rows, false).to_string();
        assert!(table.contains("USER"), "{table}");
    }

    #[test]
    fn model_json_keeps_lists_and_maps() {
        let model = Model {
            id: "m".into(),
            pathway: Pathway::Text as i32,
            fallback_model_ids: vec!["a".into(), "b".into()],
            options: HashMap::from([("fail".into(), "true".into())]),
            ..Default::default()
        };
        let value = model.to_json();
        assert_eq!(value["pathway"], json!("PATHWAY_TEXT"));
        assert_eq!(value["fallback_model_ids"], json!(["a", "b"]));
        assert_eq!(value["options"], json!({"fail": "true"}));
        assert_eq!(value["update_time"], Value::Null);
    }
}

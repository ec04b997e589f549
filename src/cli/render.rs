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
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Map, Value};
use tonic::Code;

use super::client::Listing;
use crate::proto::{
    Hook, HookDelivery, HookDeliveryState, HookEvent, HookFailurePolicy, LimitStanding, Limits,
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

proto_enum!(
    StudioStatus => "STUDIO_STATUS_",
    Pathway => "PATHWAY_",
    ProviderKind => "PROVIDER_KIND_",
    HookEvent => "HOOK_EVENT_",
    HookFailurePolicy => "HOOK_FAILURE_POLICY_",
    HookDeliveryState => "HOOK_DELIVERY_STATE_"
);

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

/// One field of a shown message: a table cell under the field's name in
/// capitals, and a JSON member under its proto name.
pub(super) struct Field {
    name: &'static str,
    cell: String,
    json: Value,
}

impl Field {
    fn new(name: &'static str, cell: String, json: Value) -> Self {
        Self { name, cell, json }
    }

    fn text(name: &'static str, value: &str) -> Self {
        Self::new(name, value.to_owned(), Value::from(value))
    }

    fn number(name: &'static str, value: impl Into<i64>) -> Self {
        let value = value.into();
        Self::new(name, value.to_string(), Value::from(value))
    }

    /// An optional number: blank in the table, `null` in JSON when unset.
    fn optional(name: &'static str, value: Option<i64>) -> Self {
        let cell = value.map(|v| v.to_string()).unwrap_or_default();
        Self::new(name, cell, value.map_or(Value::Null, Value::from))
    }

    fn flag(name: &'static str, value: bool) -> Self {
        Self::new(name, value.to_string(), Value::from(value))
    }

    fn enumeration<E: ProtoEnum>(name: &'static str, value: i32) -> Self {
        Self::new(name, enum_cell::<E>(value), enum_json::<E>(value))
    }

    /// A repeated enum: short names joined in the table, full names in JSON.
    fn enumerations<E: ProtoEnum>(name: &'static str, values: &[i32]) -> Self {
        let cells: Vec<_> = values.iter().map(|v| enum_cell::<E>(*v)).collect();
        let json = values.iter().map(|v| enum_json::<E>(*v)).collect();
        Self::new(name, cells.join(", "), Value::Array(json))
    }

    /// A gRPC status code: its name in the table, its number in JSON.
    fn code(name: &'static str, value: i32) -> Self {
        let cell = code_name(Code::from_i32(value)).to_owned();
        Self::new(name, cell, Value::from(value))
    }

    fn time(name: &'static str, value: Option<&prost_types::Timestamp>) -> Self {
        Self::new(name, ts_cell(value), ts_json(value))
    }

    fn duration(name: &'static str, value: Option<&prost_types::Duration>) -> Self {
        Self::new(name, duration_cell(value), duration_json(value))
    }

    fn list(name: &'static str, values: &[String]) -> Self {
        Self::new(name, values.join(", "), Value::from(values))
    }

    fn map(name: &'static str, map: &HashMap<String, String>) -> Self {
        let json = map
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())));
        Self::new(name, map_cell(map), Value::Object(json.collect()))
    }

    /// Shows `blank` in the table where the cell would be empty.
    fn or(mut self, blank: &str) -> Self {
        if self.cell.is_empty() {
            self.cell = blank.to_owned();
        }
        self
    }

    fn column(&self) -> String {
        self.name.to_uppercase()
    }
}

/// A message the CLI shows, as a table row or as a JSON object.
pub(super) trait Render: Default {
    /// Whether tables drop the columns that are empty in every row.
    const SPARSE: bool = false;
    /// Every field, in proto order.
    fn fields(&self) -> Vec<Field>;
}

fn columns<T: Render>() -> Vec<String> {
    T::default().fields().iter().map(Field::column).collect()
}

fn cells<T: Render>(item: &T) -> Vec<String> {
    item.fields().into_iter().map(|f| f.cell).collect()
}

fn to_json<T: Render>(item: &T) -> Value {
    let members = item
        .fields()
        .into_iter()
        .map(|f| (f.name.to_owned(), f.json));
    Value::Object(members.collect())
}

impl Render for Studio {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("display_name", &self.display_name),
            Field::enumeration::<StudioStatus>("status", self.status),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("update_time", self.update_time.as_ref()),
            Field::list("allowed_model_ids", &self.allowed_model_ids).or("all"),
        ]
    }
}

impl Render for StudioKey {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("studio_id", &self.studio_id),
            Field::text("display_name", &self.display_name),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("revoke_time", self.revoke_time.as_ref()),
        ]
    }
}

impl Render for UserToken {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("studio_id", &self.studio_id),
            Field::text("user_id", &self.user_id),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("expire_time", self.expire_time.as_ref()).or("never"),
            Field::time("revoke_time", self.revoke_time.as_ref()),
        ]
    }
}

impl Render for Provider {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::enumeration::<ProviderKind>("kind", self.kind),
            Field::text("base_url", &self.base_url),
            Field::text("api_key_hint", &self.api_key_hint),
            Field::time("api_key_update_time", self.api_key_update_time.as_ref()),
            Field::map("headers", &self.headers),
            Field::time("update_time", self.update_time.as_ref()),
        ]
    }
}

impl Render for Model {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("display_name", &self.display_name),
            Field::text("provider_id", &self.provider_id),
            Field::text("upstream_model", &self.upstream_model),
            Field::enumeration::<Pathway>("pathway", self.pathway),
            Field::flag("enabled", self.enabled.unwrap_or(true)),
            Field::flag("is_default", self.is_default),
            Field::number("max_output_tokens", self.max_output_tokens),
            Field::number("max_input_tokens", self.max_input_tokens),
            Field::number("input_micros_per_mtok", self.input_micros_per_mtok),
            Field::number("output_micros_per_mtok", self.output_micros_per_mtok),
            Field::number("micros_per_image", self.micros_per_image),
            Field::list("fallback_model_ids", &self.fallback_model_ids),
            Field::map("options", &self.options),
            Field::time("update_time", self.update_time.as_ref()),
        ]
    }
}

impl Render for UsageRecord {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("request_id", &self.request_id),
            Field::text("studio_id", &self.studio_id),
            Field::text("user_id", &self.user_id),
            Field::text("model_id", &self.model_id),
            Field::text("provider_id", &self.provider_id),
            Field::enumeration::<Pathway>("pathway", self.pathway),
            Field::number("input_tokens", self.input_tokens),
            Field::number("output_tokens", self.output_tokens),
            Field::number("images", self.images),
            Field::number("cost_micros", self.cost_micros),
            Field::code("status_code", self.status_code),
            Field::text("error_reason", &self.error_reason),
            Field::duration("latency", self.latency.as_ref()),
            Field::duration("time_to_first_token", self.time_to_first_token.as_ref()),
            Field::time("create_time", self.create_time.as_ref()),
            Field::map("metadata", &self.metadata),
        ]
    }
}

impl Render for UsageAggregate {
    // Only the grouped dimensions are filled in.
    const SPARSE: bool = true;

    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("studio_id", &self.studio_id),
            Field::text("user_id", &self.user_id),
            Field::text("model_id", &self.model_id),
            Field::text("day", &self.day),
            Field::text("hour", &self.hour),
            Field::text("month", &self.month),
            Field::number("calls", self.calls),
            Field::number("failed_calls", self.failed_calls),
            Field::number("input_tokens", self.input_tokens),
            Field::number("output_tokens", self.output_tokens),
            Field::number("images", self.images),
            Field::number("cost_micros", self.cost_micros),
        ]
    }
}

impl Render for Limits {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::optional("requests_per_minute", self.requests_per_minute).or("none"),
            Field::optional("tokens_per_minute", self.tokens_per_minute).or("none"),
            Field::optional("tokens_per_day", self.tokens_per_day).or("none"),
            Field::optional("cost_micros_per_day", self.cost_micros_per_day).or("none"),
            Field::optional("cost_micros_per_month", self.cost_micros_per_month).or("none"),
        ]
    }
}

impl Render for LimitStanding {
    // Shown in the order people read them: the window before the numbers.
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("scope", &self.scope),
            Field::text("limit", &self.limit),
            Field::text("window", &self.window),
            Field::number("value", self.value),
            Field::number("used", self.used),
            Field::number("reserved", self.reserved),
            Field::number("remaining", self.remaining),
            Field::time("reset_time", self.reset_time.as_ref()),
        ]
    }
}

impl Render for Hook {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("studio_id", &self.studio_id).or(CITY_WIDE),
            Field::text("url", &self.url),
            Field::enumerations::<HookEvent>("events", &self.events),
            Field::duration("timeout", self.timeout.as_ref()),
            Field::enumeration::<HookFailurePolicy>("failure_policy", self.failure_policy),
            Field::flag("include_prompt", self.include_prompt),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("update_time", self.update_time.as_ref()),
        ]
    }
}

impl Render for HookDelivery {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("hook_id", &self.hook_id),
            Field::text("studio_id", &self.studio_id).or(CITY_WIDE),
            Field::text("request_id", &self.request_id),
            Field::enumeration::<HookDeliveryState>("state", self.state),
            Field::number("attempts", self.attempts),
            Field::time("next_attempt_time", self.next_attempt_time.as_ref()),
            Field::text("last_error", &self.last_error),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("deliver_time", self.deliver_time.as_ref()),
        ]
    }
}

/// How the table shows the empty studio id of a City-wide hook.
const CITY_WIDE: &str = "(city-wide)";

/// The header row of a CSV of `T`: its JSON member names.
pub(super) fn csv_header<T: Render>() -> String {
    let names = T::default().fields().into_iter().map(|f| f.name.to_owned());
    csv_line(names)
}

/// One CSV row of `item`, holding its JSON values: strings as they are
/// (but defused, see `defuse_formula`), numbers and booleans as text, `null`
/// as an empty cell, and lists and maps as compact JSON.
pub(super) fn csv_row<T: Render>(item: &T) -> String {
    let values = item.fields().into_iter().map(|f| match f.json {
        Value::Null => String::new(),
        Value::String(s) => defuse_formula(s),
        other => other.to_string(),
    });
    csv_line(values)
}

/// A text cell that a spreadsheet would run as a formula (it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as
/// OWASP advises for CSV: request ids, user ids and error text come from
/// callers. Numbers are not strings here, so a negative number stays one.
fn defuse_formula(cell: String) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// Cells joined by commas and ended by CRLF, as RFC 4180 has it.
fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let mut line = cells.map(|c| csv_quote(&c)).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// A CSV cell: quoted, with its quotes doubled, when it holds a comma, a
/// quote or a line break, or starts or ends with a space; else as it is.
fn csv_quote(cell: &str) -> String {
    let needs_quotes =
        cell.contains([',', '"', '\n', '\r']) || cell.starts_with(' ') || cell.ends_with(' ');
    if needs_quotes {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_owned()
    }
}

fn new_table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table
}

/// One row per item; with `sparse`, columns empty in every row are dropped.
fn rows_table(columns: Vec<String>, rows: Vec<Vec<String>>, sparse: bool) -> Table {
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
    table.set_header(pick(columns));
    for row in rows {
        table.add_row(pick(row));
    }
    table
}

/// One `COLUMN | value` row per field of one item.
fn item_table<T: Render>(item: &T) -> Table {
    let mut table = new_table();
    for field in item.fields() {
        table.add_row(vec![field.column(), field.cell]);
    }
    table
}

/// How City stores a secret it shows once.
#[derive(Debug, Clone, Copy)]
pub(super) enum SecretKept {
    /// As a hash: a credential City checks (studio keys, user tokens).
    Hashed,
    /// Encrypted with the master key: a key City signs with (hook secrets).
    Encrypted,
}

/// Prints responses on stdout, as tables or as JSON.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    pub(super) json: bool,
}

impl Output {
    fn print_json(value: Value) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(&value)?);
        Ok(())
    }

    /// `{field: item}`, as the response message holding `item`.
    fn item_json<T: Render>(field: &str, item: Option<&T>) -> Map<String, Value> {
        let item = item.map_or(Value::Null, to_json);
        Map::from_iter([(field.to_owned(), item)])
    }

    /// A response holding one message in `field`.
    pub(super) fn item<T: Render>(&self, field: &str, item: Option<&T>) -> Result<()> {
        if self.json {
            return Self::print_json(Value::Object(Self::item_json(field, item)));
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
        kept: SecretKept,
    ) -> Result<()> {
        if self.json {
            let mut object = Self::item_json(field, item);
            object.insert("secret".to_owned(), Value::from(secret));
            return Self::print_json(Value::Object(object));
        }
        self.item(field, item)?;
        let kept = match kept {
            SecretKept::Hashed => "City keeps only its hash",
            SecretKept::Encrypted => "City keeps it encrypted and never shows it again",
        };
        println!();
        println!("Secret (shown only this once; {kept}, so store it now):");
        println!("{secret}");
        Ok(())
    }

    /// One or more pages of a list response.
    pub(super) fn list<T: Render>(&self, listing: &Listing<T>) -> Result<()> {
        if self.json {
            let items = listing.items.iter().map(to_json).collect();
            let token = Value::from(listing.next_page_token.as_str());
            let members = [
                (listing.field.to_owned(), Value::Array(items)),
                ("next_page_token".to_owned(), token),
            ];
            return Self::print_json(Value::Object(Map::from_iter(members)));
        }
        Self::print_rows(listing.field, &listing.items);
        if !listing.next_page_token.is_empty() {
            eprintln!(
                "More {} exist: pass --all, or a larger --page-size.",
                listing.field
            );
        }
        Ok(())
    }

    /// A response holding one unpaged list of messages in `field`.
    pub(super) fn items<T: Render>(&self, field: &str, items: &[T]) -> Result<()> {
        if self.json {
            let items = items.iter().map(to_json).collect();
            let members = [(field.to_owned(), Value::Array(items))];
            return Self::print_json(Value::Object(Map::from_iter(members)));
        }
        Self::print_rows(field, items);
        Ok(())
    }

    /// A table with a row per item, or a line saying there are none.
    fn print_rows<T: Render>(field: &str, items: &[T]) {
        if items.is_empty() {
            println!("No {field} found.");
        } else {
            let rows = items.iter().map(cells).collect();
            println!("{}", rows_table(columns::<T>(), rows, T::SPARSE));
        }
    }

    /// The empty response to deleting `what`.
    pub(super) fn deleted(&self, what: &str, id: &str) -> Result<()> {
        if self.json {
            return Self::print_json(Value::Object(Map::new()));
        }
        println!("Deleted {what} `{id}`.");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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
        assert_eq!(
            duration_json(d(-1, -500_000_000).as_ref()),
            json!("-1.500s")
        );
        assert_eq!(duration_cell(d(1, 234_567_000).as_ref()), "1s 234ms 567us");
    }

    #[test]
    fn enums_show_by_name_or_number() {
        let active = StudioStatus::Active as i32;
        assert_eq!(enum_cell::<StudioStatus>(active), "ACTIVE");
        assert_eq!(
            enum_json::<StudioStatus>(active),
            json!("STUDIO_STATUS_ACTIVE")
        );
        assert_eq!(enum_cell::<Pathway>(42), "42");
        assert_eq!(enum_json::<Pathway>(42), json!(42));
    }

    #[test]
    fn columns_are_the_proto_field_names() {
        assert_eq!(
            columns::<Studio>(),
            [
                "ID",
                "DISPLAY_NAME",
                "STATUS",
                "CREATE_TIME",
                "UPDATE_TIME",
                "ALLOWED_MODEL_IDS"
            ]
        );
        let token = UserToken::default();
        assert_eq!(cells(&token)[4], "never");
        assert_eq!(to_json(&token)["expire_time"], Value::Null);
    }

    #[test]
    fn usage_records_show_status_names_and_keep_codes_in_json() {
        let record = UsageRecord {
            status_code: Code::NotFound as i32,
            error_reason: "MODEL_NOT_FOUND".into(),
            latency: Some(prost_types::Duration {
                seconds: 0,
                nanos: 12_000_000,
            }),
            ..Default::default()
        };
        let row = cells(&record);
        assert!(row.contains(&"NOT_FOUND".to_owned()), "{row:?}");
        assert!(row.contains(&"12ms".to_owned()), "{row:?}");
        let value = to_json(&record);
        assert_eq!(value["status_code"], json!(5));
        assert_eq!(value["error_reason"], json!("MODEL_NOT_FOUND"));
        assert_eq!(value["latency"], json!("0.012s"));
        assert_eq!(value["time_to_first_token"], Value::Null);
        assert_eq!(
            value.as_object().unwrap().len(),
            columns::<UsageRecord>().len()
        );
    }

    #[test]
    fn sparse_tables_drop_empty_columns() {
        let rows = vec![
            vec!["s1".to_owned(), String::new(), "3".to_owned()],
            vec!["s2".to_owned(), String::new(), "4".to_owned()],
        ];
        let columns = || ["STUDIO", "USER", "CALLS"].map(String::from).to_vec();
        let table = rows_table(columns(), rows.clone(), true).to_string();
        assert!(
            table.contains("STUDIO") && !table.contains("USER"),
            "{table}"
        );
        let table = rows_table(columns(), rows, false).to_string();
        assert!(table.contains("USER"), "{table}");
    }

    #[test]
    fn studios_show_their_allowed_models_or_all() {
        let open = Studio::default();
        assert_eq!(cells(&open)[5], "all");
        assert_eq!(to_json(&open)["allowed_model_ids"], json!([]));
        let narrow = Studio {
            allowed_model_ids: vec!["fast".into(), "slow".into()],
            ..Default::default()
        };
        assert_eq!(cells(&narrow)[5], "fast, slow");
        assert_eq!(
            to_json(&narrow)["allowed_model_ids"],
            json!(["fast", "slow"])
        );
    }

    #[test]
    fn unset_limits_show_none_and_null() {
        let limits = Limits {
            tokens_per_day: Some(50_000),
            cost_micros_per_month: Some(0),
            ..Default::default()
        };
        assert_eq!(cells(&limits), ["none", "none", "50000", "none", "0"]);
        let value = to_json(&limits);
        assert_eq!(value["tokens_per_day"], json!(50_000));
        assert_eq!(value["cost_micros_per_month"], json!(0));
        assert_eq!(value["requests_per_minute"], Value::Null);
    }

    #[test]
    fn standing_rows_put_the_window_before_the_numbers() {
        assert_eq!(
            columns::<LimitStanding>(),
            [
                "SCOPE",
                "LIMIT",
                "WINDOW",
                "VALUE",
                "USED",
                "RESERVED",
                "REMAINING",
                "RESET_TIME"
            ]
        );
        let standing = LimitStanding {
            scope: "user".into(),
            limit: "tokens_per_day".into(),
            value: 100,
            window: "day".into(),
            used: 30,
            reserved: 20,
            remaining: 50,
            reset_time: Some(ts(1_738_368_000, 0)),
        };
        assert_eq!(
            cells(&standing),
            [
                "user",
                "tokens_per_day",
                "day",
                "100",
                "30",
                "20",
                "50",
                "2025-02-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn aggregates_show_hours_and_months() {
        let row = UsageAggregate {
            hour: "2025-01-31T08".into(),
            month: "2025-01".into(),
            ..Default::default()
        };
        let value = to_json(&row);
        assert_eq!(value["hour"], json!("2025-01-31T08"));
        assert_eq!(value["month"], json!("2025-01"));
    }

    #[test]
    fn csv_cells_are_quoted_only_when_needed() {
        assert_eq!(csv_quote("plain"), "plain");
        assert_eq!(csv_quote(""), "");
        assert_eq!(csv_quote("a,b"), "\"a,b\"");
        assert_eq!(csv_quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_quote("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_quote("cr\r"), "\"cr\r\"");
        assert_eq!(csv_quote(" padded"), "\" padded\"");
        assert_eq!(csv_quote("\""), "\"\"\"\"");
        assert_eq!(
            csv_line(["a", "b,c", ""].into_iter().map(String::from)),
            "a,\"b,c\",\r\n"
        );
    }

    #[test]
    fn text_cells_that_spreadsheets_would_run_are_defused() {
        let record = UsageRecord {
            request_id: "=HYPERLINK(\"http://x\")".into(),
            studio_id: "@acme".into(),
            user_id: "-1+1".into(),
            error_reason: "plain".into(),
            ..Default::default()
        };
        let row = csv_row(&record);
        assert!(
            row.starts_with("\"'=HYPERLINK(\"\"http://x\"\")\",'@acme,'-1+1,"),
            "{row}"
        );
        assert!(row.contains(",plain,"), "{row}");
        assert_eq!(defuse_formula("\tcmd".into()), "'\tcmd");
        assert_eq!(defuse_formula("a=b".into()), "a=b");
    }

    #[test]
    fn usage_csv_rows_hold_the_json_values() {
        let header = csv_header::<UsageRecord>();
        assert!(
            header.starts_with("request_id,studio_id,user_id,model_id,"),
            "{header}"
        );
        assert!(header.ends_with(",create_time,metadata\r\n"), "{header}");
        let record = UsageRecord {
            request_id: "r1".into(),
            studio_id: "acme".into(),
            user_id: "u,1".into(),
            pathway: Pathway::Text as i32,
            input_tokens: 12,
            cost_micros: 345,
            error_reason: "say \"no\"\nplease".into(),
            latency: Some(prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000,
            }),
            create_time: Some(ts(1_738_281_600, 0)),
            metadata: HashMap::from([("k".into(), "v".into())]),
            ..Default::default()
        };
        let row = csv_row(&record);
        assert_eq!(
            row,
            "r1,acme,\"u,1\",,,PATHWAY_TEXT,12,0,0,345,0,\"say \"\"no\"\"\nplease\",1.500s,,\
             2025-01-31T00:00:00Z,\"{\"\"k\"\":\"\"v\"\"}\"\r\n"
        );
        assert_eq!(header.split(',').count(), columns::<UsageRecord>().len());
    }

    #[test]
    fn hooks_show_their_events_and_city_wide_owner() {
        let hook = Hook {
            id: "hk_1".into(),
            url: "http://h/x".into(),
            events: vec![HookEvent::BeforeCall as i32, HookEvent::AfterCall as i32],
            timeout: Some(prost_types::Duration {
                seconds: 0,
                nanos: 500_000_000,
            }),
            failure_policy: HookFailurePolicy::FailClosed as i32,
            ..Default::default()
        };
        let row = cells(&hook);
        assert_eq!(
            row[..6],
            [
                "hk_1",
                "(city-wide)",
                "http://h/x",
                "BEFORE_CALL, AFTER_CALL",
                "500ms",
                "FAIL_CLOSED"
            ]
        );
        let value = to_json(&hook);
        assert_eq!(value["studio_id"], json!(""));
        assert_eq!(
            value["events"],
            json!(["HOOK_EVENT_BEFORE_CALL", "HOOK_EVENT_AFTER_CALL"])
        );
        assert_eq!(value["timeout"], json!("0.500s"));
        assert_eq!(
            value["failure_policy"],
            json!("HOOK_FAILURE_POLICY_FAIL_CLOSED")
        );
        assert_eq!(value["include_prompt"], json!(false));
    }

    #[test]
    fn deliveries_show_state_attempts_and_the_last_error() {
        let delivery = HookDelivery {
            id: "msg_1".into(),
            hook_id: "hk_1".into(),
            studio_id: "acme".into(),
            state: HookDeliveryState::Pending as i32,
            attempts: 2,
            last_error: "HTTP 500".into(),
            next_attempt_time: Some(ts(1_738_281_600, 0)),
            ..Default::default()
        };
        assert_eq!(
            columns::<HookDelivery>(),
            [
                "ID",
                "HOOK_ID",
                "STUDIO_ID",
                "REQUEST_ID",
                "STATE",
                "ATTEMPTS",
                "NEXT_ATTEMPT_TIME",
                "LAST_ERROR",
                "CREATE_TIME",
                "DELIVER_TIME"
            ]
        );
        let row = cells(&delivery);
        assert_eq!(
            row[4..8],
            ["PENDING", "2", "2025-01-31T00:00:00Z", "HTTP 500"]
        );
        let value = to_json(&delivery);
        assert_eq!(value["state"], json!("HOOK_DELIVERY_STATE_PENDING"));
        assert_eq!(value["attempts"], json!(2));
        assert_eq!(value["deliver_time"], Value::Null);
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
        let value = to_json(&model);
        assert_eq!(value["pathway"], json!("PATHWAY_TEXT"));
        assert_eq!(value["fallback_model_ids"], json!(["a", "b"]));
        assert_eq!(value["options"], json!({"fail": "true"}));
        assert_eq!(value["update_time"], Value::Null);
    }
}

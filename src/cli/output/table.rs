//! The tables the admin CLI prints: a column per field, named after the
//! field in capitals, with cells written for people (short enum names,
//! times to the second, `none`, `never`, `all` where a field is unset).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use comfy_table::{ContentArrangement, Table, presets};
use downcity::proto::{
    HookDeliveryState, HookEvent, HookFailurePolicy, Pathway, ProviderKind, StudioStatus,
};
use pbjson_types::Timestamp;
use tonic::Code;

use crate::cli::status::code_name;

/// A proto enum, to show by name.
pub(super) trait ProtoEnum: TryFrom<i32> {
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

/// The name without its prefix (`ACTIVE`), or the number.
fn enum_cell<E: ProtoEnum>(value: i32) -> String {
    E::try_from(value).map_or(value.to_string(), |e| {
        let name = e.name();
        name.strip_prefix(E::PREFIX).unwrap_or(name).to_owned()
    })
}

/// Seconds from the epoch to 9999-12-31T23:59:59Z: what RFC 3339 can show.
const RFC3339_SECONDS: std::ops::Range<i64> = 0..253_402_300_800;

/// A timestamp as RFC 3339 in UTC, to the second.
fn timestamp(ts: &Timestamp) -> String {
    let in_range = RFC3339_SECONDS.contains(&ts.seconds) && (0..1_000_000_000).contains(&ts.nanos);
    if !in_range {
        return format!("{}.{:09}s since epoch", ts.seconds, ts.nanos);
    }
    let time = SystemTime::UNIX_EPOCH + Duration::new(ts.seconds as u64, ts.nanos as u32);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn ts_cell(ts: Option<&Timestamp>) -> String {
    ts.map(timestamp).unwrap_or_default()
}

/// A duration for people, to the microsecond (City adds microseconds): `1ms 234us`.
fn duration_cell(d: Option<&pbjson_types::Duration>) -> String {
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
/// capitals.
pub(crate) struct Field {
    name: &'static str,
    cell: String,
}

impl Field {
    pub(super) fn new(name: &'static str, cell: String) -> Self {
        Self { name, cell }
    }

    pub(super) fn text(name: &'static str, value: &str) -> Self {
        Self::new(name, value.to_owned())
    }

    pub(super) fn number(name: &'static str, value: impl Into<i64>) -> Self {
        Self::new(name, value.into().to_string())
    }

    /// An optional number: blank when unset.
    pub(super) fn optional(name: &'static str, value: Option<i64>) -> Self {
        Self::new(name, value.map(|v| v.to_string()).unwrap_or_default())
    }

    pub(super) fn flag(name: &'static str, value: bool) -> Self {
        Self::new(name, value.to_string())
    }

    pub(super) fn enumeration<E: ProtoEnum>(name: &'static str, value: i32) -> Self {
        Self::new(name, enum_cell::<E>(value))
    }

    /// A repeated enum: short names joined.
    pub(super) fn enumerations<E: ProtoEnum>(name: &'static str, values: &[i32]) -> Self {
        let cells: Vec<_> = values.iter().map(|v| enum_cell::<E>(*v)).collect();
        Self::new(name, cells.join(", "))
    }

    /// A gRPC status code, by name.
    pub(super) fn code(name: &'static str, value: i32) -> Self {
        Self::new(name, code_name(Code::from_i32(value)).to_owned())
    }

    pub(super) fn time(name: &'static str, value: Option<&Timestamp>) -> Self {
        Self::new(name, ts_cell(value))
    }

    pub(super) fn duration(name: &'static str, value: Option<&pbjson_types::Duration>) -> Self {
        Self::new(name, duration_cell(value))
    }

    pub(super) fn list(name: &'static str, values: &[String]) -> Self {
        Self::new(name, values.join(", "))
    }

    pub(super) fn map(name: &'static str, map: &HashMap<String, String>) -> Self {
        Self::new(name, map_cell(map))
    }

    /// Shows `blank` where the cell would be empty.
    pub(super) fn or(mut self, blank: &str) -> Self {
        if self.cell.is_empty() {
            self.cell = blank.to_owned();
        }
        self
    }

    fn column(&self) -> String {
        self.name.to_uppercase()
    }
}

/// A message the CLI shows as a table row.
pub(crate) trait Render: Default {
    /// Whether tables drop the columns that are empty in every row.
    const SPARSE: bool = false;
    /// Every field, in proto order.
    fn fields(&self) -> Vec<Field>;
}

pub(super) fn columns<T: Render>() -> Vec<String> {
    T::default().fields().iter().map(Field::column).collect()
}

pub(super) fn cells<T: Render>(item: &T) -> Vec<String> {
    item.fields().into_iter().map(|f| f.cell).collect()
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

/// A row per item, or `None` when there are no items.
pub(crate) fn list_table<T: Render>(items: &[T]) -> Option<Table> {
    if items.is_empty() {
        return None;
    }
    let rows = items.iter().map(cells).collect();
    Some(rows_table(columns::<T>(), rows, T::SPARSE))
}

/// One `COLUMN | value` row per field of one item.
pub(crate) fn item_table<T: Render>(item: &T) -> Table {
    let mut table = new_table();
    for field in item.fields() {
        table.add_row(vec![field.column(), field.cell]);
    }
    table
}

#[cfg(test)]
mod tests {
    use downcity::proto::{Pathway, StudioStatus};

    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc_to_the_second() {
        let t = ts(1_700_000_000, 250_000_000);
        assert_eq!(ts_cell(Some(&t)), "2023-11-14T22:13:20Z");
        assert_eq!(ts_cell(None), "");
    }

    #[test]
    fn out_of_range_timestamps_do_not_panic() {
        assert_eq!(ts_cell(Some(&ts(-1, 0))), "-1.000000000s since epoch");
        assert!(ts_cell(Some(&ts(i64::MAX, 0))).ends_with("since epoch"));
        assert!(ts_cell(Some(&ts(0, -5))).ends_with("since epoch"));
    }

    #[test]
    fn durations_show_to_the_microsecond() {
        let d = pbjson_types::Duration {
            seconds: 1,
            nanos: 234_567_000,
        };
        assert_eq!(duration_cell(Some(&d)), "1s 234ms 567us");
        assert_eq!(duration_cell(None), "");
    }

    #[test]
    fn enums_show_by_short_name_or_number() {
        let active = StudioStatus::Active as i32;
        assert_eq!(enum_cell::<StudioStatus>(active), "ACTIVE");
        assert_eq!(enum_cell::<Pathway>(42), "42");
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
}

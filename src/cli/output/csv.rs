//! Messages as CSV (RFC 4180: CRLF line ends, quotes where needed), with a
//! header row of the field names and a row per message holding its JSON
//! values: strings as they are (but defused, see [`defuse_formula`]),
//! numbers and booleans as text, `null` as an empty cell, and lists and
//! maps as compact JSON.

use std::io::Write;
use std::marker::PhantomData;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::json::{descriptor, to_json};

/// Writes messages of type `T` to `sink` as CSV, the header first.
pub(crate) struct CsvWriter<T, W: Write> {
    writer: csv::Writer<W>,
    columns: Vec<&'static str>,
    rows: PhantomData<fn(&T)>,
}

impl<T: Serialize + prost::Name, W: Write> CsvWriter<T, W> {
    /// Writes the header row: `T`'s field names, in proto order.
    pub(crate) fn new(sink: W) -> Result<Self> {
        let columns: Vec<_> = descriptor::<T>()?.field.iter().map(|f| f.name()).collect();
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(sink);
        writer.write_record(&columns)?;
        Ok(Self {
            writer,
            columns,
            rows: PhantomData,
        })
    }

    /// Writes one row.
    pub(crate) fn write(&mut self, item: &T) -> Result<()> {
        let value = to_json(item)?;
        let cells = self.columns.iter().map(|c| cell(&value[*c]));
        self.writer.write_record(cells)?;
        Ok(())
    }

    /// Flushes every row to the sink.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.writer.flush()?;
        Ok(())
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => defuse_formula(s),
        other => other.to_string(),
    }
}

/// A text cell that a spreadsheet would run as a formula (it starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`, as
/// OWASP advises for CSV: request ids, user ids and error text come from
/// callers. Numbers are not strings here, so a negative number stays one.
fn defuse_formula(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use downcity::proto::{Pathway, UsageRecord};
    use pbjson_types::{Duration, Timestamp};

    use super::*;

    fn csv_of(records: &[UsageRecord]) -> String {
        let mut out = Vec::new();
        let mut writer = CsvWriter::new(&mut out).unwrap();
        for record in records {
            writer.write(record).unwrap();
        }
        writer.finish().unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_header_holds_the_field_names_in_proto_order() {
        let text = csv_of(&[]);
        assert!(
            text.starts_with("request_id,studio_id,user_id,model_id,"),
            "{text}"
        );
        assert!(text.ends_with(",create_time,metadata\r\n"), "{text}");
        assert_eq!(text.split(',').count(), 16);
    }

    #[test]
    fn usage_csv_rows_hold_the_json_values() {
        let record = UsageRecord {
            request_id: "r1".into(),
            studio_id: "acme".into(),
            user_id: "u,1".into(),
            pathway: Pathway::Text as i32,
            input_tokens: 12,
            cost_micros: 345,
            error_reason: "say \"no\"\nplease".into(),
            latency: Some(Duration {
                seconds: 1,
                nanos: 500_000_000,
            }),
            create_time: Some(Timestamp {
                seconds: 1_738_281_600,
                nanos: 0,
            }),
            metadata: HashMap::from([("k".into(), "v".into())]),
            ..Default::default()
        };
        let text = csv_of(&[record]);
        let row = text.split_once("\r\n").unwrap().1;
        assert_eq!(
            row,
            "r1,acme,\"u,1\",,,PATHWAY_TEXT,12,0,0,345,0,\"say \"\"no\"\"\nplease\",1.500s,,\
             2025-01-31T00:00:00Z,\"{\"\"k\"\":\"\"v\"\"}\"\r\n"
        );
    }

    #[test]
    fn cells_are_quoted_only_when_needed() {
        let record = |request_id: &str| UsageRecord {
            request_id: request_id.into(),
            ..Default::default()
        };
        let first_cell = |id: &str| {
            let text = csv_of(&[record(id)]);
            let row = text.split_once("\r\n").unwrap().1.to_owned();
            row.strip_suffix(",,,,,PATHWAY_UNSPECIFIED,0,0,0,0,0,,,,,{}\r\n")
                .unwrap_or_else(|| panic!("{row:?}"))
                .to_owned()
        };
        assert_eq!(first_cell("plain"), "plain");
        assert_eq!(first_cell(""), "");
        assert_eq!(first_cell("a,b"), "\"a,b\"");
        assert_eq!(first_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(first_cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(first_cell("cr\r"), "\"cr\r\"");
        assert_eq!(first_cell("\""), "\"\"\"\"");
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
        let text = csv_of(&[record]);
        let row = text.split_once("\r\n").unwrap().1;
        assert!(
            row.starts_with("\"'=HYPERLINK(\"\"http://x\"\")\",'@acme,'-1+1,"),
            "{row}"
        );
        assert!(row.contains(",plain,"), "{row}");
        assert_eq!(defuse_formula("\tcmd"), "'\tcmd");
        assert_eq!(defuse_formula("a=b"), "a=b");
        assert_eq!(cell(&Value::from(-5)), "-5");
    }
}

//! Markdown tables of BENCHMARKS.md, shared by the report and the scenarios
//! that write their own sections.

use std::fmt::Write as _;

/// A `### title` heading and a table of `rows` under `headers`.
pub fn section(out: &mut String, title: &str, headers: &[&str], rows: Vec<Vec<String>>) {
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(headers.len()));
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out.push('\n');
}

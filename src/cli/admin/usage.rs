//! `downcity admin usage`: list, sum and export usage records.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use downcity::proto::{
    AggregateUsageRequest, ListUsageRecordsRequest, UsageDimension, UsageFilter, UsageRecord,
};
use pbjson_types::Timestamp;

use super::args::{parse_time, proto_choice};
use crate::cli::connection::Client;
use crate::cli::output::Output;
use crate::cli::output::csv::CsvWriter;
use crate::cli::paging::{PageArgs, collect, for_each_page};

#[derive(Debug, Subcommand)]
pub(super) enum UsageCommand {
    /// List usage records, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Sum usage records, grouped by the chosen dimensions.
    Aggregate {
        /// Dimensions to group by; none sums everything into one row.
        #[arg(long, value_enum, value_delimiter = ',')]
        by: Vec<DimensionArg>,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Write every matching usage record as CSV, newest first, with a
    /// header row (the fields and values of `usage list --json`).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// Which usage records to include.
#[derive(Debug, Args)]
pub(super) struct FilterArgs {
    /// Only this studio.
    #[arg(long)]
    studio: Option<String>,
    /// Only this user.
    #[arg(long)]
    user: Option<String>,
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// Only calls at or after this time: RFC 3339 (`2025-01-31T08:00:00Z`,
    /// `2025-01-31`) or a duration ago (`24h`, `7d`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only calls before this time, in the same forms as --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<SystemTime>,
}

impl FilterArgs {
    fn into_proto(self) -> UsageFilter {
        UsageFilter {
            studio_id: self.studio.unwrap_or_default(),
            user_id: self.user.unwrap_or_default(),
            model_id: self.model.unwrap_or_default(),
            start_time: self.since.map(timestamp),
            end_time: self.until.map(timestamp),
        }
    }
}

proto_choice! {
    /// A dimension to group usage by.
    DimensionArg => UsageDimension {
        /// Group by studio.
        Studio,
        /// Group by studio and user.
        User,
        /// Group by model.
        Model,
        /// Group by calendar day (UTC).
        Day,
        /// Group by hour (UTC).
        Hour,
        /// Group by calendar month (UTC).
        Month,
    }
}

pub(super) async fn run(client: &mut Client, out: Output, command: UsageCommand) -> Result<()> {
    match command {
        UsageCommand::List { filter, page } => {
            let request = ListUsageRecordsRequest {
                filter: Some(filter.into_proto()),
                ..Default::default()
            };
            out.list(&collect(page, request, async |r| client.list_usage_records(r).await).await?)
        }
        UsageCommand::Aggregate { by, filter, page } => {
            let request = AggregateUsageRequest {
                filter: Some(filter.into_proto()),
                group_by: by.into_iter().map(i32::from).collect(),
                ..Default::default()
            };
            out.list(&collect(page, request, async |r| client.aggregate_usage(r).await).await?)
        }
        UsageCommand::Export { filter, output } => export_usage(client, filter, output).await,
    }
}

/// Writes every usage record the filter matches as CSV, to `path` or stdout,
/// one page at a time. A failed export removes the file it started.
async fn export_usage(
    client: &mut Client,
    filter: FilterArgs,
    path: Option<PathBuf>,
) -> Result<()> {
    let request = ListUsageRecordsRequest {
        filter: Some(filter.into_proto()),
        ..Default::default()
    };
    let Some(path) = path else {
        let stdout = std::io::stdout().lock();
        return write_usage_csv(client, request, stdout).await.map(drop);
    };
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    match write_usage_csv(client, request, file).await {
        Ok(count) => {
            eprintln!("Wrote {count} usage records to {}.", path.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Writes the header and every record; returns how many records.
async fn write_usage_csv(
    client: &mut Client,
    request: ListUsageRecordsRequest,
    sink: impl Write,
) -> Result<u64> {
    let mut csv = CsvWriter::<UsageRecord, _>::new(sink)?;
    let mut count = 0;
    let write_page = |records: Vec<UsageRecord>| -> Result<()> {
        for record in &records {
            csv.write(record)?;
            count += 1;
        }
        Ok(())
    };
    for_each_page(
        request,
        async |r| client.list_usage_records(r).await,
        write_page,
    )
    .await?;
    csv.finish()?;
    Ok(count)
}

/// A point in time as the proto's timestamp.
fn timestamp(time: SystemTime) -> Timestamp {
    // --since and --until are never before 1970 (see `parse_time`).
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since_epoch.as_secs() as i64,
        nanos: since_epoch.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    #[test]
    fn usage_commands_parse() {
        let args = parse_ok(&[
            "usage",
            "list",
            "--studio",
            "acme",
            "--user",
            "u1",
            "--model",
            "fast",
            "--since",
            "2025-01-31T00:00:00Z",
            "--until",
            "2025-02-01",
            "--limit",
            "20",
        ]);
        let AdminCommand::Usage(UsageCommand::List { filter, page }) = args.command else {
            panic!("not a usage list");
        };
        assert_eq!(
            page,
            PageArgs {
                page_size: 20,
                all: false
            }
        );
        let filter = filter.into_proto();
        assert_eq!(
            (filter.studio_id.as_str(), filter.user_id.as_str()),
            ("acme", "u1")
        );
        assert_eq!(filter.model_id, "fast");
        assert_eq!(filter.start_time.map(|t| t.seconds), Some(1_738_281_600));
        assert_eq!(filter.end_time.map(|t| t.seconds), Some(1_738_368_000));

        let args = parse_ok(&["usage", "aggregate", "--by", "studio,day", "--by", "model"]);
        let AdminCommand::Usage(UsageCommand::Aggregate { by, filter, .. }) = args.command else {
            panic!("not a usage aggregate");
        };
        assert_eq!(
            by,
            [DimensionArg::Studio, DimensionArg::Day, DimensionArg::Model]
        );
        assert_eq!(filter.into_proto(), UsageFilter::default());
        let args = parse_ok(&["usage", "aggregate", "--by", "hour,month"]);
        assert!(matches!(
            args.command,
            AdminCommand::Usage(UsageCommand::Aggregate { ref by, .. })
                if by == &[DimensionArg::Hour, DimensionArg::Month]
        ));
        assert_eq!(i32::from(DimensionArg::Hour), UsageDimension::Hour as i32);
        assert_eq!(i32::from(DimensionArg::Month), UsageDimension::Month as i32);
        assert!(fails(&["usage", "aggregate", "--by", "week"]));
        assert!(fails(&["usage", "list", "--since", "yesterday"]));
    }

    #[test]
    fn usage_export_takes_the_filters_and_a_file() {
        let args = parse_ok(&[
            "usage",
            "export",
            "--studio",
            "acme",
            "--since",
            "2025-01-31",
            "-o",
            "u.csv",
        ]);
        let AdminCommand::Usage(UsageCommand::Export { filter, output }) = args.command else {
            panic!("not a usage export");
        };
        assert_eq!(output, Some(PathBuf::from("u.csv")));
        let filter = filter.into_proto();
        assert_eq!(filter.studio_id, "acme");
        assert_eq!(filter.start_time.map(|t| t.seconds), Some(1_738_281_600));
        let args = parse_ok(&["usage", "export", "--output", "all.csv"]);
        assert!(matches!(
            args.command,
            AdminCommand::Usage(UsageCommand::Export {
                output: Some(_),
                ..
            })
        ));
        let args = parse_ok(&["usage", "export"]);
        assert!(matches!(
            args.command,
            AdminCommand::Usage(UsageCommand::Export { output: None, .. })
        ));
        // Export follows every page: no paging flags.
        assert!(fails(&["usage", "export", "--all"]));
        assert!(fails(&["usage", "export", "--limit", "5"]));
    }
}

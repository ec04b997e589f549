//! `downcity admin` parsed on its own, for the commands' unit tests.

use clap::{CommandFactory, Parser};

use super::AdminArgs;

/// `downcity admin` as its own program.
#[derive(Debug, Parser)]
pub(super) struct Cli {
    #[command(flatten)]
    pub(super) admin: AdminArgs,
}

pub(super) fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
    let argv = ["admin", "--addr", "city:1", "--admin-key", "k"];
    Cli::try_parse_from(argv.iter().chain(args)).map(|cli| cli.admin)
}

pub(super) fn parse_ok(args: &[&str]) -> AdminArgs {
    parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

pub(super) fn fails(args: &[&str]) -> bool {
    parse(args).is_err()
}

#[test]
fn the_command_is_well_formed() {
    Cli::command().debug_assert();
}

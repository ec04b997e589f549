//! `downcity admin defaults`: each pathway's default model.

use anyhow::Result;
use clap::Subcommand;
use downcity::proto::SetDefaultModelRequest;

use super::models::PathwayArg;
use crate::cli::connection::{Client, unary};
use crate::cli::output::Output;

#[derive(Debug, Subcommand)]
pub(super) enum DefaultsCommand {
    /// Make a model the default of its pathway.
    Set {
        /// The pathway whose default to set.
        #[arg(value_enum)]
        pathway: PathwayArg,
        /// The model; it must serve that pathway.
        model: String,
    },
}

pub(super) async fn run(client: &mut Client, out: Output, command: DefaultsCommand) -> Result<()> {
    let DefaultsCommand::Set { pathway, model } = command;
    let request = SetDefaultModelRequest {
        pathway: pathway.into(),
        model_id: model,
    };
    let response = unary(client.set_default_model(request)).await?;
    out.item("model", response.model.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    #[test]
    fn defaults_and_models_parse() {
        let args = parse_ok(&["defaults", "set", "image", "painter"]);
        assert!(matches!(
            args.command,
            AdminCommand::Defaults(DefaultsCommand::Set { pathway: PathwayArg::Image, model }) if model == "painter"
        ));
        assert!(fails(&["defaults", "set", "video", "m"]));
        assert!(!fails(&["models", "list", "--all"]));
        assert!(!fails(&["models", "delete", "m"]));
    }
}

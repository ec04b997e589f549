//! `downcity admin studios`: create, show, list, suspend, activate and
//! rename studios, and set the models each may use and the web origins whose
//! pages may call with its user tokens.

use anyhow::Result;
use clap::Subcommand;
use downcity::proto::{
    CreateStudioRequest, GetStudioRequest, ListStudiosRequest, ModelIdList, OriginList,
    StudioStatus, UpdateStudioRequest,
};

use crate::cli::connection::{Client, unary};
use crate::cli::output::Output;
use crate::cli::paging::{PageArgs, collect};

#[derive(Debug, Subcommand)]
pub(super) enum StudiosCommand {
    /// Create a studio, active.
    Create {
        /// The studio's id; City chooses one if omitted.
        #[arg(long)]
        id: Option<String>,
        /// Human-readable name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Show one studio.
    Get {
        /// The studio's id.
        id: String,
    },
    /// List studios by id.
    List(PageArgs),
    /// Suspend a studio: its calls fail at once.
    Suspend {
        /// The studio's id.
        id: String,
    },
    /// Let a suspended studio make calls again.
    Activate {
        /// The studio's id.
        id: String,
    },
    /// Change a studio's name.
    Rename {
        /// The studio's id.
        id: String,
        /// The new human-readable name.
        name: String,
    },
    /// Let a studio see and use only these models, or every model with --all.
    AllowModels {
        /// The studio's id.
        id: String,
        /// The models the studio may use; the list replaces the old one whole.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        models: Vec<String>,
        /// Clear the list: the studio may use every model.
        #[arg(long)]
        all: bool,
    },
    /// Let web pages from these origins call City with the studio's user
    /// tokens (beside the City-wide `[web] allowed_origins`), or none with --none.
    AllowOrigins {
        /// The studio's id.
        id: String,
        /// Origins such as https://game.example; the list replaces the old one whole.
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        origins: Vec<String>,
        /// Clear the list: only the City-wide origins may call.
        #[arg(long)]
        none: bool,
    },
}

pub(super) async fn run(client: &mut Client, out: Output, command: StudiosCommand) -> Result<()> {
    match command {
        StudiosCommand::Create { id, name } => {
            let request = CreateStudioRequest {
                studio_id: id.unwrap_or_default(),
                display_name: name.unwrap_or_default(),
            };
            let response = unary(client.create_studio(request)).await?;
            out.item("studio", response.studio.as_ref())
        }
        StudiosCommand::Get { id } => {
            let response = unary(client.get_studio(GetStudioRequest { studio_id: id })).await?;
            out.item("studio", response.studio.as_ref())
        }
        StudiosCommand::List(page) => {
            let request = ListStudiosRequest::default();
            out.list(&collect(page, request, async |r| client.list_studios(r).await).await?)
        }
        StudiosCommand::Suspend { id } => {
            update_studio(client, out, set_status(id, StudioStatus::Suspended)).await
        }
        StudiosCommand::Activate { id } => {
            update_studio(client, out, set_status(id, StudioStatus::Active)).await
        }
        StudiosCommand::Rename { id, name } => {
            let request = UpdateStudioRequest {
                studio_id: id,
                display_name: Some(name),
                ..UpdateStudioRequest::default()
            };
            update_studio(client, out, request).await
        }
        StudiosCommand::AllowModels { id, models, all } => {
            // `--all` sends an empty list: every model.
            let model_ids = if all { Vec::new() } else { models };
            let request = UpdateStudioRequest {
                studio_id: id,
                allowed_models: Some(ModelIdList { model_ids }),
                ..UpdateStudioRequest::default()
            };
            update_studio(client, out, request).await
        }
        StudiosCommand::AllowOrigins { id, origins, none } => {
            // `--none` sends an empty list: the City-wide origins only.
            let origins = if none { Vec::new() } else { origins };
            let request = UpdateStudioRequest {
                studio_id: id,
                allowed_origins: Some(OriginList { origins }),
                ..UpdateStudioRequest::default()
            };
            update_studio(client, out, request).await
        }
    }
}

fn set_status(id: String, status: StudioStatus) -> UpdateStudioRequest {
    UpdateStudioRequest {
        studio_id: id,
        status: status.into(),
        ..UpdateStudioRequest::default()
    }
}

/// Sends one UpdateStudio: unset fields stay as they are.
async fn update_studio(
    client: &mut Client,
    out: Output,
    request: UpdateStudioRequest,
) -> Result<()> {
    let response = unary(client.update_studio(request)).await?;
    out.item("studio", response.studio.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    #[test]
    fn studios_commands_parse() {
        let args = parse_ok(&["studios", "create", "--id", "acme", "--name", "Acme"]);
        assert!(matches!(
            args.command,
            AdminCommand::Studios(StudiosCommand::Create { id: Some(id), name: Some(name) })
                if id == "acme" && name == "Acme"
        ));
        let args = parse_ok(&["studios", "list"]);
        let expected = PageArgs {
            page_size: 100,
            all: false,
        };
        assert!(
            matches!(args.command, AdminCommand::Studios(StudiosCommand::List(p)) if p == expected)
        );
        let args = parse_ok(&["studios", "list", "--page-size", "5", "--all"]);
        let expected = PageArgs {
            page_size: 5,
            all: true,
        };
        assert!(
            matches!(args.command, AdminCommand::Studios(StudiosCommand::List(p)) if p == expected)
        );
        let args = parse_ok(&["studios", "rename", "acme", "New name"]);
        assert!(matches!(
            args.command,
            AdminCommand::Studios(StudiosCommand::Rename { id, name }) if id == "acme" && name == "New name"
        ));
        assert!(!fails(&["studios", "suspend", "acme"]));
        assert!(!fails(&["studios", "activate", "acme"]));
        assert!(fails(&["studios", "list", "--page-size", "0"]));
        assert!(fails(&["studios", "get"]));
        assert!(fails(&["studios", "rename", "acme"]));
    }

    #[test]
    fn allow_models_takes_models_or_all() {
        let args = parse_ok(&["studios", "allow-models", "acme", "fast", "slow"]);
        assert!(matches!(
            args.command,
            AdminCommand::Studios(StudiosCommand::AllowModels { ref id, ref models, all: false })
                if id == "acme" && models == &["fast", "slow"]
        ));
        let args = parse_ok(&["studios", "allow-models", "acme", "--all"]);
        assert!(matches!(
            args.command,
            AdminCommand::Studios(StudiosCommand::AllowModels { ref models, all: true, .. })
                if models.is_empty()
        ));
        assert!(fails(&["studios", "allow-models", "acme"]));
        assert!(fails(&["studios", "allow-models", "acme", "fast", "--all"]));
        assert!(fails(&["studios", "allow-models"]));
    }

    #[test]
    fn allow_origins_takes_origins_or_none() {
        let args = parse_ok(&["studios", "allow-origins", "acme", "https://a.example"]);
        assert!(matches!(
            args.command,
            AdminCommand::Studios(StudiosCommand::AllowOrigins { ref id, ref origins, none: false })
                if id == "acme" && origins == &["https://a.example"]
        ));
        let args = parse_ok(&["studios", "allow-origins", "acme", "--none"]);
        assert!(matches!(
            args.command,
            AdminCommand::Studios(StudiosCommand::AllowOrigins { ref origins, none: true, .. })
                if origins.is_empty()
        ));
        assert!(fails(&["studios", "allow-origins", "acme"]));
        assert!(fails(&[
            "studios",
            "allow-origins",
            "acme",
            "https://a.example",
            "--none"
        ]));
    }
}

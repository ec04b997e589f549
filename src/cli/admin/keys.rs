//! `downcity admin keys`: create, list and revoke studio keys.

use anyhow::Result;
use clap::Subcommand;
use downcity::proto::{CreateStudioKeyRequest, ListStudioKeysRequest, RevokeStudioKeyRequest};

use crate::cli::connection::{Client, unary};
use crate::cli::output::{Output, SecretKept};
use crate::cli::paging::{PageArgs, collect};

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Create a studio key and print its secret, once.
    Create {
        /// The studio the key is for.
        studio: String,
        /// Human-readable name.
        #[arg(long)]
        name: Option<String>,
    },
    /// List a studio's keys, without secrets.
    List {
        /// The studio's id.
        studio: String,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Revoke a studio key at once.
    Revoke {
        /// The studio the key belongs to.
        studio: String,
        /// The key's public id.
        key_id: String,
    },
}

pub(super) async fn run(client: &mut Client, out: Output, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { studio, name } => {
            let request = CreateStudioKeyRequest {
                studio_id: studio,
                display_name: name.unwrap_or_default(),
            };
            let response = unary(client.create_studio_key(request)).await?;
            let (key, secret) = (response.key.as_ref(), &response.secret);
            out.item_with_secret("key", key, secret, SecretKept::Hashed)
        }
        KeysCommand::List { studio, page } => {
            let request = ListStudioKeysRequest {
                studio_id: studio,
                ..Default::default()
            };
            out.list(&collect(page, request, async |r| client.list_studio_keys(r).await).await?)
        }
        KeysCommand::Revoke { studio, key_id } => {
            let request = RevokeStudioKeyRequest {
                studio_id: studio,
                key_id,
            };
            let response = unary(client.revoke_studio_key(request)).await?;
            out.item("key", response.key.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    #[test]
    fn keys_commands_parse() {
        let args = parse_ok(&["keys", "create", "acme", "--name", "backend"]);
        assert!(matches!(
            args.command,
            AdminCommand::Keys(KeysCommand::Create { studio, name: Some(name) }) if studio == "acme" && name == "backend"
        ));
        let args = parse_ok(&["keys", "revoke", "acme", "k1"]);
        assert!(matches!(
            args.command,
            AdminCommand::Keys(KeysCommand::Revoke { studio, key_id }) if studio == "acme" && key_id == "k1"
        ));
        assert!(!fails(&["keys", "list", "acme", "--all"]));
        assert!(fails(&["keys", "revoke", "acme"]));
        assert!(fails(&["keys", "list"]));
    }
}

//! `downcity admin tokens`: issue, list and revoke user tokens.

use anyhow::{Result, anyhow};
use clap::Subcommand;
use downcity::proto::{IssueUserTokenRequest, ListUserTokensRequest, RevokeUserTokenRequest};

use super::args::{Ttl, parse_ttl, proto_duration};
use crate::cli::connection::{Client, unary};
use crate::cli::output::{Output, SecretKept};
use crate::cli::paging::{PageArgs, collect};

#[derive(Debug, Subcommand)]
pub(super) enum TokensCommand {
    /// Issue a user token and print its secret, once.
    Issue {
        /// The studio the token is for.
        studio: String,
        /// The studio's own id of the end user.
        user: String,
        /// How long the token is valid (`30m`, `24h`, `7d`), or `never`.
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_ttl)]
        ttl: Ttl,
    },
    /// List a studio's user tokens, without secrets.
    List {
        /// The studio's id.
        studio: String,
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Revoke a user token at once.
    Revoke {
        /// The studio the token belongs to.
        studio: String,
        /// The token's public id.
        token_id: String,
    },
}

pub(super) async fn run(client: &mut Client, out: Output, command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::Issue { studio, user, ttl } => {
            let ttl = ttl
                .0
                .map(|t| proto_duration(t).ok_or_else(|| anyhow!("the ttl is too long")))
                .transpose()?;
            let request = IssueUserTokenRequest {
                studio_id: studio,
                user_id: user,
                ttl,
            };
            let response = unary(client.issue_user_token(request)).await?;
            let (token, secret) = (response.token.as_ref(), &response.secret);
            out.item_with_secret("token", token, secret, SecretKept::Hashed)
        }
        TokensCommand::List { studio, user, page } => {
            let request = ListUserTokensRequest {
                studio_id: studio,
                user_id: user.unwrap_or_default(),
                ..Default::default()
            };
            out.list(&collect(page, request, async |r| client.list_user_tokens(r).await).await?)
        }
        TokensCommand::Revoke { studio, token_id } => {
            let request = RevokeUserTokenRequest {
                studio_id: studio,
                token_id,
            };
            let response = unary(client.revoke_user_token(request)).await?;
            out.item("token", response.token.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};
    use std::time::Duration;

    #[test]
    fn tokens_default_to_a_day_and_may_never_expire() {
        let ttl_of = |extra: &[&str]| {
            let mut argv = vec!["tokens", "issue", "acme", "u1"];
            argv.extend_from_slice(extra);
            match parse_ok(&argv).command {
                AdminCommand::Tokens(TokensCommand::Issue { studio, user, ttl }) => {
                    assert_eq!((studio.as_str(), user.as_str()), ("acme", "u1"));
                    ttl
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(ttl_of(&[]), Ttl(Some(Duration::from_secs(24 * 3600))));
        assert_eq!(
            ttl_of(&["--ttl", "90m"]),
            Ttl(Some(Duration::from_secs(5400)))
        );
        assert_eq!(ttl_of(&["--ttl", "never"]), Ttl(None));
        assert!(fails(&["tokens", "issue", "acme", "u1", "--ttl", "0s"]));
        assert!(fails(&["tokens", "issue", "acme", "u1", "--ttl", "soon"]));
        let args = parse_ok(&["tokens", "list", "acme", "--user", "u1"]);
        assert!(matches!(
            args.command,
            AdminCommand::Tokens(TokensCommand::List { user: Some(u), .. }) if u == "u1"
        ));
        assert!(!fails(&["tokens", "revoke", "acme", "t1"]));
    }
}

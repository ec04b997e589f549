//! `downcity admin`: the operator's client of `AdminService`, one module
//! per resource, each holding its clap command and its handler.
//!
//! Every call carries `authorization: Bearer <key>` with the operator's admin
//! key, or with a studio key (`dck_...`) for the studio-scoped calls.
//! Responses print as tables, or with `--json` as JSON.

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};

use super::connection::{Bearer, connect};
use super::output::Output;

mod args;
mod defaults;
mod hooks;
mod keys;
mod limits;
mod models;
mod providers;
mod studios;
#[cfg(test)]
mod testing;
mod tokens;
mod usage;

/// The help heading of the options every admin command takes.
const GLOBAL: &str = "Global options";

/// Manage the studios, credentials, model catalog, usage and hooks of a running City.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The City's gRPC address: `host:port`, with or without `http://`.
    #[arg(
        long,
        env = "DOWNCITY_ADDR",
        default_value = "127.0.0.1:50051",
        global = true,
        help_heading = GLOBAL
    )]
    addr: String,
    /// The City's admin listener, when it has one (`[server] admin_listen`);
    /// wins over --addr.
    #[arg(long, env = "DOWNCITY_ADMIN_ADDR", global = true, help_heading = GLOBAL)]
    admin_addr: Option<String>,
    /// TLS: trust this CA (PEM) for an `https://` address.
    #[arg(long, env = "DOWNCITY_CA_CERT", value_name = "FILE", global = true, help_heading = GLOBAL)]
    ca_cert: Option<std::path::PathBuf>,
    /// mTLS: this client certificate (PEM), with --client-key.
    #[arg(long, env = "DOWNCITY_CLIENT_CERT", value_name = "FILE", global = true, help_heading = GLOBAL, requires = "client_key")]
    client_cert: Option<std::path::PathBuf>,
    /// mTLS: the client certificate's key (PEM).
    #[arg(long, env = "DOWNCITY_CLIENT_KEY", value_name = "FILE", global = true, help_heading = GLOBAL, requires = "client_cert")]
    client_key: Option<std::path::PathBuf>,
    /// The operator's admin key, or a studio key (`dck_...`) for the
    /// studio-scoped calls.
    #[arg(
        long,
        env = "DOWNCITY_ADMIN_KEY",
        hide_env_values = true,
        global = true,
        help_heading = GLOBAL
    )]
    admin_key: Option<String>,
    /// Print the response messages as JSON instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create, show, list, suspend, activate and rename studios, and set
    /// the models each may use.
    #[command(subcommand)]
    Studios(studios::StudiosCommand),
    /// Create, list and revoke studio keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Issue, list and revoke user tokens.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Create, list and delete upstream providers.
    #[command(subcommand)]
    Providers(providers::ProvidersCommand),
    /// Create, list and delete catalog models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Set each pathway's default model.
    #[command(subcommand)]
    Defaults(defaults::DefaultsCommand),
    /// List, sum and export usage records.
    #[command(subcommand)]
    Usage(usage::UsageCommand),
    /// Set and show the limits of studios and users, and their standing.
    #[command(subcommand)]
    Limits(limits::LimitsCommand),
    /// Create, list and delete business hooks (before_call / after_call
    /// webhooks), and list and resend their deliveries.
    #[command(subcommand)]
    Hooks(hooks::HooksCommand),
}

/// Runs one admin command against the City at `--addr`.
///
/// A failure comes back as one line for stderr: `error: <CODE>: <message>
/// (reason: <ErrorInfo reason>)` for a refused call, `error: <what went
/// wrong>` otherwise.
pub(crate) async fn run(args: AdminArgs) -> Result<()> {
    execute(args).await.map_err(|e| anyhow!("error: {e:#}"))
}

async fn execute(args: AdminArgs) -> Result<()> {
    let bearer = Bearer::new(args.admin_key.as_deref())?;
    let addr = args.admin_addr.as_deref().unwrap_or(&args.addr);
    let identity = args.client_cert.as_deref().zip(args.client_key.as_deref());
    let tls = (args.ca_cert.is_some() || identity.is_some())
        .then(|| downcity::client::ClientTls::from_files(args.ca_cert.as_deref(), identity))
        .transpose()
        .context("reading the TLS files")?;
    let client = &mut connect(addr, bearer, tls.as_ref()).await?;
    let out = Output { json: args.json };
    match args.command {
        AdminCommand::Studios(command) => studios::run(client, out, command).await,
        AdminCommand::Keys(command) => keys::run(client, out, command).await,
        AdminCommand::Tokens(command) => tokens::run(client, out, command).await,
        AdminCommand::Providers(command) => providers::run(client, out, command).await,
        AdminCommand::Models(command) => models::run(client, out, command).await,
        AdminCommand::Defaults(command) => defaults::run(client, out, command).await,
        AdminCommand::Usage(command) => usage::run(client, out, command).await,
        AdminCommand::Limits(command) => limits::run(client, out, command).await,
        AdminCommand::Hooks(command) => hooks::run(client, out, command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::testing::Cli;
    use super::*;

    #[test]
    fn global_options_go_anywhere() {
        let args = Cli::try_parse_from([
            "admin",
            "studios",
            "get",
            "s1",
            "--json",
            "--addr",
            "http://c:2",
            "--admin-key",
            "x",
        ])
        .unwrap()
        .admin;
        assert!(args.json);
        assert_eq!(args.addr, "http://c:2");
        assert_eq!(args.admin_key.as_deref(), Some("x"));
        assert!(
            matches!(args.command, AdminCommand::Studios(studios::StudiosCommand::Get { id }) if id == "s1")
        );
    }

    #[tokio::test]
    async fn a_missing_key_fails_before_connecting() {
        let args = Cli::try_parse_from(["admin", "--admin-key", "", "studios", "list"])
            .unwrap()
            .admin;
        let err = run(args).await.unwrap_err().to_string();
        assert!(err.starts_with("error: no admin key"), "{err}");
        assert!(err.contains("DOWNCITY_ADMIN_KEY"), "{err}");
    }
}

//! `downcity admin providers`: create, list and delete upstream providers.

use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use downcity::proto::{
    DeleteProviderRequest, ListProvidersRequest, Provider, ProviderKind, UpsertProviderRequest,
};

use super::args::{parse_key_value, proto_choice, proto_duration};
use crate::cli::connection::{Client, unary};
use crate::cli::output::Output;
use crate::cli::paging::{PageArgs, collect};

#[derive(Debug, Subcommand)]
pub(super) enum ProvidersCommand {
    /// Create or replace a provider.
    Upsert {
        /// Stable id, referenced by models.
        id: String,
        /// The upstream protocol the provider speaks.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// Base URL of the upstream API; none for the mock and for the
        /// public endpoint of openai, anthropic and gemini.
        #[arg(long)]
        base_url: Option<String>,
        /// Set the API key from this environment variable (keeps the key out
        /// of the shell history and the process list).
        #[arg(long, value_name = "VAR", conflicts_with_all = ["api_key_stdin", "clear_api_key"])]
        api_key_env: Option<String>,
        /// Set the API key from the first line of standard input.
        #[arg(long, conflicts_with = "clear_api_key")]
        api_key_stdin: bool,
        /// Remove the stored API key. Without any key option the stored key stays.
        #[arg(long)]
        clear_api_key: bool,
        /// An extra HTTP header for every upstream request; repeat. The
        /// upsert replaces the provider's headers whole.
        #[arg(long = "header", value_name = "NAME=VALUE", value_parser = parse_key_value)]
        headers: Vec<(String, String)>,
        /// Longest wait to connect, such as `5s` (default 10s).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        connect_timeout: Option<Duration>,
        /// Longest wait for the answer's first byte and between streamed
        /// events (default 60s).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        first_byte_timeout: Option<Duration>,
        /// Longest a whole upstream call may take (default 300s).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        total_timeout: Option<Duration>,
    },
    /// List providers by id.
    List(PageArgs),
    /// Delete a provider that no model uses.
    Delete {
        /// The provider's id.
        id: String,
    },
}

proto_choice! {
    /// The upstream protocol of a provider.
    KindArg => ProviderKind {
        /// The built-in deterministic mock: no network.
        Mock,
        /// OpenAI (Chat Completions, Images).
        Openai,
        /// A server speaking OpenAI's wire format; needs --base-url.
        #[value(name = "openai_compatible", alias = "openai-compatible")]
        OpenaiCompatible,
        /// Anthropic (Messages API).
        Anthropic,
        /// Google Gemini.
        Gemini,
    }
}

pub(super) async fn run(client: &mut Client, out: Output, command: ProvidersCommand) -> Result<()> {
    match command {
        ProvidersCommand::Upsert {
            id,
            kind,
            base_url,
            api_key_env,
            api_key_stdin,
            clear_api_key,
            headers,
            connect_timeout,
            first_byte_timeout,
            total_timeout,
        } => {
            let api_key = api_key(api_key_env, api_key_stdin, clear_api_key)?;
            let provider = Provider {
                id,
                kind: kind.into(),
                base_url: base_url.unwrap_or_default(),
                headers: headers.into_iter().collect(),
                connect_timeout: timeout(connect_timeout)?,
                first_byte_timeout: timeout(first_byte_timeout)?,
                total_timeout: timeout(total_timeout)?,
                ..Default::default()
            };
            let request = UpsertProviderRequest {
                provider: Some(provider),
                api_key,
            };
            let response = unary(client.upsert_provider(request)).await?;
            out.item("provider", response.provider.as_ref())
        }
        ProvidersCommand::List(page) => {
            let request = ListProvidersRequest::default();
            out.list(&collect(page, request, async |r| client.list_providers(r).await).await?)
        }
        ProvidersCommand::Delete { id } => {
            let request = DeleteProviderRequest {
                provider_id: id.clone(),
            };
            unary(client.delete_provider(request)).await?;
            out.deleted("provider", &id)
        }
    }
}

/// The API key to send: from `env_var`, from stdin, empty to clear it, or
/// `None` to keep the stored one.
fn api_key(env_var: Option<String>, stdin: bool, clear: bool) -> Result<Option<String>> {
    if let Some(var) = env_var {
        let key = std::env::var(&var)
            .map_err(|_| anyhow!("the environment variable {var} is not set"))?;
        Ok(Some(key))
    } else if stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(Some(line.trim().to_string()))
    } else if clear {
        Ok(Some(String::new()))
    } else {
        Ok(None)
    }
}

fn timeout(duration: Option<Duration>) -> Result<Option<pbjson_types::Duration>> {
    duration
        .map(|d| proto_duration(d).ok_or_else(|| anyhow!("the timeout is too long")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::admin::AdminCommand;
    use crate::cli::admin::testing::{fails, parse_ok};

    #[test]
    fn providers_commands_parse() {
        let args = parse_ok(&["providers", "upsert", "mock1", "--kind", "mock"]);
        assert!(matches!(
            args.command,
            AdminCommand::Providers(ProvidersCommand::Upsert { id, kind: KindArg::Mock, base_url: None, .. }) if id == "mock1"
        ));
        assert!(fails(&["providers", "upsert", "mock1"]));
        assert!(fails(&["providers", "upsert", "p", "--kind", "bogus"]));
        let args = parse_ok(&[
            "providers",
            "upsert",
            "oc",
            "--kind",
            "openai_compatible",
            "--base-url",
            "http://localhost:11434/v1",
            "--api-key-env",
            "OC_KEY",
            "--header",
            "x-team=a",
            "--first-byte-timeout",
            "30s",
        ]);
        assert!(matches!(
            args.command,
            AdminCommand::Providers(ProvidersCommand::Upsert {
                kind: KindArg::OpenaiCompatible,
                api_key_env: Some(ref var),
                first_byte_timeout: Some(t),
                ref headers,
                ..
            }) if var == "OC_KEY" && t == Duration::from_secs(30) && headers.len() == 1
        ));
        assert!(fails(&[
            "providers",
            "upsert",
            "p",
            "--kind",
            "openai",
            "--api-key-stdin",
            "--clear-api-key"
        ]));
        assert!(!fails(&["providers", "list"]));
        assert!(!fails(&["providers", "delete", "mock1"]));
    }
}

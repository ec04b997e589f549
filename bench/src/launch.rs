//! Starting Cities for the bench: the release binary as its own process,
//! with the bench's config (the built-in catalog, a model that holds streams
//! open, an `openai_compatible` provider for the mock upstream), the keys
//! every City shares, and the studios and users of the setup.

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;
use tonic::transport::Channel;

use crate::city;
use crate::http::API_KEY;
use crate::procs::Service;
use crate::scenarios::{CITY_HTTP_MODEL, HOLD_DELAY_MS, HOLD_MODEL, Plan, Variant};

pub const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";
/// City's master key (base64 of 32 bytes): it seals the provider key and the
/// hook's signing secret. Replicas share it, as they share the admin key.
const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const UPSTREAM_MODEL: &str = "mock-upstream";
/// City's `openai_compatible` provider for the mock upstream, and the
/// variable its (dummy) API key comes from.
const UPSTREAM_PROVIDER: &str = "bench-upstream";
const UPSTREAM_KEY_ENV: &str = "BENCH_UPSTREAM_API_KEY";
pub const START_LIMIT: Duration = Duration::from_secs(60);
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// What every City the bench starts shares.
pub struct Launcher {
    /// The `downcity` release binary.
    pub bin: PathBuf,
    /// Extra environment from `--city-env`.
    pub env: Vec<(String, String)>,
    /// Scratch directory: configs, data directories, logs.
    pub work: PathBuf,
    pub upstream_addr: String,
}

impl Launcher {
    /// Starts the City `variant` names (its config, data directory and log
    /// are named after it) on a fresh data directory; returns its address.
    pub async fn start(&self, variant: Variant) -> anyhow::Result<(Service, String)> {
        self.start_named(variant.name, variant, &[]).await
    }

    /// Like `start`, named `name`, with `env` added to City's environment
    /// (a replica's store URL stays out of its config file).
    pub async fn start_named(
        &self,
        name: &str,
        variant: Variant,
        env: &[(&str, &str)],
    ) -> anyhow::Result<(Service, String)> {
        let config = self.work.join(format!("{name}.toml"));
        std::fs::write(&config, city_config(&self.upstream_addr, variant))?;
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(self.work.join(name))
            .arg("--config")
            .arg(&config);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DOWNCITY_") {
                command.env_remove(key);
            }
        }
        command
            .env("DOWNCITY_ADMIN_KEY", ADMIN_KEY)
            .env("DOWNCITY_MASTER_KEY", MASTER_KEY)
            .env(UPSTREAM_KEY_ENV, API_KEY)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .envs(self.env.iter().cloned());
        let mut service = Service::spawn(name, command, &self.work).await?;
        let addr = service.wait_line(START_LIMIT, listening_addr).await?;
        Ok((service, addr))
    }
}

/// The load connections to a City, and the studios and users of `plan`
/// created through AdminService.
pub async fn connect_and_populate(
    addr: &str,
    plan: &Plan,
) -> anyhow::Result<(Vec<Channel>, Vec<city::Credential>)> {
    let channels = city::connect(addr, plan.connections).await?;
    let credentials = populate(channels[0].clone(), plan).await?;
    Ok((channels, credentials))
}

/// The studios and users of `plan`, created through AdminService on `channel`.
pub async fn populate(channel: Channel, plan: &Plan) -> anyhow::Result<Vec<city::Credential>> {
    city::populate(channel, ADMIN_KEY, plan.studios, plan.users_per_studio).await
}

/// City's config for the bench: the built-in catalog, a model that holds
/// streams open, and an `openai_compatible` provider for the mock upstream
/// with a text model on it.
fn city_config(upstream_addr: &str, variant: Variant) -> String {
    let usage = variant.durability.map_or(String::new(), |d| {
        format!("[usage]\ndurability = \"{d}\"\n\n")
    });
    let metrics = if variant.metrics {
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n"
    } else {
        ""
    };
    let web = if variant.web {
        ""
    } else {
        "[web]\nenabled = false\n\n"
    };
    format!(
        "# Written by downcity-bench.\n\
         [server]\nshutdown_grace_secs = 10\n\n\
         {usage}{web}{metrics}\
         [[providers]]\nid = \"{UPSTREAM_PROVIDER}\"\nkind = \"openai_compatible\"\n\
         base_url = \"http://{upstream_addr}/v1\"\napi_key_env = \"{UPSTREAM_KEY_ENV}\"\n\n\
         [[models]]\nid = \"{CITY_HTTP_MODEL}\"\nprovider = \"{UPSTREAM_PROVIDER}\"\n\
         upstream_model = \"{UPSTREAM_MODEL}\"\npathway = \"text\"\n\n\
         [[models]]\nid = \"{HOLD_MODEL}\"\nprovider = \"mock\"\nupstream_model = \"hold\"\npathway = \"text\"\n\
         options = {{ chunk_delay_ms = \"{HOLD_DELAY_MS}\" }}\n"
    )
}

/// The `addr=` of City's "City listening" log line.
fn listening_addr(line: &str) -> Option<String> {
    let line = strip_ansi(line);
    if !line.contains("City listening") {
        return None;
    }
    let at = line.find("addr=")? + "addr=".len();
    let addr: String = line[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// Removes ANSI CSI sequences (ESC [ … final byte).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
        } else if chars.next() == Some('[') {
            chars.by_ref().find(|c| ('\u{40}'..='\u{7e}').contains(c));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::{ASYNC, FIRST, METRICS, NO_WEB};

    #[test]
    fn finds_the_listening_address() {
        let line = "2026-01-01T00:00:00Z  INFO downcity: City listening addr=127.0.0.1:4321";
        assert_eq!(listening_addr(line).as_deref(), Some("127.0.0.1:4321"));
        let coloured = "\u{1b}[32m INFO\u{1b}[0m City listening \u{1b}[3maddr\u{1b}[0m=127.0.0.1:1";
        assert_eq!(listening_addr(coloured).as_deref(), Some("127.0.0.1:1"));
        assert_eq!(listening_addr("something else"), None);
    }

    #[test]
    fn city_takes_the_bench_config() {
        let dir = std::env::temp_dir().join(format!("downcity-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = |variant| {
            let path = dir.join("city.toml");
            std::fs::write(&path, city_config("127.0.0.1:1", variant)).unwrap();
            downcity::config::Config::load(Some(&path))
        };
        let (config, asynchronous, no_web) = (load(FIRST), load(ASYNC), load(NO_WEB));
        let metrics = load(METRICS).unwrap();
        assert!(metrics.metrics.listen.is_some());
        std::fs::remove_dir_all(&dir).unwrap();
        let config = config.unwrap();
        assert_eq!(
            asynchronous.unwrap().usage.durability,
            downcity::config::Durability::Async
        );
        assert!(config.web.enabled);
        assert!(!no_web.unwrap().web.enabled);
        let provider = &config.providers[0];
        assert_eq!(provider.kind.as_str(), "openai_compatible");
        assert_eq!(provider.base_url, "http://127.0.0.1:1/v1");
        assert!(config.models.iter().any(|m| m.id == CITY_HTTP_MODEL));
        assert!(config.models.iter().any(|m| m.id == HOLD_MODEL));
    }
}

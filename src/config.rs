//! Configuration: a TOML file plus `DOWNCITY_*` environment overrides
//! (nested keys with `__`, e.g. `DOWNCITY_SERVER__REQUEST_TIMEOUT_SECS`).
//! Unknown keys in the file are rejected with a clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

use crate::store::{LimitTarget, LimitValues};

/// Top-level environment keys City reads; other `DOWNCITY_*` variables (such
/// as the client-side `DOWNCITY_ADDR` in dev.env) are left alone.
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "admin_key",
    "master_key",
    "master_key_file",
    "store",
    "server",
    "usage",
    "hook_delivery",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Directory for the SQLite file, dev.env and other local state.
    pub data_dir: PathBuf,
    /// The operator's admin key; when unset, one is generated at first start.
    pub admin_key: Option<String>,
    /// The master key (base64 of 32 bytes) that encrypts provider API keys;
    /// usually `DOWNCITY_MASTER_KEY`. Wins over `master_key_file`.
    pub master_key: Option<crate::keys::SecretText>,
    /// A file holding the master key; when neither is set,
    /// `<data_dir>/master.key` is used if it exists (`--dev` creates it).
    pub master_key_file: Option<PathBuf>,
    pub store: StoreConfig,
    pub server: ServerConfig,
    pub usage: UsageConfig,
    /// How after_call deliveries are retried.
    pub hook_delivery: HookDeliveryConfig,
    /// Providers loaded into the store at start.
    pub providers: Vec<ProviderConfig>,
    /// Models loaded into the store at start.
    pub models: Vec<ModelConfig>,
    /// Default model per pathway, applied at start.
    pub defaults: DefaultsConfig,
    /// Limits of studios and users, applied at start.
    pub limits: Vec<LimitsConfig>,
    /// Business hooks, applied at start.
    pub hooks: Vec<HookConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:50051".into(),
            data_dir: PathBuf::from("./.downcity"),
            admin_key: None,
            master_key: None,
            master_key_file: None,
            store: StoreConfig::default(),
            server: ServerConfig::default(),
            usage: UsageConfig::default(),
            hook_delivery: HookDeliveryConfig::default(),
            providers: Vec::new(),
            models: Vec::new(),
            defaults: DefaultsConfig::default(),
            limits: Vec::new(),
            hooks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database`: the store several
    /// replicas share (env `DOWNCITY_STORE__URL`). Unset: the SQLite file.
    pub url: Option<crate::keys::SecretText>,
    /// SQLite file; defaults to `<data_dir>/downcity.db`.
    pub sqlite_path: Option<PathBuf>,
    /// `synchronous=FULL`: survives power loss, at about 10× the commit cost.
    /// The default, NORMAL in WAL mode, survives a process crash.
    pub synchronous_full: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Longest a unary call may take before DEADLINE_EXCEEDED.
    pub request_timeout_secs: u64,
    /// Most calls served at once on one connection; more are shed (UNAVAILABLE).
    pub max_concurrent_calls_per_connection: usize,
    /// How long shutdown waits for in-flight calls.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            request_timeout_secs: 300,
            max_concurrent_calls_per_connection: 1024,
            shutdown_grace_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// Usage rows queued for the writer before calls wait.
    pub queue_capacity: usize,
    /// Whether a call answers only once its usage row is committed.
    pub durability: Durability,
    /// Usage kept: the current month and this many whole months before it;
    /// older usage is removed in the background. Unset: kept forever.
    pub retain_months: Option<u32>,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            queue_capacity: 8192,
            durability: Durability::Durable,
            retain_months: None,
        }
    }
}

/// When a call's usage row is committed relative to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The answer (and a stream's final message) leaves after the row is
    /// committed: a client that saw its answer can count on the row.
    Durable,
    /// The row is queued and committed moments later; a crash in between
    /// loses the rows still queued. Calls never wait for the disk.
    Async,
}

/// One `[[hooks]]` entry: a studio's (or, without `studio`, City-wide)
/// webhook, created or replaced at every start under its `id`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    pub id: String,
    /// Empty or absent: City-wide.
    #[serde(default)]
    pub studio: String,
    pub url: String,
    /// `before_call` and/or `after_call`.
    pub events: Vec<String>,
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: i64,
    /// `fail_open` (the default) or `fail_closed`.
    #[serde(default = "default_failure_policy")]
    pub failure_policy: String,
    #[serde(default)]
    pub include_prompt: bool,
    /// The environment variable holding the `whsec_...` signing secret.
    pub secret_env: String,
}

fn default_hook_timeout_ms() -> i64 {
    crate::hooks::DEFAULT_TIMEOUT_MS
}

fn default_failure_policy() -> String {
    "fail_open".into()
}

/// Retries of after_call deliveries.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HookDeliveryConfig {
    /// Attempts before a delivery is marked dead.
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each.
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts.
    pub max_backoff_ms: u64,
    /// How often the outbox is checked when nothing wakes the dispatcher.
    pub poll_interval_ms: u64,
}

impl Default for HookDeliveryConfig {
    fn default() -> Self {
        HookDeliveryConfig {
            max_attempts: 10,
            initial_backoff_ms: 1_000,
            max_backoff_ms: 600_000,
            poll_interval_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: String,
    /// `mock`, `openai`, `openai_compatible`, `anthropic` or `gemini`.
    pub kind: String,
    #[serde(default)]
    pub base_url: String,
    /// The environment variable holding the API key (e.g. `OPENAI_API_KEY`);
    /// read at start, then stored encrypted.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Extra HTTP headers for every upstream request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    #[serde(default)]
    pub first_byte_timeout_ms: Option<u64>,
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    pub provider: String,
    pub upstream_model: String,
    /// `text` or `image`.
    pub pathway: String,
    #[serde(default = "enabled")]
    pub enabled: bool,
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: i32,
    #[serde(default = "default_max_input_tokens")]
    pub max_input_tokens: i32,
    #[serde(default)]
    pub input_micros_per_mtok: i64,
    #[serde(default)]
    pub output_micros_per_mtok: i64,
    #[serde(default)]
    pub micros_per_image: i64,
    #[serde(default)]
    pub fallback: Vec<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn enabled() -> bool {
    true
}

pub fn default_max_output_tokens() -> i32 {
    4096
}

pub fn default_max_input_tokens() -> i32 {
    131_072
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultsConfig {
    pub text: Option<String>,
    pub image: Option<String>,
}

/// One `[[limits]]` entry: the limits of a studio (no `user`), of each of
/// its users by default (`user_default = true`) or of one user. Fields left
/// out mean "no limit"; the entry replaces the target's limits whole.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub studio: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub user_default: bool,
    #[serde(default)]
    pub requests_per_minute: Option<i64>,
    #[serde(default)]
    pub tokens_per_minute: Option<i64>,
    #[serde(default)]
    pub tokens_per_day: Option<i64>,
    #[serde(default)]
    pub cost_micros_per_day: Option<i64>,
    #[serde(default)]
    pub cost_micros_per_month: Option<i64>,
}

impl LimitsConfig {
    /// What the entry applies to, or why it is invalid.
    pub fn target(&self) -> Result<LimitTarget, String> {
        match (&self.user, self.user_default) {
            (Some(_), true) => Err("set `user` or `user_default`, not both".to_owned()),
            (Some(user), false) if user.trim().is_empty() => {
                Err("`user` must not be empty".to_owned())
            }
            (Some(user), false) => Ok(LimitTarget::User(user.clone())),
            (None, true) => Ok(LimitTarget::UserDefault),
            (None, false) => Ok(LimitTarget::Studio),
        }
    }

    /// The limits, or the name of one that is negative.
    pub fn values(&self) -> Result<LimitValues, String> {
        let named = [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
            ("tokens_per_day", self.tokens_per_day),
            ("cost_micros_per_day", self.cost_micros_per_day),
            ("cost_micros_per_month", self.cost_micros_per_month),
        ];
        if let Some((name, _)) = named.iter().find(|(_, v)| v.is_some_and(|v| v < 0)) {
            return Err(format!("`{name}` must not be negative"));
        }
        Ok(LimitValues {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            cost_micros_per_day: self.cost_micros_per_day,
            cost_micros_per_month: self.cost_micros_per_month,
        })
    }
}

impl Config {
    /// Reads the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                let message = format!("config file {} does not exist", file.display());
                return Err(Box::new(figment::Error::from(message)));
            }
            figment = figment.merge(Toml::file(file));
        }
        let env = Env::prefixed("DOWNCITY_").split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            ENV_KEYS.iter().any(|known| top.eq_ignore_ascii_case(known))
        });
        figment.merge(env).extract().map_err(Box::new)
    }

    /// The master key file City reads: the configured one, else
    /// `<data_dir>/master.key`.
    pub fn master_key_path(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The SQLite file City uses.
    pub fn sqlite_path(&self) -> PathBuf {
        self.store
            .sqlite_path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("downcity.db"))
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("city.toml", "listen = \"127.0.0.1:1\"\nlisten_port = 3\n")?;
            let err = Config::load(Some(Path::new("city.toml"))).unwrap_err();
            assert!(err.to_string().contains("listen_port"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn file_then_env_override() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "city.toml",
                "listen = \"127.0.0.1:1\"\n[server]\nrequest_timeout_secs = 5\n\n[[models]]\nid = \"m\"\nprovider = \"mock\"\nupstream_model = \"x\"\npathway = \"text\"\n",
            )?;
            jail.set_env("DOWNCITY_LISTEN", "127.0.0.1:2");
            jail.set_env("DOWNCITY_SERVER__SHUTDOWN_GRACE_SECS", "7");
            jail.set_env("DOWNCITY_USER_TOKEN", "ignored: a client-side variable");
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert_eq!(config.listen, "127.0.0.1:2");
            assert_eq!(config.server.request_timeout_secs, 5);
            assert_eq!(config.server.shutdown_grace_secs, 7);
            assert_eq!(config.models[0].max_output_tokens, 4096);
            Ok(())
        });
    }

    #[test]
    fn the_postgresql_url_and_retention_come_from_file_or_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("city.toml", "[usage]\nretain_months = 6\n")?;
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert_eq!(config.usage.retain_months, Some(6));
            assert!(config.store.url.is_none());
            let url = "postgres://city:s3cret@db.internal:5432/downcity";
            jail.set_env("DOWNCITY_STORE__URL", url);
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert_eq!(config.store.url.as_ref().map(|u| u.0.as_str()), Some(url));
            // The password never shows in a printed config.
            assert!(!format!("{config:?}").contains("s3cret"));
            Ok(())
        });
    }

    #[test]
    fn usage_durability_is_durable_unless_set() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("city.toml", "[usage]\ndurability = \"async\"\n")?;
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert_eq!(config.usage.durability, Durability::Async);
            jail.set_env("DOWNCITY_USAGE__DURABILITY", "durable");
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert_eq!(config.usage.durability, Durability::Durable);
            assert_eq!(Config::default().usage.durability, Durability::Durable);
            jail.set_env("DOWNCITY_USAGE__DURABILITY", "eventually");
            assert!(Config::load(Some(Path::new("city.toml"))).is_err());
            Ok(())
        });
    }

    #[test]
    fn limits_entries_parse_with_their_targets() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "city.toml",
                r#"
[[limits]]
studio = "acme"
requests_per_minute = 600
cost_micros_per_month = 50000000

[[limits]]
studio = "acme"
user_default = true
tokens_per_day = 200000

[[limits]]
studio = "acme"
user = "u1"
tokens_per_minute = 1000
cost_micros_per_day = 0

[[limits]]
studio = "beta"
"#,
            )?;
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            let limits = &config.limits;
            assert_eq!(limits.len(), 4);
            assert_eq!(limits[0].target(), Ok(LimitTarget::Studio));
            assert_eq!(
                limits[0].values(),
                Ok(LimitValues {
                    requests_per_minute: Some(600),
                    cost_micros_per_month: Some(50_000_000),
                    ..Default::default()
                })
            );
            assert_eq!(limits[1].target(), Ok(LimitTarget::UserDefault));
            assert_eq!(limits[1].values().unwrap().tokens_per_day, Some(200_000));
            assert_eq!(limits[2].target(), Ok(LimitTarget::User("u1".into())));
            let user = limits[2].values().unwrap();
            assert_eq!(
                (user.tokens_per_minute, user.cost_micros_per_day),
                (Some(1000), Some(0))
            );
            assert_eq!(limits[3].studio, "beta");
            assert_eq!(limits[3].values(), Ok(LimitValues::default()));
            Ok(())
        });
    }

    #[test]
    fn limits_entries_reject_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "city.toml",
                "[[limits]]\nstudio = \"acme\"\ncost_per_day = 5\n",
            )?;
            let err = Config::load(Some(Path::new("city.toml"))).unwrap_err();
            assert!(err.to_string().contains("cost_per_day"), "{err}");
            jail.create_file("city.toml", "[[limits]]\ntokens_per_day = 5\n")?;
            let err = Config::load(Some(Path::new("city.toml"))).unwrap_err();
            assert!(err.to_string().contains("studio"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn limits_entries_reject_bad_targets_and_values() {
        let entry = |user: Option<&str>, user_default: bool| LimitsConfig {
            studio: "acme".into(),
            user: user.map(Into::into),
            user_default,
            ..Default::default()
        };
        assert!(entry(Some("u1"), true).target().is_err());
        assert!(entry(Some(" "), false).target().is_err());
        let negative = LimitsConfig {
            tokens_per_day: Some(-1),
            ..entry(None, false)
        };
        let err = negative.values().unwrap_err();
        assert!(err.contains("tokens_per_day"), "{err}");
    }
}

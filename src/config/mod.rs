//! Configuration: a TOML file plus `DOWNCITY_*` environment overrides
//! (nested keys with `__`, e.g. `DOWNCITY_SERVER__REQUEST_TIMEOUT_SECS`).
//! Unknown keys in the file are rejected with a clear error.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;

mod entries;

pub use entries::{
    DefaultsConfig, Entries, HookConfig, HookEntry, LimitsConfig, ModelConfig, ProviderConfig,
    ProviderEntry,
};

use crate::keys::MasterKey;
pub use crate::usage::Durability;

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
    "tls",
    "web",
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
    pub master_key: Option<SecretText>,
    /// A file holding the master key; when neither is set,
    /// `<data_dir>/master.key` is used if it exists (`--dev` creates it).
    pub master_key_file: Option<PathBuf>,
    pub store: StoreConfig,
    pub server: ServerConfig,
    /// TLS (and mTLS) on every listener; plaintext when unset.
    pub tls: TlsConfig,
    /// Browsers: gRPC-Web and CORS on the main listener.
    pub web: WebConfig,
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
    /// The file this configuration was read from, for error messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
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
            tls: TlsConfig::default(),
            web: WebConfig::default(),
            usage: UsageConfig::default(),
            hook_delivery: HookDeliveryConfig::default(),
            providers: Vec::new(),
            models: Vec::new(),
            defaults: DefaultsConfig::default(),
            limits: Vec::new(),
            hooks: Vec::new(),
            source: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user:password@host:port/database`: the store several
    /// replicas share (env `DOWNCITY_STORE__URL`). Unset: the SQLite file.
    pub url: Option<SecretText>,
    /// SQLite file; defaults to `<data_dir>/downcity.db`.
    pub sqlite_path: Option<PathBuf>,
    /// `synchronous=FULL`: survives power loss, at about 10× the commit cost.
    /// The default, NORMAL in WAL mode, survives a process crash.
    pub synchronous_full: bool,
    /// PostgreSQL: every this many seconds each replica reloads all its
    /// caches, a safety net under the change announcements (LISTEN/NOTIFY).
    pub refresh_secs: u64,
    /// PostgreSQL: a replica silent this long is dead; any other then
    /// settles its quota holds and open usage rows. Each replica says it
    /// lives every third of this.
    pub replica_lease_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            sqlite_path: None,
            synchronous_full: false,
            refresh_secs: 30,
            replica_lease_ms: 10_000,
        }
    }
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
    /// A second address serving AdminService (and its reflection) only; when
    /// set, the main listener serves AIService and health only.
    pub admin_listen: Option<String>,
    /// Largest request message; a larger one is RESOURCE_EXHAUSTED
    /// (REQUEST_TOO_LARGE) before it is read whole.
    pub max_request_bytes: usize,
    /// Most messages in one Text or StreamText call (INVALID_ARGUMENT beyond).
    pub max_messages_per_call: usize,
    /// Most bytes of prompt (all message contents, or the image prompt) in
    /// one call (INVALID_ARGUMENT beyond).
    pub max_prompt_bytes_per_call: usize,
    /// HTTP/2 PING interval on every connection, and how long the answer may
    /// take before the connection is closed (dead or stuck peers).
    pub http2_keepalive_interval_secs: u64,
    pub http2_keepalive_timeout_secs: u64,
    /// Time from accepting a connection to its TLS handshake and HTTP/2
    /// preface; slower clients are disconnected.
    pub header_read_timeout_secs: u64,
    /// HTTP/2 streams a client may open at once on one connection
    /// (advertised in SETTINGS; clients queue beyond it).
    pub max_concurrent_streams_per_connection: u32,
    /// Open connections per listener; beyond it new ones are closed at once.
    pub max_connections: usize,
    /// On SIGTERM, how long City stays up reporting NOT_SERVING (refusing
    /// new calls) before it closes its listeners: time for load balancers
    /// to notice. The grace period for in-flight calls starts after it.
    pub drain_delay_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            request_timeout_secs: 300,
            max_concurrent_calls_per_connection: 1024,
            shutdown_grace_secs: 30,
            admin_listen: None,
            max_request_bytes: 4 * 1024 * 1024,
            max_messages_per_call: 1024,
            max_prompt_bytes_per_call: 2 * 1024 * 1024,
            http2_keepalive_interval_secs: 60,
            http2_keepalive_timeout_secs: 20,
            header_read_timeout_secs: 10,
            max_concurrent_streams_per_connection: 1024,
            max_connections: 10_000,
            drain_delay_ms: 0,
        }
    }
}

/// TLS for City's listeners. Both files are PEM; they are read again every
/// `reload_interval_ms` and a changed, valid pair serves new handshakes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// When set, only clients with a certificate from this CA connect (mTLS).
    pub client_ca_file: Option<PathBuf>,
    /// How often the files are checked for a new pair.
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            reload_interval_ms: 5_000,
        }
    }
}

/// Web pages calling City from browsers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// gRPC-Web (binary and text) and CORS on the main listener, beside
    /// native gRPC (which is unaffected either way).
    pub enabled: bool,
    /// Origins (`https://game.example`) whose pages may call City with any
    /// studio's user tokens, beside each studio's own `allowed_origins`;
    /// `*` allows every origin. In the environment, a TOML array
    /// (`DOWNCITY_WEB__ALLOWED_ORIGINS='["https://a.example"]'`) or a
    /// comma-separated string.
    #[serde(deserialize_with = "list_or_commas")]
    pub allowed_origins: Vec<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            allowed_origins: Vec::new(),
        }
    }
}

/// A list, or one string of comma-separated items (easier to set in the
/// environment than a TOML array).
fn list_or_commas<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(de)? {
        ListOrCommas::List(list) => list,
        ListOrCommas::Commas(text) => text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect(),
    })
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
        let mut config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.source = file.map(Path::to_path_buf);
        Ok(config)
    }

    /// The catalog, limits and hooks of the file as validated records; an
    /// invalid entry is an error naming the file, the entry and the field.
    pub fn entries(&self) -> anyhow::Result<Entries> {
        entries::validate(self, self.source.as_deref())
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
    use crate::domain::{LimitTarget, LimitValues};

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
            jail.set_env("DOWNCITY_TLS__CERT_FILE", "/certs/tls.crt");
            jail.set_env("DOWNCITY_TLS__KEY_FILE", "/certs/tls.key");
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert_eq!(config.listen, "127.0.0.1:2");
            assert_eq!(config.server.request_timeout_secs, 5);
            assert_eq!(config.server.shutdown_grace_secs, 7);
            assert_eq!(config.models[0].max_output_tokens, 4096);
            assert_eq!(config.tls.cert_file, Some(PathBuf::from("/certs/tls.crt")));
            assert_eq!(config.tls.key_file, Some(PathBuf::from("/certs/tls.key")));
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
    fn web_origins_come_from_file_or_env_as_array_or_commas() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "city.toml",
                "[web]\nallowed_origins = [\"https://a.example\"]\n",
            )?;
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert!(config.web.enabled);
            assert_eq!(config.web.allowed_origins, ["https://a.example"]);
            jail.set_env(
                "DOWNCITY_WEB__ALLOWED_ORIGINS",
                r#"["https://b.example", "http://localhost:8080"]"#,
            );
            jail.set_env("DOWNCITY_WEB__ENABLED", "false");
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert!(!config.web.enabled);
            let both = ["https://b.example", "http://localhost:8080"];
            assert_eq!(config.web.allowed_origins, both);
            jail.set_env(
                "DOWNCITY_WEB__ALLOWED_ORIGINS",
                "https://b.example, http://localhost:8080",
            );
            let config = Config::load(Some(Path::new("city.toml"))).map_err(|e| *e)?;
            assert_eq!(config.web.allowed_origins, both);
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
            let records = config.entries().expect("valid entries").limits;
            assert_eq!(records[0].target, LimitTarget::Studio);
            assert_eq!(
                records[0].values,
                LimitValues {
                    requests_per_minute: Some(600),
                    cost_micros_per_month: Some(50_000_000),
                    ..Default::default()
                }
            );
            assert_eq!(records[1].target, LimitTarget::UserDefault);
            assert_eq!(records[1].values.tokens_per_day, Some(200_000));
            assert_eq!(records[2].target, LimitTarget::User("u1".into()));
            let user = records[2].values;
            assert_eq!(
                (user.tokens_per_minute, user.cost_micros_per_day),
                (Some(1000), Some(0))
            );
            assert_eq!(limits[3].studio, "beta");
            assert_eq!(records[3].values, LimitValues::default());
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
        let with = |limits: LimitsConfig| Config {
            limits: vec![limits],
            source: Some(PathBuf::from("city.toml")),
            ..Config::default()
        };
        let err = with(entry(Some("u1"), true)).entries().err().unwrap();
        assert!(err.to_string().contains("not both"), "{err}");
        let err = with(entry(Some(" "), false)).entries().err().unwrap();
        assert!(err.to_string().contains("user_id"), "{err}");
        let negative = LimitsConfig {
            tokens_per_day: Some(-1),
            ..entry(None, false)
        };
        let err = with(negative).entries().err().unwrap().to_string();
        assert!(err.contains("city.toml"), "{err}");
        assert!(err.contains("[[limits]] of studio `acme`"), "{err}");
        assert!(err.contains("tokens_per_day"), "{err}");
    }
}

/// A secret string from the configuration; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Config {
    /// The master key the configuration names: `master_key` (the
    /// `DOWNCITY_MASTER_KEY` variable), else `master_key_file`, else
    /// `<data_dir>/master.key` if it exists; `None` when there is none.
    pub fn master_key(&self) -> anyhow::Result<Option<MasterKey>> {
        use anyhow::Context;
        if let Some(text) = self.master_key.as_ref().filter(|t| !t.0.trim().is_empty()) {
            return MasterKey::from_base64(&text.0)
                .context("in DOWNCITY_MASTER_KEY (master_key)")
                .map(Some);
        }
        if let Some(path) = &self.master_key_file {
            return MasterKey::read_file(path).map(Some);
        }
        let path = self.master_key_path();
        if path.exists() {
            return MasterKey::read_file(&path).map(Some);
        }
        Ok(None)
    }
}

#[cfg(test)]
mod secret_tests {
    use super::SecretText;

    #[test]
    fn secret_text_debug_is_redacted() {
        assert!(!format!("{:?}", SecretText("sk-secret-value".into())).contains("secret"));
    }
}

//! The `downcity` binary: `serve` runs City; `admin` drives it over gRPC.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use downcity::config::{Config, LogFormat, TracingConfig};
use downcity::keys::{self, MasterKey};
use downcity::server::City;
use downcity::telemetry;
use tokio::net::TcpListener;

use crate::cli::admin::AdminArgs;

mod cli;

/// mimalloc rather than glibc's malloc: on the provider path (City → HTTP
/// upstream) it served ~40% more calls/s at concurrency 64 for ~1–3 MiB more
/// idle memory (BENCHMARKS.md, "The provider path").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` option: its index in mimalloc v3's
/// `mi_option_e` (the sys crate has no constant for it).
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs before `main` and before Rust's runtime allocates anything: mimalloc
/// commits its arenas eagerly where the OS overcommits, which kept ~20 MiB
/// more resident.
#[cfg(target_os = "linux")]
extern "C" fn configure_allocator() {
    // SAFETY: sets a process-wide option; no other thread exists yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE_ALLOCATOR: extern "C" fn() = configure_allocator;

#[derive(Parser)]
#[command(
    name = "downcity",
    version,
    about = "One long-running City serving many AI studios."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run City.
    Serve(ServeArgs),
    /// Manage a running City over gRPC (studios, keys, tokens, catalog, usage).
    Admin(AdminArgs),
    /// Re-encrypt every provider API key under a new master key (offline:
    /// stop City first). Start City with the new key afterwards.
    Rekey(RekeyArgs),
}

#[derive(clap::Args)]
struct RekeyArgs {
    /// TOML configuration file (for data_dir, the store and the current master key).
    #[arg(long, env = "DOWNCITY_CONFIG")]
    config: Option<PathBuf>,
    /// Directory of the SQLite file.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The file holding the new master key (base64 of 32 bytes).
    #[arg(long, value_name = "FILE")]
    new_master_key_file: PathBuf,
    /// Create FILE with a new random key (mode 0600) if it does not exist.
    #[arg(long)]
    generate: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "DOWNCITY_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (HOST:PORT; port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Directory for the SQLite file and dev.env.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Create a demo studio and user token (once) and write DATA_DIR/dev.env.
    #[arg(long)]
    dev: bool,
    /// Serve AdminService only on this second address (HOST:PORT).
    #[arg(long, value_name = "HOST:PORT")]
    admin_listen: Option<String>,
    /// TLS certificate chain (PEM); with --tls-key, City serves TLS only.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Accept only clients with a certificate from this CA (PEM): mTLS.
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// Log lines as text or one JSON object per line (`[log] format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

/// Where `--dev` serves `/metrics` unless told: a free port, named in dev.env.
const DEV_METRICS_LISTEN: &str = "127.0.0.1:0";

/// The studio and user `--dev` creates.
const DEV_STUDIO: &str = "demo";
const DEV_USER: &str = "demo-user";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await.map_err(|err| format!("error: {err:#}")),
        Command::Rekey(args) => rekey(args).await.map_err(|err| format!("error: {err:#}")),
        // The admin CLI's errors already read `error: CODE: message (reason: …)`.
        Command::Admin(args) => cli::admin::run(args)
            .await
            .map_err(|err| format!("{err:#}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref()).context("loading the configuration")?;
    if let Some(format) = args.log_format {
        config.log.format = format;
    }
    let telemetry = telemetry::init(config.log.format, &config.tracing)?;
    let served = serve_city(config, args).await;
    telemetry.shutdown();
    served
}

async fn serve_city(mut config: Config, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(listen) = &args.listen {
        config.listen = listen.clone();
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    apply_transport_flags(&mut config, &args);
    let previous_dev_env = if args.dev {
        read_dev_env(&config.data_dir)
    } else {
        Vec::new()
    };
    if args.dev && config.admin_key.is_none() {
        config.admin_key = dev_value(&previous_dev_env, "DOWNCITY_ADMIN_KEY");
    }
    if args.dev && config.master_key.is_none() && config.master_key_file.is_none() {
        // Once: later starts (with or without --dev) find and use it.
        MasterKey::read_or_create_file(&config.master_key_path())?;
    }
    let configured_admin_key = config.admin_key.clone();
    let listen = config.listen.clone();
    let admin_listen = config.server.admin_listen.clone();
    let tls = config.tls.cert_file.is_some();
    let data_dir = config.data_dir.clone();

    let mut city = City::start(config).await?;
    let admin_key = match (
        configured_admin_key,
        city.generated_admin_key().map(str::to_string),
    ) {
        (Some(key), _) => Some(key),
        (None, Some(generated)) => {
            println!("Admin key (shown once; keep it safe): {generated}");
            Some(generated)
        }
        // --dev lost the key it wrote earlier: make a new one.
        (None, None) if args.dev => Some(city.rotate_admin_key().await?),
        (None, None) => None,
    };

    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, tls, "City listening");
    let admin_listener = match &admin_listen {
        Some(admin_listen) => {
            let admin_listener = TcpListener::bind(admin_listen)
                .await
                .with_context(|| format!("binding the admin listener {admin_listen}"))?;
            tracing::info!(addr = %admin_listener.local_addr()?, tls, "AdminService listening");
            Some(admin_listener)
        }
        None => None,
    };
    let metrics_addr = city.metrics_addr();
    if let Some(metrics_addr) = metrics_addr {
        tracing::info!(addr = %metrics_addr, "metrics at http://{metrics_addr}/metrics");
    }
    if args.dev {
        let admin_key = admin_key.context("no admin key in --dev mode")?;
        let scheme = if tls { "https://" } else { "" };
        let addrs = DevAddrs {
            main: format!("{scheme}{addr}"),
            admin: match &admin_listener {
                Some(l) => Some(format!("{scheme}{}", l.local_addr()?)),
                None => None,
            },
            metrics: metrics_addr.map(|addr| addr.to_string()),
        };
        dev_bootstrap(&city, &data_dir, &addrs, &admin_key, &previous_dev_env).await?;
    }
    city.serve_on(listener, admin_listener, shutdown_signal())
        .await
}

/// The flags that override `[server] admin_listen` and `[tls]`.
fn apply_transport_flags(config: &mut Config, args: &ServeArgs) {
    if let Some(admin_listen) = &args.admin_listen {
        config.server.admin_listen = Some(admin_listen.clone());
    }
    if let Some(cert) = &args.tls_cert {
        config.tls.cert_file = Some(cert.clone());
    }
    if let Some(key) = &args.tls_key {
        config.tls.key_file = Some(key.clone());
    }
    if let Some(ca) = &args.tls_client_ca {
        config.tls.client_ca_file = Some(ca.clone());
    }
    if let Some(listen) = &args.metrics_listen {
        config.metrics.listen = Some(listen.clone());
    }
    if args.dev && config.metrics.listen.is_none() {
        config.metrics.listen = Some(DEV_METRICS_LISTEN.into());
    }
}

/// The addresses dev.env names: `DOWNCITY_ADDR` and, with a separate admin
/// listener, `DOWNCITY_ADMIN_ADDR` (`https://…` under TLS).
struct DevAddrs {
    main: String,
    admin: Option<String>,
    /// `DOWNCITY_METRICS_ADDR`: the ops listener serving `/metrics`.
    metrics: Option<String>,
}

/// Re-seals every provider key under the new master key, in one transaction.
async fn rekey(args: RekeyArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref()).context("loading the configuration")?;
    telemetry::init(config.log.format, &TracingConfig::default())?;
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let old = config.master_key()?;
    let new = if args.generate {
        MasterKey::read_or_create_file(&args.new_master_key_file)?
    } else {
        MasterKey::read_file(&args.new_master_key_file)?
    };
    let store = downcity::server::open_store(&config).await?;
    let count = keys::rekey(store.as_ref(), old.as_ref(), &new).await?;
    store.close().await;
    println!(
        "Re-encrypted {count} provider key(s) under the key in {}; start City with it \
         (DOWNCITY_MASTER_KEY or master_key_file).",
        args.new_master_key_file.display()
    );
    Ok(())
}

/// Creates the demo studio and a user token once, and writes dev.env.
async fn dev_bootstrap(
    city: &City,
    data_dir: &Path,
    addrs: &DevAddrs,
    admin_key: &str,
    previous: &[(String, String)],
) -> anyhow::Result<()> {
    let addr = &addrs.main;
    let directory = city.directory();
    if directory.get_studio(DEV_STUDIO).await.is_err() {
        directory
            .create_studio(Some(DEV_STUDIO.into()), "Demo studio".into())
            .await?;
    }
    let token = match dev_value(previous, "DOWNCITY_USER_TOKEN") {
        Some(token) if directory.is_live_user_token(DEV_STUDIO, &token) => token,
        _ => {
            directory
                .issue_user_token(DEV_STUDIO, DEV_USER.into(), None)
                .await?
                .1
        }
    };
    let mut env = format!(
        "DOWNCITY_ADDR={addr}\nDOWNCITY_ADMIN_KEY={admin_key}\nDOWNCITY_STUDIO_ID={DEV_STUDIO}\nDOWNCITY_USER_TOKEN={token}\n"
    );
    if let Some(admin_addr) = &addrs.admin {
        env.push_str(&format!("DOWNCITY_ADMIN_ADDR={admin_addr}\n"));
    }
    if let Some(metrics_addr) = &addrs.metrics {
        env.push_str(&format!("DOWNCITY_METRICS_ADDR={metrics_addr}\n"));
    }
    let path = data_dir.join("dev.env");
    write_private(&path, &env).with_context(|| format!("writing {}", path.display()))?;
    println!("Dev credentials written to {}", path.display());
    if addr.starts_with("https://") {
        println!("City serves TLS: see README, \"TLS and mTLS\", for grpcurl and the clients.");
        return Ok(());
    }
    println!("Try it:");
    println!(
        "  grpcurl -plaintext -H 'x-studio-id: {DEV_STUDIO}' -H 'authorization: Bearer {token}' \\\n    -d '{{\"messages\":[{{\"role\":\"ROLE_USER\",\"content\":\"Hello, City\"}}]}}' \\\n    {addr} downcity.v1.AIService/Text"
    );
    println!(
        "  buf curl --protocol grpc --http2-prior-knowledge -H 'x-studio-id: {DEV_STUDIO}' -H 'authorization: Bearer {token}' \\\n    -d '{{\"messages\":[{{\"role\":\"ROLE_USER\",\"content\":\"Hello, City\"}}]}}' \\\n    http://{addr}/downcity.v1.AIService/Text"
    );
    Ok(())
}

fn read_dev_env(data_dir: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(data_dir.join("dev.env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn dev_value(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.clone())
}

/// Writes a file only its owner can read: it holds secrets.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

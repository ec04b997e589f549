//! `downcity admin`: the operator's client of `AdminService`.
//!
//! Every call carries `authorization: Bearer <key>` with the operator's admin
//! key, or with a studio key (`dck_...`) for the studio-scoped calls.
//! Responses print as tables, or with `--json` as JSON.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use tonic::{Response, Status};

use super::client::{
    Bearer, Client, PageArgs, PagedRequest, PagedResponse, collect, connect, for_each_page, unary,
};
use super::render::{Output, Render, SecretKept, csv_header, csv_row};
use crate::proto::{
    AggregateUsageRequest, CreateStudioKeyRequest, CreateStudioRequest, DeleteHookRequest,
    DeleteModelRequest, DeleteProviderRequest, GetLimitsRequest, GetQuotaStandingRequest,
    GetStudioRequest, Hook, HookDeliveryState, HookEvent, HookFailurePolicy, IssueUserTokenRequest,
    LimitTarget, Limits, ListCatalogModelsRequest, ListHookDeliveriesRequest, ListHooksRequest,
    ListProvidersRequest, ListStudioKeysRequest, ListStudiosRequest, ListUsageRecordsRequest,
    ListUserTokensRequest, Model, ModelIdList, Pathway, Provider, ProviderKind,
    RedeliverHookRequest, RevokeStudioKeyRequest, RevokeUserTokenRequest, SetDefaultModelRequest,
    SetLimitsRequest, StudioStatus, UpdateStudioRequest, UpsertHookRequest, UpsertModelRequest,
    UpsertProviderRequest, UsageDimension, UsageFilter, UsageRecord,
};

/// The help heading of the options every admin command takes.
const GLOBAL: &str = "Global options";

/// Manage the studios, credentials, model catalog, usage and hooks of a running City.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The City's gRPC address: `host:port`, with or without `http://`.
    #[arg(
        long,
        env = "DOWNCITY_ADDR",
        default_value = "127.0.0.1:50051",
        global = true,
        help_heading = GLOBAL
    )]
    addr: String,
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
    Studios(StudiosCommand),
    /// Create, list and revoke studio keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Issue, list and revoke user tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Create, list and delete upstream providers.
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Create, list and delete catalog models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Set each pathway's default model.
    #[command(subcommand)]
    Defaults(DefaultsCommand),
    /// List, sum and export usage records.
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Set and show the limits of studios and users, and their standing.
    #[command(subcommand)]
    Limits(LimitsCommand),
    /// Create, list and delete business hooks (before_call / after_call
    /// webhooks), and list and resend their deliveries.
    #[command(subcommand)]
    Hooks(HooksCommand),
}

#[derive(Debug, Subcommand)]
enum StudiosCommand {
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
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
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

#[derive(Debug, Subcommand)]
enum TokensCommand {
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

#[derive(Debug, Subcommand)]
enum ProvidersCommand {
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

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Create or replace a catalog model.
    Upsert(Box<ModelArgs>),
    /// List the catalog with its upstream details.
    List(PageArgs),
    /// Delete a model that is no pathway's default.
    Delete {
        /// The model's id.
        id: String,
    },
}

/// Every field of a model; an upsert replaces the whole model.
#[derive(Debug, Args)]
struct ModelArgs {
    /// Stable id that studios pass as `model`.
    id: String,
    /// The provider that serves the model.
    #[arg(long)]
    provider: String,
    /// The model's name at the upstream.
    #[arg(long, value_name = "NAME")]
    upstream: String,
    /// The pathway the model serves.
    #[arg(long, value_enum)]
    pathway: PathwayArg,
    /// Human-readable name.
    #[arg(long)]
    name: Option<String>,
    /// Keep studios from calling the model.
    #[arg(long)]
    disabled: bool,
    /// Largest answer in tokens.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    max_output_tokens: i32,
    /// Largest prompt in estimated tokens.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..))]
    max_input_tokens: i32,
    /// Price per million input tokens, in micro-units.
    #[arg(long, value_name = "MICROS_PER_MTOK", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    input_price: i64,
    /// Price per million output tokens, in micro-units.
    #[arg(long, value_name = "MICROS_PER_MTOK", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    output_price: i64,
    /// Price per generated image, in micro-units.
    #[arg(long, value_name = "MICROS_PER_IMAGE", default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    image_price: i64,
    /// A model to fall back to when the provider fails; repeat, in order.
    #[arg(long = "fallback", value_name = "MODEL")]
    fallbacks: Vec<String>,
    /// A provider-specific setting, such as `chunk_delay_ms=20`; repeat.
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    options: Vec<(String, String)>,
}

#[derive(Debug, Subcommand)]
enum DefaultsCommand {
    /// Make a model the default of its pathway.
    Set {
        /// The pathway whose default to set.
        #[arg(value_enum)]
        pathway: PathwayArg,
        /// The model; it must serve that pathway.
        model: String,
    },
}

#[derive(Debug, Subcommand)]
enum UsageCommand {
    /// List usage records, newest first.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Sum usage records, grouped by the chosen dimensions.
    Aggregate {
        /// Dimensions to group by; none sums everything into one row.
        #[arg(long, value_enum, value_delimiter = ',')]
        by: Vec<DimensionArg>,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Write every matching usage record as CSV, newest first, with a
    /// header row (the fields and values of `usage list --json`).
    Export {
        #[command(flatten)]
        filter: FilterArgs,
        /// Write to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum LimitsCommand {
    /// Replace the limits of a studio, of its users by default, or of one
    /// user. Limits not given are removed; no limit flags remove them all.
    Set {
        /// The studio's id.
        studio: String,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Show the limits set for a studio, its users by default, or one user.
    Get {
        /// The studio's id.
        studio: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show, per limit that applies, what is used, reserved and remaining
    /// in its current window.
    Standing {
        /// The studio's id.
        studio: String,
        /// Also the limits that bind this user (their own, else the
        /// studio-wide user default).
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum HooksCommand {
    /// Create a hook and print its signing secret, once; or, with --id,
    /// replace a hook whole (its secret stays).
    Upsert(Box<HookArgs>),
    /// List the hooks of a studio, or the City-wide ones, without secrets.
    List {
        #[command(flatten)]
        scope: HookScope,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Delete a hook; its pending deliveries become dead.
    Delete {
        /// The hook's id.
        hook_id: String,
        #[command(flatten)]
        scope: HookScope,
    },
    /// List after_call deliveries, newest first.
    Deliveries {
        #[command(flatten)]
        scope: HookScope,
        /// Only this hook's deliveries.
        #[arg(long, value_name = "HOOK_ID")]
        hook: Option<String>,
        /// Only deliveries in this state.
        #[arg(long, value_enum)]
        state: Option<DeliveryStateArg>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send a delivery again, now, with its attempts reset.
    Redeliver {
        /// The delivery's id (`msg_...`).
        delivery_id: String,
        #[command(flatten)]
        scope: HookScope,
    },
}

/// Whose hooks: a studio's, or (without --studio) the City-wide ones.
#[derive(Debug, Args)]
struct HookScope {
    /// The studio; without it, the City-wide hooks (admin key only).
    #[arg(long)]
    studio: Option<String>,
}

impl HookScope {
    /// The proto `studio_id`: empty for City-wide.
    fn studio_id(self) -> String {
        self.studio.unwrap_or_default()
    }
}

/// Whose calls a hook sees: always said, so no hook becomes City-wide by
/// a forgotten --studio.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct HookOwner {
    /// The studio whose calls the hook sees.
    #[arg(long)]
    studio: Option<String>,
    /// A City-wide hook: it sees every studio's calls (admin key only).
    #[arg(long)]
    city_wide: bool,
}

/// Every field of a hook; an upsert replaces the whole hook.
#[derive(Debug, Args)]
struct HookArgs {
    /// The hook to replace; omitted creates a new hook with a new secret.
    #[arg(long)]
    id: Option<String>,
    #[command(flatten)]
    owner: HookOwner,
    /// The http(s) URL City POSTs to.
    #[arg(long)]
    url: String,
    /// The events sent to the hook; repeat, or separate with commas.
    #[arg(
        long = "event",
        value_name = "EVENT",
        value_enum,
        value_delimiter = ',',
        required = true
    )]
    events: Vec<EventArg>,
    /// How long a before_call waits for the answer, and an after_call
    /// delivery for its response, such as `500ms` (default 2s, at most 60s).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// What a before_call does when the hook times out or fails: `open`
    /// lets the call proceed (the default), `closed` fails it.
    #[arg(long, value_enum)]
    failure_policy: Option<PolicyArg>,
    /// Send the prompt in before_call payloads.
    #[arg(long)]
    include_prompt: bool,
}

impl HookArgs {
    fn into_proto(self) -> Result<Hook> {
        let timeout = self
            .timeout
            .map(prost_types::Duration::try_from)
            .transpose()
            .map_err(|_| anyhow!("the timeout is too long"))?;
        Ok(Hook {
            id: self.id.unwrap_or_default(),
            studio_id: self.owner.studio.unwrap_or_default(),
            url: self.url,
            events: self.events.into_iter().map(i32::from).collect(),
            timeout,
            failure_policy: self.failure_policy.map_or(0, i32::from),
            include_prompt: self.include_prompt,
            create_time: None,
            update_time: None,
        })
    }
}

/// Which limits: the studio's own (the default), its users' default, or one user's.
#[derive(Debug, Args)]
struct TargetArgs {
    /// The limits of this one user of the studio.
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default limits of each user of the studio without limits of their own.
    #[arg(long)]
    user_default: bool,
}

impl TargetArgs {
    /// The proto target and its user id.
    fn into_proto(self) -> (LimitTarget, String) {
        match self.user {
            Some(user) => (LimitTarget::User, user),
            None if self.user_default => (LimitTarget::UserDefault, String::new()),
            None => (LimitTarget::Studio, String::new()),
        }
    }
}

/// The limits of one target; absent flags mean "no limit". Windows are UTC.
#[derive(Debug, Args)]
struct LimitArgs {
    /// Calls started per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    requests_per_minute: Option<i64>,
    /// Input plus output tokens per minute.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    tokens_per_minute: Option<i64>,
    /// Input plus output tokens per day.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    tokens_per_day: Option<i64>,
    /// Cost per day, in micro-units.
    #[arg(long, value_name = "MICROS", value_parser = clap::value_parser!(i64).range(0..))]
    cost_per_day: Option<i64>,
    /// Cost per calendar month, in micro-units.
    #[arg(long, value_name = "MICROS", value_parser = clap::value_parser!(i64).range(0..))]
    cost_per_month: Option<i64>,
}

impl LimitArgs {
    fn into_proto(self) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            cost_micros_per_day: self.cost_per_day,
            cost_micros_per_month: self.cost_per_month,
        }
    }
}

/// Which usage records to include.
#[derive(Debug, Args)]
struct FilterArgs {
    /// Only this studio.
    #[arg(long)]
    studio: Option<String>,
    /// Only this user.
    #[arg(long)]
    user: Option<String>,
    /// Only this model.
    #[arg(long)]
    model: Option<String>,
    /// Only calls at or after this time: RFC 3339 (`2025-01-31T08:00:00Z`,
    /// `2025-01-31`) or a duration ago (`24h`, `7d`).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only calls before this time, in the same forms as --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<SystemTime>,
}

impl FilterArgs {
    fn into_proto(self) -> UsageFilter {
        UsageFilter {
            studio_id: self.studio.unwrap_or_default(),
            user_id: self.user.unwrap_or_default(),
            model_id: self.model.unwrap_or_default(),
            start_time: self.since.map(Into::into),
            end_time: self.until.map(Into::into),
        }
    }
}

/// A clap value enum for some values of a proto enum, which it converts to
/// the `i32` the messages hold.
macro_rules! proto_choice {
    ($(#[$doc:meta])* $arg:ident => $proto:ident { $($(#[$value_doc:meta])* $value:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
        enum $arg {
            $($(#[$value_doc])* $value),+
        }

        impl From<$arg> for i32 {
            fn from(arg: $arg) -> i32 {
                match arg {
                    $($arg::$value => $proto::$value.into()),+
                }
            }
        }
    };
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

proto_choice! {
    /// The kind of AI call a model serves.
    PathwayArg => Pathway { Text, Image }
}

proto_choice! {
    /// A dimension to group usage by.
    DimensionArg => UsageDimension {
        /// Group by studio.
        Studio,
        /// Group by studio and user.
        User,
        /// Group by model.
        Model,
        /// Group by calendar day (UTC).
        Day,
        /// Group by hour (UTC).
        Hour,
        /// Group by calendar month (UTC).
        Month,
    }
}

proto_choice! {
    /// When a hook is called.
    EventArg => HookEvent {
        /// Before the provider call, synchronously; may deny the call.
        #[value(name = "before_call", alias = "before-call")]
        BeforeCall,
        /// After the call, with its usage row, delivered with retries.
        #[value(name = "after_call", alias = "after-call")]
        AfterCall,
    }
}

proto_choice! {
    /// What a failed or timed-out before_call does.
    PolicyArg => HookFailurePolicy {
        /// The call proceeds.
        #[value(name = "open", alias = "fail_open", alias = "fail-open")]
        FailOpen,
        /// The call fails with UNAVAILABLE (HOOK_UNAVAILABLE).
        #[value(name = "closed", alias = "fail_closed", alias = "fail-closed")]
        FailClosed,
    }
}

proto_choice! {
    /// Where an after_call delivery stands.
    DeliveryStateArg => HookDeliveryState {
        /// Waiting for its next attempt.
        Pending,
        /// The receiver answered 2xx.
        Delivered,
        /// Given up after the last attempt, or its hook was deleted.
        Dead,
    }
}

/// A token lifetime; `None` never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ttl(Option<Duration>);

fn parse_ttl(s: &str) -> Result<Ttl, String> {
    if s.trim().eq_ignore_ascii_case("never") {
        return Ok(Ttl(None));
    }
    match humantime::parse_duration(s.trim()) {
        Ok(d) if d.is_zero() => Err("the ttl must be longer than zero".to_owned()),
        Ok(d) => Ok(Ttl(Some(d))),
        Err(e) => Err(format!("{e}; use a duration like `24h` or `never`")),
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// `--since`/`--until`, relative to now.
fn parse_time(s: &str) -> Result<SystemTime, String> {
    parse_time_at(s, SystemTime::now())
}

/// An RFC 3339 time (UTC unless it carries an offset; a bare date is its
/// midnight UTC), or a duration before `now`.
fn parse_time_at(s: &str, now: SystemTime) -> Result<SystemTime, String> {
    let s = s.trim();
    if let Some(time) = parse_rfc3339(s) {
        return Ok(time);
    }
    if let Ok(ago) = humantime::parse_duration(s) {
        return now
            .checked_sub(ago)
            .filter(|t| *t >= SystemTime::UNIX_EPOCH)
            .ok_or_else(|| format!("`{s}` ago is before 1970"));
    }
    Err(format!(
        "`{s}` is neither an RFC 3339 time (`2025-01-31T08:00:00Z`) nor a duration ago (`24h`)"
    ))
}

fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    if s.len() == "2025-01-31".len() {
        return humantime::parse_rfc3339(&format!("{s}T00:00:00Z")).ok();
    }
    if let Ok(time) = humantime::parse_rfc3339_weak(s) {
        return Some(time);
    }
    // humantime knows only UTC: undo a numeric offset such as `+02:00`.
    let split = s.len().checked_sub("+02:00".len())?;
    let (local, offset) = (s.get(..split)?, s.get(split..)?.as_bytes());
    let digits = |i: usize| char::from(offset[i]).to_digit(10).map(u64::from);
    if offset[3] != b':' {
        return None;
    }
    let hours = digits(1)? * 10 + digits(2)?;
    let minutes = digits(4)? * 10 + digits(5)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    let shift = Duration::from_secs(hours * 3600 + minutes * 60);
    let local = humantime::parse_rfc3339_weak(local).ok()?;
    match offset[0] {
        b'+' => local.checked_sub(shift),
        b'-' => local.checked_add(shift),
        _ => None,
    }
}

/// Runs one admin command against the City at `--addr`.
///
/// A failure comes back as one line for stderr: `error: <CODE>: <message>
/// (reason: <ErrorInfo reason>)` for a refused call, `error: <what went
/// wrong>` otherwise.
pub async fn run(args: AdminArgs) -> Result<()> {
    execute(args).await.map_err(|e| anyhow!("error: {e:#}"))
}

async fn execute(args: AdminArgs) -> Result<()> {
    let bearer = Bearer::new(args.admin_key.as_deref())?;
    let client = &mut connect(&args.addr, bearer).await?;
    let out = Output { json: args.json };
    match args.command {
        AdminCommand::Studios(command) => studios(client, out, command).await,
        AdminCommand::Keys(command) => keys(client, out, command).await,
        AdminCommand::Tokens(command) => tokens(client, out, command).await,
        AdminCommand::Providers(command) => providers(client, out, command).await,
        AdminCommand::Models(command) => models(client, out, command).await,
        AdminCommand::Defaults(command) => defaults(client, out, command).await,
        AdminCommand::Usage(command) => usage(client, out, command).await,
        AdminCommand::Limits(command) => limits(client, out, command).await,
        AdminCommand::Hooks(command) => hooks(client, out, command).await,
    }
}

/// Lists with `rpc` page after page, then prints what it got.
async fn list<Req, Resp>(
    out: Output,
    page: PageArgs,
    request: Req,
    rpc: impl AsyncFnMut(Req) -> Result<Response<Resp>, Status>,
) -> Result<()>
where
    Req: PagedRequest,
    Resp: PagedResponse<Item: Render>,
{
    out.list(&collect(page, request, rpc).await?)
}

async fn studios(client: &mut Client, out: Output, command: StudiosCommand) -> Result<()> {
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
            list(out, page, request, async |r| client.list_studios(r).await).await
        }
        StudiosCommand::Suspend { id } => {
            update_studio(client, out, id, None, StudioStatus::Suspended, None).await
        }
        StudiosCommand::Activate { id } => {
            update_studio(client, out, id, None, StudioStatus::Active, None).await
        }
        StudiosCommand::Rename { id, name } => {
            update_studio(client, out, id, Some(name), StudioStatus::Unspecified, None).await
        }
        StudiosCommand::AllowModels { id, models, all } => {
            // `--all` sends an empty list: every model.
            let models = if all { Vec::new() } else { models };
            let status = StudioStatus::Unspecified;
            update_studio(client, out, id, None, status, Some(models)).await
        }
    }
}

/// Changes a studio's name (unless `None`), status (unless unspecified) and
/// model allow-list (unless `None`; empty allows every model).
async fn update_studio(
    client: &mut Client,
    out: Output,
    id: String,
    name: Option<String>,
    status: StudioStatus,
    allowed_models: Option<Vec<String>>,
) -> Result<()> {
    let request = UpdateStudioRequest {
        studio_id: id,
        display_name: name,
        status: status.into(),
        allowed_models: allowed_models.map(|model_ids| ModelIdList { model_ids }),
    };
    let response = unary(client.update_studio(request)).await?;
    out.item("studio", response.studio.as_ref())
}

async fn keys(client: &mut Client, out: Output, command: KeysCommand) -> Result<()> {
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
            list(out, page, request, async |r| {
                client.list_studio_keys(r).await
            })
            .await
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

async fn tokens(client: &mut Client, out: Output, command: TokensCommand) -> Result<()> {
    match command {
        TokensCommand::Issue { studio, user, ttl } => {
            let ttl = ttl
                .0
                .map(prost_types::Duration::try_from)
                .transpose()
                .map_err(|_| anyhow!("the ttl is too long"))?;
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
            list(out, page, request, async |r| {
                client.list_user_tokens(r).await
            })
            .await
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

async fn providers(client: &mut Client, out: Output, command: ProvidersCommand) -> Result<()> {
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
            let api_key = if let Some(var) = api_key_env {
                let key = std::env::var(&var)
                    .map_err(|_| anyhow::anyhow!("the environment variable {var} is not set"))?;
                Some(key)
            } else if api_key_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim().to_string())
            } else if clear_api_key {
                Some(String::new())
            } else {
                None
            };
            let duration = |d: Option<Duration>| {
                d.map(|d| prost_types::Duration {
                    seconds: d.as_secs() as i64,
                    nanos: d.subsec_nanos() as i32,
                })
            };
            let provider = Provider {
                id,
                kind: kind.into(),
                base_url: base_url.unwrap_or_default(),
                headers: headers.into_iter().collect(),
                connect_timeout: duration(connect_timeout),
                first_byte_timeout: duration(first_byte_timeout),
                total_timeout: duration(total_timeout),
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
            list(out, page, request, async |r| client.list_providers(r).await).await
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

impl ModelArgs {
    fn into_proto(self) -> Model {
        Model {
            id: self.id,
            display_name: self.name.unwrap_or_default(),
            provider_id: self.provider,
            upstream_model: self.upstream,
            pathway: self.pathway.into(),
            enabled: Some(!self.disabled),
            is_default: false,
            max_output_tokens: self.max_output_tokens,
            max_input_tokens: self.max_input_tokens,
            input_micros_per_mtok: self.input_price,
            output_micros_per_mtok: self.output_price,
            micros_per_image: self.image_price,
            fallback_model_ids: self.fallbacks,
            options: self.options.into_iter().collect(),
            update_time: None,
        }
    }
}

async fn models(client: &mut Client, out: Output, command: ModelsCommand) -> Result<()> {
    match command {
        ModelsCommand::Upsert(model) => {
            let request = UpsertModelRequest {
                model: Some(model.into_proto()),
            };
            let response = unary(client.upsert_model(request)).await?;
            out.item("model", response.model.as_ref())
        }
        ModelsCommand::List(page) => {
            let request = ListCatalogModelsRequest::default();
            list(out, page, request, async |r| {
                client.list_catalog_models(r).await
            })
            .await
        }
        ModelsCommand::Delete { id } => {
            let request = DeleteModelRequest {
                model_id: id.clone(),
            };
            unary(client.delete_model(request)).await?;
            out.deleted("model", &id)
        }
    }
}

async fn defaults(client: &mut Client, out: Output, command: DefaultsCommand) -> Result<()> {
    let DefaultsCommand::Set { pathway, model } = command;
    let request = SetDefaultModelRequest {
        pathway: pathway.into(),
        model_id: model,
    };
    let response = unary(client.set_default_model(request)).await?;
    out.item("model", response.model.as_ref())
}

async fn usage(client: &mut Client, out: Output, command: UsageCommand) -> Result<()> {
    match command {
        UsageCommand::List { filter, page } => {
            let request = ListUsageRecordsRequest {
                filter: Some(filter.into_proto()),
                ..Default::default()
            };
            list(out, page, request, async |r| {
                client.list_usage_records(r).await
            })
            .await
        }
        UsageCommand::Aggregate { by, filter, page } => {
            let request = AggregateUsageRequest {
                filter: Some(filter.into_proto()),
                group_by: by.into_iter().map(i32::from).collect(),
                ..Default::default()
            };
            list(out, page, request, async |r| {
                client.aggregate_usage(r).await
            })
            .await
        }
        UsageCommand::Export { filter, output } => export_usage(client, filter, output).await,
    }
}

/// Writes every usage record the filter matches as CSV, to `path` or stdout,
/// one page at a time. A failed export removes the file it started.
async fn export_usage(
    client: &mut Client,
    filter: FilterArgs,
    path: Option<PathBuf>,
) -> Result<()> {
    let request = ListUsageRecordsRequest {
        filter: Some(filter.into_proto()),
        ..Default::default()
    };
    let Some(path) = path else {
        let mut stdout = std::io::BufWriter::new(std::io::stdout());
        return write_usage_csv(client, request, &mut stdout)
            .await
            .map(drop);
    };
    let file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut file = std::io::BufWriter::new(file);
    match write_usage_csv(client, request, &mut file).await {
        Ok(count) => {
            eprintln!("Wrote {count} usage records to {}.", path.display());
            Ok(())
        }
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Writes the header and every record; returns how many records.
async fn write_usage_csv(
    client: &mut Client,
    request: ListUsageRecordsRequest,
    sink: &mut impl Write,
) -> Result<u64> {
    sink.write_all(csv_header::<UsageRecord>().as_bytes())?;
    let mut count = 0;
    let write_page = |records: Vec<UsageRecord>| -> Result<()> {
        for record in &records {
            sink.write_all(csv_row(record).as_bytes())?;
            count += 1;
        }
        Ok(())
    };
    for_each_page(
        request,
        async |r| client.list_usage_records(r).await,
        write_page,
    )
    .await?;
    sink.flush()?;
    Ok(count)
}

async fn limits(client: &mut Client, out: Output, command: LimitsCommand) -> Result<()> {
    match command {
        LimitsCommand::Set {
            studio,
            target,
            limits,
        } => {
            let (target, user_id) = target.into_proto();
            let request = SetLimitsRequest {
                studio_id: studio,
                target: target.into(),
                user_id,
                limits: Some(limits.into_proto()),
            };
            let response = unary(client.set_limits(request)).await?;
            out.item("limits", response.limits.as_ref())
        }
        LimitsCommand::Get { studio, target } => {
            let (target, user_id) = target.into_proto();
            let request = GetLimitsRequest {
                studio_id: studio,
                target: target.into(),
                user_id,
            };
            let response = unary(client.get_limits(request)).await?;
            out.item("limits", response.limits.as_ref())
        }
        LimitsCommand::Standing { studio, user } => {
            let request = GetQuotaStandingRequest {
                studio_id: studio,
                user_id: user.unwrap_or_default(),
            };
            let response = unary(client.get_quota_standing(request)).await?;
            out.items("limits", &response.limits)
        }
    }
}

async fn hooks(client: &mut Client, out: Output, command: HooksCommand) -> Result<()> {
    match command {
        HooksCommand::Upsert(hook) => {
            let request = UpsertHookRequest {
                hook: Some(hook.into_proto()?),
            };
            let response = unary(client.upsert_hook(request)).await?;
            let hook = response.hook.as_ref();
            // Only a new hook comes back with its secret.
            if response.secret.is_empty() {
                out.item("hook", hook)
            } else {
                out.item_with_secret("hook", hook, &response.secret, SecretKept::Encrypted)
            }
        }
        HooksCommand::List { scope, page } => {
            let request = ListHooksRequest {
                studio_id: scope.studio_id(),
                ..Default::default()
            };
            list(out, page, request, async |r| client.list_hooks(r).await).await
        }
        HooksCommand::Delete { hook_id, scope } => {
            let request = DeleteHookRequest {
                studio_id: scope.studio_id(),
                hook_id: hook_id.clone(),
            };
            unary(client.delete_hook(request)).await?;
            out.deleted("hook", &hook_id)
        }
        HooksCommand::Deliveries {
            scope,
            hook,
            state,
            page,
        } => {
            let request = ListHookDeliveriesRequest {
                studio_id: scope.studio_id(),
                hook_id: hook.unwrap_or_default(),
                state: state.map_or(0, i32::from),
                ..Default::default()
            };
            list(out, page, request, async |r| {
                client.list_hook_deliveries(r).await
            })
            .await
        }
        HooksCommand::Redeliver { delivery_id, scope } => {
            let request = RedeliverHookRequest {
                studio_id: scope.studio_id(),
                delivery_id,
            };
            let response = unary(client.redeliver_hook(request)).await?;
            out.item("delivery", response.delivery.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// `downcity admin` as its own program.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        admin: AdminArgs,
    }

    fn parse(args: &[&str]) -> Result<AdminArgs, clap::Error> {
        let argv = ["admin", "--addr", "city:1", "--admin-key", "k"];
        Cli::try_parse_from(argv.iter().chain(args)).map(|cli| cli.admin)
    }

    fn parse_ok(args: &[&str]) -> AdminArgs {
        parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn fails(args: &[&str]) -> bool {
        parse(args).is_err()
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

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
            matches!(args.command, AdminCommand::Studios(StudiosCommand::Get { id }) if id == "s1")
        );
    }

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

    #[test]
    fn model_upserts_carry_every_field() {
        let args = parse_ok(&[
            "models",
            "upsert",
            "fast",
            "--provider",
            "mock1",
            "--upstream",
            "mock-large",
            "--pathway",
            "text",
            "--name",
            "Fast",
            "--disabled",
            "--max-output-tokens",
            "512",
            "--max-input-tokens",
            "4096",
            "--input-price",
            "150",
            "--output-price",
            "600",
            "--fallback",
            "slow",
            "--fallback",
            "slower",
            "--option",
            "chunk_delay_ms=20",
            "--option",
            "fail=a=b",
        ]);
        let AdminCommand::Models(ModelsCommand::Upsert(model)) = args.command else {
            panic!("not an upsert");
        };
        let model = model.into_proto();
        assert_eq!(model.id, "fast");
        assert_eq!(model.display_name, "Fast");
        assert_eq!(model.provider_id, "mock1");
        assert_eq!(model.upstream_model, "mock-large");
        assert_eq!(model.pathway, Pathway::Text as i32);
        assert_eq!(model.enabled, Some(false));
        assert_eq!(
            (model.max_output_tokens, model.max_input_tokens),
            (512, 4096)
        );
        assert_eq!(
            (model.input_micros_per_mtok, model.output_micros_per_mtok),
            (150, 600)
        );
        assert_eq!(model.micros_per_image, 0);
        assert_eq!(model.fallback_model_ids, ["slow", "slower"]);
        assert_eq!(model.options["chunk_delay_ms"], "20");
        assert_eq!(model.options["fail"], "a=b");
    }

    #[test]
    fn model_upserts_reject_bad_values() {
        let base = [
            "models",
            "upsert",
            "m",
            "--provider",
            "p",
            "--upstream",
            "u",
        ];
        let with = |extra: &[&'static str]| [&base[..], extra].concat();
        assert!(!fails(&with(&[
            "--pathway",
            "image",
            "--image-price",
            "40000"
        ])));
        assert!(fails(&with(&[])));
        assert!(fails(&with(&["--pathway", "audio"])));
        assert!(fails(&with(&["--pathway", "text", "--option", "novalue"])));
        assert!(fails(&with(&["--pathway", "text", "--option", "=v"])));
        assert!(fails(&with(&["--pathway", "text", "--input-price", "-1"])));
    }

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

    #[test]
    fn usage_commands_parse() {
        let args = parse_ok(&[
            "usage",
            "list",
            "--studio",
            "acme",
            "--user",
            "u1",
            "--model",
            "fast",
            "--since",
            "2025-01-31T00:00:00Z",
            "--until",
            "2025-02-01",
            "--limit",
            "20",
        ]);
        let AdminCommand::Usage(UsageCommand::List { filter, page }) = args.command else {
            panic!("not a usage list");
        };
        assert_eq!(
            page,
            PageArgs {
                page_size: 20,
                all: false
            }
        );
        let filter = filter.into_proto();
        assert_eq!(
            (filter.studio_id.as_str(), filter.user_id.as_str()),
            ("acme", "u1")
        );
        assert_eq!(filter.model_id, "fast");
        assert_eq!(filter.start_time.map(|t| t.seconds), Some(1_738_281_600));
        assert_eq!(filter.end_time.map(|t| t.seconds), Some(1_738_368_000));

        let args = parse_ok(&["usage", "aggregate", "--by", "studio,day", "--by", "model"]);
        let AdminCommand::Usage(UsageCommand::Aggregate { by, filter, .. }) = args.command else {
            panic!("not a usage aggregate");
        };
        assert_eq!(
            by,
            [DimensionArg::Studio, DimensionArg::Day, DimensionArg::Model]
        );
        assert_eq!(filter.into_proto(), UsageFilter::default());
        let args = parse_ok(&["usage", "aggregate", "--by", "hour,month"]);
        assert!(matches!(
            args.command,
            AdminCommand::Usage(UsageCommand::Aggregate { ref by, .. })
                if by == &[DimensionArg::Hour, DimensionArg::Month]
        ));
        assert_eq!(i32::from(DimensionArg::Hour), UsageDimension::Hour as i32);
        assert_eq!(i32::from(DimensionArg::Month), UsageDimension::Month as i32);
        assert!(fails(&["usage", "aggregate", "--by", "week"]));
        assert!(fails(&["usage", "list", "--since", "yesterday"]));
    }

    #[test]
    fn usage_export_takes_the_filters_and_a_file() {
        let args = parse_ok(&[
            "usage",
            "export",
            "--studio",
            "acme",
            "--since",
            "2025-01-31",
            "-o",
            "u.csv",
        ]);
        let AdminCommand::Usage(UsageCommand::Export { filter, output }) = args.command else {
            panic!("not a usage export");
        };
        assert_eq!(output, Some(PathBuf::from("u.csv")));
        let filter = filter.into_proto();
        assert_eq!(filter.studio_id, "acme");
        assert_eq!(filter.start_time.map(|t| t.seconds), Some(1_738_281_600));
        let args = parse_ok(&["usage", "export", "--output", "all.csv"]);
        assert!(matches!(
            args.command,
            AdminCommand::Usage(UsageCommand::Export {
                output: Some(_),
                ..
            })
        ));
        let args = parse_ok(&["usage", "export"]);
        assert!(matches!(
            args.command,
            AdminCommand::Usage(UsageCommand::Export { output: None, .. })
        ));
        // Export follows every page: no paging flags.
        assert!(fails(&["usage", "export", "--all"]));
        assert!(fails(&["usage", "export", "--limit", "5"]));
    }

    fn limits_set(extra: &[&str]) -> (String, (LimitTarget, String), Limits) {
        let argv = [&["limits", "set", "acme"][..], extra].concat();
        match parse_ok(&argv).command {
            AdminCommand::Limits(LimitsCommand::Set {
                studio,
                target,
                limits,
            }) => (studio, target.into_proto(), limits.into_proto()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_set_carries_every_limit_and_target() {
        let (studio, target, limits) = limits_set(&[
            "--requests-per-minute",
            "60",
            "--tokens-per-minute",
            "10000",
            "--tokens-per-day",
            "500000",
            "--cost-per-day",
            "2000000",
            "--cost-per-month",
            "0",
        ]);
        assert_eq!(studio, "acme");
        assert_eq!(target, (LimitTarget::Studio, String::new()));
        assert_eq!(
            limits,
            Limits {
                requests_per_minute: Some(60),
                tokens_per_minute: Some(10_000),
                tokens_per_day: Some(500_000),
                cost_micros_per_day: Some(2_000_000),
                cost_micros_per_month: Some(0),
            }
        );
        let (_, target, limits) = limits_set(&["--user", "u1", "--tokens-per-day", "5"]);
        assert_eq!(target, (LimitTarget::User, "u1".to_owned()));
        assert_eq!(limits.tokens_per_day, Some(5));
        assert_eq!(limits.requests_per_minute, None);
        let (_, target, _) = limits_set(&["--user-default", "--requests-per-minute", "1"]);
        assert_eq!(target, (LimitTarget::UserDefault, String::new()));
    }

    #[test]
    fn limits_set_without_limits_removes_them() {
        let (_, target, limits) = limits_set(&["--user", "u1"]);
        assert_eq!(target, (LimitTarget::User, "u1".to_owned()));
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn limits_reject_bad_values_and_mixed_targets() {
        assert!(fails(&["limits", "set", "acme", "--tokens-per-day", "-1"]));
        assert!(fails(&["limits", "set", "acme", "--cost-per-day", "1.5"]));
        assert!(fails(&[
            "limits",
            "set",
            "acme",
            "--user",
            "u",
            "--user-default"
        ]));
        assert!(fails(&["limits", "set", "acme", "--user"]));
        assert!(fails(&["limits", "set", "--tokens-per-day", "5"]));
        assert!(fails(&[
            "limits",
            "get",
            "acme",
            "--user",
            "u",
            "--user-default"
        ]));
        assert!(fails(&["limits", "get", "acme", "--tokens-per-day", "5"]));
        assert!(fails(&["limits", "standing", "acme", "--user-default"]));
    }

    #[test]
    fn limits_get_and_standing_parse() {
        let target_of = |extra: &[&str]| {
            let argv = [&["limits", "get", "acme"][..], extra].concat();
            match parse_ok(&argv).command {
                AdminCommand::Limits(LimitsCommand::Get { studio, target }) => {
                    assert_eq!(studio, "acme");
                    target.into_proto()
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(target_of(&[]), (LimitTarget::Studio, String::new()));
        assert_eq!(
            target_of(&["--user-default"]),
            (LimitTarget::UserDefault, String::new())
        );
        assert_eq!(
            target_of(&["--user", "u9"]),
            (LimitTarget::User, "u9".to_owned())
        );
        let args = parse_ok(&["limits", "standing", "acme", "--user", "u1"]);
        assert!(matches!(
            args.command,
            AdminCommand::Limits(LimitsCommand::Standing { studio, user: Some(user) })
                if studio == "acme" && user == "u1"
        ));
        let args = parse_ok(&["limits", "standing", "acme"]);
        assert!(matches!(
            args.command,
            AdminCommand::Limits(LimitsCommand::Standing { user: None, .. })
        ));
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

    fn hook_upsert(extra: &[&str]) -> Hook {
        let argv = [&["hooks", "upsert", "--url", "http://h/x"][..], extra].concat();
        match parse_ok(&argv).command {
            AdminCommand::Hooks(HooksCommand::Upsert(hook)) => hook.into_proto().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hook_upserts_carry_every_field() {
        let hook = hook_upsert(&[
            "--studio",
            "acme",
            "--event",
            "before_call,after-call",
            "--timeout",
            "1500ms",
            "--failure-policy",
            "closed",
            "--include-prompt",
            "--id",
            "hk_1",
        ]);
        assert_eq!(
            (hook.id.as_str(), hook.studio_id.as_str(), hook.url.as_str()),
            ("hk_1", "acme", "http://h/x")
        );
        let events = [HookEvent::BeforeCall as i32, HookEvent::AfterCall as i32];
        assert_eq!(hook.events, events);
        let timeout = hook.timeout.unwrap();
        assert_eq!((timeout.seconds, timeout.nanos), (1, 500_000_000));
        assert_eq!(hook.failure_policy, HookFailurePolicy::FailClosed as i32);
        assert!(hook.include_prompt);

        // The defaults are the server's: no timeout, unspecified policy.
        let hook = hook_upsert(&["--city-wide", "--event", "after_call"]);
        assert_eq!((hook.id.as_str(), hook.studio_id.as_str()), ("", ""));
        assert_eq!(hook.events, [HookEvent::AfterCall as i32]);
        assert_eq!((hook.timeout, hook.failure_policy), (None, 0));
        assert!(!hook.include_prompt);
        let hook = hook_upsert(&["--city-wide", "--event", "before_call"]);
        assert_eq!(hook.events, [HookEvent::BeforeCall as i32]);
        let hook = hook_upsert(&["--studio", "a", "--event", "after_call"]);
        assert_eq!(hook.failure_policy, 0);
        let open = hook_upsert(&[
            "--studio",
            "a",
            "--event",
            "after_call",
            "--failure-policy",
            "open",
        ]);
        assert_eq!(open.failure_policy, HookFailurePolicy::FailOpen as i32);
    }

    #[test]
    fn hook_upserts_need_an_owner_events_and_valid_values() {
        let base = ["hooks", "upsert", "--url", "http://h/x"];
        let with = |extra: &[&'static str]| [&base[..], extra].concat();
        assert!(fails(&with(&["--event", "after_call"])), "no owner");
        assert!(fails(&with(&[
            "--studio",
            "a",
            "--city-wide",
            "--event",
            "after_call"
        ])));
        assert!(fails(&with(&["--studio", "a"])), "no event");
        assert!(fails(&with(&["--studio", "a", "--event", "during_call"])));
        assert!(fails(&with(&[
            "--studio",
            "a",
            "--event",
            "after_call",
            "--failure-policy",
            "maybe"
        ])));
        assert!(fails(&with(&[
            "--studio",
            "a",
            "--event",
            "after_call",
            "--timeout",
            "soon"
        ])));
        assert!(fails(&[
            "hooks",
            "upsert",
            "--studio",
            "a",
            "--event",
            "after_call"
        ]));
    }

    #[test]
    fn hook_lists_deletes_and_deliveries_parse() {
        let args = parse_ok(&["hooks", "list"]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::List {
                scope: HookScope { studio: None },
                ..
            })
        ));
        let args = parse_ok(&["hooks", "delete", "hk_1", "--studio", "acme"]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::Delete { ref hook_id, scope: HookScope { studio: Some(ref s) } })
                if hook_id == "hk_1" && s == "acme"
        ));
        let args = parse_ok(&[
            "hooks",
            "deliveries",
            "--studio",
            "acme",
            "--hook",
            "hk_1",
            "--state",
            "dead",
            "--all",
        ]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::Deliveries {
                hook: Some(ref h),
                state: Some(DeliveryStateArg::Dead),
                page: PageArgs { all: true, .. },
                ..
            }) if h == "hk_1"
        ));
        assert_eq!(
            i32::from(DeliveryStateArg::Delivered),
            HookDeliveryState::Delivered as i32
        );
        let args = parse_ok(&["hooks", "redeliver", "msg_1"]);
        assert!(matches!(
            args.command,
            AdminCommand::Hooks(HooksCommand::Redeliver { ref delivery_id, .. }) if delivery_id == "msg_1"
        ));
        assert!(fails(&["hooks", "deliveries", "--state", "lost"]));
        assert!(fails(&["hooks", "delete"]));
        assert!(fails(&["hooks", "redeliver"]));
    }

    #[test]
    fn since_takes_rfc3339_or_a_duration_ago() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_738_300_000);
        let at = |s: &str| {
            parse_time_at(s, now).map(|t| {
                t.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
            })
        };
        assert_eq!(at("2025-01-31T00:00:00Z"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-31T00:00:00.5Z"), Ok(1_738_281_600.5));
        assert_eq!(at("2025-01-31 00:00:00"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-31"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-31T02:00:00+02:00"), Ok(1_738_281_600.0));
        assert_eq!(at("2025-01-30T19:30:00-04:30"), Ok(1_738_281_600.0));
        assert_eq!(at(" 24h "), Ok(1_738_300_000.0 - 86_400.0));
        assert_eq!(at("7d"), Ok(1_738_300_000.0 - 7.0 * 86_400.0));
        assert_eq!(at("1h 30m"), Ok(1_738_300_000.0 - 5_400.0));
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-01-31T00:00:00+25:00",
            "2025-01-31T00:00:00x02:00",
        ] {
            assert!(at(bad).is_err(), "{bad:?} parsed");
        }
        assert!(at("100000000000h").is_err());
    }

    #[test]
    fn the_ttl_parser_is_strict() {
        assert_eq!(parse_ttl("NEVER"), Ok(Ttl(None)));
        assert!(parse_ttl("-1h").is_err());
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

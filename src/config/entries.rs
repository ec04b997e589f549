//! The config file's catalog, limits and hooks. Each entry becomes the same
//! validated domain record the admin API makes (`ProviderRecord::validate`
//! and friends), and the whole file is checked before City writes anything:
//! a bad entry stops City at start naming the file, the entry and the field.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;

use crate::domain::{
    DEFAULT_HOOK_TIMEOUT_MS, DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_OUTPUT_TOKENS, FailurePolicy,
    HookEvent, HookRecord, LimitTarget, LimitValues, LimitsRecord, ModelRecord, Pathway,
    ProviderKind, ProviderRecord, ProviderTimeouts,
};
use crate::error::Error;
use crate::keys::ApiKey;

/// One `[[providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub id: String,
    /// `mock`, `openai`, `openai_compatible`, `anthropic` or `gemini`.
    pub kind: ProviderKind,
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

/// One `[[models]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    pub provider: String,
    pub upstream_model: String,
    /// `text` or `image`.
    pub pathway: Pathway,
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

fn default_max_output_tokens() -> i32 {
    DEFAULT_MAX_OUTPUT_TOKENS
}

fn default_max_input_tokens() -> i32 {
    DEFAULT_MAX_INPUT_TOKENS
}

/// `[defaults]`: the default model of each pathway.
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
    pub events: Vec<HookEvent>,
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: i64,
    /// `fail_open` (the default) or `fail_closed`.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    #[serde(default)]
    pub include_prompt: bool,
    /// The environment variable holding the `whsec_...` signing secret.
    pub secret_env: String,
}

fn default_hook_timeout_ms() -> i64 {
    DEFAULT_HOOK_TIMEOUT_MS
}

/// A config provider as a record, with the API key its `api_key_env` names.
pub struct ProviderEntry {
    pub record: ProviderRecord,
    /// `None`: no `api_key_env`, or it names an unset variable (the stored key stays).
    pub api_key: Option<ApiKey>,
}

/// A config hook as a record, with its signing secret.
pub struct HookEntry {
    pub record: HookRecord,
    pub secret: String,
}

/// Every entry of the config file, validated.
#[derive(Default)]
pub struct Entries {
    pub providers: Vec<ProviderEntry>,
    pub models: Vec<ModelRecord>,
    pub defaults: Vec<(Pathway, String)>,
    pub limits: Vec<LimitsRecord>,
    pub hooks: Vec<HookEntry>,
}

impl Entries {
    /// The studios the limits and hooks name (each must exist).
    pub fn studios(&self) -> impl Iterator<Item = (&str, String)> {
        let limits = self
            .limits
            .iter()
            .map(|l| (l.studio_id.as_str(), limits_name(l)));
        let hooks = self
            .hooks
            .iter()
            .filter(|h| !h.record.studio_id.is_empty())
            .map(|h| {
                (
                    h.record.studio_id.as_str(),
                    format!("[[hooks]] `{}`", h.record.id),
                )
            });
        limits.chain(hooks)
    }
}

/// Builds and validates every entry; `file` names the config file in errors.
pub(super) fn validate(config: &super::Config, file: Option<&Path>) -> anyhow::Result<Entries> {
    let place = |entry: String| match file {
        Some(file) => format!("config {}: {entry}", file.display()),
        None => format!("config: {entry}"),
    };
    let invalid =
        |entry: String, err: Error| anyhow::anyhow!("{}: {}", place(entry), describe(err));
    let mut entries = Entries::default();
    for provider in &config.providers {
        let name = format!("[[providers]] `{}`", provider.id);
        let entry = provider_entry(provider).map_err(|err| invalid(name, err))?;
        entries.providers.push(entry);
    }
    for model in &config.models {
        let name = format!("[[models]] `{}`", model.id);
        let record = model_record(model);
        record
            .validate()
            .map_err(|err| invalid(name.clone(), err))?;
        let kind = config
            .providers
            .iter()
            .find(|p| p.id == model.provider)
            .map(|p| p.kind);
        if kind.is_some_and(|kind| !kind.supports(record.pathway)) {
            let why = Error::invalid("model.pathway", "its provider's kind has no such pathway");
            return Err(invalid(name, why));
        }
        entries.models.push(record);
    }
    let DefaultsConfig { text, image } = &config.defaults;
    for (pathway, model) in [(Pathway::Text, text), (Pathway::Image, image)] {
        entries.defaults.extend(model.clone().map(|m| (pathway, m)));
    }
    for limits in &config.limits {
        let record = limits.record();
        if limits.ambiguous() {
            let why = Error::invalid("user_default", "set `user` or `user_default`, not both");
            return Err(invalid(limits_name(&record), why));
        }
        record
            .validate()
            .map_err(|err| invalid(limits_name(&record), err))?;
        entries.limits.push(record);
    }
    for hook in &config.hooks {
        let name = format!("[[hooks]] `{}`", hook.id);
        let entry = hook_entry(hook).map_err(|err| invalid(name, err))?;
        entries.hooks.push(entry);
    }
    check_unique(&entries)
        .map_err(|entry| anyhow::anyhow!("{}: given more than once", place(entry)))?;
    Ok(entries)
}

fn provider_entry(provider: &ProviderConfig) -> Result<ProviderEntry, Error> {
    let ms = |value: Option<u64>| value.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
    let record = ProviderRecord {
        id: provider.id.clone(),
        kind: provider.kind,
        base_url: provider.base_url.clone(),
        update_ms: 0,
        headers: provider.headers.clone(),
        timeouts: ProviderTimeouts {
            connect_ms: ms(provider.connect_timeout_ms),
            first_byte_ms: ms(provider.first_byte_timeout_ms),
            total_ms: ms(provider.total_timeout_ms),
        },
        api_key: None,
        api_key_update_ms: None,
    };
    record.validate()?;
    let api_key = match &provider.api_key_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(key) if !key.is_empty() => Some(ApiKey::new(key)),
            _ => {
                tracing::warn!(provider = %provider.id, var, "api_key_env names an unset variable; keeping the stored key");
                None
            }
        },
    };
    Ok(ProviderEntry { record, api_key })
}

fn model_record(model: &ModelConfig) -> ModelRecord {
    ModelRecord {
        id: model.id.clone(),
        display_name: model.display_name.clone(),
        provider_id: model.provider.clone(),
        upstream_model: model.upstream_model.clone(),
        pathway: model.pathway,
        enabled: model.enabled,
        max_output_tokens: model.max_output_tokens,
        max_input_tokens: model.max_input_tokens,
        input_micros_per_mtok: model.input_micros_per_mtok,
        output_micros_per_mtok: model.output_micros_per_mtok,
        micros_per_image: model.micros_per_image,
        fallback_model_ids: model.fallback.clone(),
        options: model.options.clone(),
        update_ms: 0,
    }
}

impl LimitsConfig {
    /// The entry as a record (not yet validated).
    pub fn record(&self) -> LimitsRecord {
        let target = match (&self.user, self.user_default) {
            (Some(user), _) => LimitTarget::User(user.clone()),
            (None, true) => LimitTarget::UserDefault,
            (None, false) => LimitTarget::Studio,
        };
        LimitsRecord {
            studio_id: self.studio.clone(),
            target,
            values: LimitValues {
                requests_per_minute: self.requests_per_minute,
                tokens_per_minute: self.tokens_per_minute,
                tokens_per_day: self.tokens_per_day,
                cost_micros_per_day: self.cost_micros_per_day,
                cost_micros_per_month: self.cost_micros_per_month,
            },
            update_ms: 0,
        }
    }

    fn ambiguous(&self) -> bool {
        self.user.is_some() && self.user_default
    }
}

fn limits_name(record: &LimitsRecord) -> String {
    match &record.target {
        LimitTarget::User(user) => {
            format!("[[limits]] of studio `{}` user `{user}`", record.studio_id)
        }
        LimitTarget::UserDefault => format!(
            "[[limits]] default user limits of studio `{}`",
            record.studio_id
        ),
        // The config file speaks for the operator: it never sets a studio's own tier.
        LimitTarget::Studio | LimitTarget::StudioOwn => {
            format!("[[limits]] of studio `{}`", record.studio_id)
        }
    }
}

fn hook_entry(hook: &HookConfig) -> Result<HookEntry, Error> {
    if hook.id.is_empty() {
        return Err(Error::invalid("hook.id", "required in the config file"));
    }
    let record = HookRecord {
        id: hook.id.clone(),
        studio_id: hook.studio.clone(),
        url: hook.url.clone(),
        events: hook.events.clone(),
        timeout_ms: hook.timeout_ms,
        fail_closed: hook.failure_policy == FailurePolicy::FailClosed,
        include_prompt: hook.include_prompt,
        secret: Vec::new(),
        create_ms: 0,
        update_ms: 0,
    };
    record.validate()?;
    let secret = std::env::var(&hook.secret_env)
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::invalid(
                "hook.secret_env",
                format!("names an unset variable `{}`", hook.secret_env),
            )
        })?;
    // Checked here, as the admin API does, so a bad secret writes nothing.
    if crate::hooks::signing::SigningKey::from_secret(&secret).is_none() {
        return Err(Error::invalid(
            "hook.secret_env",
            format!("`{}` must hold `whsec_` and base64", hook.secret_env),
        ));
    }
    Ok(HookEntry { record, secret })
}

/// The first entry named twice, if any.
fn check_unique(entries: &Entries) -> Result<(), String> {
    fn first_repeat(mut names: impl Iterator<Item = (String, String)>) -> Option<String> {
        let mut seen = HashSet::new();
        names.find_map(|(key, name)| (!seen.insert(key)).then_some(name))
    }
    let providers = entries.providers.iter().map(|p| {
        (
            p.record.id.clone(),
            format!("[[providers]] `{}`", p.record.id),
        )
    });
    let models = entries
        .models
        .iter()
        .map(|m| (m.id.clone(), format!("[[models]] `{}`", m.id)));
    let limits = entries.limits.iter().map(|l| {
        (
            format!("{}\u{0}{:?}", l.studio_id, l.target),
            limits_name(l),
        )
    });
    let hooks = entries
        .hooks
        .iter()
        .map(|h| (h.record.id.clone(), format!("[[hooks]] `{}`", h.record.id)));
    first_repeat(providers)
        .or_else(|| first_repeat(models))
        .or_else(|| first_repeat(limits))
        .or_else(|| first_repeat(hooks))
        .map_or(Ok(()), Err)
}

/// A validation error as one line: its field violations, else its message.
fn describe(err: Error) -> String {
    match err {
        Error::InvalidArgument(violations) => violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

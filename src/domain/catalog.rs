//! The model catalog: providers, models and the pathways they serve.

use std::collections::BTreeMap;

use super::Millis;
use crate::error::{Result, Violations};

/// The kind of AI call a model serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pathway {
    Text,
    Image,
}

super::spelled_enum!(Pathway {
    Text => "text",
    Image => "image",
});

/// The upstream protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Mock,
    OpenAi,
    OpenAiCompatible,
    Anthropic,
    Gemini,
}

super::spelled_enum!(ProviderKind {
    Mock => "mock",
    OpenAi => "openai",
    OpenAiCompatible => "openai_compatible",
    Anthropic => "anthropic",
    Gemini => "gemini",
});

impl ProviderKind {
    /// Whether this protocol has the pathway (Anthropic generates no images).
    pub fn supports(self, pathway: Pathway) -> bool {
        !(self == ProviderKind::Anthropic && pathway == Pathway::Image)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub id: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub update_ms: Millis,
    /// Extra HTTP headers sent with every upstream request.
    pub headers: BTreeMap<String, String>,
    pub timeouts: ProviderTimeouts,
    /// The API key, sealed. Written only by `set_provider_api_key`:
    /// `upsert_provider` leaves the stored key as it is.
    pub api_key: Option<SealedKey>,
    /// When the key was last set or cleared.
    pub api_key_update_ms: Option<Millis>,
}

/// Per-provider timeouts in milliseconds; `None` takes City's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProviderTimeouts {
    pub connect_ms: Option<i64>,
    pub first_byte_ms: Option<i64>,
    pub total_ms: Option<i64>,
}

/// A provider API key encrypted under the master key (see `crate::keys`),
/// with its last 4 characters for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub ciphertext: Vec<u8>,
    pub hint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRecord {
    pub id: String,
    pub display_name: String,
    pub provider_id: String,
    pub upstream_model: String,
    pub pathway: Pathway,
    pub enabled: bool,
    pub max_output_tokens: i32,
    pub max_input_tokens: i32,
    pub input_micros_per_mtok: i64,
    pub output_micros_per_mtok: i64,
    pub micros_per_image: i64,
    pub fallback_model_ids: Vec<String>,
    pub options: BTreeMap<String, String>,
    pub update_ms: Millis,
}

/// The token limits of a model that names none.
pub const DEFAULT_MAX_OUTPUT_TOKENS: i32 = 4096;
pub const DEFAULT_MAX_INPUT_TOKENS: i32 = 131_072;
/// The longest settable provider timeout: one hour.
pub const MAX_PROVIDER_TIMEOUT_MS: i64 = 3_600_000;

/// Provider and model ids: 1 to 128 of A-Z, a-z, 0-9 and `- _ . : /`.
pub fn check_catalog_id(v: &mut Violations, field: &str, id: &str) {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
    v.check(ok, field, "1 to 128 of A-Z, a-z, 0-9 and - _ . : /");
}

impl ProviderRecord {
    /// The rules every provider keeps, whichever door it came through (the
    /// admin API or the config file).
    pub fn validate(&self) -> Result<()> {
        let mut v = Violations::default();
        check_catalog_id(&mut v, "provider.id", &self.id);
        let url = &self.base_url;
        v.check(
            url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
            "provider.base_url",
            "must be empty or start with http:// or https://",
        );
        v.check(
            !(self.kind == ProviderKind::OpenAiCompatible && url.is_empty()),
            "provider.base_url",
            "required for kind openai_compatible (PROVIDER_KIND_OPENAI_COMPATIBLE)",
        );
        for (name, value) in &self.headers {
            v.check(
                http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                "provider.headers",
                format!("`{name}` is not a valid header name"),
            );
            v.check(
                http::HeaderValue::from_str(value).is_ok(),
                "provider.headers",
                format!("the value of header `{name}` is not a valid header value"),
            );
        }
        let ProviderTimeouts {
            connect_ms,
            first_byte_ms,
            total_ms,
        } = self.timeouts;
        for (field, ms) in [
            ("provider.connect_timeout", connect_ms),
            ("provider.first_byte_timeout", first_byte_ms),
            ("provider.total_timeout", total_ms),
        ] {
            v.check(
                ms.is_none_or(|ms| (1..=MAX_PROVIDER_TIMEOUT_MS).contains(&ms)),
                field,
                "must be between 1 ms and 1 hour",
            );
        }
        v.finish(())
    }
}

impl ModelRecord {
    /// The rules every model keeps, whichever door it came through.
    pub fn validate(&self) -> Result<()> {
        let mut v = Violations::default();
        check_catalog_id(&mut v, "model.id", &self.id);
        v.check(
            !self.provider_id.is_empty(),
            "model.provider_id",
            "required",
        );
        v.check(
            !self.upstream_model.is_empty(),
            "model.upstream_model",
            "required",
        );
        v.check(
            self.max_output_tokens > 0,
            "model.max_output_tokens",
            "must be positive",
        );
        v.check(
            self.max_input_tokens > 0,
            "model.max_input_tokens",
            "must be positive",
        );
        v.check(
            self.input_micros_per_mtok >= 0
                && self.output_micros_per_mtok >= 0
                && self.micros_per_image >= 0,
            "model.prices",
            "must not be negative",
        );
        v.check(
            !self.fallback_model_ids.contains(&self.id),
            "model.fallback_model_ids",
            "must not name the model itself",
        );
        v.finish(())
    }
}

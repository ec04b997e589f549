//! Upstream providers behind one trait; one file per upstream kind.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::Stream;

use crate::domain::{ProviderKind, ProviderRecord};
use crate::error::{Error, ProviderFailure, Result};
use crate::keys::ApiKey;

pub mod anthropic;
mod event_stream;
#[cfg(test)]
mod garbage_tests;
pub mod gemini;
mod http;
pub mod mock;
pub mod openai;
pub mod sse;

/// Who wrote a message, in provider-neutral terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ContentFilter,
}

/// One text call as a provider sees it: validated and resolved. Borrowed
/// from the request, so trying a fallback model copies nothing.
#[derive(Debug, Clone, Copy)]
pub struct TextCall<'a> {
    pub upstream_model: &'a str,
    pub messages: &'a [ChatMessage],
    pub max_tokens: u32,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop_sequences: &'a [String],
    /// The catalog model's provider-specific options.
    pub options: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextOutput {
    pub text: String,
    pub finish: Finish,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// One event of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The next piece of text.
    Delta(String),
    /// The end of the answer, with the upstream's usage numbers.
    Finished {
        finish: Finish,
        input_tokens: u64,
        output_tokens: u64,
    },
}

pub type TextStream = Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send>>;

/// One image call as a provider sees it.
#[derive(Debug, Clone, Copy)]
pub struct ImageCall<'a> {
    pub upstream_model: &'a str,
    pub prompt: &'a str,
    pub count: u32,
    pub options: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub data: Vec<u8>,
    pub mime_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOutput {
    pub images: Vec<Image>,
}

/// An upstream that serves AI calls. Errors are `Error::Provider`.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    async fn text(&self, call: TextCall<'_>) -> Result<TextOutput>;
    /// Resolves once the upstream has accepted the call; events follow.
    async fn stream_text(&self, call: TextCall<'_>) -> Result<TextStream>;
    async fn image(&self, call: ImageCall<'_>) -> Result<ImageOutput>;
}

/// Builds the provider client for a stored provider entry and its API key.
/// A provider that cannot be built (a bad header, say) fails every call with
/// the reason, so one bad entry never stops City.
pub fn build(record: &ProviderRecord, api_key: Option<ApiKey>) -> Arc<dyn Provider> {
    let built: Result<Arc<dyn Provider>> = match record.kind {
        ProviderKind::Mock => Ok(Arc::new(mock::MockProvider::new(record.id.clone()))),
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            openai::OpenAi::new(record, api_key).map(|p| Arc::new(p) as _)
        }
        ProviderKind::Anthropic => {
            anthropic::Anthropic::new(record, api_key).map(|p| Arc::new(p) as _)
        }
        ProviderKind::Gemini => gemini::Gemini::new(record, api_key).map(|p| Arc::new(p) as _),
    };
    built.unwrap_or_else(|err| {
        tracing::error!(provider = %record.id, %err, "provider cannot be built");
        Arc::new(Broken {
            provider_id: record.id.clone(),
            message: err.to_string(),
        })
    })
}

/// A provider whose entry cannot be used: every call fails with why.
struct Broken {
    provider_id: String,
    message: String,
}

impl Broken {
    fn error(&self) -> Error {
        Error::Provider {
            provider_id: self.provider_id.clone(),
            kind: ProviderFailure::Rejected,
            message: self.message.clone(),
            retry_after: None,
        }
    }
}

#[async_trait]
impl Provider for Broken {
    async fn text(&self, _call: TextCall<'_>) -> Result<TextOutput> {
        Err(self.error())
    }

    async fn stream_text(&self, _call: TextCall<'_>) -> Result<TextStream> {
        Err(self.error())
    }

    async fn image(&self, _call: ImageCall<'_>) -> Result<ImageOutput> {
        Err(self.error())
    }
}

/// The estimate City uses before the upstream has counted: one token per two
/// bytes plus a small per-message overhead. Deliberately high (English runs
/// near four bytes a token) because it bounds prompts and reserves quota: a
/// reservation must not fall short of what the call really uses. Never used
/// to bill when the upstream reports real numbers.
pub fn estimate_prompt_tokens(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .map(|m| (m.content.len() as u64).div_ceil(2) + 4)
        .sum()
}

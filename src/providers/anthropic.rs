//! Anthropic's Messages API (`POST {base}/v1/messages`).
//!
//! System messages become the top-level `system` field; consecutive messages
//! of one role are joined (the API wants user and assistant turns). Streams
//! are SSE events `message_start` (input usage), `content_block_delta`
//! (text), `message_delta` (stop reason, output usage), `message_stop`;
//! `ping` is ignored and `error` ends the stream with its failure.
//!
//! The key goes in `x-api-key`, with `anthropic-version: 2023-06-01`.
//! Anthropic has no image generation: the image pathway fails with
//! UNIMPLEMENTED / PATHWAY_UNSUPPORTED.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::event_stream::{EventDecoder, decode_stream};
use super::http::Upstream;
use super::sse::SseEvent;
use super::{
    ChatMessage, Finish, ImageCall, ImageOutput, Provider, Role, StreamEvent, TextCall, TextOutput,
    TextStream,
};
use crate::domain::ProviderRecord;
use crate::error::{Error, ProviderFailure, Result};
use crate::keys::ApiKey;

/// Anthropic's API, when the provider sets no base URL.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// The API version City speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    upstream: Upstream,
}

impl Anthropic {
    pub fn new(record: &ProviderRecord, api_key: Option<ApiKey>) -> Result<Self> {
        let mut record = record.clone();
        record
            .headers
            .entry("anthropic-version".into())
            .or_insert_with(|| ANTHROPIC_VERSION.into());
        let auth = api_key
            .iter()
            .map(|key| ("x-api-key", key.expose().to_string()))
            .collect();
        Ok(Anthropic {
            upstream: Upstream::new(&record, ANTHROPIC_BASE_URL, auth, api_key)?,
        })
    }
}

/// The request body: `system` apart, turns merged by role.
fn body(call: &TextCall<'_>, stream: bool) -> Value {
    let system: Vec<&str> = call
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut turns: Vec<(&'static str, String)> = Vec::new();
    for ChatMessage { role, content } in call.messages {
        let role = match role {
            Role::System => continue,
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match turns.last_mut() {
            Some((last, text)) if *last == role => {
                text.push_str("\n\n");
                text.push_str(content);
            }
            _ => turns.push((role, content.clone())),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    let mut body = json!({
        "model": call.upstream_model,
        "max_tokens": call.max_tokens,
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if let Some(t) = call.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = call.top_p {
        body["top_p"] = json!(p);
    }
    if !call.stop_sequences.is_empty() {
        body["stop_sequences"] = json!(call.stop_sequences);
    }
    if stream {
        body["stream"] = json!(true);
    }
    body
}

fn finish(reason: Option<&str>) -> Finish {
    match reason {
        Some("max_tokens") => Finish::Length,
        Some("refusal") => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

#[derive(Deserialize, Default)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<ContentBlock>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Usage,
}

#[derive(Deserialize)]
struct ContentBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: Message,
    },
    ContentBlockDelta {
        delta: BlockDelta,
    },
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Usage,
    },
    MessageStop,
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct BlockDelta {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The failure an in-stream `error` event means.
fn error_kind(kind: &str) -> ProviderFailure {
    match kind {
        "overloaded_error" | "api_error" => ProviderFailure::Unavailable,
        "rate_limit_error" => ProviderFailure::RateLimited,
        "authentication_error" | "permission_error" => ProviderFailure::AuthFailed,
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            ProviderFailure::Rejected
        }
        "timeout_error" => ProviderFailure::Timeout,
        _ => ProviderFailure::Unavailable,
    }
}

struct MessageDecoder {
    provider_id: String,
    input_tokens: u64,
    output_tokens: u64,
    finish: Finish,
}

impl MessageDecoder {
    fn failure(&self, kind: ProviderFailure, message: String) -> Error {
        Error::Provider {
            provider_id: self.provider_id.clone(),
            kind,
            message,
            retry_after: None,
        }
    }

    fn usage(&mut self, usage: &Usage) {
        // Counts are cumulative: the latest is the total.
        if let Some(n) = usage.input_tokens {
            self.input_tokens = n;
        }
        if let Some(n) = usage.output_tokens {
            self.output_tokens = n;
        }
    }
}

impl EventDecoder for MessageDecoder {
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<()> {
        let decoded: Event = serde_json::from_str(&event.data).map_err(|e| {
            self.failure(
                ProviderFailure::BadResponse,
                format!("malformed `{}` event: {e}", event.event),
            )
        })?;
        match decoded {
            Event::MessageStart { message } => self.usage(&message.usage),
            Event::ContentBlockDelta { delta } => {
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::Delta(text));
                }
            }
            Event::MessageDelta { delta, usage } => {
                self.usage(&usage);
                if delta.stop_reason.is_some() {
                    self.finish = finish(delta.stop_reason.as_deref());
                }
            }
            Event::MessageStop => out.push(StreamEvent::Finished {
                finish: self.finish,
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
            }),
            Event::Error { error } => {
                return Err(self.failure(
                    error_kind(&error.kind),
                    format!("{}: {}", error.kind, error.message),
                ));
            }
            Event::Other => {}
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<()> {
        Err(self.failure(
            ProviderFailure::BadResponse,
            "the stream ended without message_stop".into(),
        ))
    }
}

#[async_trait]
impl Provider for Anthropic {
    fn system(&self) -> &'static str {
        "anthropic"
    }

    async fn text(&self, call: TextCall<'_>) -> Result<TextOutput> {
        let message: Message = self
            .upstream
            .post_json("/v1/messages", &body(&call, false))
            .await?;
        let text = message
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .map(|b| b.text.as_str())
            .collect();
        Ok(TextOutput {
            text,
            finish: finish(message.stop_reason.as_deref()),
            input_tokens: message.usage.input_tokens.unwrap_or(0),
            output_tokens: message.usage.output_tokens.unwrap_or(0),
        })
    }

    async fn stream_text(&self, call: TextCall<'_>) -> Result<TextStream> {
        let events = self
            .upstream
            .post_sse("/v1/messages", &body(&call, true))
            .await?;
        let decoder = MessageDecoder {
            provider_id: self.upstream.provider_id().to_string(),
            input_tokens: 0,
            output_tokens: 0,
            finish: Finish::Stop,
        };
        Ok(decode_stream(events, decoder))
    }

    async fn image(&self, _call: ImageCall<'_>) -> Result<ImageOutput> {
        Err(Error::Provider {
            provider_id: self.upstream.provider_id().to_string(),
            kind: ProviderFailure::Unsupported,
            message: format!(
                "provider `{}` is of kind anthropic, which cannot serve the image pathway",
                self.upstream.provider_id()
            ),
            retry_after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn system_goes_top_level_and_turns_merge() {
        let messages = [
            (Role::System, "be brief"),
            (Role::User, "a"),
            (Role::User, "b"),
            (Role::Assistant, "c"),
            (Role::System, "and kind"),
        ]
        .map(|(role, content)| ChatMessage {
            role,
            content: content.into(),
        });
        let options = BTreeMap::new();
        let call = TextCall {
            upstream_model: "claude",
            messages: &messages,
            max_tokens: 10,
            temperature: None,
            top_p: None,
            stop_sequences: &[],
            options: &options,
        };
        let body = body(&call, true);
        assert_eq!(body["system"], "be brief\n\nand kind");
        assert_eq!(
            body["messages"],
            json!([
                { "role": "user", "content": "a\n\nb" },
                { "role": "assistant", "content": "c" }
            ])
        );
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 10);
    }
}

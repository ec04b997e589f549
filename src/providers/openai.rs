//! OpenAI and any server speaking its wire format (`openai_compatible`:
//! Ollama, vLLM, llama.cpp server, OpenRouter, DeepSeek, Groq, …).
//!
//! - text: `POST {base}/chat/completions`;
//! - stream: the same with `stream: true` and `stream_options.include_usage`,
//!   so the last chunk carries the exact usage; the stream ends with
//!   `data: [DONE]`;
//! - image: `POST {base}/images/generations` with `response_format: b64_json`.
//!
//! The key goes in `Authorization: Bearer …`. OpenAI itself takes
//! `max_completion_tokens`; compatible servers mostly still read `max_tokens`.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::event_stream::{EventDecoder, decode_stream};
use super::http::Upstream;
use super::sse::SseEvent;
use super::{
    ChatMessage, Finish, Image, ImageCall, ImageOutput, Provider, Role, StreamEvent, TextCall,
    TextOutput, TextStream, estimate_prompt_tokens,
};
use crate::domain::{ProviderKind, ProviderRecord};
use crate::error::{ProviderFailure, Result};
use crate::keys::ApiKey;

/// OpenAI's API, when a provider of kind `openai` sets no base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    upstream: Upstream,
    /// OpenAI itself (not a compatible server).
    native: bool,
}

impl OpenAi {
    pub fn new(record: &ProviderRecord, api_key: Option<ApiKey>) -> Result<Self> {
        let native = record.kind == ProviderKind::OpenAi;
        let default_base = if native { OPENAI_BASE_URL } else { "" };
        let auth = api_key
            .iter()
            .map(|key| ("authorization", format!("Bearer {}", key.expose())))
            .collect();
        Ok(OpenAi {
            upstream: Upstream::new(record, default_base, auth, api_key)?,
            native,
        })
    }

    fn body(&self, call: &TextCall<'_>, stream: bool) -> Value {
        let messages: Vec<Value> = call
            .messages
            .iter()
            .map(|m| json!({ "role": role(m), "content": m.content }))
            .collect();
        let mut body = json!({ "model": call.upstream_model, "messages": messages });
        let max_tokens_field = if self.native {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[max_tokens_field] = json!(call.max_tokens);
        if let Some(t) = call.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = call.top_p {
            body["top_p"] = json!(p);
        }
        if !call.stop_sequences.is_empty() {
            body["stop"] = json!(call.stop_sequences);
        }
        if stream {
            body["stream"] = json!(true);
            body["stream_options"] = json!({ "include_usage": true });
        }
        body
    }
}

fn role(message: &ChatMessage) -> &'static str {
    match message.role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

fn finish(reason: Option<&str>) -> Finish {
    match reason {
        Some("length") => Finish::Length,
        Some("content_filter") => Finish::ContentFilter,
        _ => Finish::Stop,
    }
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct ChatCompletion {
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: AssistantMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AssistantMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ImagesResponse {
    data: Vec<ImageData>,
}

#[derive(Deserialize)]
struct ImageData {
    b64_json: Option<String>,
}

/// Decodes Chat Completions chunks until `[DONE]`.
struct ChunkDecoder {
    provider_id: String,
    prompt_estimate: u64,
    deltas: u64,
    finish: Finish,
    usage: Option<(u64, u64)>,
}

impl ChunkDecoder {
    fn finished(&self) -> StreamEvent {
        // Servers without include_usage give no numbers: then the estimate.
        let (input_tokens, output_tokens) =
            self.usage.unwrap_or((self.prompt_estimate, self.deltas));
        StreamEvent::Finished {
            finish: self.finish,
            input_tokens,
            output_tokens,
        }
    }
}

impl EventDecoder for ChunkDecoder {
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<()> {
        if event.data.trim() == "[DONE]" {
            out.push(self.finished());
            return Ok(());
        }
        let chunk: ChatChunk = serde_json::from_str(&event.data)
            .map_err(|e| bad_response(&self.provider_id, format!("malformed stream chunk: {e}")))?;
        if let Some(usage) = chunk.usage {
            self.usage = Some((usage.prompt_tokens, usage.completion_tokens));
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.and_then(|d| d.content)
                && !text.is_empty()
            {
                self.deltas += 1;
                out.push(StreamEvent::Delta(text));
            }
            if choice.finish_reason.is_some() {
                self.finish = finish(choice.finish_reason.as_deref());
            }
        }
        Ok(())
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<()> {
        Err(bad_response(
            &self.provider_id,
            "the stream ended without [DONE]".into(),
        ))
    }
}

fn bad_response(provider_id: &str, message: String) -> crate::error::Error {
    crate::error::Error::Provider {
        provider_id: provider_id.to_string(),
        kind: ProviderFailure::BadResponse,
        message,
        retry_after: None,
    }
}

/// The MIME type of image bytes, by their magic number.
pub(crate) fn sniff_image_type(data: &[u8]) -> &'static str {
    if data.starts_with(b"\x89PNG") {
        "image/png"
    } else if data.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

#[async_trait]
impl Provider for OpenAi {
    fn system(&self) -> &'static str {
        "openai"
    }

    async fn text(&self, call: TextCall<'_>) -> Result<TextOutput> {
        let answer: ChatCompletion = self
            .upstream
            .post_json("/chat/completions", &self.body(&call, false))
            .await?;
        let choice = answer.choices.into_iter().next().ok_or_else(|| {
            self.upstream
                .failure(ProviderFailure::BadResponse, "the answer has no choices")
        })?;
        let text = choice.message.content.unwrap_or_default();
        let (input_tokens, output_tokens) = match answer.usage {
            Some(u) => (u.prompt_tokens, u.completion_tokens),
            None => (
                estimate_prompt_tokens(call.messages),
                (text.len() as u64).div_ceil(4),
            ),
        };
        Ok(TextOutput {
            finish: finish(choice.finish_reason.as_deref()),
            text,
            input_tokens,
            output_tokens,
        })
    }

    async fn stream_text(&self, call: TextCall<'_>) -> Result<TextStream> {
        let events = self
            .upstream
            .post_sse("/chat/completions", &self.body(&call, true))
            .await?;
        let decoder = ChunkDecoder {
            provider_id: self.upstream.provider_id().to_string(),
            prompt_estimate: estimate_prompt_tokens(call.messages),
            deltas: 0,
            finish: Finish::Stop,
            usage: None,
        };
        Ok(decode_stream(events, decoder))
    }

    async fn image(&self, call: ImageCall<'_>) -> Result<ImageOutput> {
        let mut body = json!({
            "model": call.upstream_model,
            "prompt": call.prompt,
            "n": call.count,
        });
        // gpt-image models always answer in base64 and refuse the field.
        if !call.upstream_model.starts_with("gpt-image") {
            body["response_format"] = json!("b64_json");
        }
        for key in ["size", "quality", "style", "background", "output_format"] {
            if let Some(value) = call.options.get(key) {
                body[key] = json!(value);
            }
        }
        let answer: ImagesResponse = self
            .upstream
            .post_json("/images/generations", &body)
            .await?;
        let images = answer
            .data
            .into_iter()
            .map(|item| {
                let data = item
                    .b64_json
                    .and_then(|b64| BASE64.decode(b64.trim()).ok())
                    .ok_or_else(|| {
                        self.upstream.failure(
                            ProviderFailure::BadResponse,
                            "an image without valid b64_json",
                        )
                    })?;
                Ok(Image {
                    mime_type: sniff_image_type(&data).to_string(),
                    data,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if images.is_empty() {
            return Err(self
                .upstream
                .failure(ProviderFailure::BadResponse, "the answer has no images"));
        }
        Ok(ImageOutput { images })
    }
}

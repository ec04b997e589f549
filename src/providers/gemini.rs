//! Google's Gemini API (`generativelanguage`, v1beta).
//!
//! - text: `POST {base}/models/{model}:generateContent`;
//! - stream: `POST {base}/models/{model}:streamGenerateContent?alt=sse`, each
//!   event a whole `GenerateContentResponse`; the stream has no terminator,
//!   so it must end after a candidate with a `finishReason`;
//! - image: Imagen models through `:predict`, other models (the Gemini image
//!   models) through `generateContent` with `responseModalities: [IMAGE]`.
//!
//! System messages become `systemInstruction`; the assistant's role is
//! `model`. Usage comes from `usageMetadata` (thinking tokens count as
//! output). The key goes in the `x-goog-api-key` header, never in the URL.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::event_stream::{EventDecoder, decode_stream};
use super::http::Upstream;
use super::sse::SseEvent;
use super::{
    Finish, Image, ImageCall, ImageOutput, Provider, Role, StreamEvent, TextCall, TextOutput,
    TextStream,
};
use crate::domain::ProviderRecord;
use crate::error::{Error, ProviderFailure, Result};
use crate::keys::ApiKey;

/// Gemini's API, when the provider sets no base URL.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

pub struct Gemini {
    upstream: Upstream,
}

impl Gemini {
    pub fn new(record: &ProviderRecord, api_key: Option<ApiKey>) -> Result<Self> {
        let auth = api_key
            .iter()
            .map(|key| ("x-goog-api-key", key.expose().to_string()))
            .collect();
        Ok(Gemini {
            upstream: Upstream::new(record, GEMINI_BASE_URL, auth, api_key)?,
        })
    }
}

/// `models/{model}:{method}`, whether or not the name has the prefix.
fn path(model: &str, method: &str) -> String {
    let model = model.strip_prefix("models/").unwrap_or(model);
    format!("/models/{model}:{method}")
}

fn body(call: &TextCall<'_>) -> Value {
    let system: Vec<Value> = call
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| json!({ "text": m.content }))
        .collect();
    let contents: Vec<Value> = call
        .messages
        .iter()
        .filter(|m| m.role != Role::System)
        .map(|m| {
            let role = if m.role == Role::Assistant {
                "model"
            } else {
                "user"
            };
            json!({ "role": role, "parts": [{ "text": m.content }] })
        })
        .collect();
    let mut config = json!({ "maxOutputTokens": call.max_tokens });
    if let Some(t) = call.temperature {
        config["temperature"] = json!(t);
    }
    if let Some(p) = call.top_p {
        config["topP"] = json!(p);
    }
    if !call.stop_sequences.is_empty() {
        config["stopSequences"] = json!(call.stop_sequences);
    }
    let mut body = json!({ "contents": contents, "generationConfig": config });
    if !system.is_empty() {
        body["systemInstruction"] = json!({ "parts": system });
    }
    body
}

fn finish(reason: &str) -> Finish {
    match reason {
        "MAX_TOKENS" => Finish::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            Finish::ContentFilter
        }
        _ => Finish::Stop,
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Response {
    #[serde(default)]
    candidates: Vec<Candidate>,
    usage_metadata: Option<UsageMetadata>,
    prompt_feedback: Option<PromptFeedback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<Content>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    inline_data: Option<InlineData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InlineData {
    mime_type: String,
    data: String,
}

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
}

impl UsageMetadata {
    fn output(&self) -> u64 {
        self.candidates_token_count
            .saturating_add(self.thoughts_token_count)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

#[derive(Deserialize)]
struct PredictResponse {
    #[serde(default)]
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Prediction {
    bytes_base64_encoded: Option<String>,
    mime_type: Option<String>,
}

impl Response {
    /// The visible text of the first candidate (thoughts left out).
    fn text(&self) -> String {
        self.candidates
            .first()
            .and_then(|c| c.content.as_ref())
            .map(|c| {
                c.parts
                    .iter()
                    .filter(|p| !p.thought)
                    .filter_map(|p| p.text.as_deref())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn finish_reason(&self) -> Option<&str> {
        self.candidates
            .first()
            .and_then(|c| c.finish_reason.as_deref())
            .or_else(|| {
                self.prompt_feedback
                    .as_ref()
                    .and_then(|f| f.block_reason.as_ref())
                    .map(|_| "SAFETY")
            })
    }
}

struct ChunkDecoder {
    provider_id: String,
    usage: UsageMetadata,
    finish: Option<Finish>,
}

impl EventDecoder for ChunkDecoder {
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<()> {
        let chunk: Response = serde_json::from_str(&event.data).map_err(|e| Error::Provider {
            provider_id: self.provider_id.clone(),
            kind: ProviderFailure::BadResponse,
            message: format!("malformed stream chunk: {e}"),
            retry_after: None,
        })?;
        if let Some(usage) = chunk.usage_metadata {
            self.usage = usage;
        }
        let text = chunk.text();
        if !text.is_empty() {
            out.push(StreamEvent::Delta(text));
        }
        if let Some(reason) = chunk.finish_reason() {
            self.finish = Some(finish(reason));
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<()> {
        let Some(finish) = self.finish else {
            return Err(Error::Provider {
                provider_id: self.provider_id.clone(),
                kind: ProviderFailure::BadResponse,
                message: "the stream ended without a finish reason".into(),
                retry_after: None,
            });
        };
        out.push(StreamEvent::Finished {
            finish,
            input_tokens: self.usage.prompt_token_count,
            output_tokens: self.usage.output(),
        });
        Ok(())
    }
}

impl Gemini {
    fn decode_image(&self, mime_type: Option<String>, b64: &str) -> Result<Image> {
        let data = BASE64.decode(b64.trim()).map_err(|_| {
            self.upstream
                .failure(ProviderFailure::BadResponse, "an image that is not base64")
        })?;
        let mime_type = mime_type
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| super::openai::sniff_image_type(&data).to_string());
        Ok(Image { data, mime_type })
    }

    async fn imagen(&self, call: &ImageCall<'_>) -> Result<Vec<Image>> {
        let mut parameters = json!({ "sampleCount": call.count });
        if let Some(ratio) = call.options.get("aspect_ratio") {
            parameters["aspectRatio"] = json!(ratio);
        }
        let body = json!({ "instances": [{ "prompt": call.prompt }], "parameters": parameters });
        let answer: PredictResponse = self
            .upstream
            .post_json(&path(call.upstream_model, "predict"), &body)
            .await?;
        answer
            .predictions
            .into_iter()
            .filter_map(|p| Some((p.mime_type, p.bytes_base64_encoded?)))
            .map(|(mime, b64)| self.decode_image(mime, &b64))
            .collect()
    }

    async fn generate_images(&self, call: &ImageCall<'_>) -> Result<Vec<Image>> {
        let body = json!({
            "contents": [{ "role": "user", "parts": [{ "text": call.prompt }] }],
            "generationConfig": { "responseModalities": ["TEXT", "IMAGE"] },
        });
        let mut images = Vec::new();
        // One image an answer: ask as many times as images are wanted.
        for _ in 0..call.count {
            let answer: Response = self
                .upstream
                .post_json(&path(call.upstream_model, "generateContent"), &body)
                .await?;
            for candidate in answer.candidates {
                for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                    if let Some(inline) = part.inline_data {
                        images.push(self.decode_image(Some(inline.mime_type), &inline.data)?);
                    }
                }
            }
        }
        Ok(images)
    }
}

#[async_trait]
impl Provider for Gemini {
    async fn text(&self, call: TextCall<'_>) -> Result<TextOutput> {
        let answer: Response = self
            .upstream
            .post_json(&path(call.upstream_model, "generateContent"), &body(&call))
            .await?;
        let usage = answer.usage_metadata.unwrap_or_default();
        Ok(TextOutput {
            text: answer.text(),
            finish: answer.finish_reason().map_or(Finish::Stop, finish),
            input_tokens: usage.prompt_token_count,
            output_tokens: usage.output(),
        })
    }

    async fn stream_text(&self, call: TextCall<'_>) -> Result<TextStream> {
        let events = self
            .upstream
            .post_sse(
                &path(call.upstream_model, "streamGenerateContent?alt=sse"),
                &body(&call),
            )
            .await?;
        let decoder = ChunkDecoder {
            provider_id: self.upstream.provider_id().to_string(),
            usage: UsageMetadata::default(),
            finish: None,
        };
        Ok(decode_stream(events, decoder))
    }

    async fn image(&self, call: ImageCall<'_>) -> Result<ImageOutput> {
        let images = if call.upstream_model.starts_with("imagen") {
            self.imagen(&call).await?
        } else {
            self.generate_images(&call).await?
        };
        if images.is_empty() {
            return Err(self
                .upstream
                .failure(ProviderFailure::BadResponse, "the answer has no images"));
        }
        Ok(ImageOutput { images })
    }
}

//! OpenAI's JSON, as far as City reads and writes it. Fields City has no
//! slot for land in `other` and are judged by `refuse_unsupported`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions`.
#[derive(Deserialize)]
pub struct ChatRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<Stop>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub metadata: Option<HashMap<String, String>>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A message's content: a string, or parts of which City reads text only.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// A chat completion, or one chunk of a streamed one.
#[derive(Serialize)]
pub struct Completion {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
pub struct Choice {
    pub index: u32,
    /// The answer (`chat.completion`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<AnswerMessage>,
    /// A piece of it (`chat.completion.chunk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    pub finish_reason: Option<&'static str>,
    pub logprobs: Option<()>,
}

#[derive(Serialize)]
pub struct AnswerMessage {
    pub role: &'static str,
    pub content: String,
    pub refusal: Option<()>,
}

#[derive(Serialize, Default)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `POST /v1/images/generations`.
#[derive(Deserialize)]
pub struct ImageRequest {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prompt: String,
    pub n: Option<i64>,
    pub response_format: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Serialize)]
pub struct ImagesResponse {
    pub created: i64,
    pub data: Vec<ImageData>,
}

#[derive(Serialize)]
pub struct ImageData {
    pub b64_json: String,
}

#[derive(Serialize)]
pub struct Model {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: &'static str,
}

#[derive(Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<Model>,
}

//! `POST /v1/chat/completions`: OpenAI's request becomes AIService's
//! TextRequest, checked by the same caps and conversion, and runs through
//! the same gateway call; `stream: true` relays the gateway's chunks as SSE.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, stream};

use super::wire::{
    AnswerMessage, ChatMessage, ChatRequest, Choice, Completion, Content, Delta, Stop, Usage,
};
use super::{ApiError, Face, Unsupported, parse, refuse_unsupported, rename_fields, unix_now};
use crate::api::caps::CallCaps;
use crate::auth::RequestId;
use crate::error::{Error, Result, Violations};
use crate::gateway::{Consumption, Relay, StreamChunk, TextInput};
use crate::proto;
use crate::providers::Finish;

/// Request fields City has no slot for, and how it treats them.
const UNSUPPORTED: &[(&str, Unsupported)] = &[
    ("user", Unsupported::Hint),
    ("seed", Unsupported::Hint),
    ("store", Unsupported::Hint),
    ("service_tier", Unsupported::Hint),
    ("prompt_cache_key", Unsupported::Hint),
    ("safety_identifier", Unsupported::Hint),
    ("parallel_tool_calls", Unsupported::Hint),
    ("n", Unsupported::OnlyDefault(|v| v.as_i64() == Some(1))),
    ("presence_penalty", Unsupported::OnlyDefault(is_zero)),
    ("frequency_penalty", Unsupported::OnlyDefault(is_zero)),
    (
        "logprobs",
        Unsupported::OnlyDefault(|v| v.as_bool() == Some(false)),
    ),
    (
        "response_format",
        Unsupported::OnlyDefault(|v| v.get("type").and_then(|t| t.as_str()) == Some("text")),
    ),
];

/// Message fields City has no slot for (a participant's name is a hint).
const MESSAGE_UNSUPPORTED: &[(&str, Unsupported)] = &[("name", Unsupported::Hint)];

fn is_zero(value: &serde_json::Value) -> bool {
    value.as_f64() == Some(0.0)
}

pub async fn completions(
    State(face): State<Face>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, ApiError> {
    let ctx = face.context(&headers)?;
    let id = ctx.request_id.clone();
    let request: ChatRequest = parse(body, face.max_request_bytes, &id)?;
    let stream = request.stream.unwrap_or(false);
    let include_usage = request
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let max_field = if request.max_completion_tokens.is_some() {
        "max_completion_tokens"
    } else {
        "max_tokens"
    };
    let names = [
        ("config.temperature", "temperature"),
        ("config.top_p", "top_p"),
        ("config.stop_sequences", "stop"),
        ("max_tokens", max_field),
    ];
    let refused = |err: Error| ApiError::new(rename_fields(err, &names), &id);
    let input = text_input(request, &face.caps).map_err(refused)?;
    if stream {
        let started = face
            .gateway
            .stream_text(ctx, input)
            .await
            .map_err(refused)?;
        let relay = SseRelay {
            id: id.clone(),
            model: started.model_id,
            created: unix_now(),
            include_usage,
        };
        return Ok(relay.response(started.chunks));
    }
    let answer = face.gateway.text(ctx, input).await.map_err(refused)?;
    let completion = Completion {
        id: completion_id(&id),
        object: "chat.completion",
        created: unix_now(),
        model: answer.model_id,
        choices: vec![Choice {
            index: 0,
            message: Some(AnswerMessage {
                role: "assistant",
                content: answer.text,
                refusal: None,
            }),
            delta: None,
            finish_reason: Some(finish_reason(answer.finish)),
            logprobs: None,
        }],
        usage: Some(usage(answer.usage)),
    };
    Ok(with_request_id(axum::Json(completion).into_response(), &id))
}

/// OpenAI's request as AIService's TextRequest, then the gRPC face's own
/// caps and conversion: one set of rules for both faces.
fn text_input(request: ChatRequest, caps: &CallCaps) -> Result<TextInput> {
    let mut v = Violations::default();
    v.absorb(refuse_unsupported(&request.other, UNSUPPORTED, ""));
    if let Some(options) = &request.stream_options {
        v.absorb(refuse_unsupported(&options.other, &[], "stream_options."));
    }
    let max_tokens = match (request.max_tokens, request.max_completion_tokens) {
        (Some(a), Some(b)) if a != b => {
            v.check(
                false,
                "max_tokens",
                "differs from max_completion_tokens; send one",
            );
            None
        }
        (a, b) => b.or(a),
    };
    let messages = request
        .messages
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| message(&mut v, i, m))
        .collect();
    v.finish(())?;
    let stop_sequences = match request.stop {
        None => Vec::new(),
        Some(Stop::One(one)) => vec![one],
        Some(Stop::Many(many)) => many,
    };
    let text_request = proto::TextRequest {
        model: request.model.unwrap_or_default(),
        messages,
        max_tokens: max_tokens.map(|m| i32::try_from(m).unwrap_or(i32::MAX)),
        config: Some(proto::GenerationConfig {
            temperature: request.temperature,
            top_p: request.top_p,
            stop_sequences,
        }),
        metadata: request.metadata.unwrap_or_default(),
    };
    caps.check_text(&text_request.messages)?;
    TextInput::try_from(text_request)
}

/// One message in AIService's terms; its problems go to `v`.
fn message(v: &mut Violations, i: usize, m: ChatMessage) -> Option<proto::Message> {
    v.absorb(refuse_unsupported(
        &m.other,
        MESSAGE_UNSUPPORTED,
        &format!("messages[{i}]."),
    ));
    let role = match m.role.as_str() {
        "system" | "developer" => proto::Role::System,
        "user" => proto::Role::User,
        "assistant" => proto::Role::Assistant,
        _ => {
            v.check(
                false,
                format!("messages[{i}].role"),
                "must be system, developer, user or assistant",
            );
            return None;
        }
    };
    let content = match m.content {
        Some(Content::Text(text)) => text,
        Some(Content::Parts(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.into_iter().enumerate() {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(piece)) => text.push_str(&piece),
                    _ => v.check(
                        false,
                        format!("messages[{i}].content[{j}]"),
                        "only text parts are supported",
                    ),
                }
            }
            text
        }
        None => {
            v.check(false, format!("messages[{i}].content"), "is required");
            return None;
        }
    };
    Some(proto::Message {
        role: role as i32,
        content,
    })
}

fn completion_id(id: &RequestId) -> String {
    format!("chatcmpl-{}", id.0)
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ContentFilter => "content_filter",
    }
}

fn usage(used: Consumption) -> Usage {
    Usage {
        prompt_tokens: used.input_tokens,
        completion_tokens: used.output_tokens,
        total_tokens: used.input_tokens + used.output_tokens,
    }
}

fn with_request_id(mut response: Response, id: &RequestId) -> Response {
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// Turns the gateway's relayed chunks into OpenAI's SSE: a first chunk
/// with the role, one per delta, the finish, the usage when asked for, then
/// `[DONE]`. A failure after the start is one `data: {"error": ...}` event
/// (what the SDKs raise) and no `[DONE]`. Dropping the body (the client went
/// away) drops the relay: its row says CANCELLED.
struct SseRelay {
    id: RequestId,
    model: String,
    created: i64,
    include_usage: bool,
}

enum Phase {
    Start,
    Relay,
    Done,
}

impl SseRelay {
    fn response(self, chunks: Relay) -> Response {
        let id = self.id.clone();
        let events = stream::unfold(
            (self, chunks, Phase::Start),
            |(relay, mut chunks, phase)| async move {
                let (event, next) = match phase {
                    Phase::Start => (
                        relay.chunk(Some("assistant"), Some(String::new()), None),
                        Phase::Relay,
                    ),
                    Phase::Relay => match chunks.next().await {
                        Some(Ok(StreamChunk::Delta(text))) => {
                            (relay.chunk(None, Some(text), None), Phase::Relay)
                        }
                        Some(Ok(StreamChunk::End { finish, usage })) => {
                            (relay.end(finish, usage), Phase::Done)
                        }
                        Some(Err(err)) => (ApiError::new(err, &relay.id).sse_event(), Phase::Done),
                        None => {
                            let err = Error::internal("the relay ended without a last message");
                            (ApiError::new(err, &relay.id).sse_event(), Phase::Done)
                        }
                    },
                    Phase::Done => return None,
                };
                Some((
                    Ok::<_, Infallible>(Bytes::from(event)),
                    (relay, chunks, next),
                ))
            },
        );
        let mut response = Body::from_stream(events).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        with_request_id(response, &id)
    }

    fn completion(&self, choices: Vec<Choice>, usage: Option<Usage>) -> Completion {
        Completion {
            id: completion_id(&self.id),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }

    fn chunk(
        &self,
        role: Option<&'static str>,
        content: Option<String>,
        finish: Option<Finish>,
    ) -> String {
        let choice = Choice {
            index: 0,
            message: None,
            delta: Some(Delta { role, content }),
            finish_reason: finish.map(finish_reason),
            logprobs: None,
        };
        event(&self.completion(vec![choice], None))
    }

    /// The finish, the usage chunk when asked for, and `[DONE]`.
    fn end(&self, finish: Finish, used: Consumption) -> String {
        let mut events = self.chunk(None, None, Some(finish));
        if self.include_usage {
            events.push_str(&event(&self.completion(Vec::new(), Some(usage(used)))));
        }
        events.push_str("data: [DONE]\n\n");
        events
    }
}

fn event(completion: &Completion) -> String {
    let json = serde_json::to_string(completion).expect("a completion serializes");
    format!("data: {json}\n\n")
}

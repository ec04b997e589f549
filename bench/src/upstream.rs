//! A fast OpenAI-compatible mock upstream: `POST /v1/chat/completions`
//! answers with a fixed number of tokens, as one JSON document or as SSE
//! chunks (one token each, after an optional delay), with a final usage chunk
//! when the request asks for `stream_options.include_usage`. `POST /hook`
//! is an allowing before_call hook for City (`{"allow": true}`; the
//! Standard Webhooks signature is not checked).
//!
//! Every answer is rendered once at start, so a call costs a small JSON
//! parse of the request and one write: the upstream is never the bottleneck.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, Infallible>;

/// What every answer looks like.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamConfig {
    /// Tokens (the word `tok`) per answer.
    pub tokens: usize,
    /// Pause before each streamed token.
    pub chunk_delay: Duration,
}

/// Serves the mock upstream on `listener` forever.
pub async fn serve(listener: TcpListener, config: UpstreamConfig) -> anyhow::Result<()> {
    let answers = Arc::new(Answers::render(config));
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let answers = answers.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let answers = answers.clone();
                async move { Ok::<_, Infallible>(answers.handle(request).await) }
            });
            // A client closing its connection mid-way is not our concern.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The fields of a Chat Completions request the mock looks at.
#[derive(Debug, Default, Deserialize)]
struct ChatRequest {
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// Every answer, pre-rendered.
struct Answers {
    chunk_delay: Duration,
    plain: Bytes,
    /// The role chunk, then one chunk per token, then the finish chunk.
    chunks: Vec<Bytes>,
    usage_chunk: Bytes,
    done: Bytes,
}

/// A before_call hook's "allow" answer.
const HOOK_ALLOW: &str = r#"{"allow":true}"#;

const MODEL: &str = "mock-upstream";
const CREATED: u64 = 1_700_000_000;
const PROMPT_TOKENS: usize = 8;

impl Answers {
    fn render(config: UpstreamConfig) -> Answers {
        let words: Vec<&str> = (0..config.tokens)
            .map(|i| if i == 0 { "tok" } else { " tok" })
            .collect();
        let usage = json!({
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": config.tokens,
            "total_tokens": PROMPT_TOKENS + config.tokens,
        });
        let plain = json!({
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": words.concat()},
                "finish_reason": "stop",
            }],
            "usage": usage,
        });
        let mut chunks = vec![sse(&chunk(
            json!({"role": "assistant", "content": ""}),
            None,
        ))];
        chunks.extend(
            words
                .iter()
                .map(|word| sse(&chunk(json!({ "content": word }), None))),
        );
        chunks.push(sse(&chunk(json!({}), Some("stop"))));
        let mut usage_chunk = chunk(json!({}), None);
        usage_chunk["choices"] = json!([]);
        usage_chunk["usage"] = usage;
        Answers {
            chunk_delay: config.chunk_delay,
            plain: Bytes::from(plain.to_string()),
            chunks,
            usage_chunk: sse(&usage_chunk),
            done: Bytes::from_static(b"data: [DONE]\n\n"),
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path();
        let is_chat = path == "/v1/chat/completions" || path == "/chat/completions";
        match (request.method(), is_chat) {
            (&Method::POST, true) => self.chat(request).await,
            (&Method::POST, false) if path == "/hook" => hook(request).await,
            (&Method::GET, false) if path == "/health" => {
                respond(StatusCode::OK, "text/plain", "ok")
            }
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
        }
    }

    async fn chat(&self, request: Request<Incoming>) -> Response<Body> {
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return respond(StatusCode::BAD_REQUEST, "text/plain", "unreadable body"),
        };
        let Ok(chat) = serde_json::from_slice::<ChatRequest>(&body) else {
            return respond(StatusCode::BAD_REQUEST, "text/plain", "invalid JSON");
        };
        if !chat.stream {
            return respond(StatusCode::OK, "application/json", self.plain.clone());
        }
        let include_usage = chat.stream_options.is_some_and(|o| o.include_usage);
        let mut frames = self.chunks.clone();
        if include_usage {
            frames.push(self.usage_chunk.clone());
        }
        frames.push(self.done.clone());
        let body = if self.chunk_delay.is_zero() {
            Full::new(Bytes::from(frames.concat())).boxed()
        } else {
            // The pre-rendered chunks are the role chunk, the tokens, the finish.
            delayed_body(frames, self.chunks.len() - 2, self.chunk_delay)
        };
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(body)
            .expect("a valid response")
    }
}

/// An allowing before_call hook: reads the call's context, answers allow.
async fn hook(request: Request<Incoming>) -> Response<Body> {
    if request.into_body().collect().await.is_err() {
        return respond(StatusCode::BAD_REQUEST, "text/plain", "unreadable body");
    }
    respond(StatusCode::OK, "application/json", HOOK_ALLOW)
}

/// The SSE frames, each of the `tokens` token chunks (frames 1..=tokens)
/// after `delay`; the role chunk goes at once, the rest right after the last
/// token.
fn delayed_body(frames: Vec<Bytes>, tokens: usize, delay: Duration) -> Body {
    let stream = futures_util::stream::iter(frames.into_iter().enumerate()).then(
        move |(i, frame)| async move {
            if (1..=tokens).contains(&i) {
                tokio::time::sleep(delay).await;
            }
            Ok::<_, Infallible>(Frame::data(frame))
        },
    );
    BodyExt::boxed(StreamBody::new(stream))
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    })
}

fn sse(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).boxed())
        .expect("a valid response")
}

//! A scripted fake upstream on 127.0.0.1:0 for the provider tests: it records
//! every request (path, headers, JSON body) and answers with the queued
//! replies in order (then with its standing reply), each with an optional
//! delay before the headers and a body written in timed pieces, so tests can
//! split SSE at any byte, cut a stream short or stall.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;
use tokio::net::TcpListener;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Pause before the status line and headers.
    pub delay: Duration,
    /// Body pieces, each written after its pause.
    pub chunks: Vec<(Duration, Vec<u8>)>,
}

impl Reply {
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::raw(status, "application/json", body.to_string().into_bytes())
    }

    pub fn ok(body: &Value) -> Reply {
        Reply::json(200, body)
    }

    pub fn raw(status: u16, content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            delay: Duration::ZERO,
            chunks: vec![(Duration::ZERO, body)],
        }
    }

    /// An SSE answer from whole `data:` payloads (`event` names optional).
    pub fn sse(events: &[(&str, &str)]) -> Reply {
        let mut body = Vec::new();
        for (event, data) in events {
            if !event.is_empty() {
                body.extend_from_slice(format!("event: {event}\n").as_bytes());
            }
            body.extend_from_slice(format!("data: {data}\n\n").as_bytes());
        }
        Reply::raw(200, "text/event-stream", body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    /// The same bytes, written in pieces of `size` bytes.
    pub fn split_every(mut self, size: usize) -> Reply {
        let all: Vec<u8> = self.chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        self.chunks = all
            .chunks(size.max(1))
            .map(|c| (Duration::ZERO, c.to_vec()))
            .collect();
        self
    }

    /// The same bytes, cut at the given offsets (sorted, in range).
    pub fn split_at(mut self, cuts: &[usize]) -> Reply {
        let all: Vec<u8> = self.chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        let mut start = 0;
        let mut chunks = Vec::new();
        for &cut in cuts.iter().chain([&all.len()]) {
            let cut = cut.clamp(start, all.len());
            chunks.push((Duration::ZERO, all[start..cut].to_vec()));
            start = cut;
        }
        self.chunks = chunks;
        self
    }

    /// Pause `pause` before every body piece.
    pub fn paced(mut self, pause: Duration) -> Reply {
        for chunk in &mut self.chunks {
            chunk.0 = pause;
        }
        self
    }

    /// Append a body piece written after `pause`.
    pub fn then(mut self, pause: Duration, bytes: &[u8]) -> Reply {
        self.chunks.push((pause, bytes.to_vec()));
        self
    }
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<Reply>>,
    standing: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
    /// Bodies dropped before they were fully written (the client left).
    abandoned: AtomicUsize,
    abandoned_notify: tokio::sync::Notify,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        let inner = Arc::new(Inner::default());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeUpstream { addr, inner, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply for the next request.
    pub fn push(&self, reply: Reply) {
        self.inner.queue.lock().unwrap().push_back(reply);
    }

    /// The reply for every request once the queue is empty.
    pub fn always(&self, reply: Reply) {
        *self.inner.standing.lock().unwrap() = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests().pop().expect("the fake received a request")
    }

    /// Waits (at most 5 s) until a body was dropped before its end.
    pub async fn wait_abandoned(&self) {
        let wait = async {
            loop {
                let notified = self.inner.abandoned_notify.notified();
                if self.inner.abandoned.load(Ordering::SeqCst) > 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("the upstream body was abandoned");
    }
}

/// Counts a body dropped before its last piece.
struct BodyGuard {
    inner: Arc<Inner>,
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        self.inner.abandoned.fetch_add(1, Ordering::SeqCst);
        self.inner.abandoned_notify.notify_waiters();
    }
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    inner.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    });
    let reply = inner
        .queue
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| inner.standing.lock().unwrap().clone())
        .unwrap_or_else(|| Reply::raw(500, "text/plain", b"no reply scripted".to_vec()));
    tokio::time::sleep(reply.delay).await;
    let guard = BodyGuard {
        inner: inner.clone(),
    };
    let chunks: VecDeque<_> = reply.chunks.into_iter().collect();
    let stream = futures_util::stream::unfold((chunks, guard), |(mut chunks, guard)| async move {
        let Some((pause, bytes)) = chunks.pop_front() else {
            // Written to the end: not abandoned.
            std::mem::forget(guard);
            return None;
        };
        tokio::time::sleep(pause).await;
        Some((Ok::<_, std::io::Error>(Bytes::from(bytes)), (chunks, guard)))
    });
    let mut response = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response.body(Body::from_stream(stream)).unwrap()
}

// ---- City side: a City with a master key, and providers/models on fakes ----

use downcity::proto;

use crate::common::TestCity;

/// The API key the tests give providers; the fakes expect it.
pub const KEY: &str = "sk-test-SECRET-4f9a8b7c6d5e-wxyz";

/// A City with a master key and a studio `s1` whose user `u1` holds the
/// returned token.
pub async fn city() -> (TestCity, String) {
    let city = TestCity::start_with(|config| {
        config.master_key = Some(downcity::config::SecretText(
            downcity::keys::MasterKey::generate().to_base64(),
        ));
    })
    .await;
    let token = city.studio_with_user("s1", "u1").await;
    (city, token)
}

/// Upserts a provider through AdminService.
pub async fn provider(
    city: &TestCity,
    id: &str,
    kind: proto::ProviderKind,
    base_url: &str,
    api_key: Option<&str>,
    adjust: impl FnOnce(&mut proto::Provider),
) -> proto::Provider {
    let mut provider = proto::Provider {
        id: id.into(),
        kind: kind as i32,
        base_url: base_url.into(),
        ..Default::default()
    };
    adjust(&mut provider);
    city.admin()
        .upsert_provider(proto::UpsertProviderRequest {
            provider: Some(provider),
            api_key: api_key.map(str::to_string),
        })
        .await
        .expect("upsert provider")
        .into_inner()
        .provider
        .expect("the stored provider")
}

/// Upserts an enabled model of `pathway` on `provider`.
pub async fn model(
    city: &TestCity,
    id: &str,
    provider: &str,
    upstream: &str,
    pathway: proto::Pathway,
    fallbacks: &[&str],
) {
    city.upsert_model(proto::Model {
        id: id.into(),
        display_name: id.into(),
        provider_id: provider.into(),
        upstream_model: upstream.into(),
        pathway: pathway as i32,
        enabled: Some(true),
        fallback_model_ids: fallbacks.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await;
}

/// A text request for `model` with a system and a user message.
pub fn text_request(model: &str, user: &str) -> proto::TextRequest {
    proto::TextRequest {
        model: model.into(),
        messages: vec![
            proto::Message {
                role: proto::Role::System as i32,
                content: "Be brief.".into(),
            },
            proto::Message {
                role: proto::Role::User as i32,
                content: user.into(),
            },
        ],
        max_tokens: Some(64),
        ..Default::default()
    }
}

/// A millisecond duration for provider timeouts.
pub fn ms(ms: i64) -> Option<pbjson_types::Duration> {
    Some(pbjson_types::Duration {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    })
}

/// The stream form of `text_request`.
pub fn stream_request(model: &str, user: &str) -> proto::StreamTextRequest {
    let r = text_request(model, user);
    proto::StreamTextRequest {
        model: r.model,
        messages: r.messages,
        max_tokens: r.max_tokens,
        ..Default::default()
    }
}

/// Every message of a stream, or the status that ended it.
pub async fn collect_stream(
    ai: &mut crate::common::Ai,
    request: proto::StreamTextRequest,
) -> (Vec<proto::StreamTextResponse>, Option<tonic::Status>) {
    let mut stream = match ai.stream_text(request).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => return (Vec::new(), Some(status)),
    };
    let mut messages = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => return (messages, None),
            Err(status) => return (messages, Some(status)),
        }
    }
}

/// The deltas of a stream, joined.
pub fn joined(messages: &[proto::StreamTextResponse]) -> String {
    messages.iter().map(|m| m.delta.as_str()).collect()
}

//! OpenAI-compatible HTTP endpoints as load targets (the mock upstream
//! directly, LiteLLM in front of it, or City's OpenAI-compatible face):
//! Chat Completions plain and streamed.

use std::sync::Arc;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::load::{Call, CallResult};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The key every HTTP call carries: LiteLLM's master key (the mock upstream
/// ignores it).
pub const API_KEY: &str = "sk-bench-5f0c1e9a7d3b48c2a6e1f0d9b8c7a6e5";

/// A pooled HTTP/1.1 client with TCP_NODELAY.
pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(4096)
        .build(connector)
}

/// Chat Completions on one endpoint, for one model.
#[derive(Clone)]
pub struct Chat {
    client: HttpClient,
    url: String,
    plain: Bytes,
    streamed: Bytes,
    /// `Bearer ...` values, one per call in turn (call `seq` takes
    /// `seq % len`): the shared API_KEY, or City's user tokens.
    bearers: Arc<Vec<HeaderValue>>,
}

impl Chat {
    /// `base` is the URL up to `/v1` (such as `http://127.0.0.1:4000/v1`).
    pub fn new(client: HttpClient, base: &str, model: &str, prompt: &str) -> Chat {
        let body = |stream: bool| {
            let mut body = json!({
                "model": model,
                "messages": [{"role": "user", "content": prompt}],
                "stream": stream,
            });
            if stream {
                body["stream_options"] = json!({"include_usage": true});
            }
            Bytes::from(body.to_string())
        };
        Chat {
            client,
            url: format!("{base}/chat/completions"),
            plain: body(false),
            streamed: body(true),
            bearers: Arc::new(vec![
                HeaderValue::from_str(&format!("Bearer {API_KEY}")).expect("a header value"),
            ]),
        }
    }

    /// The same endpoint, with these `authorization` values in turn.
    pub fn with_bearers(self, bearers: Vec<HeaderValue>) -> Chat {
        assert!(!bearers.is_empty());
        Chat {
            bearers: Arc::new(bearers),
            ..self
        }
    }

    async fn post(&self, body: Bytes, seq: u64) -> Result<hyper::body::Incoming, String> {
        let bearer = &self.bearers[seq as usize % self.bearers.len()];
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, bearer.clone())
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != StatusCode::OK {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            let body = body.unwrap_or_default();
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        Ok(response.into_body())
    }
}

/// A plain (non-streamed) completion, read to its end.
#[derive(Clone)]
pub struct ChatCall(pub Chat);

impl Call for ChatCall {
    async fn call(&self, _caller: usize, seq: u64) -> CallResult {
        let body = self.0.post(self.0.plain.clone(), seq).await?;
        body.collect().await.map_err(|e| e.to_string())?;
        Ok(None)
    }
}

/// A streamed completion, read to its end; records the time to the first
/// content token.
#[derive(Clone)]
pub struct ChatStreamCall(pub Chat);

impl Call for ChatStreamCall {
    async fn call(&self, _caller: usize, seq: u64) -> CallResult {
        let sent = Instant::now();
        let mut body = self.0.post(self.0.streamed.clone(), seq).await?;
        let mut first_token = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            let has_token = frame.data_ref().is_some_and(|data| has_content(data));
            if first_token.is_none() && has_token {
                first_token = Some(sent.elapsed());
            }
        }
        first_token
            .map(Some)
            .ok_or_else(|| "a stream without tokens".to_string())
    }
}

/// Whether SSE data holds a non-empty `"content"` delta.
fn has_content(data: &[u8]) -> bool {
    const KEY: &[u8] = b"\"content\":";
    let mut rest = data;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        let value = rest.trim_ascii_start();
        if value.starts_with(b"\"") && !value.starts_with(b"\"\"") {
            return true;
        }
    }
    false
}

/// Polls `url` with GET until it answers 200, for at most `limit`.
pub async fn wait_ready(client: &HttpClient, url: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let request = Request::get(url).body(Full::default())?;
        let response = client.request(request).await;
        if response.is_ok_and(|r| r.status() == StatusCode::OK) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} not ready after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::has_content;

    #[test]
    fn finds_content_deltas() {
        assert!(has_content(br#"data: {"delta":{"content":"tok"}}"#));
        assert!(has_content(br#"data: {"delta": {"content": " tok"}}"#));
        assert!(!has_content(
            br#"data: {"delta":{"role":"assistant","content":""}}"#
        ));
        assert!(!has_content(br#"data: {"delta":{"content":null}}"#));
    }
}

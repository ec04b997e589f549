//! The HTTP layer the upstream providers share: one pooled reqwest client per
//! provider (rustls with bundled roots, TCP_NODELAY, HTTP/2 where the server
//! offers it), timeouts, retries with exponential backoff and jitter on
//! 429 / 5xx / connection errors (honouring `retry-after`), and the mapping
//! of upstream failures to `ProviderFailure`.
//!
//! Retries happen only before a response is accepted: once a stream has
//! started, nothing is retried, so no client ever sees a token twice.
//!
//! The API key travels in a header marked sensitive. Upstream error bodies
//! are logged with the key cut out; the client only ever gets a generic
//! message (see `Error::to_status`).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::event_stream::{SseStream, error_chain, sse_stream};
use crate::domain::{ProviderRecord, ProviderTimeouts};
use crate::error::{Error, ProviderFailure, Result};
use crate::keys::ApiKey;
use crate::telemetry;

/// Default time to open a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time to the response headers, and between streamed events.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time for a whole call, retries and streaming included.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(300);

/// Largest unary response body read (images in base64 are a few MB).
const MAX_BODY_BYTES: usize = 64 << 20;
/// Largest error body kept for the log.
const MAX_ERROR_BODY_BYTES: usize = 2048;

/// How long each stage of a call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub total: Duration,
}

impl Timeouts {
    pub fn from_record(t: &ProviderTimeouts) -> Self {
        let ms = |v: Option<i64>, default: Duration| {
            v.filter(|ms| *ms > 0)
                .map_or(default, |ms| Duration::from_millis(ms as u64))
        };
        Timeouts {
            connect: ms(t.connect_ms, DEFAULT_CONNECT_TIMEOUT),
            first_byte: ms(t.first_byte_ms, DEFAULT_FIRST_BYTE_TIMEOUT),
            total: ms(t.total_ms, DEFAULT_TOTAL_TIMEOUT),
        }
    }
}

/// Retries: exponential backoff with jitter, capped; `retry-after` wins
/// when it fits in the call's remaining time and under `max_retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A longer `retry-after` is not waited for: the call fails with it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (1-based): `base × 2^(retry-1)`,
    /// capped, with "equal jitter" (between half and all of it).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// One upstream endpoint with its pooled client.
pub struct Upstream {
    provider_id: String,
    client: reqwest::Client,
    base_url: String,
    timeouts: Timeouts,
    retry: RetryPolicy,
    /// Only to cut the key out of logged error bodies.
    api_key: Option<ApiKey>,
}

impl Upstream {
    /// A client for `record` (its base URL, or `default_base_url` when the
    /// record has none), sending `auth` headers (marked sensitive) and the
    /// record's extra headers with every request.
    pub fn new(
        record: &ProviderRecord,
        default_base_url: &str,
        auth: Vec<(&'static str, String)>,
        api_key: Option<ApiKey>,
    ) -> Result<Self> {
        let base_url = if record.base_url.is_empty() {
            default_base_url
        } else {
            record.base_url.as_str()
        };
        if base_url.is_empty() {
            return Err(Error::Internal(format!(
                "provider `{}` needs a base_url",
                record.id
            )));
        }
        let timeouts = Timeouts::from_record(&record.timeouts);
        let mut headers = extra_headers(&record.headers)
            .map_err(|e| Error::Internal(format!("provider `{}`: {e}", record.id)))?;
        for (name, value) in auth {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                Error::Internal(format!(
                    "provider `{}`: the API key is not a valid header value",
                    record.id
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(name), value);
        }
        let client = crate::outbound::client_builder()
            .default_headers(headers)
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("provider `{}`: {e}", record.id)))?;
        Ok(Upstream {
            provider_id: record.id.clone(),
            client,
            base_url: base_url.trim_end_matches('/').to_string(),
            timeouts,
            retry: RetryPolicy::default(),
            api_key,
        })
    }

    pub fn provider_id(&self) -> &str {
        &self.provider_id
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// An error of this provider.
    pub fn failure(&self, kind: ProviderFailure, message: impl Into<String>) -> Error {
        Error::Provider {
            provider_id: self.provider_id.clone(),
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// POSTs `body` as JSON and decodes the JSON answer, retrying as the
    /// policy says, all within the total timeout.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T> {
        let deadline = Instant::now() + self.timeouts.total;
        let response = self.send(path, body, deadline).await?;
        let bytes = self.read_body(response, deadline).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            tracing::warn!(provider = %self.provider_id, error = %e, "upstream sent malformed JSON");
            self.failure(
                ProviderFailure::BadResponse,
                format!("malformed JSON answer: {e}"),
            )
        })
    }

    /// POSTs `body` and returns the answer's server-sent events. Retries
    /// end once the upstream has accepted the call.
    pub async fn post_sse(&self, path: &str, body: &serde_json::Value) -> Result<SseStream> {
        let deadline = Instant::now() + self.timeouts.total;
        let response = self.send(path, body, deadline).await?;
        Ok(sse_stream(
            response,
            self.provider_id.clone(),
            self.timeouts.first_byte,
            deadline,
        ))
    }

    /// Sends until a 2xx answer's headers arrive or retrying is pointless.
    async fn send(
        &self,
        path: &str,
        body: &serde_json::Value,
        deadline: Instant,
    ) -> Result<Response> {
        let url = self.url(path);
        let body = Bytes::from(serde_json::to_vec(body).map_err(Error::internal)?);
        let mut attempt = 1;
        loop {
            let request = self
                .client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .headers(telemetry::propagate::trace_headers())
                .body(body.clone());
            let err = match self.attempt(request, deadline).await {
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            let Some(pause) = self.retry_pause(&err, attempt, deadline) else {
                return Err(err);
            };
            tracing::info!(
                provider = %self.provider_id,
                attempt,
                pause_ms = pause.as_millis() as u64,
                error = %err,
                "retrying the upstream call"
            );
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// One request: the response of a 2xx, else the mapped failure.
    async fn attempt(&self, request: RequestBuilder, deadline: Instant) -> Result<Response> {
        let wait = self
            .timeouts
            .first_byte
            .min(deadline.saturating_duration_since(Instant::now()));
        let response = match tokio::time::timeout(wait, request.send()).await {
            Err(_) => {
                return Err(self.failure(
                    ProviderFailure::Timeout,
                    format!("no answer within {wait:?}"),
                ));
            }
            Ok(Err(err)) => return Err(self.transport_failure(err)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(response.headers());
        let body = self.error_body(response, deadline).await;
        tracing::warn!(
            provider = %self.provider_id,
            status = status.as_u16(),
            body = %body,
            "upstream answered with an error"
        );
        let kind = status_failure(status);
        Err(Error::Provider {
            provider_id: self.provider_id.clone(),
            kind,
            message: format!("HTTP {}: {body}", status.as_u16()),
            retry_after: retry_after.or((kind == ProviderFailure::RateLimited)
                .then_some(self.retry.base_delay.max(Duration::from_secs(1)))),
        })
    }

    /// How long to wait before retrying after `err`, or `None` to give up.
    fn retry_pause(&self, err: &Error, attempt: u32, deadline: Instant) -> Option<Duration> {
        let Error::Provider {
            kind, retry_after, ..
        } = err
        else {
            return None;
        };
        if !matches!(
            kind,
            ProviderFailure::Unavailable | ProviderFailure::RateLimited
        ) || attempt >= self.retry.max_attempts
        {
            return None;
        }
        let pause = match retry_after {
            Some(after) if *after > self.retry.max_retry_after => return None,
            Some(after) => *after,
            None => self.retry.backoff(attempt),
        };
        // Leave time for the retry itself to answer.
        (Instant::now() + pause < deadline).then_some(pause)
    }

    fn transport_failure(&self, err: reqwest::Error) -> Error {
        // The URL holds no secret (keys travel in headers), but keep it out
        // of messages anyway.
        let err = err.without_url();
        if err.is_timeout() {
            self.failure(ProviderFailure::Timeout, format!("timed out: {err}"))
        } else {
            self.failure(
                ProviderFailure::Unavailable,
                format!("transport error: {}", error_chain(&err)),
            )
        }
    }

    /// Reads a unary body within the deadline and the size bound.
    async fn read_body(&self, response: Response, deadline: Instant) -> Result<Vec<u8>> {
        let read = async {
            let mut body = Vec::new();
            let mut chunks = response.bytes_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| self.transport_failure(e))?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(self.failure(
                        ProviderFailure::BadResponse,
                        format!("answer larger than {MAX_BODY_BYTES} bytes"),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        tokio::time::timeout_at(deadline, read)
            .await
            .unwrap_or_else(|_| {
                Err(self.failure(
                    ProviderFailure::Timeout,
                    "the answer did not arrive within the total timeout",
                ))
            })
    }

    /// The start of an error body, with the API key cut out, for the log.
    async fn error_body(&self, response: Response, deadline: Instant) -> String {
        let read = async {
            let mut body = Vec::new();
            let mut chunks = response.bytes_stream();
            while let Some(Ok(chunk)) = chunks.next().await {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ERROR_BODY_BYTES {
                    body.truncate(MAX_ERROR_BODY_BYTES);
                    break;
                }
            }
            body
        };
        let limit = deadline.min(Instant::now() + self.timeouts.first_byte);
        let body = tokio::time::timeout_at(limit, read)
            .await
            .unwrap_or_default();
        self.redact(&String::from_utf8_lossy(&body))
    }

    /// `text` with every occurrence of the API key replaced.
    pub fn redact(&self, text: &str) -> String {
        match &self.api_key {
            Some(key) if key.expose().len() >= 4 => text.replace(key.expose(), "[redacted]"),
            _ => text.to_string(),
        }
    }
}

/// The failure an HTTP error status means.
pub fn status_failure(status: StatusCode) -> ProviderFailure {
    match status.as_u16() {
        401 | 403 => ProviderFailure::AuthFailed,
        429 => ProviderFailure::RateLimited,
        408 | 504 => ProviderFailure::Timeout,
        400 | 404 | 413 | 422 => ProviderFailure::Rejected,
        // 529 is Anthropic's "overloaded".
        500..=599 => ProviderFailure::Unavailable,
        _ => ProviderFailure::BadResponse,
    }
}

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let value = headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

/// Validates a provider's extra headers and turns them into a header map.
pub fn extra_headers(headers: &BTreeMap<String, String>) -> std::result::Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` is not a valid header value"))?;
        map.insert(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_failures() {
        let kind = |code: u16| status_failure(StatusCode::from_u16(code).unwrap());
        assert_eq!(kind(401), ProviderFailure::AuthFailed);
        assert_eq!(kind(403), ProviderFailure::AuthFailed);
        assert_eq!(kind(429), ProviderFailure::RateLimited);
        assert_eq!(kind(500), ProviderFailure::Unavailable);
        assert_eq!(kind(503), ProviderFailure::Unavailable);
        assert_eq!(kind(529), ProviderFailure::Unavailable);
        assert_eq!(kind(400), ProviderFailure::Rejected);
        assert_eq!(kind(504), ProviderFailure::Timeout);
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        headers.insert("retry-after-ms", HeaderValue::from_static("soon"));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_a_cap() {
        let policy = RetryPolicy::default();
        for retry in 1..10 {
            let exp = (policy.base_delay * (1 << (retry - 1))).min(policy.max_delay);
            let pause = policy.backoff(retry);
            assert!(pause >= exp / 2 && pause <= exp, "{retry}: {pause:?}");
        }
    }

    #[test]
    fn timeouts_default_when_unset() {
        let t = Timeouts::from_record(&ProviderTimeouts {
            connect_ms: Some(1500),
            first_byte_ms: None,
            total_ms: Some(0),
        });
        assert_eq!(t.connect, Duration::from_millis(1500));
        assert_eq!(t.first_byte, DEFAULT_FIRST_BYTE_TIMEOUT);
        assert_eq!(t.total, DEFAULT_TOTAL_TIMEOUT);
    }
}

//! An upstream's streamed answer: the SSE body read as events (with the
//! first-byte and total timeouts between them), and the events decoded into
//! City's stream events by each provider's `EventDecoder`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::Response;
use tokio::time::Instant;

use super::sse::{SseError, SseEvent, SseParser};
use super::{StreamEvent, TextStream};
use crate::error::{Error, ProviderFailure, Result};

/// Server-sent events of one upstream answer.
pub type SseStream = Pin<Box<dyn Stream<Item = Result<SseEvent>> + Send>>;

struct SseState {
    chunks: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
    provider_id: String,
    idle: Duration,
    deadline: Instant,
    done: bool,
}

impl SseState {
    fn failure(&mut self, kind: ProviderFailure, message: String) -> Option<Result<SseEvent>> {
        self.done = true;
        Some(Err(Error::Provider {
            provider_id: self.provider_id.clone(),
            kind,
            message,
            retry_after: None,
        }))
    }

    async fn next(&mut self) -> Option<Result<SseEvent>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let limit = self.deadline.min(Instant::now() + self.idle);
            let chunk = match tokio::time::timeout_at(limit, self.chunks.next()).await {
                Err(_) => {
                    let message = if Instant::now() >= self.deadline {
                        "the stream outlasted the total timeout".to_string()
                    } else {
                        format!("no event for {:?}", self.idle)
                    };
                    return self.failure(ProviderFailure::Timeout, message);
                }
                Ok(chunk) => chunk,
            };
            match chunk {
                Some(Ok(bytes)) => match self.parser.push(&bytes) {
                    Ok(events) => self.ready.extend(events),
                    Err(err) => return self.failure(ProviderFailure::BadResponse, err.to_string()),
                },
                Some(Err(err)) => {
                    let message = format!("the stream broke: {}", error_chain(&err.without_url()));
                    return self.failure(ProviderFailure::Unavailable, message);
                }
                None => {
                    self.done = true;
                    if let Err(err @ SseError::Truncated) | Err(err @ SseError::TooLarge(_)) =
                        self.parser.finish()
                    {
                        return self.failure(ProviderFailure::BadResponse, err.to_string());
                    }
                }
            }
        }
    }
}

pub(super) fn sse_stream(
    response: Response,
    provider_id: String,
    idle: Duration,
    deadline: Instant,
) -> SseStream {
    let state = SseState {
        chunks: Box::pin(response.bytes_stream()),
        parser: SseParser::default(),
        ready: VecDeque::new(),
        provider_id,
        idle,
        deadline,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(
        state,
        |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        },
    ))
}

/// Turns one upstream's events into City's stream events.
pub trait EventDecoder: Send + 'static {
    /// Decodes one event, pushing what it yields. An `Err` ends the stream.
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<()>;
    /// The upstream ended the stream cleanly; push the final event if the
    /// format ends without one of its own.
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<()>;
}

/// A text stream decoded from `events`; it ends after the first
/// `StreamEvent::Finished` or the first error.
pub fn decode_stream(events: SseStream, decoder: impl EventDecoder) -> TextStream {
    struct State<D> {
        events: SseStream,
        decoder: D,
        ready: VecDeque<StreamEvent>,
        /// An error to hand on once the events decoded before it are out.
        failed: Option<Error>,
        done: bool,
    }
    let state = State {
        events,
        decoder,
        ready: VecDeque::new(),
        failed: None,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.ready.pop_front() {
                if matches!(event, StreamEvent::Finished { .. }) {
                    s.done = true;
                    s.ready.clear();
                    s.failed = None;
                }
                return Some((Ok(event), s));
            }
            if let Some(err) = s.failed.take() {
                return Some((Err(err), s));
            }
            if s.done {
                return None;
            }
            let mut out = Vec::new();
            let step = match s.events.next().await {
                Some(Ok(event)) => s.decoder.event(event, &mut out),
                Some(Err(err)) => Err(err),
                None => {
                    s.done = true;
                    s.decoder.end(&mut out)
                }
            };
            s.ready.extend(out);
            if let Err(err) = step {
                s.done = true;
                s.failed = Some(err);
            }
        }
    }))
}

/// An error and its sources on one line ("a: b: c"): reqwest's own message
/// alone ("error sending request") hides the cause.
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

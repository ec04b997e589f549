//! The relay of one stream: upstream events to the client, pulled by the
//! client's own response stream until the upstream ends, fails, or City
//! stops it.
//!
//! No task and no channel sit between the upstream and the client: the
//! connection's task polls the upstream when the client has room (HTTP/2 flow
//! control is the back pressure), so a held stream costs its state and
//! nothing more, and each piece leaves without a hand-off between tasks. A
//! client that goes away drops the relay, and its guard records the call as
//! CANCELLED (see `CallGuard`'s `Drop`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{FutureExt, Stream, StreamExt};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::call::{Consumption, StreamChunk};
use super::guard::{CallEnd, CallGuard, USAGE_SOURCE_RELAYED};
use crate::error::{Error, ProviderFailure, Result};
use crate::metrics::Open;
use crate::providers::{Finish, StreamEvent, TextStream};

/// A stream that has started: the serving model and the relayed chunks.
pub struct StartedStream {
    pub model_id: String,
    /// Ends with the last chunk (the usage, or the error) once the row is recorded.
    pub chunks: Relay,
}

/// One relayed stream: a `Stream` of the client's chunks, ending with the
/// last one (the usage, or the error) once the call's row is recorded.
pub struct Relay {
    state: State,
    /// City's shutdown, once the grace period is over.
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The call's span, entered on every poll: what the upstream and the
    /// row's commit log goes there.
    span: tracing::Span,
    /// Counts the stream open until the relay goes.
    _open: Open,
}

// The relay lives in the client's boxed response stream: its big state is
// the one it holds for the stream's life, so boxing the guard would only
// add an allocation.
#[allow(clippy::large_enum_variant)]
enum State {
    Relaying {
        guard: CallGuard,
        upstream: TextStream,
    },
    /// The row is being recorded; then the last chunk goes out.
    Finishing(Pin<Box<dyn Future<Output = Result<StreamChunk>> + Send>>),
    Done,
}

/// How a relayed stream ended.
enum RelayEnd {
    Finished(Finish, Consumption),
    Failed(Error),
}

impl Relay {
    pub(super) fn new(guard: CallGuard, upstream: TextStream, stopping: CancellationToken) -> Self {
        Relay {
            _open: guard.metrics().stream_opened(),
            span: guard.span().clone(),
            stopping: Box::pin(stopping.cancelled_owned()),
            state: State::Relaying { guard, upstream },
        }
    }
}

/// Where the relay is: the next chunk, or nothing yet.
fn poll_state(
    state: &mut State,
    stopping: &mut Pin<Box<WaitForCancellationFutureOwned>>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<StreamChunk>>> {
    loop {
        match state {
            State::Relaying { guard, upstream } => {
                let end = match ready!(poll_upstream(stopping, guard, upstream, cx)) {
                    Ok(delta) => return Poll::Ready(Some(Ok(delta))),
                    Err(end) => end,
                };
                let State::Relaying { guard, .. } = std::mem::replace(state, State::Done) else {
                    unreachable!("matched above");
                };
                // The upstream is dropped here: its connection is free
                // before the row commits. (`poll_next` enters the span.)
                *state = State::Finishing(Box::pin(finish(guard, end)));
            }
            State::Finishing(last) => {
                let last = ready!(last.poll_unpin(cx));
                *state = State::Done;
                return Poll::Ready(Some(last));
            }
            State::Done => return Poll::Ready(None),
        }
    }
}

/// The next delta from the upstream, or how the stream ends: City's
/// shutdown comes first.
fn poll_upstream(
    stopping: &mut Pin<Box<WaitForCancellationFutureOwned>>,
    guard: &mut CallGuard,
    upstream: &mut TextStream,
    cx: &mut Context<'_>,
) -> Poll<std::result::Result<StreamChunk, RelayEnd>> {
    if stopping.as_mut().poll(cx).is_ready() {
        return Poll::Ready(Err(RelayEnd::Failed(Error::ShuttingDown)));
    }
    let end = match ready!(upstream.poll_next_unpin(cx)) {
        Some(Ok(StreamEvent::Delta(text))) => {
            guard.relayed_piece();
            return Poll::Ready(Ok(StreamChunk::Delta(text)));
        }
        Some(Ok(StreamEvent::Finished {
            finish,
            input_tokens,
            output_tokens,
        })) => RelayEnd::Finished(finish, guard.consumption(input_tokens, output_tokens, 0)),
        Some(Err(err)) => RelayEnd::Failed(err),
        None => RelayEnd::Failed(ended_early(guard)),
    };
    Poll::Ready(Err(end))
}

impl Stream for Relay {
    type Item = Result<StreamChunk>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Relay {
            state,
            stopping,
            span,
            ..
        } = self.get_mut();
        let _entered = span.enter();
        poll_state(state, stopping, cx)
    }
}

fn ended_early(guard: &CallGuard) -> Error {
    Error::Provider {
        provider_id: guard.model().record.provider_id.clone(),
        kind: ProviderFailure::BadResponse,
        message: "stream ended without a final event".into(),
        retry_after: None,
    }
}

/// Writes the row first, then gives the client its last chunk: a client that
/// saw the final usage can rely on the row being durable.
async fn finish(guard: CallGuard, end: RelayEnd) -> Result<StreamChunk> {
    match end {
        RelayEnd::Finished(finish, usage) => {
            let end = CallEnd {
                used: usage,
                error: None,
                usage_source: None,
            };
            guard.finish(end).await?;
            Ok(StreamChunk::End { finish, usage })
        }
        RelayEnd::Failed(err) => {
            // The upstream never reported its count: the prompt estimate
            // and the pieces relayed so far, and the row says so.
            let used = guard.consumption(guard.prompt_estimate(), guard.relayed(), 0);
            let end = CallEnd {
                used,
                error: Some(&err),
                usage_source: Some(USAGE_SOURCE_RELAYED),
            };
            guard.finish(end).await?;
            Err(err)
        }
    }
}

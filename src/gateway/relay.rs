//! The relay of one stream: upstream events to the client through a bounded
//! channel, until the upstream ends, fails, or the client goes away.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::call::{Consumption, StreamChunk};
use super::guard::{CallEnd, CallGuard, USAGE_SOURCE_RELAYED};
use crate::error::{Error, ProviderFailure, Result};
use crate::providers::{Finish, StreamEvent, TextStream};

/// Relays one upstream stream to one client; its guard records the row.
pub(super) struct Relay {
    pub guard: CallGuard,
    pub chunks: mpsc::Sender<Result<StreamChunk>>,
    /// City's shutdown, once the grace period is over.
    pub stopping: CancellationToken,
}

/// How a relayed stream ended.
enum RelayEnd {
    Finished(Finish, Consumption),
    Failed(Error),
}

impl Relay {
    pub(super) async fn run(mut self, mut upstream: TextStream) {
        let _open = self.guard.metrics().stream_opened();
        let end = loop {
            let event = tokio::select! {
                biased;
                _ = self.chunks.closed() => break RelayEnd::Failed(Error::Cancelled),
                () = self.stopping.cancelled() => break RelayEnd::Failed(Error::ShuttingDown),
                event = upstream.next() => event,
            };
            match event {
                Some(Ok(StreamEvent::Delta(text))) => {
                    self.guard.relayed_piece();
                    if self
                        .chunks
                        .send(Ok(StreamChunk::Delta(text)))
                        .await
                        .is_err()
                    {
                        break RelayEnd::Failed(Error::Cancelled);
                    }
                }
                Some(Ok(StreamEvent::Finished {
                    finish,
                    input_tokens,
                    output_tokens,
                })) => {
                    let used = self.guard.consumption(input_tokens, output_tokens, 0);
                    break RelayEnd::Finished(finish, used);
                }
                Some(Err(err)) => break RelayEnd::Failed(err),
                None => break RelayEnd::Failed(self.ended_early()),
            }
        };
        drop(upstream);
        self.finish(end).await;
    }

    fn ended_early(&self) -> Error {
        Error::Provider {
            provider_id: self.guard.model().record.provider_id.clone(),
            kind: ProviderFailure::BadResponse,
            message: "stream ended without a final event".into(),
            retry_after: None,
        }
    }

    /// Writes the row first, then tells the client: a client that saw the
    /// final usage can rely on the row being durable.
    async fn finish(self, end: RelayEnd) {
        let Relay { guard, chunks, .. } = self;
        let (last, recorded) = match end {
            RelayEnd::Finished(finish, usage) => {
                let end = CallEnd {
                    used: usage,
                    error: None,
                    usage_source: None,
                };
                (
                    Ok(StreamChunk::End { finish, usage }),
                    guard.finish(end).await,
                )
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
                let recorded = guard.finish(end).await;
                (Err(err), recorded)
            }
        };
        let last = recorded.and(last);
        let _ = chunks.send(last).await;
    }
}

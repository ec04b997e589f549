//! The built-in mock provider: deterministic, no network, real enough to test
//! everything above it.
//!
//! A token is a whitespace-separated word. The answer is "Echo:" followed by
//! the last user message, cut at `max_tokens` (finish reason LENGTH). Streams
//! send one word per chunk. Model options steer it:
//! - `chunk_delay_ms`: pause before each streamed chunk (default 0);
//! - `latency_ms`: pause before a unary answer (default 0);
//! - `reply`: a fixed answer instead of the echo;
//! - `fail`: `unavailable` | `rate_limited` | `bad_response` | `timeout` |
//!   `auth_failed` makes every call fail that way;
//! - `fail_after_chunks`: a stream fails after that many chunks.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{
    ChatMessage, Finish, Image, ImageCall, ImageOutput, Provider, Role, StreamEvent, TextCall,
    TextOutput, TextStream,
};
use crate::error::{Error, ProviderFailure, Result};

pub struct MockProvider {
    id: String,
}

impl MockProvider {
    pub fn new(id: String) -> Self {
        MockProvider { id }
    }

    fn failure(&self, kind: ProviderFailure) -> Error {
        Error::Provider {
            provider_id: self.id.clone(),
            kind,
            message: format!("mock told to fail: {kind:?}"),
            retry_after: (kind == ProviderFailure::RateLimited).then_some(Duration::from_secs(1)),
        }
    }

    /// Waits the configured `latency_ms`, then fails if told to.
    async fn respond(&self, options: &BTreeMap<String, String>) -> Result<()> {
        if let Some(ms) = option_u64(options, "latency_ms") {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.check_fail(options)
    }

    fn check_fail(&self, options: &BTreeMap<String, String>) -> Result<()> {
        match options.get("fail").map(String::as_str) {
            None | Some("") => Ok(()),
            Some(kind) => Err(self.failure(parse_failure(kind))),
        }
    }
}

fn parse_failure(kind: &str) -> ProviderFailure {
    match kind {
        "rate_limited" => ProviderFailure::RateLimited,
        "bad_response" => ProviderFailure::BadResponse,
        "timeout" => ProviderFailure::Timeout,
        "auth_failed" => ProviderFailure::AuthFailed,
        _ => ProviderFailure::Unavailable,
    }
}

fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The words of the answer, cut at `max_tokens`, and why it ended.
fn answer(call: &TextCall<'_>) -> (Vec<String>, Finish) {
    let full = match call.options.get("reply") {
        Some(reply) => reply.clone(),
        None => {
            let last_user = call
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map_or("", |m| m.content.as_str());
            format!("Echo: {last_user}")
        }
    };
    let words: Vec<String> = full.split_whitespace().map(str::to_string).collect();
    let limit = call.max_tokens as usize;
    if words.len() > limit {
        (words[..limit].to_vec(), Finish::Length)
    } else {
        (words, Finish::Stop)
    }
}

fn input_tokens(messages: &[ChatMessage]) -> u64 {
    messages.iter().map(|m| count_tokens(&m.content)).sum()
}

fn option_u64(options: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    options.get(key).and_then(|v| v.parse().ok())
}

#[async_trait]
impl Provider for MockProvider {
    fn system(&self) -> &'static str {
        "downcity.mock"
    }

    async fn text(&self, call: TextCall<'_>) -> Result<TextOutput> {
        self.respond(call.options).await?;
        let (words, finish) = answer(&call);
        Ok(TextOutput {
            output_tokens: words.len() as u64,
            text: words.join(" "),
            finish,
            input_tokens: input_tokens(call.messages),
        })
    }

    async fn stream_text(&self, call: TextCall<'_>) -> Result<TextStream> {
        self.check_fail(call.options)?;
        let (words, finish) = answer(&call);
        let delay = Duration::from_millis(option_u64(call.options, "chunk_delay_ms").unwrap_or(0));
        let fail_after = option_u64(call.options, "fail_after_chunks").map(|n| n as usize);
        let input_tokens = input_tokens(call.messages);
        let output_tokens = words.len() as u64;
        let failure = self.failure(ProviderFailure::Unavailable);
        let events = futures_util::stream::unfold(
            (words.into_iter().enumerate(), Some(failure), false),
            move |(mut words, mut failure, done)| async move {
                if done {
                    return None;
                }
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let event = match words.next() {
                    Some((i, _)) if fail_after == Some(i) => {
                        return Some((Err(failure.take()?), (words, None, true)));
                    }
                    Some((0, word)) => StreamEvent::Delta(word),
                    Some((_, word)) => StreamEvent::Delta(format!(" {word}")),
                    None => {
                        let end = StreamEvent::Finished {
                            finish,
                            input_tokens,
                            output_tokens,
                        };
                        return Some((Ok(end), (words, None, true)));
                    }
                };
                Some((Ok(event), (words, failure, false)))
            },
        );
        Ok(Box::pin(events))
    }

    async fn image(&self, call: ImageCall<'_>) -> Result<ImageOutput> {
        self.respond(call.options).await?;
        let images = (0..call.count)
            .map(|index| {
                Ok(Image {
                    data: render_png(call.prompt, index).map_err(Error::internal)?,
                    mime_type: "image/png".to_string(),
                })
            })
            .collect::<Result<_>>()?;
        Ok(ImageOutput { images })
    }
}

const IMAGE_SIDE: u32 = 64;

/// A real 64×64 PNG whose colours derive from the prompt and the index, so
/// the same request always yields the same bytes.
fn render_png(prompt: &str, index: u32) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let seed = Sha256::new()
        .chain_update(prompt.as_bytes())
        .chain_update(index.to_le_bytes())
        .finalize();
    let mut pixels = Vec::with_capacity((IMAGE_SIDE * IMAGE_SIDE * 3) as usize);
    for y in 0..IMAGE_SIDE {
        for x in 0..IMAGE_SIDE {
            let band = ((x / 16 + y / 16) % 4) as usize * 3;
            pixels.extend_from_slice(&[seed[band], seed[band + 1], seed[band + 2]]);
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(Cursor::new(&mut out), IMAGE_SIDE, IMAGE_SIDE);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&pixels)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    struct Fixture {
        messages: Vec<ChatMessage>,
        options: BTreeMap<String, String>,
    }

    fn fixture(content: &str, options: &[(&str, &str)]) -> Fixture {
        Fixture {
            messages: vec![ChatMessage {
                role: Role::User,
                content: content.into(),
            }],
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn call(fixture: &Fixture, max_tokens: u32) -> TextCall<'_> {
        TextCall {
            upstream_model: "mock",
            messages: &fixture.messages,
            max_tokens,
            temperature: None,
            top_p: None,
            stop_sequences: &[],
            options: &fixture.options,
        }
    }

    #[tokio::test]
    async fn text_echoes_and_counts() {
        let out = MockProvider::new("m".into())
            .text(call(&fixture("hello there", &[]), 100))
            .await
            .unwrap();
        assert_eq!(out.text, "Echo: hello there");
        assert_eq!((out.input_tokens, out.output_tokens), (2, 3));
        assert_eq!(out.finish, Finish::Stop);
    }

    #[tokio::test]
    async fn max_tokens_cuts_with_length() {
        let out = MockProvider::new("m".into())
            .text(call(&fixture("a b c d", &[]), 2))
            .await
            .unwrap();
        assert_eq!(out.text, "Echo: a");
        assert_eq!(out.finish, Finish::Length);
    }

    #[tokio::test]
    async fn stream_yields_words_then_usage() {
        let events: Vec<_> = MockProvider::new("m".into())
            .stream_text(call(&fixture("x y", &[]), 10))
            .await
            .unwrap()
            .collect()
            .await;
        let events: Vec<_> = events.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Echo:".into()),
                StreamEvent::Delta(" x".into()),
                StreamEvent::Delta(" y".into()),
                StreamEvent::Finished {
                    finish: Finish::Stop,
                    input_tokens: 2,
                    output_tokens: 3
                },
            ]
        );
    }

    #[tokio::test]
    async fn stream_fails_after_chunks() {
        let events: Vec<_> = MockProvider::new("m".into())
            .stream_text(call(&fixture("x y", &[("fail_after_chunks", "1")]), 10))
            .await
            .unwrap()
            .collect()
            .await;
        assert_eq!(events.len(), 2);
        assert!(events[0].is_ok());
        assert_eq!(
            events[1].as_ref().unwrap_err().reason(),
            "PROVIDER_UNAVAILABLE"
        );
    }

    #[test]
    fn png_is_real_and_deterministic() {
        let a = render_png("cat", 0).unwrap();
        assert_eq!(&a[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(a, render_png("cat", 0).unwrap());
        assert_ne!(a, render_png("cat", 1).unwrap());
    }
}

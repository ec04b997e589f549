//! Conversions of `AIService` messages: the validated inputs of a call and
//! the answer's parts.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result, Violations};
use crate::gateway::{Consumption, ImageInput, TextInput};
use crate::proto;
use crate::providers::{ChatMessage, Finish, Role};

const MAX_TOKENS_CAP: i32 = 1_000_000;
const MAX_METADATA_ENTRIES: usize = 16;
const MAX_METADATA_KEY: usize = 64;
const MAX_METADATA_VALUE: usize = 512;
const MAX_STOP_SEQUENCES: usize = 16;
const MAX_IMAGES: i32 = 10;
const MAX_MODEL_ID: usize = 128;

fn role(value: i32) -> Option<Role> {
    match proto::Role::try_from(value).ok()? {
        proto::Role::System => Some(Role::System),
        proto::Role::User => Some(Role::User),
        proto::Role::Assistant => Some(Role::Assistant),
        proto::Role::Unspecified => None,
    }
}

fn check_metadata(v: &mut Violations, metadata: &HashMap<String, String>) {
    v.check_with(metadata.len() <= MAX_METADATA_ENTRIES, "metadata", || {
        format!("at most {MAX_METADATA_ENTRIES} entries")
    });
    v.check_with(
        metadata.iter().all(|(k, val)| {
            !k.is_empty() && k.len() <= MAX_METADATA_KEY && val.len() <= MAX_METADATA_VALUE
        }),
        "metadata",
        || format!("keys 1 to {MAX_METADATA_KEY} bytes, values at most {MAX_METADATA_VALUE} bytes"),
    );
}

/// Validates the fields shared by TextRequest and StreamTextRequest.
fn text_input(
    model: String,
    messages: Vec<proto::Message>,
    max_tokens: Option<i32>,
    config: Option<proto::GenerationConfig>,
    metadata: HashMap<String, String>,
) -> Result<TextInput> {
    let mut v = Violations::default();
    v.check(
        model.len() <= MAX_MODEL_ID,
        "model",
        "at most 128 characters",
    );
    v.check(
        !messages.is_empty(),
        "messages",
        "at least one message is required",
    );
    let mut chat = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        let proto::Message {
            role: wire_role,
            content,
        } = message;
        match role(wire_role) {
            Some(role) => chat.push(ChatMessage { role, content }),
            None => v.check(
                false,
                format!("messages[{i}].role"),
                "must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT",
            ),
        }
    }
    if let Some(max) = max_tokens {
        v.check_with((1..=MAX_TOKENS_CAP).contains(&max), "max_tokens", || {
            format!("must be 1 to {MAX_TOKENS_CAP}")
        });
    }
    let proto::GenerationConfig {
        temperature,
        top_p,
        stop_sequences,
    } = config.unwrap_or_default();
    if let Some(t) = temperature {
        v.check(
            (0.0..=2.0).contains(&t),
            "config.temperature",
            "must be 0 to 2",
        );
    }
    if let Some(p) = top_p {
        v.check(
            p > 0.0 && p <= 1.0,
            "config.top_p",
            "must be above 0 and at most 1",
        );
    }
    v.check_with(
        stop_sequences.len() <= MAX_STOP_SEQUENCES,
        "config.stop_sequences",
        || format!("at most {MAX_STOP_SEQUENCES}"),
    );
    check_metadata(&mut v, &metadata);
    v.finish(TextInput {
        model,
        messages: chat,
        max_tokens: max_tokens.map(|m| m.max(1) as u32),
        temperature,
        top_p,
        stop_sequences,
        metadata: metadata.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

impl TryFrom<proto::TextRequest> for TextInput {
    type Error = Error;

    fn try_from(request: proto::TextRequest) -> Result<Self> {
        let proto::TextRequest {
            model,
            messages,
            max_tokens,
            config,
            metadata,
        } = request;
        text_input(model, messages, max_tokens, config, metadata)
    }
}

impl TryFrom<proto::StreamTextRequest> for TextInput {
    type Error = Error;

    fn try_from(request: proto::StreamTextRequest) -> Result<Self> {
        let proto::StreamTextRequest {
            model,
            messages,
            max_tokens,
            config,
            metadata,
        } = request;
        text_input(model, messages, max_tokens, config, metadata)
    }
}

impl TryFrom<proto::ImageRequest> for ImageInput {
    type Error = Error;

    fn try_from(request: proto::ImageRequest) -> Result<Self> {
        let proto::ImageRequest {
            model,
            prompt,
            count,
            metadata,
        } = request;
        let mut v = Violations::default();
        v.check(
            model.len() <= MAX_MODEL_ID,
            "model",
            "at most 128 characters",
        );
        v.check(!prompt.trim().is_empty(), "prompt", "must not be empty");
        let count = count.unwrap_or(1);
        v.check_with((1..=MAX_IMAGES).contains(&count), "count", || {
            format!("must be 1 to {MAX_IMAGES}")
        });
        check_metadata(&mut v, &metadata);
        v.finish(ImageInput {
            model,
            prompt,
            count: count.max(1) as u32,
            metadata: metadata.into_iter().collect(),
        })
    }
}

pub(crate) fn finish_reason(finish: Finish) -> proto::FinishReason {
    match finish {
        Finish::Stop => proto::FinishReason::Stop,
        Finish::Length => proto::FinishReason::Length,
        Finish::ContentFilter => proto::FinishReason::ContentFilter,
    }
}

impl From<Consumption> for proto::Usage {
    fn from(used: Consumption) -> Self {
        let Consumption {
            input_tokens,
            output_tokens,
            images,
            cost_micros,
        } = used;
        proto::Usage {
            input_tokens: input_tokens as i64,
            output_tokens: output_tokens as i64,
            images: images as i64,
            cost_micros,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_input_names_every_bad_field() {
        let err = text_input(String::new(), vec![], Some(0), None, HashMap::new()).unwrap_err();
        let Error::InvalidArgument(violations) = err else {
            panic!()
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["messages", "max_tokens"]);
    }
}

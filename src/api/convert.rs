//! Conversions between wire messages and domain types, with validation:
//! every invalid field becomes a `BadRequest` field violation.

use std::collections::{BTreeMap, HashMap};

use crate::domain::{Millis, Pathway};
use crate::error::{Error, Result, Violations};
use crate::gateway::{Consumption, ImageInput, TextInput};
use crate::proto;
use crate::providers::{ChatMessage, Finish, Role};

const MAX_MESSAGES: usize = 1024;
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
    v.check(
        metadata.len() <= MAX_METADATA_ENTRIES,
        "metadata",
        format!("at most {MAX_METADATA_ENTRIES} entries"),
    );
    v.check(
        metadata.iter().all(|(k, val)| {
            !k.is_empty() && k.len() <= MAX_METADATA_KEY && val.len() <= MAX_METADATA_VALUE
        }),
        "metadata",
        format!("keys 1 to {MAX_METADATA_KEY} bytes, values at most {MAX_METADATA_VALUE} bytes"),
    );
}

/// Validates the fields shared by TextRequest and StreamTextRequest.
pub(crate) fn text_input(
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
    v.check(
        messages.len() <= MAX_MESSAGES,
        "messages",
        format!("at most {MAX_MESSAGES} messages"),
    );
    let mut chat = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        match role(message.role) {
            Some(role) => chat.push(ChatMessage {
                role,
                content: message.content,
            }),
            None => v.check(
                false,
                format!("messages[{i}].role"),
                "must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT",
            ),
        }
    }
    if let Some(max) = max_tokens {
        v.check(
            (1..=MAX_TOKENS_CAP).contains(&max),
            "max_tokens",
            format!("must be 1 to {MAX_TOKENS_CAP}"),
        );
    }
    let config = config.unwrap_or_default();
    if let Some(t) = config.temperature {
        v.check(
            (0.0..=2.0).contains(&t),
            "config.temperature",
            "must be 0 to 2",
        );
    }
    if let Some(p) = config.top_p {
        v.check(
            p > 0.0 && p <= 1.0,
            "config.top_p",
            "must be above 0 and at most 1",
        );
    }
    v.check(
        config.stop_sequences.len() <= MAX_STOP_SEQUENCES,
        "config.stop_sequences",
        format!("at most {MAX_STOP_SEQUENCES}"),
    );
    check_metadata(&mut v, &metadata);
    v.finish(TextInput {
        model,
        messages: chat,
        max_tokens: max_tokens.map(|m| m.max(1) as u32),
        temperature: config.temperature,
        top_p: config.top_p,
        stop_sequences: config.stop_sequences,
        metadata: metadata.into_iter().collect::<BTreeMap<_, _>>(),
    })
}

pub(crate) fn image_input(r: proto::ImageRequest) -> Result<ImageInput> {
    let mut v = Violations::default();
    v.check(
        r.model.len() <= MAX_MODEL_ID,
        "model",
        "at most 128 characters",
    );
    v.check(!r.prompt.trim().is_empty(), "prompt", "must not be empty");
    let count = r.count.unwrap_or(1);
    v.check(
        (1..=MAX_IMAGES).contains(&count),
        "count",
        format!("must be 1 to {MAX_IMAGES}"),
    );
    check_metadata(&mut v, &r.metadata);
    v.finish(ImageInput {
        model: r.model,
        prompt: r.prompt,
        count: count.max(1) as u32,
        metadata: r.metadata.into_iter().collect(),
    })
}

pub(crate) fn finish_reason(finish: Finish) -> proto::FinishReason {
    match finish {
        Finish::Stop => proto::FinishReason::Stop,
        Finish::Length => proto::FinishReason::Length,
        Finish::ContentFilter => proto::FinishReason::ContentFilter,
    }
}

pub(crate) fn usage(used: Consumption) -> proto::Usage {
    proto::Usage {
        input_tokens: used.input_tokens as i64,
        output_tokens: used.output_tokens as i64,
        images: used.images as i64,
        cost_micros: used.cost_micros,
    }
}

pub(crate) fn pathway_to_proto(pathway: Pathway) -> proto::Pathway {
    match pathway {
        Pathway::Text => proto::Pathway::Text,
        Pathway::Image => proto::Pathway::Image,
    }
}

/// A pathway that must be set.
pub(crate) fn pathway_from_proto(field: &str, value: i32) -> Result<Pathway> {
    match pathway_filter(value) {
        Ok(Some(pathway)) => Ok(pathway),
        _ => Err(Error::invalid(
            field,
            "must be PATHWAY_TEXT or PATHWAY_IMAGE",
        )),
    }
}

/// A pathway filter: unspecified means all.
pub(crate) fn pathway_filter(value: i32) -> Result<Option<Pathway>> {
    match proto::Pathway::try_from(value) {
        Ok(proto::Pathway::Unspecified) => Ok(None),
        Ok(proto::Pathway::Text) => Ok(Some(Pathway::Text)),
        Ok(proto::Pathway::Image) => Ok(Some(Pathway::Image)),
        Err(_) => Err(Error::invalid("pathway", "unknown pathway")),
    }
}

pub(crate) fn timestamp(ms: Millis) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub(crate) fn millis(ts: &pbjson_types::Timestamp) -> Millis {
    ts.seconds.saturating_mul(1000) + i64::from(ts.nanos) / 1_000_000
}

pub(crate) fn duration_us(us: i64) -> pbjson_types::Duration {
    pbjson_types::Duration {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// AIP-158 page size: 0 means the default; at most 1000.
pub(crate) fn page_size(requested: i32) -> Result<u32> {
    match requested {
        0 => Ok(100),
        1..=1000 => Ok(requested as u32),
        _ => Err(Error::invalid("page_size", "must be 0 to 1000")),
    }
}

/// Page tokens are opaque to clients: the last key of the previous page,
/// base64url-encoded with a tag so a token of one list fails on another.
pub(crate) fn encode_page_token(list: &str, last_key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{list}\n{last_key}"))
}

pub(crate) fn decode_page_token(list: &str, token: &str) -> Result<Option<String>> {
    use base64::Engine;
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || Error::invalid("page_token", "not a page token of this list");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (tag, key) = text.split_once('\n').ok_or_else(invalid)?;
    if tag != list {
        return Err(invalid());
    }
    Ok(Some(key.to_string()))
}

/// The next page token: set only when the page came back full.
pub(crate) fn next_page_token<T>(
    list: &str,
    page: &[T],
    limit: u32,
    key: impl Fn(&T) -> String,
) -> String {
    match page.last() {
        Some(last) if page.len() as u32 >= limit => encode_page_token(list, &key(last)),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_list_bound() {
        let token = encode_page_token("studios", "abc");
        assert_eq!(
            decode_page_token("studios", &token).unwrap().as_deref(),
            Some("abc")
        );
        assert!(decode_page_token("keys", &token).is_err());
        assert!(decode_page_token("studios", "!!").is_err());
        assert_eq!(decode_page_token("studios", "").unwrap(), None);
    }

    #[test]
    fn timestamps_round_trip() {
        for ms in [0, 1, 999, 1_700_000_000_123, -1] {
            assert_eq!(millis(&timestamp(ms)), ms);
        }
    }

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

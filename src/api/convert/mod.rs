//! Conversions between wire messages and domain types, one file per area.
//!
//! Each is a `TryFrom` / `From` impl (or a function where the conversion
//! needs more than the value) that destructures the message or record
//! whole, naming every field: a field added to a .proto or a record fails to
//! compile until it is handled here. Invalid input becomes `BadRequest`
//! field violations.

mod ai;
mod catalog;
mod hooks;
mod limits;
mod studios;
mod usage;

use std::str::FromStr;

pub(crate) use ai::finish_reason;
pub(crate) use catalog::{api_key_change, model_to_proto};
pub(crate) use hooks::delivery_state_filter;
pub(crate) use limits::limit_target;
pub(crate) use studios::{studio_status_update, ttl};
pub(crate) use usage::{group_by, usage_filter};

use crate::domain::{Millis, Pathway};
use crate::error::{Error, Result};
use crate::proto;

/// A message field the request must set.
pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| Error::invalid(field, "required"))
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

/// A page token whose key is a number: a usage sequence number or an offset.
pub(crate) fn decode_number_token<T: FromStr>(list: &str, token: &str) -> Result<Option<T>> {
    decode_page_token(list, token)?
        .map(|key| {
            key.parse()
                .map_err(|_| Error::invalid("page_token", "not a page token of this list"))
        })
        .transpose()
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
pub(super) mod tests {
    use super::*;

    /// The fields a conversion's INVALID_ARGUMENT names.
    pub(crate) fn fields(err: Error) -> Vec<String> {
        let Error::InvalidArgument(violations) = err else {
            panic!("not INVALID_ARGUMENT: {err}")
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    pub(crate) fn duration(seconds: i64, nanos: i32) -> Option<pbjson_types::Duration> {
        Some(pbjson_types::Duration { seconds, nanos })
    }

    pub(crate) fn ts(seconds: i64) -> Option<pbjson_types::Timestamp> {
        Some(pbjson_types::Timestamp { seconds, nanos: 0 })
    }

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
    fn number_tokens_reject_other_lists_and_non_numbers() {
        let token = encode_page_token("usage", "42");
        assert_eq!(
            decode_number_token::<i64>("usage", &token).unwrap(),
            Some(42)
        );
        assert_eq!(decode_number_token::<i64>("usage", "").unwrap(), None);
        assert!(decode_number_token::<u64>("aggregate", &token).is_err());
        let junk = encode_page_token("aggregate", "-1");
        assert_eq!(
            fields(decode_number_token::<u64>("aggregate", &junk).unwrap_err()),
            ["page_token"]
        );
    }
}

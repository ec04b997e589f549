//! Studios, studio keys and user tokens: records to messages, and the
//! validated parts of their requests.

use std::time::Duration;

use super::timestamp;
use crate::domain::{StudioKeyRecord, StudioRecord, StudioStatus, UserTokenRecord};
use crate::error::{Error, Result};
use crate::proto;

/// The longest user-token ttl: the range of `google.protobuf.Duration` (10 000 years).
const MAX_TTL_SECONDS: i64 = 315_576_000_000;

impl From<StudioStatus> for proto::StudioStatus {
    fn from(status: StudioStatus) -> Self {
        match status {
            StudioStatus::Active => proto::StudioStatus::Active,
            StudioStatus::Suspended => proto::StudioStatus::Suspended,
        }
    }
}

/// A studio as shown; its allow-list is the quota service's, added by the caller.
impl From<StudioRecord> for proto::Studio {
    fn from(studio: StudioRecord) -> Self {
        let StudioRecord {
            id,
            display_name,
            status,
            create_ms,
            update_ms,
            allowed_origins,
        } = studio;
        proto::Studio {
            id,
            display_name,
            status: proto::StudioStatus::from(status) as i32,
            create_time: Some(timestamp(create_ms)),
            update_time: Some(timestamp(update_ms)),
            allowed_model_ids: Vec::new(),
            allowed_origins,
        }
    }
}

/// The status of an UpdateStudio: unspecified leaves it unchanged.
pub(crate) fn studio_status_update(value: i32) -> Result<Option<StudioStatus>> {
    match proto::StudioStatus::try_from(value) {
        Ok(proto::StudioStatus::Unspecified) => Ok(None),
        Ok(proto::StudioStatus::Active) => Ok(Some(StudioStatus::Active)),
        Ok(proto::StudioStatus::Suspended) => Ok(Some(StudioStatus::Suspended)),
        Err(_) => Err(Error::invalid("status", "unknown studio status")),
    }
}

/// A studio key as shown: never its secret (only a hash is kept anyway).
impl From<StudioKeyRecord> for proto::StudioKey {
    fn from(key: StudioKeyRecord) -> Self {
        let StudioKeyRecord {
            id,
            studio_id,
            display_name,
            secret_hash: _,
            create_ms,
            revoke_ms,
        } = key;
        proto::StudioKey {
            id,
            studio_id,
            display_name,
            create_time: Some(timestamp(create_ms)),
            revoke_time: revoke_ms.map(timestamp),
        }
    }
}

/// A user token as shown: never its secret.
impl From<UserTokenRecord> for proto::UserToken {
    fn from(token: UserTokenRecord) -> Self {
        let UserTokenRecord {
            id,
            studio_id,
            user_id,
            secret_hash: _,
            create_ms,
            expire_ms,
            revoke_ms,
        } = token;
        proto::UserToken {
            id,
            studio_id,
            user_id,
            create_time: Some(timestamp(create_ms)),
            expire_time: expire_ms.map(timestamp),
            revoke_time: revoke_ms.map(timestamp),
        }
    }
}

/// A user token's ttl: unset never expires; otherwise positive and within
/// the range of a protobuf Duration.
pub(crate) fn ttl(value: Option<pbjson_types::Duration>) -> Result<Option<Duration>> {
    let Some(ttl) = value else { return Ok(None) };
    let valid = (0..=MAX_TTL_SECONDS).contains(&ttl.seconds)
        && (0..1_000_000_000).contains(&ttl.nanos)
        && (ttl.seconds, ttl.nanos) != (0, 0);
    if !valid {
        return Err(Error::invalid(
            "ttl",
            "must be positive and at most 10000 years",
        ));
    }
    Ok(Some(Duration::new(ttl.seconds as u64, ttl.nanos as u32)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{duration, fields};
    use super::*;

    #[test]
    fn ttl_is_unset_or_positive() {
        assert_eq!(ttl(None).unwrap(), None);
        assert_eq!(
            ttl(duration(3600, 0)).unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            ttl(duration(0, 5_000_000)).unwrap(),
            Some(Duration::from_millis(5))
        );
        for (seconds, nanos) in [
            (0, 0),
            (-1, 0),
            (0, -1),
            (1, 1_000_000_000),
            (MAX_TTL_SECONDS + 1, 0),
        ] {
            assert_eq!(
                fields(ttl(duration(seconds, nanos)).unwrap_err()),
                ["ttl"],
                "{seconds}s {nanos}ns"
            );
        }
    }

    #[test]
    fn studio_status_update_maps_every_value() {
        assert_eq!(studio_status_update(0).unwrap(), None);
        assert_eq!(studio_status_update(1).unwrap(), Some(StudioStatus::Active));
        assert_eq!(
            studio_status_update(2).unwrap(),
            Some(StudioStatus::Suspended)
        );
        assert_eq!(fields(studio_status_update(9).unwrap_err()), ["status"]);
        let studio = StudioRecord {
            id: "s".into(),
            display_name: String::new(),
            status: StudioStatus::Suspended,
            create_ms: 1,
            update_ms: 2,
            allowed_origins: vec!["https://a.example".into()],
        };
        assert_eq!(
            proto::Studio::from(studio.clone()).allowed_origins,
            ["https://a.example"]
        );
        assert_eq!(
            proto::Studio::from(studio).status,
            proto::StudioStatus::Suspended as i32
        );
    }
}

//! Limits: their values both ways, the target of a request, and a limit's
//! standing as shown.

use super::timestamp;
use crate::domain::{LimitTarget, LimitValues};
use crate::error::{Error, Result};
use crate::proto;
use crate::quota::Standing;

impl From<LimitValues> for proto::Limits {
    fn from(values: LimitValues) -> Self {
        let LimitValues {
            requests_per_minute,
            tokens_per_minute,
            tokens_per_day,
            cost_micros_per_day,
            cost_micros_per_month,
        } = values;
        proto::Limits {
            requests_per_minute,
            tokens_per_minute,
            tokens_per_day,
            cost_micros_per_day,
            cost_micros_per_month,
        }
    }
}

impl From<proto::Limits> for LimitValues {
    fn from(limits: proto::Limits) -> Self {
        let proto::Limits {
            requests_per_minute,
            tokens_per_minute,
            tokens_per_day,
            cost_micros_per_day,
            cost_micros_per_month,
        } = limits;
        LimitValues {
            requests_per_minute,
            tokens_per_minute,
            tokens_per_day,
            cost_micros_per_day,
            cost_micros_per_month,
        }
    }
}

/// The target of a SetLimits / GetLimits.
pub(crate) fn limit_target(target: i32, user_id: String) -> Result<LimitTarget> {
    match proto::LimitTarget::try_from(target) {
        Ok(proto::LimitTarget::Studio) => Ok(LimitTarget::Studio),
        Ok(proto::LimitTarget::UserDefault) => Ok(LimitTarget::UserDefault),
        Ok(proto::LimitTarget::User) if !user_id.is_empty() => Ok(LimitTarget::User(user_id)),
        Ok(proto::LimitTarget::User) => {
            Err(Error::invalid("user_id", "required for LIMIT_TARGET_USER"))
        }
        Ok(proto::LimitTarget::Unspecified) | Err(_) => Err(Error::invalid(
            "target",
            "must be LIMIT_TARGET_STUDIO, LIMIT_TARGET_USER_DEFAULT or LIMIT_TARGET_USER",
        )),
    }
}

impl From<Standing> for proto::LimitStanding {
    fn from(standing: Standing) -> Self {
        let Standing {
            scope,
            kind,
            value,
            used,
            reserved,
            reset_ms,
        } = standing;
        proto::LimitStanding {
            scope: scope.to_string(),
            limit: kind.name().to_string(),
            value,
            window: kind.window().as_str().to_string(),
            used,
            reserved,
            remaining: (value - used - reserved).max(0),
            reset_time: Some(timestamp(reset_ms)),
        }
    }
}

//! Quota limits of studios and users.

use super::Millis;
use crate::error::{Result, Violations};

/// Caps on usage; `None` means no limit. Windows are UTC.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitValues {
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub tokens_per_day: Option<i64>,
    pub cost_micros_per_day: Option<i64>,
    pub cost_micros_per_month: Option<i64>,
}

/// What a set of limits applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitTarget {
    /// The studio as a whole, as the operator caps it: a ceiling the
    /// studio's own key can neither raise nor remove.
    Studio,
    /// The studio as a whole, as its own key tightens it: the studio-wide
    /// limit that binds is the lower of this and `Studio`.
    StudioOwn,
    /// Each user of the studio without limits of their own.
    UserDefault,
    /// One user.
    User(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsRecord {
    pub studio_id: String,
    pub target: LimitTarget,
    pub values: LimitValues,
    pub update_ms: Millis,
}

impl LimitsRecord {
    /// The rules every set of limits keeps, whichever door it came through.
    pub fn validate(&self) -> Result<()> {
        let mut v = Violations::default();
        if let LimitTarget::User(user) = &self.target {
            v.check(!user.trim().is_empty(), "user_id", "must not be empty");
        }
        let LimitValues {
            requests_per_minute,
            tokens_per_minute,
            tokens_per_day,
            cost_micros_per_day,
            cost_micros_per_month,
        } = self.values;
        for (field, value) in [
            ("limits.requests_per_minute", requests_per_minute),
            ("limits.tokens_per_minute", tokens_per_minute),
            ("limits.tokens_per_day", tokens_per_day),
            ("limits.cost_micros_per_day", cost_micros_per_day),
            ("limits.cost_micros_per_month", cost_micros_per_month),
        ] {
            v.check(value.is_none_or(|n| n >= 0), field, "must not be negative");
        }
        v.finish(())
    }
}

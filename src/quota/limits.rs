//! The five limits, what each counts and in which window, and the amounts a
//! call reserves and uses.

use super::window::Window;
use crate::domain::LimitValues;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Requests,
    Tokens,
    Cost,
}

/// One of the limits a studio or a user may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    TokensPerDay,
    CostPerDay,
    CostPerMonth,
}

impl LimitKind {
    pub const ALL: [LimitKind; 5] = [
        LimitKind::RequestsPerMinute,
        LimitKind::TokensPerMinute,
        LimitKind::TokensPerDay,
        LimitKind::CostPerDay,
        LimitKind::CostPerMonth,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LimitKind::RequestsPerMinute => "requests_per_minute",
            LimitKind::TokensPerMinute => "tokens_per_minute",
            LimitKind::TokensPerDay => "tokens_per_day",
            LimitKind::CostPerDay => "cost_micros_per_day",
            LimitKind::CostPerMonth => "cost_micros_per_month",
        }
    }

    pub fn window(self) -> Window {
        match self {
            LimitKind::RequestsPerMinute | LimitKind::TokensPerMinute => Window::Minute,
            LimitKind::TokensPerDay | LimitKind::CostPerDay => Window::Day,
            LimitKind::CostPerMonth => Window::Month,
        }
    }

    pub fn metric(self) -> Metric {
        match self {
            LimitKind::RequestsPerMinute => Metric::Requests,
            LimitKind::TokensPerMinute | LimitKind::TokensPerDay => Metric::Tokens,
            LimitKind::CostPerDay | LimitKind::CostPerMonth => Metric::Cost,
        }
    }

    /// This limit's value in a set of limits, if set.
    pub fn of(self, limits: &LimitValues) -> Option<i64> {
        match self {
            LimitKind::RequestsPerMinute => limits.requests_per_minute,
            LimitKind::TokensPerMinute => limits.tokens_per_minute,
            LimitKind::TokensPerDay => limits.tokens_per_day,
            LimitKind::CostPerDay => limits.cost_micros_per_day,
            LimitKind::CostPerMonth => limits.cost_micros_per_month,
        }
    }
}

/// Per limit, the lower of two sets; an unset limit binds nothing.
pub fn tighter(a: &LimitValues, b: &LimitValues) -> LimitValues {
    let lower = |x: Option<i64>, y: Option<i64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) | (None, x) => x,
    };
    let LimitValues {
        requests_per_minute,
        tokens_per_minute,
        tokens_per_day,
        cost_micros_per_day,
        cost_micros_per_month,
    } = *a;
    LimitValues {
        requests_per_minute: lower(requests_per_minute, b.requests_per_minute),
        tokens_per_minute: lower(tokens_per_minute, b.tokens_per_minute),
        tokens_per_day: lower(tokens_per_day, b.tokens_per_day),
        cost_micros_per_day: lower(cost_micros_per_day, b.cost_micros_per_day),
        cost_micros_per_month: lower(cost_micros_per_month, b.cost_micros_per_month),
    }
}

/// The first limit of `own` above the same limit of `ceiling`, with both
/// values. A limit `own` leaves unset falls back to the ceiling: never above.
pub fn above_ceiling(own: &LimitValues, ceiling: &LimitValues) -> Option<(LimitKind, i64, i64)> {
    LimitKind::ALL.into_iter().find_map(|kind| {
        let (value, ceiling) = (kind.of(own)?, kind.of(ceiling)?);
        (value > ceiling).then_some((kind, value, ceiling))
    })
}

/// What a call reserves or uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    pub requests: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

impl Amount {
    pub fn get(&self, metric: Metric) -> i64 {
        match metric {
            Metric::Requests => self.requests,
            Metric::Tokens => self.tokens,
            Metric::Cost => self.cost_micros,
        }
    }

    pub fn plus(self, other: Amount) -> Amount {
        Amount {
            requests: self.requests.saturating_add(other.requests),
            tokens: self.tokens.saturating_add(other.tokens),
            cost_micros: self.cost_micros.saturating_add(other.cost_micros),
        }
    }

    /// `self - other`, never below zero.
    pub fn minus(self, other: Amount) -> Amount {
        Amount {
            requests: (self.requests - other.requests).max(0),
            tokens: (self.tokens - other.tokens).max(0),
            cost_micros: (self.cost_micros - other.cost_micros).max(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(rpm: Option<i64>, tpd: Option<i64>) -> LimitValues {
        LimitValues {
            requests_per_minute: rpm,
            tokens_per_day: tpd,
            ..Default::default()
        }
    }

    #[test]
    fn the_tighter_of_two_takes_the_lower_value_of_each_limit() {
        let ceiling = values(Some(10), None);
        assert_eq!(
            tighter(&ceiling, &values(Some(3), None)),
            values(Some(3), None)
        );
        assert_eq!(
            tighter(&ceiling, &values(Some(30), Some(7))),
            values(Some(10), Some(7))
        );
        assert_eq!(tighter(&ceiling, &LimitValues::default()), ceiling);
    }

    #[test]
    fn only_a_value_above_the_ceiling_is_above_it() {
        let ceiling = values(Some(10), None);
        assert_eq!(above_ceiling(&values(Some(10), Some(99)), &ceiling), None);
        assert_eq!(above_ceiling(&LimitValues::default(), &ceiling), None);
        assert_eq!(
            above_ceiling(&values(Some(11), None), &ceiling),
            Some((LimitKind::RequestsPerMinute, 11, 10))
        );
    }
}

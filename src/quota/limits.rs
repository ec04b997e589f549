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

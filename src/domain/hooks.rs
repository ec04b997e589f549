//! Business hooks and their after_call deliveries.

use super::Millis;
use crate::error::{Result, Violations};

/// A hook's timeout when none is set, and the longest one allowed.
pub const DEFAULT_HOOK_TIMEOUT_MS: i64 = 2_000;
pub const MAX_HOOK_TIMEOUT_MS: i64 = 60_000;

/// When a hook is called; ordered as in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookEvent {
    BeforeCall,
    AfterCall,
}

super::spelled_enum!(HookEvent {
    BeforeCall => "before_call",
    AfterCall => "after_call",
});

/// A studio's webhook (City-wide when `studio_id` is empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRecord {
    pub id: String,
    pub studio_id: String,
    pub url: String,
    pub events: Vec<HookEvent>,
    pub timeout_ms: i64,
    /// A failed before_call fails the call (else it proceeds).
    pub fail_closed: bool,
    pub include_prompt: bool,
    /// The `whsec_...` signing secret, sealed under the master key.
    pub secret: Vec<u8>,
    pub create_ms: Millis,
    pub update_ms: Millis,
}

/// Where an after_call delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
}

super::spelled_enum!(DeliveryState {
    Pending => "pending",
    Delivered => "delivered",
    Dead => "dead",
});

/// One after_call delivery in the outbox; `id` is its stable `webhook-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: String,
    pub hook_id: String,
    pub studio_id: String,
    pub request_id: String,
    /// The JSON body sent.
    pub payload: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub last_error: String,
    pub next_attempt_ms: Millis,
    pub create_ms: Millis,
    pub deliver_ms: Option<Millis>,
    /// The W3C `traceparent` of the call it reports (never a secret), sent
    /// on every attempt so the studio's trace continues into its receiver.
    pub traceparent: Option<String>,
}

/// Which deliveries a listing covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub studio_id: String,
    pub hook_id: Option<String>,
    pub state: Option<DeliveryState>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered {
        at: Millis,
    },
    /// Failed; retried at `next_attempt_ms`, or dead when `None`.
    Failed {
        error: String,
        next_attempt_ms: Option<Millis>,
    },
}

impl HookRecord {
    /// The rules every hook keeps, whichever door it came through.
    pub fn validate(&self) -> Result<()> {
        let mut v = Violations::default();
        let url = url::Url::parse(&self.url);
        v.check(
            url.as_ref()
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()),
            "hook.url",
            "must be an http(s) URL",
        );
        v.check(!self.events.is_empty(), "hook.events", "at least one event");
        v.check(
            (1..=MAX_HOOK_TIMEOUT_MS).contains(&self.timeout_ms),
            "hook.timeout",
            format!("from 1 ms to {} s", MAX_HOOK_TIMEOUT_MS / 1000),
        );
        v.finish(())
    }
}

/// What a failing before_call hook does to its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// The call proceeds.
    #[default]
    FailOpen,
    /// The call fails with HOOK_UNAVAILABLE.
    FailClosed,
}

super::spelled_enum!(FailurePolicy {
    FailOpen => "fail_open",
    FailClosed => "fail_closed",
});

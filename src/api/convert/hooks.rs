//! Hooks and their deliveries: the validated record of an UpsertHook, and
//! records as shown (never a secret, never a payload).

use super::timestamp;
use crate::domain::{
    DEFAULT_HOOK_TIMEOUT_MS, DeliveryRecord, DeliveryState, HookEvent, HookRecord,
};
use crate::error::{Error, Result, Violations};
use crate::proto;

fn hook_events(v: &mut Violations, wire: &[i32]) -> Vec<HookEvent> {
    let mut events = Vec::new();
    for (i, event) in wire.iter().enumerate() {
        match proto::HookEvent::try_from(*event) {
            Ok(proto::HookEvent::BeforeCall) => events.push(HookEvent::BeforeCall),
            Ok(proto::HookEvent::AfterCall) => events.push(HookEvent::AfterCall),
            _ => v.check(false, format!("hook.events[{i}]"), "unknown hook event"),
        }
    }
    events
}

/// A hook from an UpsertHook request; the secret and times are the store's.
impl TryFrom<proto::Hook> for HookRecord {
    type Error = Error;

    fn try_from(hook: proto::Hook) -> Result<Self> {
        let proto::Hook {
            id,
            studio_id,
            url,
            events,
            timeout,
            failure_policy,
            include_prompt,
            create_time: _,
            update_time: _,
        } = hook;
        let mut v = Violations::default();
        let events = hook_events(&mut v, &events);
        let timeout_ms = match timeout {
            None => DEFAULT_HOOK_TIMEOUT_MS,
            // A negative part makes the whole negative, which the record refuses.
            Some(d) if d.nanos < 0 => -1,
            Some(d) => d.seconds.saturating_mul(1000) + i64::from(d.nanos / 1_000_000),
        };
        let fail_closed = match proto::HookFailurePolicy::try_from(failure_policy) {
            Ok(proto::HookFailurePolicy::FailClosed) => true,
            Ok(_) => false,
            Err(_) => {
                v.check(false, "hook.failure_policy", "unknown failure policy");
                false
            }
        };
        let record = HookRecord {
            id,
            studio_id,
            url,
            events,
            timeout_ms,
            fail_closed,
            include_prompt,
            secret: Vec::new(),
            create_ms: 0,
            update_ms: 0,
        };
        // The record's own rules, so one answer names every invalid field.
        v.absorb(record.validate());
        v.finish(record)
    }
}

impl From<HookRecord> for proto::Hook {
    fn from(hook: HookRecord) -> Self {
        let HookRecord {
            id,
            studio_id,
            url,
            events,
            timeout_ms,
            fail_closed,
            include_prompt,
            secret: _,
            create_ms,
            update_ms,
        } = hook;
        let events = events
            .iter()
            .map(|e| match e {
                HookEvent::BeforeCall => proto::HookEvent::BeforeCall as i32,
                HookEvent::AfterCall => proto::HookEvent::AfterCall as i32,
            })
            .collect();
        let policy = if fail_closed {
            proto::HookFailurePolicy::FailClosed
        } else {
            proto::HookFailurePolicy::FailOpen
        };
        proto::Hook {
            id,
            studio_id,
            url,
            events,
            timeout: Some(pbjson_types::Duration {
                seconds: timeout_ms / 1000,
                nanos: ((timeout_ms % 1000) * 1_000_000) as i32,
            }),
            failure_policy: policy as i32,
            include_prompt,
            create_time: Some(timestamp(create_ms)),
            update_time: Some(timestamp(update_ms)),
        }
    }
}

/// A state filter: unspecified matches every state.
pub(crate) fn delivery_state_filter(value: i32) -> Result<Option<DeliveryState>> {
    match proto::HookDeliveryState::try_from(value) {
        Ok(proto::HookDeliveryState::Unspecified) => Ok(None),
        Ok(proto::HookDeliveryState::Pending) => Ok(Some(DeliveryState::Pending)),
        Ok(proto::HookDeliveryState::Delivered) => Ok(Some(DeliveryState::Delivered)),
        Ok(proto::HookDeliveryState::Dead) => Ok(Some(DeliveryState::Dead)),
        Err(_) => Err(Error::invalid("state", "unknown delivery state")),
    }
}

/// A delivery as shown: its payload (which may hold a prompt) stays inside.
impl From<DeliveryRecord> for proto::HookDelivery {
    fn from(delivery: DeliveryRecord) -> Self {
        let DeliveryRecord {
            id,
            hook_id,
            studio_id,
            request_id,
            payload: _,
            state,
            attempts,
            last_error,
            next_attempt_ms,
            create_ms,
            deliver_ms,
            traceparent: _,
        } = delivery;
        let wire_state = match state {
            DeliveryState::Pending => proto::HookDeliveryState::Pending,
            DeliveryState::Delivered => proto::HookDeliveryState::Delivered,
            DeliveryState::Dead => proto::HookDeliveryState::Dead,
        };
        proto::HookDelivery {
            next_attempt_time: (state == DeliveryState::Pending)
                .then(|| timestamp(next_attempt_ms)),
            id,
            hook_id,
            studio_id,
            request_id,
            state: wire_state as i32,
            attempts,
            last_error,
            create_time: Some(timestamp(create_ms)),
            deliver_time: deliver_ms.map(timestamp),
        }
    }
}

//! Conversions between the hook messages of `AdminService` and hook records.

use super::convert::timestamp;
use crate::domain::{
    DEFAULT_HOOK_TIMEOUT_MS, DeliveryRecord, DeliveryState, HookEvent, HookRecord,
};
use crate::error::{Result, Violations};
use crate::proto;

/// A hook from an UpsertHook request; the secret and times are the store's.
pub(crate) fn hook_from_proto(hook: proto::Hook) -> Result<HookRecord> {
    let mut v = Violations::default();
    let mut events = Vec::new();
    for (i, event) in hook.events.iter().enumerate() {
        match proto::HookEvent::try_from(*event) {
            Ok(proto::HookEvent::BeforeCall) => events.push(HookEvent::BeforeCall),
            Ok(proto::HookEvent::AfterCall) => events.push(HookEvent::AfterCall),
            _ => v.check(false, format!("hook.events[{i}]"), "unknown hook event"),
        }
    }
    let timeout_ms = match hook.timeout {
        None => DEFAULT_HOOK_TIMEOUT_MS,
        // A negative part makes the whole negative, which the record refuses.
        Some(d) if d.nanos < 0 => -1,
        Some(d) => d.seconds.saturating_mul(1000) + i64::from(d.nanos / 1_000_000),
    };
    let fail_closed = match proto::HookFailurePolicy::try_from(hook.failure_policy) {
        Ok(proto::HookFailurePolicy::FailClosed) => true,
        Ok(_) => false,
        Err(_) => {
            v.check(false, "hook.failure_policy", "unknown failure policy");
            false
        }
    };
    let record = HookRecord {
        id: hook.id,
        studio_id: hook.studio_id,
        url: hook.url,
        events,
        timeout_ms,
        fail_closed,
        include_prompt: hook.include_prompt,
        secret: Vec::new(),
        create_ms: 0,
        update_ms: 0,
    };
    // The record's own rules, so one answer names every invalid field.
    v.absorb(record.validate());
    v.finish(record)
}

pub(crate) fn hook_to_proto(hook: HookRecord) -> proto::Hook {
    let events = hook
        .events
        .iter()
        .map(|e| match e {
            HookEvent::BeforeCall => proto::HookEvent::BeforeCall as i32,
            HookEvent::AfterCall => proto::HookEvent::AfterCall as i32,
        })
        .collect();
    let policy = if hook.fail_closed {
        proto::HookFailurePolicy::FailClosed
    } else {
        proto::HookFailurePolicy::FailOpen
    };
    proto::Hook {
        id: hook.id,
        studio_id: hook.studio_id,
        url: hook.url,
        events,
        timeout: Some(pbjson_types::Duration {
            seconds: hook.timeout_ms / 1000,
            nanos: ((hook.timeout_ms % 1000) * 1_000_000) as i32,
        }),
        failure_policy: policy as i32,
        include_prompt: hook.include_prompt,
        create_time: Some(timestamp(hook.create_ms)),
        update_time: Some(timestamp(hook.update_ms)),
    }
}

/// A state filter: unspecified matches every state.
pub(crate) fn delivery_state_filter(value: i32) -> Result<Option<DeliveryState>> {
    match proto::HookDeliveryState::try_from(value) {
        Ok(proto::HookDeliveryState::Unspecified) => Ok(None),
        Ok(proto::HookDeliveryState::Pending) => Ok(Some(DeliveryState::Pending)),
        Ok(proto::HookDeliveryState::Delivered) => Ok(Some(DeliveryState::Delivered)),
        Ok(proto::HookDeliveryState::Dead) => Ok(Some(DeliveryState::Dead)),
        Err(_) => Err(crate::error::Error::invalid(
            "state",
            "unknown delivery state",
        )),
    }
}

pub(crate) fn delivery_to_proto(d: DeliveryRecord) -> proto::HookDelivery {
    let state = match d.state {
        DeliveryState::Pending => proto::HookDeliveryState::Pending,
        DeliveryState::Delivered => proto::HookDeliveryState::Delivered,
        DeliveryState::Dead => proto::HookDeliveryState::Dead,
    };
    proto::HookDelivery {
        next_attempt_time: (d.state == DeliveryState::Pending)
            .then(|| timestamp(d.next_attempt_ms)),
        id: d.id,
        hook_id: d.hook_id,
        studio_id: d.studio_id,
        request_id: d.request_id,
        state: state as i32,
        attempts: d.attempts,
        last_error: d.last_error,
        create_time: Some(timestamp(d.create_ms)),
        deliver_time: d.deliver_ms.map(timestamp),
    }
}

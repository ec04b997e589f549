//! The after_call dispatcher: one background task that sends due outbox
//! deliveries, signed, and records each attempt: delivered on a 2xx, else
//! retried with exponential backoff, and dead after the last attempt.
//!
//! The outbox is the store, so pending deliveries survive a restart and are
//! picked up at start. Each delivery keeps its id (`webhook-id`) across
//! attempts, so a receiver can de-duplicate.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::before::describe;
use super::{Hooks, after, signing};
use crate::config::HookDeliveryConfig;
use crate::domain::{AttemptOutcome, DeliveryRecord, Millis, now_ms};
use crate::metrics::Metrics;

/// Deliveries sent at once.
const BATCH: u32 = 32;

/// The running dispatcher; `stop` ends it.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Dispatcher {
    pub fn start(
        hooks: Arc<Hooks>,
        config: HookDeliveryConfig,
        metrics: Arc<Metrics>,
    ) -> Dispatcher {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(hooks, config, metrics, stopped));
        Dispatcher { stop, task }
    }

    /// Stops the dispatcher; a delivery cut short stays pending.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(%err, "hook dispatcher task failed");
        }
    }
}

async fn run(
    hooks: Arc<Hooks>,
    config: HookDeliveryConfig,
    metrics: Arc<Metrics>,
    mut stopped: watch::Receiver<bool>,
) {
    let poll = Duration::from_millis(config.poll_interval_ms.max(10));
    loop {
        if *stopped.borrow() {
            return;
        }
        let store = hooks.store().clone();
        let sent = tokio::select! {
            sent = send_due(&hooks, &config, &metrics) => sent,
            _ = stopped.changed() => return,
        };
        if sent >= BATCH as usize {
            continue;
        }
        let wait = match store.next_delivery_ms().await {
            Ok(Some(next)) => after(next - now_ms()).min(poll),
            Ok(None) => poll,
            Err(err) => {
                tracing::error!(%err, "hook outbox unreadable");
                poll
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = hooks.wake.notified() => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Sends one batch of due deliveries; returns how many were due.
async fn send_due(hooks: &Hooks, config: &HookDeliveryConfig, metrics: &Metrics) -> usize {
    let due = match hooks.store().due_deliveries(now_ms(), BATCH).await {
        Ok(due) => due,
        Err(err) => {
            tracing::error!(%err, "reading due hook deliveries failed");
            return 0;
        }
    };
    let count = due.len();
    let attempts = due.into_iter().map(|delivery| async move {
        let outcome = attempt(hooks, config, &delivery).await;
        metrics.hook_delivery(match &outcome {
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Failed {
                next_attempt_ms: Some(_),
                ..
            } => "retry",
            AttemptOutcome::Failed { .. } => "dead",
        });
        if let AttemptOutcome::Failed { error, next_attempt_ms } = &outcome {
            tracing::warn!(
                delivery_id = %delivery.id,
                hook_id = %delivery.hook_id,
                attempts = delivery.attempts + 1,
                dead = next_attempt_ms.is_none(),
                error,
                "after_call delivery failed"
            );
        }
        if let Err(err) = hooks.store().record_attempt(&delivery.id, &outcome).await {
            tracing::error!(%err, delivery_id = %delivery.id, "recording a delivery attempt failed");
        }
    });
    futures_util::future::join_all(attempts).await;
    count
}

async fn attempt(
    hooks: &Hooks,
    config: &HookDeliveryConfig,
    delivery: &DeliveryRecord,
) -> AttemptOutcome {
    let failed = |error: String| {
        let attempts = delivery.attempts.saturating_add(1);
        let next_attempt_ms = (attempts < config.max_attempts.max(1) as i32)
            .then(|| now_ms() + backoff_ms(config, attempts));
        AttemptOutcome::Failed {
            error,
            next_attempt_ms,
        }
    };
    let Some(hook) = hooks.get(&delivery.hook_id) else {
        return AttemptOutcome::Failed {
            error: "the hook was deleted".into(),
            next_attempt_ms: None,
        };
    };
    let body = delivery.payload.as_bytes();
    let mut request = hooks
        .client
        .post(&hook.record.url)
        .timeout(hook.timeout())
        .header("content-type", "application/json");
    // City wrote it from its propagator; one not fit for a header is left out
    // rather than failing every attempt.
    let traceparent = delivery
        .traceparent
        .as_deref()
        .map(http::HeaderValue::from_str);
    if let Some(Ok(traceparent)) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    for (name, value) in signing::headers(&hook.key, &delivery.id, body) {
        request = request.header(name, value);
    }
    match request.body(delivery.payload.clone()).send().await {
        Ok(response) if response.status().is_success() => {
            AttemptOutcome::Delivered { at: now_ms() }
        }
        Ok(response) => failed(format!("HTTP {}", response.status().as_u16())),
        Err(err) => failed(describe(err)),
    }
}

/// The wait before attempt `attempts + 1`: doubling from the initial backoff,
/// capped.
fn backoff_ms(config: &HookDeliveryConfig, attempts: i32) -> Millis {
    let exponent = (attempts.max(1) - 1).min(30) as u32;
    let wait = config.initial_backoff_ms.saturating_mul(1u64 << exponent);
    wait.min(config.max_backoff_ms.max(config.initial_backoff_ms)) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = HookDeliveryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            ..HookDeliveryConfig::default()
        };
        let waits: Vec<_> = (1..=6).map(|n| backoff_ms(&config, n)).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
    }
}

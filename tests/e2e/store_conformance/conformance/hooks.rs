//! Hooks and the after_call outbox.

use downcity::domain::{
    AttemptOutcome, DeliveryFilter, DeliveryRecord, DeliveryState, HookEvent, HookRecord,
};
use downcity::store::Store;

use super::*;

pub fn hook(id: &str, studio_id: &str) -> HookRecord {
    HookRecord {
        id: id.to_string(),
        studio_id: studio_id.to_string(),
        url: format!("https://{id}.invalid/hook"),
        events: vec![HookEvent::BeforeCall, HookEvent::AfterCall],
        timeout_ms: 500,
        fail_closed: true,
        include_prompt: false,
        secret: vec![7; 48],
        create_ms: START_MS,
        update_ms: START_MS,
    }
}

pub fn delivery(id: &str, hook_id: &str, due_ms: i64) -> DeliveryRecord {
    DeliveryRecord {
        id: id.to_string(),
        hook_id: hook_id.to_string(),
        studio_id: "s1".to_string(),
        request_id: format!("req-{id}"),
        payload: format!("{{\"id\":\"{id}\"}}"),
        state: DeliveryState::Pending,
        attempts: 0,
        last_error: String::new(),
        next_attempt_ms: due_ms,
        create_ms: START_MS,
        deliver_ms: None,
        traceparent: None,
    }
}

/// A call's trace context, as an outbox row keeps it.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn ids(deliveries: &[DeliveryRecord]) -> Vec<&str> {
    deliveries.iter().map(|d| d.id.as_str()).collect()
}

pub async fn hooks_and_outbox(store: &dyn Store) {
    let mut h1 = hook("hk1", "s1");
    store.upsert_hook(&hook("hk2", "")).await.unwrap();
    store.upsert_hook(&h1).await.unwrap();
    // A replace keeps create_ms.
    h1.url = "https://elsewhere.invalid".to_string();
    h1.events = vec![HookEvent::AfterCall];
    h1.update_ms = START_MS + 1;
    let mut replaced = h1.clone();
    replaced.create_ms = START_MS + 99;
    store.upsert_hook(&replaced).await.unwrap();
    assert_eq!(store.all_hooks().await.unwrap(), vec![h1, hook("hk2", "")]);

    // Deliveries are committed with their usage rows.
    let outbox: Vec<DeliveryRecord> = (0..5)
        .map(|i| DeliveryRecord {
            // Odd ones came from a traced call, even ones did not.
            traceparent: (i % 2 == 1).then(|| TRACEPARENT.to_string()),
            ..delivery(
                &format!("msg{i}"),
                if i < 4 { "hk1" } else { "hk2" },
                START_MS + 10 * (5 - i),
            )
        })
        .collect();
    commit_usage(store, &usage_rows(5), &outbox).await;
    assert_eq!(store.next_delivery_ms().await.unwrap(), Some(START_MS + 10));
    let due = store.due_deliveries(START_MS + 30, 10).await.unwrap();
    assert_eq!(ids(&due), ["msg4", "msg3", "msg2"]);
    assert_eq!(due[0], outbox[4]);
    assert_eq!(due[1], outbox[3]);

    let failed = AttemptOutcome::Failed {
        error: "HTTP 500".to_string(),
        next_attempt_ms: Some(START_MS + 1000),
    };
    store.record_attempt("msg2", &failed).await.unwrap();
    let dead = AttemptOutcome::Failed {
        error: "HTTP 410".to_string(),
        next_attempt_ms: None,
    };
    store.record_attempt("msg3", &dead).await.unwrap();
    let delivered = AttemptOutcome::Delivered { at: START_MS + 31 };
    store.record_attempt("msg4", &delivered).await.unwrap();
    // A second outcome for a delivery no longer pending changes nothing.
    store.record_attempt("msg4", &failed).await.unwrap();

    let msg2 = store.get_delivery("msg2").await.unwrap().unwrap();
    assert_eq!(
        (msg2.state, msg2.attempts, msg2.next_attempt_ms),
        (DeliveryState::Pending, 1, START_MS + 1000)
    );
    assert_eq!(msg2.last_error, "HTTP 500");
    let msg3 = store.get_delivery("msg3").await.unwrap().unwrap();
    assert_eq!((msg3.state, msg3.attempts), (DeliveryState::Dead, 1));
    let msg4 = store.get_delivery("msg4").await.unwrap().unwrap();
    assert_eq!(
        (msg4.state, msg4.deliver_ms),
        (DeliveryState::Delivered, Some(START_MS + 31))
    );
    assert_eq!(store.get_delivery("nope").await.unwrap(), None);

    // Newest first, filtered, in pages.
    let filter = DeliveryFilter {
        studio_id: "s1".to_string(),
        hook_id: Some("hk1".to_string()),
        state: None,
    };
    let first = store.list_deliveries(&filter, None, 3).await.unwrap();
    let rest = store
        .list_deliveries(&filter, Some(first[2].0), 3)
        .await
        .unwrap();
    let listed: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|(_, d)| d.id.as_str())
        .collect();
    assert_eq!(listed, ["msg3", "msg2", "msg1", "msg0"]);
    let dead_only = DeliveryFilter {
        state: Some(DeliveryState::Dead),
        ..filter.clone()
    };
    let listed = store.list_deliveries(&dead_only, None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1, msg3);

    let again = store.redeliver("msg3", START_MS + 50).await.unwrap();
    assert_eq!(
        (again.state, again.attempts, again.next_attempt_ms),
        (DeliveryState::Pending, 0, START_MS + 50)
    );
    assert_eq!(again.traceparent.as_deref(), Some(TRACEPARENT));
    assert_not_found(store.redeliver("nope", 1).await, "hook delivery", "nope");

    // Deleting a hook kills its pending deliveries, not the delivered ones.
    store.delete_hook("hk1", START_MS + 60).await.unwrap();
    assert_not_found(store.delete_hook("hk1", 1).await, "hook", "hk1");
    for id in ["msg0", "msg1", "msg2", "msg3"] {
        let d = store.get_delivery(id).await.unwrap().unwrap();
        assert_eq!(
            (d.state, d.last_error.as_str()),
            (DeliveryState::Dead, "the hook was deleted"),
            "{id}"
        );
    }
    let msg4 = store.get_delivery("msg4").await.unwrap().unwrap();
    assert_eq!(msg4.state, DeliveryState::Delivered);
    assert_eq!(store.all_hooks().await.unwrap(), vec![hook("hk2", "")]);
    assert_eq!(store.next_delivery_ms().await.unwrap(), None);
}

//! Business hooks end to end, against a real HTTP receiver on 127.0.0.1:
//! before_call allow / deny / timeout under each failure policy, after_call
//! retries and delivery across a restart, before_call around StreamText and
//! Image, and Standard Webhooks signatures checked by an implementation
//! written from scratch (tests/common/receiver.rs).

use std::time::Duration;

use crate::common::receiver::{Before, Receiver, assert_signed};
use crate::common::*;
use downcity::config::Config;
use downcity::config::SecretText;
use downcity::keys::MasterKey;
use downcity::proto::{self, HookDeliveryState, HookEvent, HookFailurePolicy};
use tokio::net::TcpListener;
use tonic::Code;

fn with_master_key(master_key: &str) -> impl FnOnce(&mut Config) + '_ {
    move |config| {
        config.master_key = Some(SecretText(master_key.to_string()));
        config.hook_delivery.initial_backoff_ms = 20;
        config.hook_delivery.max_backoff_ms = 100;
        config.hook_delivery.poll_interval_ms = 50;
    }
}

async fn hook_city() -> (TestCity, String) {
    let key = MasterKey::generate().to_base64();
    (TestCity::start_with(with_master_key(&key)).await, key)
}

/// Creates a hook and returns its id and secret.
async fn add_hook(
    city: &TestCity,
    studio: &str,
    url: String,
    event: HookEvent,
    policy: HookFailurePolicy,
    timeout_ms: i64,
) -> (String, String) {
    let hook = proto::Hook {
        studio_id: studio.into(),
        url,
        events: vec![event as i32],
        timeout: Some(pbjson_types::Duration {
            seconds: timeout_ms / 1000,
            nanos: ((timeout_ms % 1000) * 1_000_000) as i32,
        }),
        failure_policy: policy as i32,
        ..Default::default()
    };
    upsert_hook(city, hook).await
}

/// Creates `hook` and returns its id and secret.
async fn upsert_hook(city: &TestCity, hook: proto::Hook) -> (String, String) {
    let response = city
        .admin()
        .upsert_hook(proto::UpsertHookRequest { hook: Some(hook) })
        .await
        .expect("upsert hook")
        .into_inner();
    assert!(response.secret.starts_with("whsec_"));
    (response.hook.unwrap().id, response.secret)
}

async fn deliveries(city: &TestCity, studio: &str) -> Vec<proto::HookDelivery> {
    city.admin()
        .list_hook_deliveries(proto::ListHookDeliveriesRequest {
            studio_id: studio.into(),
            ..Default::default()
        })
        .await
        .expect("list deliveries")
        .into_inner()
        .deliveries
}

/// Polls until `done` holds for the studio's deliveries (at most 10 s).
async fn wait_deliveries(
    city: &TestCity,
    studio: &str,
    done: impl Fn(&[proto::HookDelivery]) -> bool,
) -> Vec<proto::HookDelivery> {
    for _ in 0..1000 {
        let found = deliveries(city, studio).await;
        if done(&found) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("deliveries never reached the expected state");
}

#[tokio::test]
async fn before_call_allows_and_its_metadata_lands_on_the_usage_row() {
    let (city, _) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    let receiver = Receiver::start(Before::Allow(serde_json::json!({"tier": "gold"})), 0).await;
    let (_, secret) = add_hook(
        &city,
        "acme",
        receiver.url(),
        HookEvent::BeforeCall,
        HookFailurePolicy::FailClosed,
        2000,
    )
    .await;
    let mut request = text_request("hello world");
    request.metadata.insert("order".into(), "42".into());
    city.ai("acme", &token)
        .text(request)
        .await
        .expect("allowed");

    let asked = receiver.received("before_call");
    assert_eq!(asked.len(), 1);
    assert_signed(&asked[0], &secret);
    let data = &asked[0].json()["data"];
    assert_eq!(data["studio_id"], "acme");
    assert_eq!(data["user_id"], "u1");
    assert_eq!(data["pathway"], "text");
    assert_eq!(data["stream"], false);
    assert_eq!(data["metadata"]["order"], "42");
    assert!(data["estimated_tokens"].as_i64().unwrap() > 0);
    assert!(data.get("prompt").is_none(), "no prompt unless asked for");

    let rows = city.usage_rows(studio_filter("acme")).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].metadata.get("tier").map(String::as_str),
        Some("gold")
    );
    assert_eq!(
        rows[0].metadata.get("order").map(String::as_str),
        Some("42")
    );

    // Listing shows the hook, never its secret.
    let hooks = city
        .admin()
        .list_hooks(proto::ListHooksRequest {
            studio_id: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hooks;
    assert_eq!(hooks.len(), 1);
    assert!(!format!("{hooks:?}").contains(&secret[6..]));
}

/// A City whose studio `acme` has limits and a before_call hook that denies
/// every call with "insufficient balance"; returns a user token of `u1`.
async fn denying_city() -> (TestCity, String, Receiver) {
    let (city, _) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: "acme".into(),
            target: proto::LimitTarget::Studio as i32,
            user_id: String::new(),
            limits: Some(proto::Limits {
                tokens_per_day: Some(100_000),
                requests_per_minute: Some(100),
                cost_micros_per_day: Some(1_000_000_000),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let receiver = Receiver::start(Before::Deny("insufficient balance"), 0).await;
    add_hook(
        &city,
        "acme",
        receiver.url(),
        HookEvent::BeforeCall,
        HookFailurePolicy::FailOpen,
        2000,
    )
    .await;
    (city, token, receiver)
}

/// The client saw the studio's denial; the call left no usage row and
/// holds no quota (its reservation was released, nothing charged).
async fn assert_denied_for_nothing(city: &TestCity, receiver: &Receiver, err: &tonic::Status) {
    assert_error(err, Code::PermissionDenied, "HOOK_DENIED");
    assert!(err.message().contains("insufficient balance"), "{err:?}");
    assert_eq!(receiver.received("before_call").len(), 1);

    assert!(city.usage_rows(studio_filter("acme")).await.is_empty());
    let standing = city
        .admin()
        .get_quota_standing(proto::GetQuotaStandingRequest {
            studio_id: "acme".into(),
            user_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .limits;
    assert_eq!(standing.len(), 3, "{standing:?}");
    for limit in standing {
        assert_eq!((limit.used, limit.reserved), (0, 0), "{limit:?}");
    }
}

#[tokio::test]
async fn a_denied_call_reaches_the_client_and_costs_nothing() {
    let (city, token, receiver) = denying_city().await;
    let err = city
        .ai("acme", &token)
        .text(text_request("hello"))
        .await
        .unwrap_err();
    assert_denied_for_nothing(&city, &receiver, &err).await;
}

#[tokio::test]
async fn a_slow_hook_fails_open_or_closed_as_configured() {
    let (city, _) = hook_city().await;
    let open_token = city.studio_with_user("open", "u1").await;
    let closed_token = city.studio_with_user("closed", "u1").await;
    let receiver = Receiver::start(Before::Slow(Duration::from_secs(2)), 0).await;
    for (studio, policy) in [
        ("open", HookFailurePolicy::FailOpen),
        ("closed", HookFailurePolicy::FailClosed),
    ] {
        add_hook(
            &city,
            studio,
            receiver.url(),
            HookEvent::BeforeCall,
            policy,
            100,
        )
        .await;
    }
    city.ai("open", &open_token)
        .text(text_request("hello"))
        .await
        .expect("fail open proceeds");
    assert_eq!(city.usage_rows(studio_filter("open")).await.len(), 1);

    let err = city
        .ai("closed", &closed_token)
        .text(text_request("hello"))
        .await
        .unwrap_err();
    assert_error(&err, Code::Unavailable, "HOOK_UNAVAILABLE");
    assert!(city.usage_rows(studio_filter("closed")).await.is_empty());
}

#[tokio::test]
async fn after_call_retries_500s_until_delivered_with_one_stable_id() {
    let (city, _) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    let receiver = Receiver::start(Before::Allow(serde_json::json!({})), 2).await;
    let (hook_id, secret) = add_hook(
        &city,
        "acme",
        receiver.url(),
        HookEvent::AfterCall,
        HookFailurePolicy::FailOpen,
        2000,
    )
    .await;
    city.ai("acme", &token)
        .text(text_request("hello"))
        .await
        .unwrap();
    let found = wait_deliveries(&city, "acme", |d| {
        d.len() == 1 && d[0].state == HookDeliveryState::Delivered as i32
    })
    .await;
    assert_eq!(found[0].attempts, 3);
    assert_eq!(found[0].hook_id, hook_id);
    let sent = receiver.received("after_call");
    assert_eq!(sent.len(), 3);
    for attempt in &sent {
        assert_eq!(attempt.headers["webhook-id"], found[0].id);
        assert_signed(attempt, &secret);
    }
    let data = &sent[0].json()["data"];
    assert_eq!(data["request_id"], found[0].request_id.as_str());
    assert_eq!(data["studio_id"], "acme");
    assert_eq!(data["status_code"], 0);
}

#[tokio::test]
async fn after_call_survives_a_restart_while_the_receiver_is_down() {
    let (city, key) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    // A port with nothing listening: the receiver is down.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, secret) = add_hook(
        &city,
        "acme",
        format!("http://{addr}/hook"),
        HookEvent::AfterCall,
        HookFailurePolicy::FailOpen,
        500,
    )
    .await;
    city.ai("acme", &token)
        .text(text_request("hello"))
        .await
        .unwrap();
    let failing = wait_deliveries(&city, "acme", |d| d.len() == 1 && d[0].attempts >= 1).await;
    assert_eq!(failing[0].state, HookDeliveryState::Pending as i32);
    assert!(!failing[0].last_error.is_empty());

    let dir = city.stop().await;
    let receiver = Receiver::serve(
        TcpListener::bind(addr).await.unwrap(),
        Before::Allow(serde_json::json!({})),
        0,
    );
    let city = TestCity::start_in(dir, with_master_key(&key)).await;
    let done = wait_deliveries(&city, "acme", |d| {
        d.len() == 1 && d[0].state == HookDeliveryState::Delivered as i32
    })
    .await;
    let sent = receiver.received("after_call");
    assert_eq!(sent.len(), 1, "delivered once");
    assert_eq!(sent[0].headers["webhook-id"], done[0].id);
    assert_signed(&sent[0], &secret);
}

#[tokio::test]
async fn a_studio_key_manages_only_its_own_hooks() {
    let (city, _) = hook_city().await;
    city.studio_with_user("acme", "u1").await;
    city.studio_with_user("globex", "u1").await;
    let key = city
        .admin()
        .create_studio_key(proto::CreateStudioKeyRequest {
            studio_id: "acme".into(),
            display_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut studio_admin = city.admin_with(Some(&key));
    let hook = |studio: &str| proto::UpsertHookRequest {
        hook: Some(proto::Hook {
            studio_id: studio.into(),
            url: "http://127.0.0.1:9/hook".into(),
            events: vec![HookEvent::AfterCall as i32],
            ..Default::default()
        }),
    };
    let created = studio_admin
        .upsert_hook(hook("acme"))
        .await
        .unwrap()
        .into_inner();
    assert!(created.secret.starts_with("whsec_"));
    let err = studio_admin.upsert_hook(hook("globex")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = studio_admin.upsert_hook(hook("")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    studio_admin
        .delete_hook(proto::DeleteHookRequest {
            studio_id: "acme".into(),
            hook_id: created.hook.unwrap().id,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn rekey_reseals_hook_secrets() {
    let (city, old) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    let receiver = Receiver::start(Before::Allow(serde_json::json!({})), 0).await;
    let (_, secret) = add_hook(
        &city,
        "acme",
        receiver.url(),
        HookEvent::BeforeCall,
        HookFailurePolicy::FailClosed,
        2000,
    )
    .await;
    let dir = city.stop().await;
    let old = MasterKey::from_base64(&old).unwrap();
    let new = MasterKey::generate();
    let store = downcity::store::sqlite::SqliteStore::open(&dir.path().join("downcity.db"), false)
        .await
        .unwrap();
    downcity::keys::rekey(&store, Some(&old), &new)
        .await
        .unwrap();
    downcity::store::Store::close(&store).await;

    let city = TestCity::start_in(dir, with_master_key(&new.to_base64())).await;
    city.ai("acme", &token)
        .text(text_request("hello"))
        .await
        .expect("the hook still answers");
    let asked = receiver.received("before_call");
    assert_eq!(asked.len(), 1);
    assert_signed(&asked[0], &secret);
}

#[tokio::test]
async fn config_hooks_are_applied_at_start_with_their_secret() {
    const VAR: &str = "DOWNCITY_TEST_CONFIG_HOOK_SECRET";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // SAFETY: no other test reads or writes this variable.
    unsafe { std::env::set_var(VAR, SECRET) };
    let (city, key) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    let dir = city.stop().await;
    let receiver = Receiver::start(Before::Deny("from config"), 0).await;
    let url = receiver.url();
    let city = TestCity::start_in(dir, |config| {
        with_master_key(&key)(config);
        config.hooks.push(downcity::config::HookConfig {
            id: "billing".into(),
            studio: "acme".into(),
            url,
            events: vec![downcity::domain::HookEvent::BeforeCall],
            timeout_ms: 2000,
            failure_policy: downcity::domain::FailurePolicy::FailClosed,
            include_prompt: true,
            secret_env: VAR.into(),
        });
    })
    .await;
    let err = city
        .ai("acme", &token)
        .text(text_request("hello"))
        .await
        .unwrap_err();
    assert_error(&err, Code::PermissionDenied, "HOOK_DENIED");
    let asked = receiver.received("before_call");
    assert_eq!(asked.len(), 1);
    assert_signed(&asked[0], SECRET);
    assert_eq!(asked[0].json()["data"]["prompt"][0]["content"], "hello");
}

async fn list_hooks(city: &TestCity, studio: &str) -> Vec<proto::Hook> {
    city.admin()
        .list_hooks(proto::ListHooksRequest {
            studio_id: studio.into(),
            ..Default::default()
        })
        .await
        .expect("list hooks")
        .into_inner()
        .hooks
}

/// UpsertHook creates with an empty id and replaces with an existing one; an
/// id naming no hook is NOT_FOUND and creates nothing. (Config-file hooks,
/// whose ids are fixed, are still created: see the test above.)
#[tokio::test]
async fn upserting_an_unknown_hook_id_is_not_found() {
    let (city, _) = hook_city().await;
    city.studio_with_user("acme", "u1").await;
    let hook = |id: &str, url: &str| proto::Hook {
        id: id.into(),
        studio_id: "acme".into(),
        url: url.into(),
        events: vec![HookEvent::AfterCall as i32],
        ..Default::default()
    };
    let err = city
        .admin()
        .upsert_hook(proto::UpsertHookRequest {
            hook: Some(hook("hk_unknown", "http://127.0.0.1:9/a")),
        })
        .await
        .unwrap_err();
    assert_error(&err, Code::NotFound, "NOT_FOUND");
    assert!(
        list_hooks(&city, "acme").await.is_empty(),
        "nothing created"
    );

    let (id, _) = upsert_hook(&city, hook("", "http://127.0.0.1:9/a")).await;
    let replaced = city
        .admin()
        .upsert_hook(proto::UpsertHookRequest {
            hook: Some(hook(&id, "http://127.0.0.1:9/b")),
        })
        .await
        .expect("replace")
        .into_inner();
    assert!(
        replaced.secret.is_empty(),
        "a replaced hook keeps its secret"
    );
    let hooks = list_hooks(&city, "acme").await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        (hooks[0].id.as_str(), hooks[0].url.as_str()),
        (id.as_str(), "http://127.0.0.1:9/b")
    );
}

#[tokio::test]
async fn a_hooks_events_are_stored_once_each() {
    let (city, _) = hook_city().await;
    city.studio_with_user("acme", "u1").await;
    let response = city
        .admin()
        .upsert_hook(proto::UpsertHookRequest {
            hook: Some(proto::Hook {
                studio_id: "acme".into(),
                url: "http://127.0.0.1:9/hook".into(),
                events: vec![
                    HookEvent::AfterCall as i32,
                    HookEvent::BeforeCall as i32,
                    HookEvent::AfterCall as i32,
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("upsert hook")
        .into_inner();
    let once = vec![HookEvent::BeforeCall as i32, HookEvent::AfterCall as i32];
    assert_eq!(response.hook.unwrap().events, once);
    let hooks = list_hooks(&city, "acme").await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].events, once);
}

#[tokio::test]
async fn redelivering_for_a_deleted_hook_is_a_failed_precondition() {
    let (city, _) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    let receiver = Receiver::start(Before::Allow(serde_json::json!({})), 0).await;
    let (hook_id, _) = add_hook(
        &city,
        "acme",
        receiver.url(),
        HookEvent::AfterCall,
        HookFailurePolicy::FailOpen,
        2000,
    )
    .await;
    city.ai("acme", &token)
        .text(text_request("hello"))
        .await
        .unwrap();
    let delivered = wait_deliveries(&city, "acme", |d| {
        d.len() == 1 && d[0].state == HookDeliveryState::Delivered as i32
    })
    .await;
    city.admin()
        .delete_hook(proto::DeleteHookRequest {
            studio_id: "acme".into(),
            hook_id: hook_id.clone(),
        })
        .await
        .unwrap();

    let err = city
        .admin()
        .redeliver_hook(proto::RedeliverHookRequest {
            studio_id: "acme".into(),
            delivery_id: delivered[0].id.clone(),
        })
        .await
        .unwrap_err();
    assert_error(&err, Code::FailedPrecondition, "HOOK_DELETED");
    assert!(err.message().contains(&hook_id), "{err:?}");
    // Refused up front: the delivery is left as it was, never queued again.
    let after = deliveries(&city, "acme").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].state, HookDeliveryState::Delivered as i32);
    assert_eq!(after[0].attempts, delivered[0].attempts);
    assert_eq!(receiver.received("after_call").len(), 1);
}

// ---- StreamText and Image ---------------------------------------------------

/// A City whose studio `acme` has a fail-closed before_call hook that allows
/// every call and attaches `tier=gold`; returns a user token of `u1`, the
/// receiver and the hook's secret.
async fn allowing_city(include_prompt: bool) -> (TestCity, String, Receiver, String) {
    let (city, _) = hook_city().await;
    let token = city.studio_with_user("acme", "u1").await;
    let receiver = Receiver::start(Before::Allow(serde_json::json!({"tier": "gold"})), 0).await;
    let (_, secret) = upsert_hook(
        &city,
        proto::Hook {
            studio_id: "acme".into(),
            url: receiver.url(),
            events: vec![HookEvent::BeforeCall as i32],
            failure_policy: HookFailurePolicy::FailClosed as i32,
            include_prompt,
            ..Default::default()
        },
    )
    .await;
    (city, token, receiver, secret)
}

/// The one before_call request the receiver got, signed with `secret`: its
/// `data` (the call's context), checked for what every call carries.
#[track_caller]
fn asked_once(receiver: &Receiver, secret: &str, request_id: &str) -> serde_json::Value {
    let asked = receiver.received("before_call");
    assert_eq!(asked.len(), 1);
    assert_signed(&asked[0], secret);
    let data = asked[0].json()["data"].clone();
    assert_eq!(data["request_id"], request_id, "{data}");
    assert_eq!(
        (data["studio_id"].as_str(), data["user_id"].as_str()),
        (Some("acme"), Some("u1"))
    );
    assert_eq!(data["metadata"]["order"], "42", "{data}");
    data
}

/// The studio's only usage row carries the hook's metadata and the call's own.
#[track_caller]
fn assert_row_metadata(row: &proto::UsageRecord) {
    let get = |key: &str| row.metadata.get(key).map(String::as_str);
    assert_eq!(
        (get("tier"), get("order")),
        (Some("gold"), Some("42")),
        "{row:?}"
    );
}

fn order_42() -> std::collections::HashMap<String, String> {
    [("order".to_string(), "42".to_string())].into()
}

#[tokio::test]
async fn before_call_allows_a_stream_and_its_metadata_lands_on_the_usage_row() {
    let (city, token, receiver, secret) = allowing_city(false).await;
    let request = proto::StreamTextRequest {
        messages: vec![user_message("stream me please")],
        metadata: order_42(),
        ..Default::default()
    };
    let mut stream = city
        .ai("acme", &token)
        .stream_text(request)
        .await
        .expect("allowed")
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await.expect("the stream completes") {
        messages.push(message);
    }
    let text: String = messages.iter().map(|m| m.delta.as_str()).collect();
    assert_eq!(text, "Echo: stream me please");
    let (first, last) = (&messages[0], messages.last().unwrap());
    assert_eq!(last.finish_reason, proto::FinishReason::Stop as i32);

    let data = asked_once(&receiver, &secret, &first.request_id);
    assert_eq!(data["pathway"], "text", "{data}");
    assert_eq!(data["stream"], true, "{data}");
    assert_eq!(data["model"], first.model.as_str(), "{data}");
    assert_eq!(data["model"], "mock-text", "{data}");
    assert!(data["estimated_tokens"].as_i64().unwrap() > 0, "{data}");
    assert!(data.get("prompt").is_none(), "no prompt unless asked for");

    let rows = city.wait_for_rows(studio_filter("acme"), 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].request_id, first.request_id);
    assert_eq!(
        (rows[0].status_code, rows[0].pathway),
        (0, proto::Pathway::Text as i32)
    );
    assert_eq!(rows[0].output_tokens, last.usage.unwrap().output_tokens);
    assert_row_metadata(&rows[0]);
}

#[tokio::test]
async fn a_denied_stream_never_starts_and_costs_nothing() {
    let (city, token, receiver) = denying_city().await;
    let request = proto::StreamTextRequest {
        messages: vec![user_message("hello")],
        ..Default::default()
    };
    let err = city
        .ai("acme", &token)
        .stream_text(request)
        .await
        .expect_err("refused before the first message");
    assert_denied_for_nothing(&city, &receiver, &err).await;
}

#[tokio::test]
async fn before_call_allows_an_image_and_sees_its_prompt() {
    let (city, token, receiver, secret) = allowing_city(true).await;
    let request = proto::ImageRequest {
        prompt: "a lighthouse at dusk".into(),
        count: Some(2),
        metadata: order_42(),
        ..Default::default()
    };
    let response = city
        .ai("acme", &token)
        .image(request)
        .await
        .expect("allowed")
        .into_inner();
    assert_eq!(response.images.len(), 2);

    let data = asked_once(&receiver, &secret, &response.request_id);
    assert_eq!(data["pathway"], "image", "{data}");
    assert_eq!(data["stream"], false, "{data}");
    assert_eq!(data["model"], response.model.as_str(), "{data}");
    assert_eq!(data["prompt"], "a lighthouse at dusk", "{data}");

    let rows = city.usage_rows(studio_filter("acme")).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].request_id, response.request_id);
    assert_eq!(
        (rows[0].images, rows[0].pathway),
        (2, proto::Pathway::Image as i32)
    );
    assert_row_metadata(&rows[0]);
}

#[tokio::test]
async fn a_denied_image_costs_nothing() {
    let (city, token, receiver) = denying_city().await;
    let request = proto::ImageRequest {
        prompt: "a lighthouse".into(),
        ..Default::default()
    };
    let err = city.ai("acme", &token).image(request).await.unwrap_err();
    assert_denied_for_nothing(&city, &receiver, &err).await;
}

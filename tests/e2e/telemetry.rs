//! Traces and logs of the real binary: a call sent with a W3C `traceparent`
//! is exported over OTLP under the caller's trace id (the call's span a
//! child of the caller's, an upstream attempt a child of it, GenAI
//! attributes, no prompt), the upstream sees the same trace id, and every
//! JSON log line inside the call carries its ids; its before_call hook and
//! every attempt of its after_call delivery carry the trace too (and with
//! tracing off, neither carries any). Text logs to a file carry no colour
//! codes.

use downcity::proto::{self, HookEvent, HookFailurePolicy, Pathway, ProviderKind};
use serde_json::{Value, json};

use crate::common::otlp::{OtlpReceiver, attributes};
use crate::common::process::{CityProcess, DevEnv, admin_client, ai_client, connect};
use crate::common::receiver::{Before, Received, Receiver};
use crate::fake_upstream::{FakeUpstream, KEY, Reply, text_request};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "telemetry-call-1";
const PROMPT: &str = "a secret prompt, never in a span";

fn completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{ "index": 0, "finish_reason": "stop",
                      "message": { "role": "assistant", "content": "Hi" } }],
        "usage": { "prompt_tokens": 17, "completion_tokens": 3, "total_tokens": 20 }
    })
}

/// An `openai` provider on `fake` and a text model `gpt` on it.
async fn catalog(env: &DevEnv, fake: &FakeUpstream) {
    let mut admin = admin_client(connect(&env.addr).await, Some(&env.admin_key));
    let provider = proto::Provider {
        id: "oai".into(),
        kind: ProviderKind::Openai as i32,
        base_url: format!("{}/v1", fake.url()),
        ..Default::default()
    };
    admin
        .upsert_provider(proto::UpsertProviderRequest {
            provider: Some(provider),
            api_key: Some(KEY.into()),
        })
        .await
        .expect("upsert provider");
    let model = proto::Model {
        id: "gpt".into(),
        display_name: "gpt".into(),
        provider_id: "oai".into(),
        upstream_model: "gpt-4o-mini".into(),
        pathway: Pathway::Text as i32,
        enabled: Some(true),
        ..Default::default()
    };
    admin
        .upsert_model(proto::UpsertModelRequest { model: Some(model) })
        .await
        .expect("upsert model");
}

/// A before_call and after_call hook of the dev studio at `receiver`.
async fn hook(env: &DevEnv, receiver: &Receiver) {
    let mut admin = admin_client(connect(&env.addr).await, Some(&env.admin_key));
    let hook = proto::Hook {
        studio_id: env.studio_id.clone(),
        url: receiver.url(),
        events: vec![HookEvent::BeforeCall as i32, HookEvent::AfterCall as i32],
        failure_policy: HookFailurePolicy::FailClosed as i32,
        ..Default::default()
    };
    admin
        .upsert_hook(proto::UpsertHookRequest { hook: Some(hook) })
        .await
        .expect("upsert hook");
}

/// The trace id and parent span id of a hook request's `traceparent`.
#[track_caller]
fn trace_of(received: &Received) -> (String, String) {
    let sent = &received.headers["traceparent"];
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    (parts[1].to_string(), parts[2].to_string())
}

/// One Text call with the caller's trace context and request id.
async fn traced_call(env: &DevEnv) {
    let mut request = tonic::Request::new(text_request("gpt", PROMPT));
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let metadata = request.metadata_mut();
    metadata.insert("traceparent", traceparent.parse().unwrap());
    metadata.insert("x-request-id", REQUEST_ID.parse().unwrap());
    let mut ai = ai_client(connect(&env.addr).await, &env.studio_id, &env.user_token);
    ai.text(request).await.expect("Text");
}

#[tokio::test]
async fn a_call_continues_the_callers_trace_and_its_log_lines_carry_its_ids() {
    let receiver = OtlpReceiver::start().await;
    // The first after_call attempt fails, so a second one is sent.
    let hooks = Receiver::start(Before::Allow(json!({})), 1).await;
    let fake = FakeUpstream::start().await;
    // One retry inside the call, so the call logs a line.
    fake.push(Reply::json(503, &json!({"error": {"message": "busy"}})).header("retry-after", "0"));
    fake.always(Reply::ok(&completion()));
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://{}", receiver.addr);
    let env_vars = [
        ("DOWNCITY_TRACING__OTLP_ENDPOINT", endpoint.as_str()),
        ("DOWNCITY_LOG__FORMAT", "json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("DOWNCITY_HOOK_DELIVERY__INITIAL_BACKOFF_MS", "20"),
    ];
    let (mut city, env) = CityProcess::serve_dev(dir.path(), &env_vars, dir.path(), "city").await;
    catalog(&env, &fake).await;
    hook(&env, &hooks).await;
    traced_call(&env).await;

    let upstream = fake.last();
    let sent = upstream
        .header("traceparent")
        .expect("traceparent upstream");
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[1], TRACE_ID, "the upstream sees the caller's trace");
    assert_ne!(parts[2], PARENT_SPAN_ID, "City's own span is the parent");

    let trace_id = hex::decode(TRACE_ID).unwrap();
    let spans = receiver
        .wait_for_trace(&trace_id, &["chat", "upstream"])
        .await;
    let call = spans.iter().find(|s| s.name == "chat").unwrap();
    assert_eq!(hex::encode(&call.parent_span_id), PARENT_SPAN_ID);
    let attrs = attributes(call);
    assert_eq!(attrs["gen_ai.operation.name"], "chat");
    assert_eq!(attrs["gen_ai.system"], "openai");
    assert_eq!(attrs["gen_ai.request.model"], "gpt");
    assert_eq!(attrs["gen_ai.usage.input_tokens"], "17");
    assert_eq!(attrs["gen_ai.usage.output_tokens"], "3");
    assert_eq!(attrs["studio_id"], env.studio_id);
    assert_eq!(attrs["request_id"], REQUEST_ID);
    let call_span_id = hex::encode(&call.span_id);
    let asked = hooks.received("before_call");
    assert_eq!(asked.len(), 1);
    assert_eq!(
        trace_of(&asked[0]).0,
        TRACE_ID,
        "before_call continues the trace"
    );
    let told = hooks.wait_for("after_call", 2).await;
    for attempt in &told {
        let (trace_id, parent) = trace_of(attempt);
        assert_eq!(trace_id, TRACE_ID, "after_call continues the trace");
        assert_eq!(parent, call_span_id, "the call's span is the parent");
    }
    let upstream_span = spans.iter().find(|s| s.name == "upstream").unwrap();
    assert_eq!(upstream_span.parent_span_id, call.span_id);
    assert_eq!(hex::encode(&upstream_span.span_id), parts[2]);
    for span in &spans {
        for (key, value) in attributes(span) {
            assert!(!value.contains(PROMPT), "{key} holds the prompt");
            assert!(!value.contains(KEY), "{key} holds the API key");
        }
    }

    city.terminate_cleanly().await;
    let stderr = city.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let in_call: Vec<&Value> = lines
        .iter()
        .filter(|line| {
            let spans = line["spans"].as_array();
            spans.is_some_and(|spans| spans.iter().any(|s| s["name"] == "ai_call"))
        })
        .collect();
    assert!(
        !in_call.is_empty(),
        "a line logged inside the call:\n{stderr}"
    );
    for line in in_call {
        let call = line["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "ai_call")
            .unwrap();
        assert_eq!(call["request_id"], REQUEST_ID, "{line}");
        assert_eq!(call["studio_id"], env.studio_id.as_str(), "{line}");
        assert_eq!(call["user_id"], "demo-user", "{line}");
        assert_eq!(call["model"], "gpt", "{line}");
    }
    assert!(!stderr.contains(PROMPT) && !stderr.contains(KEY));
}

/// Without trace export City passes no trace context on, to upstreams or to
/// hooks: the caller's `traceparent` goes nowhere.
#[tokio::test]
async fn with_tracing_off_hooks_get_no_traceparent() {
    let hooks = Receiver::start(Before::Allow(json!({})), 0).await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::ok(&completion()));
    let dir = tempfile::tempdir().unwrap();
    let (mut city, env) = CityProcess::serve_dev(dir.path(), &[], dir.path(), "city").await;
    catalog(&env, &fake).await;
    hook(&env, &hooks).await;
    traced_call(&env).await;

    assert_eq!(fake.last().header("traceparent"), None);
    let asked = hooks.received("before_call");
    let told = hooks.wait_for("after_call", 1).await;
    assert_eq!(asked.len(), 1);
    for request in asked.iter().chain(&told) {
        assert!(!request.headers.contains_key("traceparent"), "{request:?}");
    }
    city.terminate_cleanly().await;
}

#[tokio::test]
async fn text_logs_to_a_file_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    // The harness sets NO_COLOR; empty, it says nothing, so City must see
    // on its own that stderr is a file.
    let env_vars = [("NO_COLOR", ""), ("DOWNCITY_LOG__FORMAT", "text")];
    let (mut city, _env) = CityProcess::serve_dev(dir.path(), &env_vars, dir.path(), "city").await;
    city.terminate_cleanly().await;
    let stderr = city.stderr();
    assert!(stderr.contains("City listening"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a file: {stderr:?}"
    );
}

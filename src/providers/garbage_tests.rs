//! Property tests: every provider kind fed arbitrary answers over real HTTP
//! (random bytes, truncated or mutated valid JSON, SSE streams with frames
//! cut, dropped, of the wrong type or with huge numbers). A call never
//! panics: it succeeds, or fails with a provider error of its own; a stream
//! ends after one `Finished` or one error, never silently.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

use super::{ChatMessage, ImageCall, Provider, Role, StreamEvent, TextCall};
use crate::domain::{ProviderKind, ProviderRecord, ProviderTimeouts};
use crate::error::{Error, ProviderFailure, Result};

const CASES: u32 = 128;

/// An HTTP server answering every request with the body of the case.
struct Fake {
    runtime: Runtime,
    url: String,
    answer: Arc<Mutex<(&'static str, Vec<u8>)>>,
}

impl Fake {
    fn start() -> Fake {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let answer = Arc::new(Mutex::new(("application/json", Vec::new())));
        let shared = answer.clone();
        let app = axum::Router::new().fallback(move || {
            let (content_type, body) = shared.lock().unwrap().clone();
            async move { ([("content-type", content_type)], body) }
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Fake {
            runtime,
            url,
            answer,
        }
    }

    fn provider(&self, kind: ProviderKind) -> Arc<dyn Provider> {
        let record = ProviderRecord {
            id: "fuzz".into(),
            kind,
            base_url: self.url.clone(),
            update_ms: 0,
            headers: BTreeMap::new(),
            timeouts: ProviderTimeouts {
                connect_ms: Some(5_000),
                first_byte_ms: Some(5_000),
                total_ms: Some(10_000),
            },
            api_key: None,
            api_key_update_ms: None,
        };
        super::build(&record, None)
    }

    /// Runs `check` on `CASES` bodies from `bodies`, each served as `content_type`.
    fn run(
        &self,
        content_type: &'static str,
        bodies: impl Strategy<Value = Vec<u8>>,
        check: impl AsyncCheck,
    ) {
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let successes = std::sync::atomic::AtomicU32::new(0);
        let outcome = runner.run(&bodies, |body| {
            *self.answer.lock().unwrap() = (content_type, body.clone());
            if self.runtime.block_on(check.check(&body))? {
                successes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
        // The refusing side was reached. Success is not required: with some
        // templates (a stream whose events include an error) every one of a
        // run's cases can fail, and a test must not fail by chance.
        let successes = successes.into_inner();
        assert!(successes < CASES, "all {CASES} answers succeeded");
    }
}

/// One kind of call against the fake, with its checks.
trait AsyncCheck {
    /// Whether the call succeeded; a failure of the properties is an error.
    fn check(&self, body: &[u8]) -> impl Future<Output = Result<bool, TestCaseError>>;
}

struct TextOf(Arc<dyn Provider>);
struct StreamOf(Arc<dyn Provider>);
struct ImageOf(Arc<dyn Provider>, &'static str);

fn messages() -> Vec<ChatMessage> {
    vec![ChatMessage {
        role: Role::User,
        content: "hello".into(),
    }]
}

fn text_call<'a>(
    messages: &'a [ChatMessage],
    options: &'a BTreeMap<String, String>,
) -> TextCall<'a> {
    TextCall {
        upstream_model: "model",
        messages,
        max_tokens: 16,
        temperature: None,
        top_p: None,
        stop_sequences: &[],
        options,
    }
}

impl AsyncCheck for TextOf {
    async fn check(&self, body: &[u8]) -> Result<bool, TestCaseError> {
        let (messages, options) = (messages(), BTreeMap::new());
        match self.0.text(text_call(&messages, &options)).await {
            Ok(_) => Ok(true),
            Err(err) => check_error(&err, body).map(|()| false),
        }
    }
}

impl AsyncCheck for StreamOf {
    async fn check(&self, body: &[u8]) -> Result<bool, TestCaseError> {
        let (messages, options) = (messages(), BTreeMap::new());
        let stream = match self.0.stream_text(text_call(&messages, &options)).await {
            Ok(stream) => stream,
            Err(err) => return check_error(&err, body).map(|()| false),
        };
        let items: Vec<Result<StreamEvent>> = stream.collect().await;
        let (last, before) = items.split_last().expect("a stream never ends silently");
        for item in before {
            prop_assert!(
                matches!(item, Ok(StreamEvent::Delta(_))),
                "only deltas before the end: {items:?}"
            );
        }
        match last {
            Ok(event) => {
                prop_assert!(
                    matches!(event, StreamEvent::Finished { .. }),
                    "the stream ended without Finished or an error: {items:?}"
                );
                Ok(true)
            }
            Err(err) => check_error(err, body).map(|()| false),
        }
    }
}

impl AsyncCheck for ImageOf {
    async fn check(&self, body: &[u8]) -> Result<bool, TestCaseError> {
        let options = BTreeMap::new();
        let call = ImageCall {
            upstream_model: self.1,
            prompt: "a cat",
            count: 1,
            options: &options,
        };
        match self.0.image(call).await {
            Ok(output) => {
                prop_assert!(!output.images.is_empty());
                Ok(true)
            }
            Err(err) => check_error(&err, body).map(|()| false),
        }
    }
}

/// A provider error naming the provider; BAD_RESPONSE unless the answer
/// itself reported an error (an in-stream `error` event).
fn check_error(err: &Error, body: &[u8]) -> Result<(), TestCaseError> {
    let Error::Provider {
        provider_id, kind, ..
    } = err
    else {
        return Err(TestCaseError::fail(format!(
            "not a provider error: {err:?}"
        )));
    };
    prop_assert_eq!(provider_id, "fuzz");
    let reports_error = body.windows(5).any(|w| w == b"error");
    prop_assert!(
        *kind == ProviderFailure::BadResponse || reports_error,
        "{err:?} for {}",
        String::from_utf8_lossy(body)
    );
    Ok(())
}

// ---- answers: valid templates, mutated ----

/// Values that break a field: wrong types, huge and negative numbers.
fn wild_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!(0.5)),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, "a", null, {"text": 2}])),
    ]
}

/// Every node of `value`, as JSON pointers.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                pointers(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Replaces (or, for an object member, removes) the node `pick` chose.
fn mutate(value: &mut Value, pick: &Index, remove: bool, replacement: Value) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    let pointer = pick.get(&all).clone();
    if remove
        && let Some((parent, key)) = pointer.rsplit_once('/')
        && let Some(Value::Object(map)) = value.pointer_mut(parent)
    {
        map.remove(key);
        return;
    }
    if let Some(node) = value.pointer_mut(&pointer) {
        *node = replacement;
    }
}

/// Sets every number in `value` to `number` (token counts above all).
fn renumber(value: &mut Value, number: &Value) {
    match value {
        Value::Number(_) => *value = number.clone(),
        Value::Array(items) => items.iter_mut().for_each(|v| renumber(v, number)),
        Value::Object(map) => map.values_mut().for_each(|v| renumber(v, number)),
        _ => {}
    }
}

type Mutation = (Index, bool, Value);

/// Node mutations, and maybe one value for every number.
fn mutations() -> impl Strategy<Value = (Vec<Mutation>, Option<Value>)> {
    let huge = prop_oneof![
        Just(json!(u64::MAX)),
        Just(json!(u64::MAX / 2 + 1)),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!("7")),
    ];
    (
        proptest::collection::vec((any::<Index>(), any::<bool>(), wild_value()), 0..4),
        proptest::option::weighted(0.25, huge),
    )
}

fn apply(value: &mut Value, (mutations, number): (Vec<Mutation>, Option<Value>)) {
    if let Some(number) = number {
        renumber(value, &number);
    }
    for (pick, remove, replacement) in mutations {
        mutate(value, &pick, remove, replacement);
    }
}

/// Cuts the bytes short (a truncated answer), or splices noise in.
fn damage(mut bytes: Vec<u8>, cut: Option<Index>, noise: Option<(Index, Vec<u8>)>) -> Vec<u8> {
    if let Some((at, noise)) = noise {
        let at = at.index(bytes.len() + 1);
        bytes.splice(at..at, noise);
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len() + 1));
    }
    bytes
}

fn damages() -> impl Strategy<Value = (Option<Index>, Option<(Index, Vec<u8>)>)> {
    (
        proptest::option::weighted(0.3, any::<Index>()),
        proptest::option::weighted(
            0.2,
            (
                any::<Index>(),
                proptest::collection::vec(any::<u8>(), 1..16),
            ),
        ),
    )
}

/// A JSON answer: random bytes, or `template` mutated and maybe damaged.
fn json_bodies(template: Value) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (mutations(), damages()).prop_map(move |(mutations, (cut, noise))| {
        let mut value = template.clone();
        apply(&mut value, mutations);
        damage(value.to_string().into_bytes(), cut, noise)
    });
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        4 => mutated,
    ]
}

/// An SSE answer from `events` (name, data): some dropped or mutated, the
/// `terminator` maybe left out, the bytes maybe damaged.
fn sse_bodies(
    events: Vec<(&'static str, Value)>,
    terminator: Option<&'static str>,
) -> impl Strategy<Value = Vec<u8>> {
    let count = events.len();
    let kept = proptest::sample::subsequence((0..count).collect::<Vec<_>>(), 0..=count);
    let per_event = proptest::collection::vec((any::<Index>(), mutations()), 0..3);
    let streams = (kept, per_event, any::<bool>(), damages()).prop_map(
        move |(kept, per_event, terminate, (cut, noise))| {
            let mut chosen: Vec<(&str, Value)> = kept.iter().map(|&i| events[i].clone()).collect();
            for (pick, mutations) in per_event {
                if let Some(slot) = (!chosen.is_empty()).then(|| pick.index(chosen.len())) {
                    apply(&mut chosen[slot].1, mutations);
                }
            }
            let mut body = Vec::new();
            for (name, data) in &chosen {
                if !name.is_empty() {
                    body.extend_from_slice(format!("event: {name}\n").as_bytes());
                }
                body.extend_from_slice(format!("data: {data}\n\n").as_bytes());
            }
            if let Some(end) = terminator.filter(|_| terminate) {
                body.extend_from_slice(format!("data: {end}\n\n").as_bytes());
            }
            damage(body, cut, noise)
        },
    );
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        4 => streams,
    ]
}

// ---- one test per kind and call ----

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";

fn openai_completion() -> Value {
    json!({
        "choices": [{ "message": { "content": "hi there" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 3, "completion_tokens": 2 }
    })
}

fn openai_chunks() -> Vec<(&'static str, Value)> {
    vec![
        (
            "",
            json!({ "choices": [{ "delta": { "content": "hi" }, "finish_reason": null }] }),
        ),
        (
            "",
            json!({ "choices": [{ "delta": { "content": " there" }, "finish_reason": "length" }] }),
        ),
        (
            "",
            json!({ "choices": [], "usage": { "prompt_tokens": 3, "completion_tokens": 2 } }),
        ),
    ]
}

fn openai_images() -> Value {
    json!({ "data": [{ "b64_json": "iVBORw0KGgoAAAANSUhEUg==" }] })
}

#[test]
fn openai_kinds_survive_any_answer() {
    let fake = Fake::start();
    for kind in [ProviderKind::OpenAi, ProviderKind::OpenAiCompatible] {
        let provider = fake.provider(kind);
        fake.run(
            JSON,
            json_bodies(openai_completion()),
            TextOf(provider.clone()),
        );
        fake.run(
            SSE,
            sse_bodies(openai_chunks(), Some("[DONE]")),
            StreamOf(provider.clone()),
        );
        fake.run(
            JSON,
            json_bodies(openai_images()),
            ImageOf(provider, "dall-e-3"),
        );
    }
}

#[test]
fn anthropic_survives_any_answer() {
    let fake = Fake::start();
    let provider = fake.provider(ProviderKind::Anthropic);
    let message = json!({
        "content": [{ "type": "text", "text": "hi there" }],
        "stop_reason": "end_turn",
        "usage": { "input_tokens": 3, "output_tokens": 2 }
    });
    fake.run(JSON, json_bodies(message), TextOf(provider.clone()));
    let events = vec![
        (
            "message_start",
            json!({ "type": "message_start", "message": { "usage": { "input_tokens": 3 } } }),
        ),
        ("ping", json!({ "type": "ping" })),
        (
            "content_block_delta",
            json!({ "type": "content_block_delta", "delta": { "type": "text_delta", "text": "hi" } }),
        ),
        (
            "message_delta",
            json!({ "type": "message_delta", "delta": { "stop_reason": "max_tokens" }, "usage": { "output_tokens": 2 } }),
        ),
        (
            "error",
            json!({ "type": "error", "error": { "type": "overloaded_error", "message": "busy" } }),
        ),
        ("message_stop", json!({ "type": "message_stop" })),
    ];
    fake.run(SSE, sse_bodies(events, None), StreamOf(provider));
}

#[test]
fn gemini_survives_any_answer() {
    let fake = Fake::start();
    let provider = fake.provider(ProviderKind::Gemini);
    let response = json!({
        "candidates": [{
            "content": { "parts": [{ "text": "hi" }, { "text": "hmm", "thought": true }] },
            "finishReason": "STOP"
        }],
        "usageMetadata": { "promptTokenCount": 3, "candidatesTokenCount": 2, "thoughtsTokenCount": 1 },
        "promptFeedback": { "blockReason": "SAFETY" }
    });
    fake.run(
        JSON,
        json_bodies(response.clone()),
        TextOf(provider.clone()),
    );
    let chunks = vec![
        (
            "",
            json!({ "candidates": [{ "content": { "parts": [{ "text": "hi" }] } }] }),
        ),
        ("", response.clone()),
    ];
    fake.run(SSE, sse_bodies(chunks, None), StreamOf(provider.clone()));
    let image = json!({
        "candidates": [{ "content": { "parts": [{ "inlineData": { "mimeType": "image/png", "data": "iVBORw0KGgo=" } }] } }]
    });
    fake.run(
        JSON,
        json_bodies(image),
        ImageOf(provider.clone(), "gemini-image"),
    );
    let predictions = json!({
        "predictions": [{ "bytesBase64Encoded": "iVBORw0KGgo=", "mimeType": "image/png" }]
    });
    fake.run(
        JSON,
        json_bodies(predictions),
        ImageOf(provider, "imagen-3"),
    );
}

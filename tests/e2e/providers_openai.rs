//! The `openai` and `openai_compatible` providers against a fake upstream
//! speaking OpenAI's documented wire format (Chat Completions, SSE with
//! `stream_options.include_usage`, Images with b64_json), driven through a
//! real City. Also the shared HTTP layer: error mapping, retries with
//! `retry-after`, timeouts, SSE edge cases, fallback and cancellation.

use std::time::{Duration, Instant};

use crate::common::{assert_error, studio_filter};
use crate::fake_upstream::{
    FakeUpstream, KEY, Reply, city, collect_stream, joined, model, ms, provider, stream_request,
    text_request,
};
use base64::Engine;
use downcity::proto::{self, Pathway, ProviderKind};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

fn completion(text: &str, finish: &str, prompt: u64, completion: u64) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{ "index": 0, "finish_reason": finish,
                      "message": { "role": "assistant", "content": text } }],
        "usage": { "prompt_tokens": prompt, "completion_tokens": completion,
                   "total_tokens": prompt + completion }
    })
}

fn chunk(content: &str) -> String {
    json!({ "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{ "index": 0, "delta": { "content": content }, "finish_reason": null }] })
    .to_string()
}

/// A whole Chat Completions stream: role chunk, deltas, finish, usage, [DONE].
fn stream_body(words: &[&str], prompt: u64, completion: u64) -> Reply {
    let mut events = vec![json!({ "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }] })
        .to_string()];
    events.extend(words.iter().map(|w| chunk(w)));
    events.push(
        json!({ "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] })
        .to_string(),
    );
    events.push(
        json!({ "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                "usage": { "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion } })
        .to_string(),
    );
    events.push("[DONE]".into());
    let events: Vec<(&str, &str)> = events.iter().map(|e| ("", e.as_str())).collect();
    Reply::sse(&events)
}

/// A City with an `openai` provider on a fake and a text model `gpt` on it.
async fn setup(
    adjust: impl FnOnce(&mut proto::Provider),
) -> (crate::common::TestCity, String, FakeUpstream) {
    let (city, token) = city().await;
    let fake = FakeUpstream::start().await;
    let base = format!("{}/v1", fake.url());
    provider(&city, "oai", ProviderKind::Openai, &base, Some(KEY), adjust).await;
    model(&city, "gpt", "oai", "gpt-4o-mini", Pathway::Text, &[]).await;
    (city, token, fake)
}

#[tokio::test]
async fn text_maps_messages_and_reports_upstream_usage() {
    let (city, token, fake) = setup(|_| {}).await;
    fake.push(Reply::ok(&completion("Hi there", "stop", 17, 3)));
    let answer = city
        .ai("s1", &token)
        .text(text_request("gpt", "Hello"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.text, "Hi there");
    assert_eq!(answer.model, "gpt");
    let usage = answer.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (17, 3));

    let request = fake.last();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.body["model"], "gpt-4o-mini");
    assert_eq!(request.body["max_completion_tokens"], 64);
    assert_eq!(
        request.body["messages"],
        json!([{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "Hello" }])
    );
    let rows = city.wait_for_rows(studio_filter("s1"), 1).await;
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (17, 3));
    assert_eq!(rows[0].provider_id, "oai");
}

#[tokio::test]
async fn length_finish_maps() {
    let (city, token, fake) = setup(|_| {}).await;
    fake.push(Reply::ok(&completion("Hi", "length", 1, 1)));
    let answer = city
        .ai("s1", &token)
        .text(text_request("gpt", "Hello"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.finish_reason, proto::FinishReason::Length as i32);
}

#[tokio::test]
async fn stream_split_at_every_byte_relays_deltas_and_exact_usage() {
    let (city, token, fake) = setup(|_| {}).await;
    fake.push(stream_body(&["Hel", "lo, ", "wörld"], 11, 5).split_every(1));
    let (messages, status) =
        collect_stream(&mut city.ai("s1", &token), stream_request("gpt", "Hi")).await;
    assert!(status.is_none(), "{status:?}");
    assert_eq!(joined(&messages), "Hello, wörld");
    let last = messages.last().unwrap();
    let usage = last.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (11, 5));
    let request = fake.last();
    assert_eq!(request.body["stream"], true);
    assert_eq!(
        request.body["stream_options"],
        json!({ "include_usage": true })
    );
    let rows = city.wait_for_rows(studio_filter("s1"), 1).await;
    assert_eq!(
        (
            rows[0].input_tokens,
            rows[0].output_tokens,
            rows[0].status_code
        ),
        (11, 5, 0)
    );
}

#[tokio::test]
async fn stream_split_at_arbitrary_boundaries_with_crlf() {
    let (city, token, fake) = setup(|_| {}).await;
    let body = stream_body(&["a", "b", "c"], 2, 3);
    let bytes: Vec<u8> = body.chunks[0].1.clone();
    let crlf = String::from_utf8(bytes)
        .unwrap()
        .replace('\n', "\r\n")
        .into_bytes();
    for cuts in [
        vec![1, 7, 8, 30],
        vec![5, 6, 100, 101, 102],
        vec![crlf.len() / 2],
    ] {
        fake.push(Reply::raw(200, "text/event-stream", crlf.clone()).split_at(&cuts));
        let (messages, status) =
            collect_stream(&mut city.ai("s1", &token), stream_request("gpt", "Hi")).await;
        assert!(status.is_none(), "{cuts:?}: {status:?}");
        assert_eq!(joined(&messages), "abc");
    }
}

#[tokio::test]
async fn image_decodes_b64_json() {
    let (city, token) = city().await;
    let fake = FakeUpstream::start().await;
    provider(
        &city,
        "oai",
        ProviderKind::Openai,
        &format!("{}/v1", fake.url()),
        Some(KEY),
        |_| {},
    )
    .await;
    model(&city, "dalle", "oai", "dall-e-3", Pathway::Image, &[]).await;
    let png = b"\x89PNG\r\n\x1a\nfake-image-bytes".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    fake.push(Reply::ok(
        &json!({ "created": 1, "data": [{ "b64_json": b64 }] }),
    ));
    let answer = city
        .ai("s1", &token)
        .image(proto::ImageRequest {
            model: "dalle".into(),
            prompt: "a cat".into(),
            count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.images[0].data, png);
    assert_eq!(answer.images[0].mime_type, "image/png");
    let request = fake.last();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/v1/images/generations");
    assert_eq!(request.body["response_format"], "b64_json");
    assert_eq!(request.body["n"], 1);
    assert_eq!(request.body["prompt"], "a cat");

    // gpt-image models always answer in base64 and refuse response_format.
    model(
        &city,
        "gpt-image",
        "oai",
        "gpt-image-1",
        Pathway::Image,
        &[],
    )
    .await;
    fake.push(Reply::ok(
        &json!({ "created": 1, "data": [{ "b64_json": b64 }] }),
    ));
    city.ai("s1", &token)
        .image(proto::ImageRequest {
            model: "gpt-image".into(),
            prompt: "a dog".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(fake.last().body.get("response_format").is_none());
}

#[tokio::test]
async fn openai_compatible_sends_max_tokens_to_its_base_url() {
    let (city, token) = city().await;
    let fake = FakeUpstream::start().await;
    let base = format!("{}/compat/v1", fake.url());
    provider(
        &city,
        "local",
        ProviderKind::OpenaiCompatible,
        &base,
        None,
        |p| {
            p.headers.insert("x-team".into(), "blue".into());
        },
    )
    .await;
    model(&city, "llama", "local", "llama3.2", Pathway::Text, &[]).await;
    fake.push(Reply::ok(&completion("ok", "stop", 4, 1)));
    let answer = city
        .ai("s1", &token)
        .text(text_request("llama", "Hi"))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().text, "ok");
    let request = fake.last();
    assert_eq!(request.uri, "/compat/v1/chat/completions");
    assert_eq!(request.body["max_tokens"], 64);
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("x-team"), Some("blue"));
}

#[tokio::test]
async fn openai_compatible_requires_a_base_url() {
    let (city, _token) = city().await;
    let err = city
        .admin()
        .upsert_provider(proto::UpsertProviderRequest {
            provider: Some(proto::Provider {
                id: "nourl".into(),
                kind: ProviderKind::OpenaiCompatible as i32,
                ..Default::default()
            }),
            api_key: None,
        })
        .await
        .unwrap_err();
    assert_error(&err, Code::InvalidArgument, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn error_statuses_map_to_codes_and_reasons() {
    let (city, token, fake) = setup(|_| {}).await;
    let error_body = |message: &str| json!({ "error": { "message": message, "type": "invalid_request_error", "code": null } });
    let cases = [
        (401, Code::Internal, "PROVIDER_AUTH_FAILED"),
        (403, Code::Internal, "PROVIDER_AUTH_FAILED"),
        (400, Code::InvalidArgument, "PROVIDER_REJECTED"),
    ];
    for (status, code, reason) in cases {
        fake.push(Reply::json(status, &error_body("nope")));
        let err = city
            .ai("s1", &token)
            .text(text_request("gpt", "Hi"))
            .await
            .unwrap_err();
        assert_error(&err, code, reason);
        assert!(
            !err.message().contains("nope"),
            "the upstream's words stay in the log"
        );
    }
    // Not retried: one request each.
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let (city, token, fake) = setup(|_| {}).await;
    for status in [500, 529] {
        fake.always(Reply::json(
            status,
            &json!({ "error": { "message": "overloaded" } }),
        ));
        let before = fake.requests().len();
        let err = city
            .ai("s1", &token)
            .text(text_request("gpt", "Hi"))
            .await
            .unwrap_err();
        assert_error(&err, Code::Unavailable, "PROVIDER_UNAVAILABLE");
        assert_eq!(
            fake.requests().len() - before,
            3,
            "three attempts for {status}"
        );
    }
    // A 503 then a success: the retry serves the call.
    fake.push(Reply::json(503, &json!({})));
    fake.push(Reply::ok(&completion("second time", "stop", 1, 2)));
    let answer = city
        .ai("s1", &token)
        .text(text_request("gpt", "Hi"))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().text, "second time");
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let (city, token, fake) = setup(|_| {}).await;
    // A short retry-after is waited for, then the call succeeds.
    fake.push(
        Reply::json(429, &json!({ "error": { "message": "slow down" } }))
            .header("retry-after", "1"),
    );
    fake.push(Reply::ok(&completion("ok", "stop", 1, 1)));
    let started = Instant::now();
    city.ai("s1", &token)
        .text(text_request("gpt", "Hi"))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 2);

    // A long one is not: the client gets RESOURCE_EXHAUSTED with RetryInfo.
    fake.push(
        Reply::json(429, &json!({ "error": { "message": "slow down" } }))
            .header("retry-after", "120"),
    );
    let err = city
        .ai("s1", &token)
        .text(text_request("gpt", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "PROVIDER_RATE_LIMITED");
    let retry = err.get_details_retry_info().expect("RetryInfo");
    assert_eq!(retry.retry_delay, Some(Duration::from_secs(120)));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn malformed_json_is_a_bad_response() {
    let (city, token, fake) = setup(|_| {}).await;
    fake.push(Reply::raw(
        200,
        "application/json",
        b"{\"choices\": [".to_vec(),
    ));
    let err = city
        .ai("s1", &token)
        .text(text_request("gpt", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::Internal, "PROVIDER_BAD_RESPONSE");
    fake.push(Reply::sse(&[("", "{not json")]));
    let (_, status) = collect_stream(&mut city.ai("s1", &token), stream_request("gpt", "Hi")).await;
    assert_error(&status.unwrap(), Code::Internal, "PROVIDER_BAD_RESPONSE");
}

#[tokio::test]
async fn an_event_over_one_mib_is_a_bad_response() {
    let (city, token, fake) = setup(|_| {}).await;
    let huge = "x".repeat((1 << 20) + 10);
    fake.push(
        Reply::raw(
            200,
            "text/event-stream",
            format!("data: {}\n\n", chunk(&huge)).into_bytes(),
        )
        .split_every(64 * 1024),
    );
    let (messages, status) =
        collect_stream(&mut city.ai("s1", &token), stream_request("gpt", "Hi")).await;
    assert!(messages.is_empty());
    assert_error(&status.unwrap(), Code::Internal, "PROVIDER_BAD_RESPONSE");
}

#[tokio::test]
async fn a_stream_cut_mid_event_fails_after_what_was_relayed_and_is_not_retried() {
    let (city, token, fake) = setup(|_| {}).await;
    let body = format!(
        "data: {}\n\ndata: {}\n\ndata: {{\"id\":\"c\",\"cho",
        chunk("one"),
        chunk(" two")
    );
    fake.push(Reply::raw(200, "text/event-stream", body.into_bytes()));
    let (messages, status) =
        collect_stream(&mut city.ai("s1", &token), stream_request("gpt", "Hi")).await;
    assert_eq!(joined(&messages), "one two");
    assert_error(&status.unwrap(), Code::Internal, "PROVIDER_BAD_RESPONSE");
    assert_eq!(
        fake.requests().len(),
        1,
        "never retried after a relayed token"
    );
    let rows = city.wait_for_rows(studio_filter("s1"), 1).await;
    assert_eq!(rows[0].output_tokens, 2, "the pieces relayed so far");
    assert_eq!(rows[0].error_reason, "PROVIDER_BAD_RESPONSE");
}

#[tokio::test]
async fn a_slow_first_byte_times_out() {
    let (city, token, fake) = setup(|p| p.first_byte_timeout = ms(200)).await;
    fake.always(Reply::ok(&completion("late", "stop", 1, 1)).delayed(Duration::from_secs(3)));
    let started = Instant::now();
    let err = city
        .ai("s1", &token)
        .text(text_request("gpt", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::DeadlineExceeded, "PROVIDER_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_stalled_stream_hits_the_first_byte_timeout_between_events() {
    let (city, token, fake) = setup(|p| p.first_byte_timeout = ms(300)).await;
    let first = format!("data: {}\n\n", chunk("early"));
    fake.push(
        Reply::raw(200, "text/event-stream", first.into_bytes())
            .then(Duration::from_secs(5), b"data: [DONE]\n\n"),
    );
    let (messages, status) =
        collect_stream(&mut city.ai("s1", &token), stream_request("gpt", "Hi")).await;
    assert_eq!(joined(&messages), "early");
    assert_error(&status.unwrap(), Code::DeadlineExceeded, "PROVIDER_TIMEOUT");
}

#[tokio::test]
async fn a_long_stream_hits_the_total_timeout() {
    let (city, token, fake) = setup(|p| {
        p.first_byte_timeout = ms(2000);
        p.total_timeout = ms(700);
    })
    .await;
    fake.push(
        stream_body(&["a", "b", "c", "d", "e", "f", "g", "h"], 1, 8)
            .split_every(40)
            .paced(Duration::from_millis(150)),
    );
    let started = Instant::now();
    let (_, status) = collect_stream(&mut city.ai("s1", &token), stream_request("gpt", "Hi")).await;
    assert_error(&status.unwrap(), Code::DeadlineExceeded, "PROVIDER_TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_connect_that_hangs_hits_the_connect_timeout() {
    // A listener whose accept queue is full drops further SYNs, so a new
    // connection neither succeeds nor fails until the client gives up.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(conn)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(conn);
        }
    }
    let (city, token) = city().await;
    provider(
        &city,
        "hang",
        ProviderKind::OpenaiCompatible,
        &format!("http://{addr}/v1"),
        None,
        |p| {
            p.connect_timeout = ms(300);
            p.total_timeout = ms(3000);
        },
    )
    .await;
    model(&city, "hang-model", "hang", "m", Pathway::Text, &[]).await;
    let started = Instant::now();
    let err = city
        .ai("s1", &token)
        .text(text_request("hang-model", "Hi"))
        .await
        .unwrap_err();
    assert!(matches!(err.code(), Code::DeadlineExceeded), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

#[tokio::test]
async fn a_failing_provider_falls_back_to_a_second_one() {
    let (city, token) = city().await;
    let down = FakeUpstream::start().await;
    let up = FakeUpstream::start().await;
    down.always(Reply::json(503, &json!({ "error": { "message": "down" } })));
    up.always(Reply::ok(&completion("from the backup", "stop", 5, 3)));
    provider(
        &city,
        "primary",
        ProviderKind::Openai,
        &format!("{}/v1", down.url()),
        Some(KEY),
        |_| {},
    )
    .await;
    provider(
        &city,
        "backup",
        ProviderKind::OpenaiCompatible,
        &format!("{}/v1", up.url()),
        Some(KEY),
        |_| {},
    )
    .await;
    model(&city, "backup-model", "backup", "b", Pathway::Text, &[]).await;
    model(
        &city,
        "main-model",
        "primary",
        "a",
        Pathway::Text,
        &["backup-model"],
    )
    .await;
    let answer = city
        .ai("s1", &token)
        .text(text_request("main-model", "Hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.text, "from the backup");
    assert_eq!(answer.model, "backup-model");
    let rows = city.wait_for_rows(studio_filter("s1"), 1).await;
    assert_eq!(
        (rows[0].model_id.as_str(), rows[0].provider_id.as_str()),
        ("backup-model", "backup")
    );
    assert_eq!(down.requests().len(), 3, "retried before falling back");
}

#[tokio::test]
async fn cancelling_a_stream_stops_the_upstream_and_records_the_relayed_tokens() {
    let (city, token, fake) = setup(|_| {}).await;
    let words: Vec<String> = (0..50).map(|i| format!("w{i} ")).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    fake.push(
        stream_body(&words, 3, 50)
            .split_every(120)
            .paced(Duration::from_millis(50)),
    );
    let mut stream = city
        .ai("s1", &token)
        .stream_text(stream_request("gpt", "Hi"))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert!(!first.delta.is_empty() || first.usage.is_none());
    drop(stream);
    fake.wait_abandoned().await;
    let rows = city.wait_for_rows(studio_filter("s1"), 1).await;
    assert_eq!(rows[0].error_reason, "CANCELLED");
    assert!(
        rows[0].output_tokens >= 1 && rows[0].output_tokens < 50,
        "{}",
        rows[0].output_tokens
    );
}

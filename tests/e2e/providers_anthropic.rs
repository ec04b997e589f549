//! The `anthropic` provider against a fake speaking the Messages API (JSON
//! and its SSE events), driven through a real City.

use crate::common::{assert_error, studio_filter};
use crate::fake_upstream::{
    FakeUpstream, KEY, Reply, city, collect_stream, joined, model, provider, stream_request,
    text_request,
};
use downcity::proto::{self, Pathway, ProviderKind};
use serde_json::json;
use tonic::Code;

async fn setup() -> (crate::common::TestCity, String, FakeUpstream) {
    let (city, token) = city().await;
    let fake = FakeUpstream::start().await;
    provider(
        &city,
        "ant",
        ProviderKind::Anthropic,
        &fake.url(),
        Some(KEY),
        |_| {},
    )
    .await;
    model(
        &city,
        "claude",
        "ant",
        "claude-sonnet-4-5",
        Pathway::Text,
        &[],
    )
    .await;
    (city, token, fake)
}

/// The documented event sequence of a streamed message.
fn message_stream(words: &[&str], input: u64, output: u64, stop: &str) -> Vec<(String, String)> {
    let mut events = vec![
        (
            "message_start".to_string(),
            json!({ "type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "content": [],
            "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": input, "output_tokens": 1 } } })
            .to_string(),
        ),
        (
            "content_block_start".into(),
            json!({ "type": "content_block_start", "index": 0,
            "content_block": { "type": "text", "text": "" } })
            .to_string(),
        ),
        ("ping".into(), json!({ "type": "ping" }).to_string()),
    ];
    for word in words {
        events.push((
            "content_block_delta".into(),
            json!({ "type": "content_block_delta", "index": 0,
            "delta": { "type": "text_delta", "text": word } })
            .to_string(),
        ));
    }
    events.push((
        "content_block_stop".into(),
        json!({ "type": "content_block_stop", "index": 0 }).to_string(),
    ));
    events.push((
        "message_delta".into(),
        json!({ "type": "message_delta",
        "delta": { "stop_reason": stop, "stop_sequence": null },
        "usage": { "output_tokens": output } })
        .to_string(),
    ));
    events.push((
        "message_stop".into(),
        json!({ "type": "message_stop" }).to_string(),
    ));
    events
}

fn sse(events: &[(String, String)]) -> Reply {
    let events: Vec<(&str, &str)> = events
        .iter()
        .map(|(e, d)| (e.as_str(), d.as_str()))
        .collect();
    Reply::sse(&events)
}

#[tokio::test]
async fn text_sends_system_top_level_and_the_key_in_x_api_key() {
    let (city, token, fake) = setup().await;
    fake.push(Reply::ok(&json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{ "type": "text", "text": "Hello" }, { "type": "text", "text": " back" }],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": { "input_tokens": 12, "output_tokens": 4 }
    })));
    let answer = city
        .ai("s1", &token)
        .text(text_request("claude", "Hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.text, "Hello back");
    let usage = answer.usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (12, 4));
    let request = fake.last();
    assert_eq!(request.method, "POST");
    assert_eq!(request.uri, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.body["system"], "Be brief.");
    assert_eq!(
        request.body["messages"],
        json!([{ "role": "user", "content": "Hi" }])
    );
    assert_eq!(request.body["max_tokens"], 64);
}

#[tokio::test]
async fn max_tokens_stop_is_length() {
    let (city, token, fake) = setup().await;
    fake.push(Reply::ok(&json!({
        "content": [{ "type": "text", "text": "cut" }], "stop_reason": "max_tokens",
        "usage": { "input_tokens": 1, "output_tokens": 64 }
    })));
    let answer = city
        .ai("s1", &token)
        .text(text_request("claude", "Hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.finish_reason, proto::FinishReason::Length as i32);
}

#[tokio::test]
async fn stream_events_split_anywhere_give_deltas_and_usage() {
    let (city, token, fake) = setup().await;
    for size in [1, 7, 1000] {
        fake.push(sse(&message_stream(&["Hel", "lo", "!"], 21, 6, "end_turn")).split_every(size));
        let (messages, status) =
            collect_stream(&mut city.ai("s1", &token), stream_request("claude", "Hi")).await;
        assert!(status.is_none(), "{status:?}");
        assert_eq!(joined(&messages), "Hello!");
        let usage = messages.last().unwrap().usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (21, 6));
    }
    assert_eq!(fake.last().body["stream"], true);
    let rows = city.wait_for_rows(studio_filter("s1"), 3).await;
    assert!(
        rows.iter()
            .all(|r| (r.input_tokens, r.output_tokens) == (21, 6))
    );
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_it_with_its_failure() {
    let (city, token, fake) = setup().await;
    let mut events = message_stream(&["partial"], 5, 1, "end_turn");
    events.truncate(4);
    events.push((
        "error".into(),
        json!({ "type": "error",
        "error": { "type": "overloaded_error", "message": "Overloaded" } })
        .to_string(),
    ));
    fake.push(sse(&events));
    let (messages, status) =
        collect_stream(&mut city.ai("s1", &token), stream_request("claude", "Hi")).await;
    assert_eq!(joined(&messages), "partial");
    assert_error(&status.unwrap(), Code::Unavailable, "PROVIDER_UNAVAILABLE");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_stream_without_message_stop_is_a_bad_response() {
    let (city, token, fake) = setup().await;
    let mut events = message_stream(&["a", "b"], 5, 2, "end_turn");
    events.pop();
    fake.push(sse(&events));
    let (messages, status) =
        collect_stream(&mut city.ai("s1", &token), stream_request("claude", "Hi")).await;
    assert_eq!(joined(&messages), "ab");
    assert_error(&status.unwrap(), Code::Internal, "PROVIDER_BAD_RESPONSE");
}

#[tokio::test]
async fn overloaded_529_and_401_map() {
    let (city, token, fake) = setup().await;
    let error = |kind: &str| json!({ "type": "error", "error": { "type": kind, "message": "m" } });
    fake.always(Reply::json(529, &error("overloaded_error")));
    let err = city
        .ai("s1", &token)
        .text(text_request("claude", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::Unavailable, "PROVIDER_UNAVAILABLE");
    fake.always(Reply::json(401, &error("authentication_error")));
    let err = city
        .ai("s1", &token)
        .text(text_request("claude", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::Internal, "PROVIDER_AUTH_FAILED");
}

#[tokio::test]
async fn an_image_model_on_anthropic_is_refused_up_front() {
    let (city, _token, fake) = setup().await;
    let err = city
        .admin()
        .upsert_model(proto::UpsertModelRequest {
            model: Some(proto::Model {
                id: "claude-image".into(),
                provider_id: "ant".into(),
                upstream_model: "claude-sonnet-4-5".into(),
                pathway: Pathway::Image as i32,
                enabled: Some(true),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_error(&err, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(crate::common::violated_fields(&err), ["model.pathway"]);
    assert!(err.message().contains("anthropic"), "{}", err.message());
    let listed = city
        .admin()
        .list_catalog_models(proto::ListCatalogModelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.models.iter().all(|m| m.id != "claude-image"));
    assert!(fake.requests().is_empty());
}

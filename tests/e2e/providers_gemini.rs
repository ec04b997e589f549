//! The `gemini` provider against a fake speaking the Gemini API
//! (generateContent, streamGenerateContent?alt=sse, Imagen predict), driven
//! through a real City.

use crate::common::{assert_error, studio_filter};
use crate::fake_upstream::{
    FakeUpstream, KEY, Reply, city, collect_stream, joined, model, provider, stream_request,
    text_request,
};
use base64::Engine;
use downcity::proto::{self, Pathway, ProviderKind};
use serde_json::{Value, json};
use tonic::Code;

async fn setup() -> (crate::common::TestCity, String, FakeUpstream) {
    let (city, token) = city().await;
    let fake = FakeUpstream::start().await;
    let base = format!("{}/v1beta", fake.url());
    provider(&city, "gem", ProviderKind::Gemini, &base, Some(KEY), |_| {}).await;
    model(
        &city,
        "flash",
        "gem",
        "gemini-2.5-flash",
        Pathway::Text,
        &[],
    )
    .await;
    model(
        &city,
        "imagen",
        "gem",
        "imagen-4.0-generate-001",
        Pathway::Image,
        &[],
    )
    .await;
    (city, token, fake)
}

fn response(text: &str, finish: Option<&str>, usage: Option<(u64, u64, u64)>) -> Value {
    let mut candidate =
        json!({ "content": { "role": "model", "parts": [{ "text": text }] }, "index": 0 });
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    let mut body = json!({ "candidates": [candidate], "modelVersion": "gemini-2.5-flash" });
    if let Some((prompt, candidates, thoughts)) = usage {
        body["usageMetadata"] = json!({ "promptTokenCount": prompt, "candidatesTokenCount": candidates,
            "thoughtsTokenCount": thoughts, "totalTokenCount": prompt + candidates + thoughts });
    }
    body
}

#[tokio::test]
async fn text_uses_system_instruction_and_the_key_header() {
    let (city, token, fake) = setup().await;
    fake.push(Reply::ok(&response("Hi!", Some("STOP"), Some((9, 2, 5)))));
    let answer = city
        .ai("s1", &token)
        .text(text_request("flash", "Hello"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.text, "Hi!");
    let usage = answer.usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (9, 7),
        "thinking tokens are output"
    );
    let request = fake.last();
    assert_eq!(
        request.uri,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(request.header("x-goog-api-key"), Some(KEY));
    assert!(!request.uri.contains("key="));
    assert_eq!(
        request.body["systemInstruction"],
        json!({ "parts": [{ "text": "Be brief." }] })
    );
    assert_eq!(
        request.body["contents"],
        json!([{ "role": "user", "parts": [{ "text": "Hello" }] }])
    );
    assert_eq!(request.body["generationConfig"]["maxOutputTokens"], 64);
}

#[tokio::test]
async fn stream_over_sse_split_anywhere() {
    let (city, token, fake) = setup().await;
    let chunks = [
        response("Hel", None, Some((8, 1, 0))).to_string(),
        response("lo", None, Some((8, 2, 0))).to_string(),
        response(" there", Some("STOP"), Some((8, 3, 0))).to_string(),
    ];
    for cuts in [vec![3, 4, 5, 90, 200], vec![1]] {
        let events: Vec<(&str, &str)> = chunks.iter().map(|c| ("", c.as_str())).collect();
        fake.push(Reply::sse(&events).split_at(&cuts));
        let (messages, status) =
            collect_stream(&mut city.ai("s1", &token), stream_request("flash", "Hi")).await;
        assert!(status.is_none(), "{status:?}");
        assert_eq!(joined(&messages), "Hello there");
        let usage = messages.last().unwrap().usage.unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (8, 3));
    }
    assert_eq!(
        fake.last().uri,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    let rows = city.wait_for_rows(studio_filter("s1"), 2).await;
    assert!(rows.iter().all(|r| r.status_code == 0));
}

#[tokio::test]
async fn a_stream_that_ends_without_a_finish_reason_is_a_bad_response() {
    let (city, token, fake) = setup().await;
    let chunk = response("Hel", None, None).to_string();
    fake.push(Reply::sse(&[("", &chunk)]));
    let (messages, status) =
        collect_stream(&mut city.ai("s1", &token), stream_request("flash", "Hi")).await;
    assert_eq!(joined(&messages), "Hel");
    assert_error(&status.unwrap(), Code::Internal, "PROVIDER_BAD_RESPONSE");
}

#[tokio::test]
async fn max_tokens_and_safety_finishes_map() {
    let (city, token, fake) = setup().await;
    fake.push(Reply::ok(&response(
        "cut",
        Some("MAX_TOKENS"),
        Some((1, 64, 0)),
    )));
    let answer = city
        .ai("s1", &token)
        .text(text_request("flash", "Hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.finish_reason, proto::FinishReason::Length as i32);
    fake.push(Reply::ok(
        &json!({ "promptFeedback": { "blockReason": "SAFETY" },
        "usageMetadata": { "promptTokenCount": 3 } }),
    ));
    let answer = city
        .ai("s1", &token)
        .text(text_request("flash", "Hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.finish_reason,
        proto::FinishReason::ContentFilter as i32
    );
    assert_eq!(answer.text, "");
}

#[tokio::test]
async fn imagen_predict_returns_images() {
    let (city, token, fake) = setup().await;
    let png = b"\x89PNG\r\n\x1a\nimagen".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    fake.push(Reply::ok(&json!({ "predictions": [
        { "bytesBase64Encoded": b64, "mimeType": "image/png" },
        { "bytesBase64Encoded": b64, "mimeType": "image/png" } ] })));
    let answer = city
        .ai("s1", &token)
        .image(proto::ImageRequest {
            model: "imagen".into(),
            prompt: "a fox".into(),
            count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.images.len(), 2);
    assert_eq!(answer.images[0].data, png);
    let request = fake.last();
    assert_eq!(
        request.uri,
        "/v1beta/models/imagen-4.0-generate-001:predict"
    );
    assert_eq!(request.body["instances"][0]["prompt"], "a fox");
    assert_eq!(request.body["parameters"]["sampleCount"], 2);
}

#[tokio::test]
async fn errors_map_and_429_carries_retry_info() {
    let (city, token, fake) = setup().await;
    let error = |code: u16, status: &str| json!({ "error": { "code": code, "message": "m", "status": status } });
    fake.push(Reply::json(429, &error(429, "RESOURCE_EXHAUSTED")).header("retry-after", "60"));
    let err = city
        .ai("s1", &token)
        .text(text_request("flash", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::ResourceExhausted, "PROVIDER_RATE_LIMITED");
    fake.push(Reply::json(403, &error(403, "PERMISSION_DENIED")));
    let err = city
        .ai("s1", &token)
        .text(text_request("flash", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::Internal, "PROVIDER_AUTH_FAILED");
    fake.push(Reply::raw(
        200,
        "application/json",
        b"<html>not json</html>".to_vec(),
    ));
    let err = city
        .ai("s1", &token)
        .text(text_request("flash", "Hi"))
        .await
        .unwrap_err();
    assert_error(&err, Code::Internal, "PROVIDER_BAD_RESPONSE");
}

#[tokio::test]
async fn gemini_image_models_answer_with_inline_data() {
    let (city, token, fake) = setup().await;
    model(
        &city,
        "nano",
        "gem",
        "gemini-2.5-flash-image",
        Pathway::Image,
        &[],
    )
    .await;
    let png = b"\x89PNG\r\n\x1a\ninline".to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    fake.always(Reply::ok(
        &json!({ "candidates": [{ "content": { "role": "model", "parts": [
        { "text": "Here it is" }, { "inlineData": { "mimeType": "image/png", "data": b64 } } ] },
        "finishReason": "STOP" }] }),
    ));
    let answer = city
        .ai("s1", &token)
        .image(proto::ImageRequest {
            model: "nano".into(),
            prompt: "a fox".into(),
            count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.images.len(), 2);
    assert_eq!(
        (
            answer.images[1].data.as_slice(),
            answer.images[1].mime_type.as_str()
        ),
        (png.as_slice(), "image/png")
    );
    let request = fake.last();
    assert_eq!(
        request.uri,
        "/v1beta/models/gemini-2.5-flash-image:generateContent"
    );
    assert_eq!(
        request.body["generationConfig"]["responseModalities"],
        json!(["TEXT", "IMAGE"])
    );
    assert_eq!(fake.requests().len(), 2, "one request an image");
}

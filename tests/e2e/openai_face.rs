//! The OpenAI-compatible HTTP face on City's main port, over real HTTP/1.1
//! (and HTTP/2) beside gRPC: status codes, OpenAI's error shape, SSE framing,
//! refusal of unsupported fields, the studio taken from the token, and one
//! usage row per call, like AIService.

use std::time::Duration;

use base64::Engine;
use downcity::proto::{self, LimitTarget, Limits};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::common::*;

const STUDIO: &str = "oa";
const USER: &str = "ada";

fn url(city: &TestCity, path: &str) -> String {
    format!("http://{}{path}", city.addr)
}

async fn post(city: &TestCity, token: &str, path: &str, body: Value) -> Response {
    crate::common::http_client()
        .build()
        .unwrap()
        .post(url(city, path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("City answers")
}

async fn chat(city: &TestCity, token: &str, body: Value) -> Response {
    post(city, token, "/v1/chat/completions", body).await
}

fn hello() -> Value {
    json!({"model": "mock-text", "messages": [{"role": "user", "content": "hello there"}]})
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

/// Asserts an OpenAI-shaped error: status, `error.type`, `error.code`
/// (City's reason, lower-cased) and `error.param`; returns the body.
async fn assert_openai_error(
    response: Response,
    status: StatusCode,
    kind: &str,
    code: &str,
    param: Option<&str>,
) -> Value {
    assert_eq!(response.status(), status);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = json_of(response).await;
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(
        error["param"],
        param.map_or(Value::Null, Value::from),
        "{body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// The body of a response, as JSON.
async fn json_of(response: Response) -> Value {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}: {text}"))
}

fn request_id(response: &Response) -> String {
    response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_completion_answers_in_openai_shape_and_leaves_one_row() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let response = chat(&city, &token, hello()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let id = request_id(&response);
    let body: Value = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["id"], format!("chatcmpl-{id}"));
    assert_eq!(body["model"], "mock-text");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Echo: hello there");
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 5);

    let rows = city.usage_rows(studio_filter(STUDIO)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].request_id, id);
    assert_eq!(rows[0].user_id, USER);
    assert_eq!(rows[0].model_id, "mock-text");
    assert_eq!((rows[0].input_tokens, rows[0].output_tokens), (2, 3));
}

/// The `data:` payloads of an SSE body, checking every event's framing.
fn sse_payloads(body: &str) -> Vec<String> {
    assert!(body.ends_with("\n\n"), "{body:?}");
    body.trim_end_matches("\n\n")
        .split("\n\n")
        .map(|event| {
            event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {event:?}"))
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_stream_is_sse_with_a_usage_chunk_and_done() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let body = with(hello(), "stream", json!(true));
    let body = with(body, "stream_options", json!({"include_usage": true}));
    let response = chat(&city, &token, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let id = request_id(&response);
    let payloads = sse_payloads(&response.text().await.unwrap());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"
        && c["id"] == format!("chatcmpl-{id}")
        && c["model"] == "mock-text"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Echo: hello there");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 3);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");

    let rows = city.wait_for_rows(studio_filter(STUDIO), 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].request_id, id);
    assert_eq!(rows[0].output_tokens, 3);
}

#[tokio::test]
async fn a_stream_without_include_usage_has_no_usage_chunk() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let response = chat(&city, &token, with(hello(), "stream", json!(true))).await;
    let payloads = sse_payloads(&response.text().await.unwrap());
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    assert!(
        payloads.iter().all(|p| !p.contains("\"usage\"")),
        "{payloads:?}"
    );
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_an_error_event_and_its_row() {
    let (city, token) = TestCity::start_with_model(
        STUDIO,
        USER,
        text_model("flaky", &[("fail_after_chunks", "1")]),
    )
    .await;
    let body = json!({"model": "flaky", "stream": true,
        "messages": [{"role": "user", "content": "one two three"}]});
    let response = chat(&city, &token, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let payloads = sse_payloads(&response.text().await.unwrap());
    let last: Value = serde_json::from_str(payloads.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "provider_unavailable",
        "{payloads:?}"
    );
    assert!(!payloads.iter().any(|p| p == "[DONE]"));
    let rows = city.wait_for_rows(studio_filter(STUDIO), 1).await;
    assert_eq!(rows[0].error_reason, "PROVIDER_UNAVAILABLE");
}

#[tokio::test]
async fn an_image_comes_back_as_b64_json_png() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let body = json!({"model": "mock-image", "prompt": "a red square", "n": 2,
        "response_format": "b64_json"});
    let response = post(&city, &token, "/v1/images/generations", body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = json_of(response).await;
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for image in data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(image["b64_json"].as_str().unwrap())
            .unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
    let rows = city.usage_rows(studio_filter(STUDIO)).await;
    assert_eq!((rows.len(), rows[0].images), (1, 2));
}

#[tokio::test]
async fn an_image_url_is_refused_naming_response_format() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let body = json!({"prompt": "a red square", "response_format": "url"});
    let response = post(&city, &token, "/v1/images/generations", body).await;
    let error = assert_openai_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_argument",
        Some("response_format"),
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("b64_json")
    );
    let response = post(
        &city,
        &token,
        "/v1/images/generations",
        json!({"prompt": "x", "n": 11}),
    )
    .await;
    assert_openai_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_argument",
        Some("n"),
    )
    .await;
    assert!(city.usage_rows(studio_filter(STUDIO)).await.is_empty());
}

#[tokio::test]
async fn models_are_the_studios_visible_models() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    city.upsert_model(proto::Model {
        enabled: Some(false),
        ..text_model("off-text", &[])
    })
    .await;
    let list = |http: reqwest::Client| {
        let url = url(&city, "/v1/models");
        let token = token.clone();
        async move {
            let response = http.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            json_of(response).await
        }
    };
    let body = list(crate::common::http_client().build().unwrap()).await;
    assert_eq!(body["object"], "list");
    let mut ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["mock-image", "mock-text"]);
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["object"] == "model")
    );
    // The same over HTTP/2 (prior knowledge), as gRPC uses the port.
    let http2 = crate::common::http_client()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    assert_eq!(list(http2).await, body);

    let one = crate::common::http_client()
        .build()
        .unwrap()
        .get(url(&city, "/v1/models/mock-text"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(one).await["id"], "mock-text");
    let off = crate::common::http_client()
        .build()
        .unwrap()
        .get(url(&city, "/v1/models/off-text"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_openai_error(
        off,
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "model_not_found",
        None,
    )
    .await;
}

#[tokio::test]
async fn credentials_are_refused_with_401_and_openai_errors() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let response = chat(&city, "dc_ut_nope.nope", hello()).await;
    assert_openai_error(
        response,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "token_invalid",
        None,
    )
    .await;
    let response = crate::common::http_client()
        .build()
        .unwrap()
        .post(url(&city, "/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(hello().to_string())
        .send()
        .await
        .unwrap();
    assert_openai_error(
        response,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "token_missing",
        None,
    )
    .await;
    // The token's own studio needs no header; another studio's id is refused.
    let response = crate::common::http_client()
        .build()
        .unwrap()
        .post(url(&city, "/v1/chat/completions"))
        .bearer_auth(&token)
        .header("x-studio-id", STUDIO)
        .header("content-type", "application/json")
        .body(hello().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    city.studio_with_user("other", "bob").await;
    let response = crate::common::http_client()
        .build()
        .unwrap()
        .post(url(&city, "/v1/chat/completions"))
        .bearer_auth(&token)
        .header("x-studio-id", "other")
        .header("content-type", "application/json")
        .body(hello().to_string())
        .send()
        .await
        .unwrap();
    assert_openai_error(
        response,
        StatusCode::FORBIDDEN,
        "permission_error",
        "studio_mismatch",
        None,
    )
    .await;
    assert_eq!(city.usage_rows(studio_filter(STUDIO)).await.len(), 1);
    assert!(city.usage_rows(studio_filter("other")).await.is_empty());
}

#[tokio::test]
async fn a_suspended_studio_is_403() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    city.admin()
        .update_studio(proto::UpdateStudioRequest {
            studio_id: STUDIO.into(),
            status: proto::StudioStatus::Suspended as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let response = chat(&city, &token, hello()).await;
    assert_openai_error(
        response,
        StatusCode::FORBIDDEN,
        "permission_error",
        "studio_suspended",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_disabled_or_unknown_model_is_404() {
    let (city, token) = TestCity::start_with_model(
        STUDIO,
        USER,
        proto::Model {
            enabled: Some(false),
            ..text_model("off-text", &[])
        },
    )
    .await;
    for model in ["off-text", "no-such-model"] {
        let response = chat(&city, &token, with(hello(), "model", json!(model))).await;
        assert_openai_error(
            response,
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            None,
        )
        .await;
    }
    assert!(city.usage_rows(studio_filter(STUDIO)).await.is_empty());
}

#[tokio::test]
async fn a_quota_hit_is_429_with_retry_after() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: STUDIO.into(),
            target: LimitTarget::Studio as i32,
            user_id: String::new(),
            limits: Some(Limits {
                requests_per_minute: Some(1),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    assert_eq!(chat(&city, &token, hello()).await.status(), StatusCode::OK);
    let response = chat(&city, &token, hello()).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_openai_error(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        "quota_exceeded",
        None,
    )
    .await;
    assert_eq!(city.usage_rows(studio_filter(STUDIO)).await.len(), 1);
}

#[tokio::test]
async fn unsupported_fields_are_refused_by_name_and_hints_ignored() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let refused = [
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f"}}]),
        ),
        ("n", json!(2)),
        ("logit_bias", json!({"1": 5})),
        ("presence_penalty", json!(0.5)),
        ("response_format", json!({"type": "json_object"})),
        ("temperature", json!(3.0)),
        ("stop", json!(vec!["x"; 17])),
    ];
    for (field, value) in refused {
        let response = chat(&city, &token, with(hello(), field, value)).await;
        assert_openai_error(
            response,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_argument",
            Some(field),
        )
        .await;
    }
    let tool_message =
        json!({"model": "mock-text", "messages": [{"role": "tool", "content": "x"}]});
    let response = chat(&city, &token, tool_message).await;
    assert_openai_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_argument",
        Some("messages[0].role"),
    )
    .await;
    let image_part = json!({"model": "mock-text", "messages": [{"role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "http://x"}}]}]});
    let response = chat(&city, &token, image_part).await;
    assert_openai_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_argument",
        Some("messages[0].content[0]"),
    )
    .await;
    let response = post(
        &city,
        &token,
        "/v1/chat/completions",
        json!("not an object"),
    )
    .await;
    assert_openai_error(
        response,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_argument",
        Some("body"),
    )
    .await;
    assert!(city.usage_rows(studio_filter(STUDIO)).await.is_empty());

    // Hints and defaults pass; text parts and the developer role are read.
    let body = json!({"model": "mock-text", "user": "u-1", "seed": 7, "n": 1,
        "presence_penalty": 0, "logprobs": false, "tools": null,
        "max_completion_tokens": 2,
        "messages": [{"role": "developer", "content": "be brief"},
                     {"role": "user", "name": "ada", "content": [{"type": "text", "text": "hello there"}]}]});
    let response = chat(&city, &token, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = json_of(response).await;
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hello");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(city.usage_rows(studio_filter(STUDIO)).await.len(), 1);
}

#[tokio::test]
async fn max_tokens_above_the_model_is_refused_by_its_openai_name() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    for field in ["max_tokens", "max_completion_tokens"] {
        let response = chat(&city, &token, with(hello(), field, json!(999_999))).await;
        assert_openai_error(
            response,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_argument",
            Some(field),
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_over_the_request_limit_is_413() {
    let city = TestCity::start_with(|config| config.server.max_request_bytes = 1024).await;
    let token = city.studio_with_user(STUDIO, USER).await;
    let big =
        json!({"model": "mock-text", "messages": [{"role": "user", "content": "x".repeat(2048)}]});
    let response = chat(&city, &token, big).await;
    assert_openai_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_request_error",
        "request_too_large",
        None,
    )
    .await;
    // gRPC on the same port still has its own limit and still works.
    let mut ai = city.ai(STUDIO, &token);
    ai.text(text_request("hi")).await.expect("gRPC beside HTTP");
}

#[tokio::test]
async fn unknown_paths_under_v1_are_openai_404s() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let response = post(&city, &token, "/v1/embeddings", json!({})).await;
    assert_openai_error(
        response,
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "not_found",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_city_refuses_new_calls_with_503() {
    let mut city = TestCity::start_with(|config| config.server.drain_delay_ms = 5_000).await;
    let token = city.studio_with_user(STUDIO, USER).await;
    let http = crate::common::http_client().build().unwrap();
    let endpoint = url(&city, "/v1/chat/completions");
    let send = || {
        http.post(&endpoint)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(hello().to_string())
            .send()
    };
    assert_eq!(send().await.unwrap().status(), StatusCode::OK);
    city.signal_stop();
    let began = std::time::Instant::now();
    let response = loop {
        let response = send().await.unwrap();
        if response.status() != StatusCode::OK {
            break response;
        }
        assert!(
            began.elapsed() < Duration::from_secs(4),
            "served while draining"
        );
    };
    assert_openai_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "server_error",
        "shutting_down",
        None,
    )
    .await;
}

#[tokio::test]
async fn a_client_that_leaves_a_stream_leaves_a_cancelled_row() {
    let (city, token) = TestCity::start_with_model(
        STUDIO,
        USER,
        text_model("slow", &[("chunk_delay_ms", "200")]),
    )
    .await;
    let body = json!({"model": "slow", "stream": true,
        "messages": [{"role": "user", "content": "one two three four five six"}]});
    let mut response = chat(&city, &token, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = response.chunk().await.unwrap().expect("the role chunk");
    assert!(first.starts_with(b"data: "));
    drop(response);
    let rows = city.wait_for_rows(studio_filter(STUDIO), 1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].error_reason, "CANCELLED");
}

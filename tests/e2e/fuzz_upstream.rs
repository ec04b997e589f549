//! Garbage from each provider kind's upstream, through a real City: a
//! malformed answer or stream fails the call with INTERNAL /
//! PROVIDER_BAD_RESPONSE and leaves exactly one usage row; absurd token
//! counts that parse are capped, never a negative or overflowing row.

use downcity::proto::{self, Pathway, ProviderKind};
use tonic::{Code, Status};

use crate::common::{TestCity, assert_error, studio_filter};
use crate::fake_upstream::{self as fake, FakeUpstream, Reply, collect_stream};

/// One provider kind: how its garbage and its huge counts look.
struct Kind {
    kind: ProviderKind,
    upstream_model: &'static str,
    /// A malformed unary answer.
    bad_json: &'static [u8],
    /// A stream that breaks its own format.
    bad_stream: &'static [u8],
    /// A valid unary answer whose every count is u64::MAX.
    huge_counts: serde_json::Value,
}

const MAX: u64 = u64::MAX;
/// What City believes of one call's count at most.
const CAP: i64 = u32::MAX as i64;

fn kinds() -> Vec<Kind> {
    use serde_json::json;
    let openai_huge = json!({
        "choices": [{ "message": { "content": "hi" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": MAX, "completion_tokens": MAX }
    });
    let openai = |kind| Kind {
        kind,
        upstream_model: "gpt-x",
        bad_json: b"{\"choices\": [{\"message\": 12",
        bad_stream: b"data: {\"choices\": [{\"delta\": {\"content\": 7}}]}\n\n",
        huge_counts: openai_huge.clone(),
    };
    vec![
        openai(ProviderKind::Openai),
        openai(ProviderKind::OpenaiCompatible),
        Kind {
            kind: ProviderKind::Anthropic,
            upstream_model: "claude-x",
            bad_json: b"{\"content\": \"not a list\"}",
            bad_stream: b"event: message_start\ndata: {\"type\": \"message_start\", \"message\": 7}\n\n",
            huge_counts: json!({
                "content": [{ "type": "text", "text": "hi" }],
                "stop_reason": "end_turn",
                "usage": { "input_tokens": MAX, "output_tokens": MAX }
            }),
        },
        Kind {
            kind: ProviderKind::Gemini,
            upstream_model: "gemini-x",
            bad_json: b"[1, 2, 3]",
            bad_stream: b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"hi\"}]}}]}\n\ndata: {\"candid",
            huge_counts: json!({
                "candidates": [{ "content": { "parts": [{ "text": "hi" }] }, "finishReason": "STOP" }],
                "usageMetadata": {
                    "promptTokenCount": MAX, "candidatesTokenCount": MAX, "thoughtsTokenCount": MAX
                }
            }),
        },
    ]
}

/// The one usage row of `request_id`.
async fn one_row(city: &TestCity, request_id: &str) -> proto::UsageRecord {
    let rows = city.usage_rows(studio_filter("s1")).await;
    let mine: Vec<_> = rows.iter().filter(|r| r.request_id == request_id).collect();
    assert_eq!(mine.len(), 1, "rows of {request_id}: {rows:?}");
    mine[0].clone()
}

fn request_id_of(status: &Status) -> String {
    use tonic_types::StatusExt;
    let info = status.get_details_error_info().expect("ErrorInfo");
    info.metadata
        .get("request_id")
        .cloned()
        .unwrap_or_else(|| panic!("no request id: {status:?}"))
}

async fn garbage_fails_with_one_row(
    city: &TestCity,
    token: &str,
    upstream: &FakeUpstream,
    kind: &Kind,
    model: &str,
) {
    let mut ai = city.ai("s1", token);
    upstream.push(Reply::raw(200, "application/json", kind.bad_json.to_vec()));
    let status = ai
        .text(fake::text_request(model, "hello"))
        .await
        .expect_err("a malformed answer fails the call");
    assert_error(&status, Code::Internal, "PROVIDER_BAD_RESPONSE");
    let row = one_row(city, &request_id_of(&status)).await;
    assert_eq!(row.status_code, Code::Internal as i32, "{row:?}");

    upstream.push(Reply::raw(
        200,
        "text/event-stream",
        kind.bad_stream.to_vec(),
    ));
    let (_, status) = collect_stream(&mut ai, fake::stream_request(model, "hello")).await;
    let status = status.expect("a malformed stream fails the call");
    assert_error(&status, Code::Internal, "PROVIDER_BAD_RESPONSE");
    let request_id = request_id_of(&status);
    city.wait_for_rows(studio_filter("s1"), 2).await;
    let row = one_row(city, &request_id).await;
    assert_eq!(row.status_code, Code::Internal as i32, "{row:?}");
}

async fn huge_counts_are_capped(
    city: &TestCity,
    token: &str,
    upstream: &FakeUpstream,
    kind: &Kind,
    model: &str,
) {
    upstream.push(Reply::ok(&kind.huge_counts));
    let answer = city
        .ai("s1", token)
        .text(fake::text_request(model, "hello"))
        .await
        .expect("counts that parse are an answer")
        .into_inner();
    let usage = answer.usage.expect("usage");
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (CAP, CAP),
        "{usage:?}"
    );
    let row = one_row(city, &answer.request_id).await;
    assert_eq!((row.input_tokens, row.output_tokens), (CAP, CAP), "{row:?}");
    assert!(row.cost_micros >= 0, "{row:?}");
}

#[tokio::test]
async fn each_kind_fails_garbage_cleanly_with_one_row_and_caps_huge_counts() {
    for kind in kinds() {
        let (city, token) = fake::city().await;
        let upstream = FakeUpstream::start().await;
        fake::provider(
            &city,
            "p",
            kind.kind,
            &upstream.url(),
            Some(fake::KEY),
            |_| {},
        )
        .await;
        fake::model(&city, "m", "p", kind.upstream_model, Pathway::Text, &[]).await;
        garbage_fails_with_one_row(&city, &token, &upstream, &kind, "m").await;
        huge_counts_are_capped(&city, &token, &upstream, &kind, "m").await;
        assert_eq!(city.usage_rows(studio_filter("s1")).await.len(), 3);
        city.stop().await;
    }
}

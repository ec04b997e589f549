//! A client that hangs up at any moment of a call leaves exactly one usage
//! row — CANCELLED, saying how its counts were obtained — and holds nothing:
//! during the before_call hook, while the upstream has not yet sent its
//! headers (Text, StreamText, Image), and mid-stream.

use std::future::Future;
use std::time::Duration;

use serde_json::json;
use tonic::Code;

use crate::common::receiver::{Before, Receiver};
use crate::common::{TestCity, studio_filter};
use crate::fake_upstream::{self, FakeUpstream, KEY, Reply, model, provider};
use downcity::proto::{self, LimitTarget, Limits};

/// How long the client waits before hanging up.
const HANG_UP: Duration = Duration::from_millis(300);
/// Longer than any test runs: the upstream or hook never answers in time.
const NEVER: Duration = Duration::from_secs(60);

/// Runs `call` and hangs up before it can end.
async fn hang_up<T>(call: impl Future<Output = T>) {
    let ended = tokio::time::timeout(HANG_UP, call).await;
    assert!(ended.is_err(), "the call ended before the client hung up");
}

/// A City with an `openai` provider on a fake whose every answer is late,
/// models `gpt` (text) and `dalle` (image) on it, a studio `s1` with a
/// daily token budget (so its standing shows holds), and a token of `u1`.
async fn late_upstream() -> (TestCity, String, FakeUpstream) {
    let (city, token) = fake_upstream::city().await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::ok(&json!({})).delayed(NEVER));
    provider(
        &city,
        "late",
        proto::ProviderKind::Openai,
        &format!("{}/v1", fake.url()),
        Some(KEY),
        |_| {},
    )
    .await;
    model(
        &city,
        "gpt",
        "late",
        "gpt-4o-mini",
        proto::Pathway::Text,
        &[],
    )
    .await;
    model(
        &city,
        "dalle",
        "late",
        "dall-e-3",
        proto::Pathway::Image,
        &[],
    )
    .await;
    budget(&city, "s1").await;
    (city, token, fake)
}

async fn budget(city: &TestCity, studio: &str) {
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: studio.into(),
            target: LimitTarget::Studio as i32,
            limits: Some(Limits {
                tokens_per_day: Some(1_000_000),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("set limits");
}

/// The studio's one usage row, once it is there: CANCELLED, counted as
/// `source` says; and nothing is held any more.
async fn one_cancelled_row(city: &TestCity, studio: &str, source: &str) -> proto::UsageRecord {
    let rows = city.wait_for_rows(studio_filter(studio), 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = rows.into_iter().next().unwrap();
    assert_eq!(row.status_code, Code::Cancelled as i32, "{row:?}");
    assert_eq!(
        row.metadata
            .get("downcity.usage_source")
            .map(String::as_str),
        Some(source),
        "{row:?}"
    );
    let standing = city
        .admin()
        .get_quota_standing(proto::GetQuotaStandingRequest {
            studio_id: studio.into(),
            ..Default::default()
        })
        .await
        .expect("standing")
        .into_inner();
    for limit in standing.limits {
        assert_eq!(limit.reserved, 0, "{limit:?}");
    }
    row
}

#[tokio::test]
async fn text_cancelled_while_the_upstream_withholds_its_headers() {
    let (city, token, fake) = late_upstream().await;
    let mut ai = city.ai("s1", &token);
    hang_up(ai.text(fake_upstream::text_request("gpt", "hello there"))).await;
    let row = one_cancelled_row(&city, "s1", "prompt_estimate").await;
    assert!(row.input_tokens > 0 && row.output_tokens == 0, "{row:?}");
    assert_eq!(fake.requests().len(), 1, "the upstream call had started");
}

#[tokio::test]
async fn stream_cancelled_while_the_upstream_withholds_its_headers() {
    let (city, token, fake) = late_upstream().await;
    let mut ai = city.ai("s1", &token);
    hang_up(ai.stream_text(fake_upstream::stream_request("gpt", "hello there"))).await;
    let row = one_cancelled_row(&city, "s1", "prompt_estimate").await;
    assert!(row.input_tokens > 0 && row.output_tokens == 0, "{row:?}");
    assert_eq!(fake.requests().len(), 1, "the upstream call had started");
}

#[tokio::test]
async fn image_cancelled_while_the_upstream_withholds_its_headers() {
    let (city, token, fake) = late_upstream().await;
    let mut ai = city.ai("s1", &token);
    let request = proto::ImageRequest {
        model: "dalle".into(),
        prompt: "a lighthouse".into(),
        count: Some(1),
        ..Default::default()
    };
    hang_up(ai.image(request)).await;
    let row = one_cancelled_row(&city, "s1", "prompt_estimate").await;
    assert_eq!(row.images, 0, "{row:?}");
    assert_eq!(fake.requests().len(), 1, "the upstream call had started");
}

#[tokio::test]
async fn text_cancelled_during_the_before_call_hook() {
    let (city, token) = fake_upstream::city().await;
    budget(&city, "s1").await;
    let receiver = Receiver::start(Before::Slow(NEVER), 0).await;
    city.admin()
        .upsert_hook(proto::UpsertHookRequest {
            hook: Some(proto::Hook {
                studio_id: "s1".into(),
                url: receiver.url(),
                events: vec![proto::HookEvent::BeforeCall as i32],
                timeout: Some(pbjson_types::Duration {
                    seconds: 50,
                    nanos: 0,
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("upsert hook");
    let mut ai = city.ai("s1", &token);
    hang_up(ai.text(crate::common::text_request("hello there"))).await;
    let row = one_cancelled_row(&city, "s1", "prompt_estimate").await;
    assert_eq!(row.model_id, downcity::server::MOCK_TEXT_MODEL);
    assert_eq!(receiver.received("before_call").len(), 1);
}

#[tokio::test]
async fn stream_cancelled_mid_stream_counts_what_was_relayed() {
    let (city, token) = fake_upstream::city().await;
    budget(&city, "s1").await;
    city.upsert_model(crate::common::text_model(
        "slow",
        &[("chunk_delay_ms", "100")],
    ))
    .await;
    let mut ai = city.ai("s1", &token);
    let request = proto::StreamTextRequest {
        model: "slow".into(),
        messages: vec![crate::common::user_message(&"word ".repeat(50))],
        ..Default::default()
    };
    let mut stream = ai.stream_text(request).await.expect("started").into_inner();
    let first = stream
        .message()
        .await
        .expect("a message")
        .expect("a message");
    assert!(!first.delta.is_empty() || first.model == "slow");
    drop(stream);
    let row = one_cancelled_row(&city, "s1", "relayed_so_far").await;
    assert!(row.output_tokens >= 1 && row.output_tokens < 50, "{row:?}");
}

//! Metrics end to end: a real Prometheus scrapes City's `/metrics` every
//! second, and PromQL returns exactly the calls the test made, by studio,
//! model, pathway and code: answered, refused at the door, unknown model,
//! over quota; the studio beyond `max_studio_labels` counted as `other`.

use std::collections::BTreeMap;

use downcity::proto::{self, LimitTarget, Limits};
use downcity::server::{MOCK_IMAGE_MODEL, MOCK_TEXT_MODEL};
use tonic::Code;

use crate::common::prometheus::Prometheus;
use crate::common::*;

type Series = BTreeMap<Vec<String>, f64>;

/// Each series of `promql`, keyed by the values of `labels`.
async fn series(prometheus: &Prometheus, promql: &str, labels: &[&str]) -> Series {
    prometheus
        .query(promql)
        .await
        .into_iter()
        .map(|(metric, value)| {
            let key = labels
                .iter()
                .map(|l| metric[*l].as_str().unwrap_or_default().to_string())
                .collect();
            (key, value)
        })
        .collect()
}

fn expect(rows: &[(&[&str], f64)]) -> Series {
    rows.iter()
        .map(|(key, value)| (key.iter().map(|s| s.to_string()).collect(), *value))
        .collect()
}

/// The calls: each studio in turn, so alpha and beta get their own labels.
async fn make_calls(city: &TestCity) {
    let alpha = city.studio_with_user("alpha", "ann").await;
    let beta = city.studio_with_user("beta", "bob").await;
    let gamma = city.studio_with_user("gamma", "gus").await;
    let mut ai = city.ai("alpha", &alpha);
    for _ in 0..2 {
        ai.text(text_request("hello")).await.expect("Text");
    }
    let mut stream = ai
        .stream_text(proto::StreamTextRequest {
            messages: vec![user_message("stream please")],
            ..Default::default()
        })
        .await
        .expect("StreamText")
        .into_inner();
    while stream.message().await.expect("stream message").is_some() {}
    let unknown = proto::TextRequest {
        model: "no-such-model".into(),
        ..text_request("hello")
    };
    let status = ai.text(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let no_messages = proto::TextRequest::default();
    let status = ai.text(no_messages).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let image = proto::ImageRequest {
        model: MOCK_IMAGE_MODEL.into(),
        prompt: "a lighthouse".into(),
        count: Some(1),
        ..Default::default()
    };
    ai.image(image).await.expect("Image");
    let status = city
        .ai("alpha", "not-a-token")
        .text(text_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let mut ai = city.ai("beta", &beta);
    ai.text(text_request("hello")).await.expect("Text");
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: "beta".into(),
            target: LimitTarget::UserDefault as i32,
            user_id: String::new(),
            limits: Some(Limits {
                requests_per_minute: Some(0),
                ..Default::default()
            }),
        })
        .await
        .expect("set limits");
    let status = ai.text(text_request("hello")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    city.ai("gamma", &gamma)
        .text(text_request("hello"))
        .await
        .expect("Text");
}

#[tokio::test]
async fn prometheus_sees_exactly_the_calls_made_by_studio_and_code() {
    let city = TestCity::start_with(|config| {
        config.metrics.listen = Some("127.0.0.1:0".into());
        config.metrics.max_studio_labels = 2;
    })
    .await;
    let target = city.metrics_addr.expect("a metrics listener");
    let Some(prometheus) = Prometheus::start(target).await else {
        return;
    };
    make_calls(&city).await;
    prometheus
        .wait_for("sum(downcity_ai_calls_total)", 9.0)
        .await;

    let calls = series(
        &prometheus,
        "downcity_ai_calls_total",
        &["studio", "model", "pathway", "code"],
    )
    .await;
    let text = MOCK_TEXT_MODEL;
    let expected = expect(&[
        (&["alpha", text, "text", "OK"], 3.0),
        (&["alpha", MOCK_IMAGE_MODEL, "image", "OK"], 1.0),
        (&["alpha", "unknown", "text", "NOT_FOUND"], 1.0),
        (&["alpha", text, "text", "INVALID_ARGUMENT"], 1.0),
        (&["beta", text, "text", "OK"], 1.0),
        (&["beta", text, "text", "RESOURCE_EXHAUSTED"], 1.0),
        (&["other", text, "text", "OK"], 1.0),
    ]);
    assert_eq!(calls, expected);

    let quota = series(
        &prometheus,
        "downcity_quota_rejections_total",
        &["scope", "limit"],
    )
    .await;
    assert_eq!(quota, expect(&[(&["user", "requests_per_minute"], 1.0)]));

    let grpc = series(
        &prometheus,
        r#"downcity_grpc_requests_total{method="/downcity.v1.AIService/Text"}"#,
        &["code"],
    )
    .await;
    let expected = expect(&[
        (&["OK"], 4.0),
        (&["NOT_FOUND"], 1.0),
        (&["INVALID_ARGUMENT"], 1.0),
        (&["RESOURCE_EXHAUSTED"], 1.0),
        (&["UNAUTHENTICATED"], 1.0),
    ]);
    assert_eq!(grpc, expected);

    let single = |promql: &'static str| {
        let prometheus = &prometheus;
        async move {
            let result = prometheus.query(promql).await;
            assert_eq!(result.len(), 1, "`{promql}`: {result:?}");
            result[0].1
        }
    };
    let ttft = r#"downcity_ai_time_to_first_token_seconds_count{model="mock-text"}"#;
    assert_eq!(single(ttft).await, 1.0, "one stream had a first token");
    let output = r#"sum(downcity_ai_output_tokens_total{studio="alpha"})"#;
    assert!(single(output).await > 0.0);
    assert_eq!(single("downcity_ai_calls_in_flight").await, 0.0);
    assert_eq!(single("downcity_ai_streams_open").await, 0.0);
    assert_eq!(single("downcity_build_info").await, 1.0);
    assert!(single("sum(downcity_usage_batch_rows_count)").await >= 1.0);
}

#[tokio::test]
async fn metrics_are_off_unless_a_listener_is_set() {
    let city = TestCity::start().await;
    assert!(city.metrics_addr.is_none());
}

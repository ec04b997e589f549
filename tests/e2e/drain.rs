//! Shutdown as SIGTERM starts it, with calls stuck on an upstream that never
//! answers: health turns NOT_SERVING at once, new calls are refused with
//! UNAVAILABLE, the stuck calls get the grace period, then are stopped and
//! recorded, and City is down within the grace plus two seconds.

use std::time::{Duration, Instant};

use serde_json::json;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::{TestCity, assert_error, studio_filter};
use crate::fake_upstream::{self, FakeUpstream, KEY, Reply, model, provider};
use downcity::proto;

const GRACE: Duration = Duration::from_secs(1);
const DRAIN_DELAY: Duration = Duration::from_millis(400);

async fn health(city: &TestCity, service: &str) -> i32 {
    HealthClient::new(city.channel())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers while draining")
        .into_inner()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_upstream_cannot_hold_shutdown_past_the_grace() {
    let master_key = downcity::keys::MasterKey::generate().to_base64();
    let adjust = |config: &mut downcity::config::Config| {
        config.master_key = Some(downcity::config::SecretText(master_key.clone()));
        config.server.shutdown_grace_secs = GRACE.as_secs();
        config.server.drain_delay_ms = DRAIN_DELAY.as_millis() as u64;
    };
    let mut city = TestCity::start_with(adjust).await;
    let token = city.studio_with_user("s1", "u1").await;
    let fake = FakeUpstream::start().await;
    fake.always(Reply::ok(&json!({})).delayed(Duration::from_secs(120)));
    let base = format!("{}/v1", fake.url());
    provider(
        &city,
        "stuck",
        proto::ProviderKind::Openai,
        &base,
        Some(KEY),
        |_| {},
    )
    .await;
    model(
        &city,
        "gpt",
        "stuck",
        "gpt-4o-mini",
        proto::Pathway::Text,
        &[],
    )
    .await;

    let ai = city.ai("s1", &token);
    let text = tokio::spawn({
        let mut ai = ai.clone();
        async move { ai.text(fake_upstream::text_request("gpt", "hello")).await }
    });
    let stream = tokio::spawn({
        let mut ai = ai.clone();
        async move {
            ai.stream_text(fake_upstream::stream_request("gpt", "hello"))
                .await
        }
    });
    // Both calls are under way once the upstream has their requests.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.requests().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the calls never reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let began = Instant::now();
    city.signal_stop();
    // Told over the connection already open: the listener stays up for the drain delay.
    let mut refused = ai.clone();
    let status = loop {
        let result = refused.text(crate::common::text_request("late")).await;
        match result {
            Err(status) if status.code() == Code::Unavailable => break status,
            // The signal is on its way: the call went through before it.
            Ok(_) => assert!(
                began.elapsed() < DRAIN_DELAY,
                "a new call was served while draining"
            ),
            Err(other) => panic!("{other:?}"),
        }
    };
    assert_error(&status, Code::Unavailable, "SHUTTING_DOWN");
    assert_eq!(health(&city, "").await, ServingStatus::NotServing as i32);
    assert_eq!(
        health(&city, "downcity.v1.AIService").await,
        ServingStatus::NotServing as i32
    );

    let text = text.await.unwrap().expect_err("the stuck call is stopped");
    assert_error(&text, Code::Unavailable, "SHUTTING_DOWN");
    let stream = stream
        .await
        .unwrap()
        .expect_err("the stuck stream is stopped");
    assert_error(&stream, Code::Unavailable, "SHUTTING_DOWN");
    let dir = city.stopped().await;
    let took = began.elapsed();
    assert!(
        took >= GRACE && took < DRAIN_DELAY + GRACE + Duration::from_secs(2),
        "shutdown took {took:?}"
    );

    // Both stuck calls left their row; the refused ones none.
    let city = TestCity::start_in(dir, adjust).await;
    let rows = city.usage_rows(studio_filter("s1")).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in rows {
        assert_eq!(row.model_id, "gpt");
        assert_eq!(row.status_code, Code::Cancelled as i32, "{row:?}");
        assert_eq!(
            row.metadata
                .get("downcity.usage_source")
                .map(String::as_str),
            Some("prompt_estimate")
        );
    }
}

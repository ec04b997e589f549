//! Quotas end to end: reserve-then-settle limits per studio and per user,
//! model allow-lists, standing, and usage that survives a restart.

use std::time::Duration;

use crate::common::*;
use downcity::proto::{self, LimitTarget, Limits};
use tonic::Code;
use tonic_types::StatusExt;

const PRICED: &str = "priced-text";
/// "hello world": 11 bytes → a prompt estimate of 6 + 4 = 10 tokens; the
/// mock answers "Echo: hello world", 2 input and 3 output tokens.
const PROMPT: &str = "hello world";
const MAX_TOKENS: i32 = 5;
/// One micro-unit per token in and out, so cost == tokens.
const MICROS_PER_MTOK: i64 = 1_000_000;
const RESERVED_COST: i64 = 10 + MAX_TOKENS as i64;
const ACTUAL_COST: i64 = 2 + 3;

async fn priced_city(studio: &str) -> TestCity {
    let city = TestCity::start().await;
    city.admin()
        .create_studio(proto::CreateStudioRequest {
            studio_id: studio.into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    city.upsert_model(proto::Model {
        input_micros_per_mtok: MICROS_PER_MTOK,
        output_micros_per_mtok: MICROS_PER_MTOK,
        ..text_model(PRICED, &[])
    })
    .await;
    city
}

fn priced_request() -> proto::TextRequest {
    proto::TextRequest {
        model: PRICED.into(),
        max_tokens: Some(MAX_TOKENS),
        ..text_request(PROMPT)
    }
}

async fn set_limits(
    city: &TestCity,
    studio: &str,
    target: LimitTarget,
    user: &str,
    limits: Limits,
) {
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: studio.into(),
            target: target as i32,
            user_id: user.into(),
            limits: Some(limits),
        })
        .await
        .expect("set limits");
}

async fn standing(city: &TestCity, studio: &str, user: &str) -> Vec<proto::LimitStanding> {
    city.admin()
        .get_quota_standing(proto::GetQuotaStandingRequest {
            studio_id: studio.into(),
            user_id: user.into(),
        })
        .await
        .expect("standing")
        .into_inner()
        .limits
}

/// Asserts a QUOTA_EXCEEDED status names this scope and limit, with RetryInfo.
#[track_caller]
fn assert_quota_exceeded(status: &tonic::Status, scope: &str, limit: &str) {
    assert_error(status, Code::ResourceExhausted, "QUOTA_EXCEEDED");
    let info = status.get_details_error_info().unwrap();
    assert_eq!(
        info.metadata.get("scope").map(String::as_str),
        Some(scope),
        "{status:?}"
    );
    assert_eq!(
        info.metadata.get("limit").map(String::as_str),
        Some(limit),
        "{status:?}"
    );
    assert!(info.metadata.contains_key("reset_time"), "{status:?}");
    assert!(
        status.get_details_retry_info().is_some(),
        "no RetryInfo: {status:?}"
    );
}

#[tokio::test]
async fn concurrent_calls_never_exceed_the_studio_budget() {
    const BUDGET: i64 = 1_000;
    let city = priced_city("busy").await;
    set_limits(
        &city,
        "busy",
        LimitTarget::Studio,
        "",
        Limits {
            cost_micros_per_day: Some(BUDGET),
            ..Default::default()
        },
    )
    .await;
    let mut tokens = Vec::new();
    for user in 0..50 {
        tokens.push(city.token_for("busy", &format!("user-{user}")).await);
    }
    let calls = (0..500).map(|i| {
        let mut ai = city.ai("busy", &tokens[i % tokens.len()]);
        tokio::spawn(async move { ai.text(priced_request()).await })
    });
    let mut admitted_cost = 0;
    let mut admitted = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            Ok(response) => {
                admitted += 1;
                admitted_cost += response.into_inner().usage.unwrap().cost_micros;
            }
            Err(status) => assert_quota_exceeded(&status, "studio", "cost_micros_per_day"),
        }
    }
    assert!(
        admitted_cost <= BUDGET,
        "admitted {admitted_cost} > {BUDGET}"
    );
    assert!(
        admitted >= BUDGET / RESERVED_COST,
        "only {admitted} admitted"
    );
    assert!(admitted < 500, "the budget admitted every call");
    assert_eq!(admitted_cost, admitted * ACTUAL_COST);

    // Rows and aggregates agree with the answers, and nothing stays reserved.
    let rows = city.usage_rows(studio_filter("busy")).await;
    assert_eq!(
        rows.len() as i64,
        admitted,
        "rejected calls must leave no row"
    );
    assert_eq!(
        rows.iter().map(|r| r.cost_micros).sum::<i64>(),
        admitted_cost
    );
    let total = city
        .admin()
        .aggregate_usage(proto::AggregateUsageRequest {
            filter: Some(studio_filter("busy")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    assert_eq!(total[0].cost_micros, admitted_cost);
    let limit = &standing(&city, "busy", "").await[0];
    assert_eq!((limit.used, limit.reserved), (admitted_cost, 0));
    assert_eq!(limit.remaining, BUDGET - admitted_cost);
}

#[tokio::test]
async fn a_user_limit_stops_one_user_and_a_studio_limit_stops_all() {
    let city = priced_city("pair").await;
    let alice = city.token_for("pair", "alice").await;
    let bob = city.token_for("pair", "bob").await;
    // Each call reserves 15 tokens and uses 5: alice fits two calls in 20.
    set_limits(
        &city,
        "pair",
        LimitTarget::User,
        "alice",
        Limits {
            tokens_per_day: Some(20),
            ..Default::default()
        },
    )
    .await;
    let mut alice_ai = city.ai("pair", &alice);
    let mut bob_ai = city.ai("pair", &bob);
    alice_ai.text(priced_request()).await.unwrap();
    alice_ai.text(priced_request()).await.unwrap();
    let status = alice_ai.text(priced_request()).await.unwrap_err();
    assert_quota_exceeded(&status, "user", "tokens_per_day");
    for _ in 0..3 {
        bob_ai
            .text(priced_request())
            .await
            .expect("bob is not limited");
    }

    // The studio has used 25 tokens; a studio limit of 30 stops everyone.
    set_limits(
        &city,
        "pair",
        LimitTarget::Studio,
        "",
        Limits {
            tokens_per_day: Some(30),
            ..Default::default()
        },
    )
    .await;
    let status = bob_ai.text(priced_request()).await.unwrap_err();
    assert_quota_exceeded(&status, "studio", "tokens_per_day");
    assert_eq!(city.usage_rows(studio_filter("pair")).await.len(), 5);

    let alice_standing = standing(&city, "pair", "alice").await;
    let user_limit = alice_standing.iter().find(|l| l.scope == "user").unwrap();
    assert_eq!(
        (user_limit.used, user_limit.reserved, user_limit.remaining),
        (10, 0, 10)
    );
    assert_eq!(user_limit.window, "day");
}

#[tokio::test]
async fn limit_changes_apply_to_the_next_call() {
    let city = priced_city("live").await;
    let token = city.token_for("live", "u").await;
    let mut ai = city.ai("live", &token);
    ai.text(priced_request()).await.unwrap();
    let zero = Limits {
        requests_per_minute: Some(0),
        ..Default::default()
    };
    set_limits(&city, "live", LimitTarget::UserDefault, "", zero).await;
    let status = ai.text(priced_request()).await.unwrap_err();
    assert_quota_exceeded(&status, "user", "requests_per_minute");
    // A user's own limits win over the studio-wide default.
    set_limits(
        &city,
        "live",
        LimitTarget::User,
        "u",
        Limits {
            requests_per_minute: Some(1_000),
            ..Default::default()
        },
    )
    .await;
    ai.text(priced_request()).await.unwrap();
    // Removing every limit lifts them at once.
    set_limits(&city, "live", LimitTarget::User, "u", Limits::default()).await;
    assert!(
        ai.text(priced_request()).await.is_err(),
        "back to the default of 0"
    );
    set_limits(
        &city,
        "live",
        LimitTarget::UserDefault,
        "",
        Limits::default(),
    )
    .await;
    ai.text(priced_request()).await.unwrap();
    let limits = city
        .admin()
        .get_limits(proto::GetLimitsRequest {
            studio_id: "live".into(),
            target: LimitTarget::UserDefault as i32,
            user_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .limits
        .unwrap();
    assert_eq!(limits, Limits::default());
}

#[tokio::test]
async fn streams_and_images_reserve_and_settle() {
    let city = priced_city("mixed").await;
    city.upsert_model(proto::Model {
        micros_per_image: 100,
        ..mock_model("priced-image", proto::Pathway::Image, &[])
    })
    .await;
    let token = city.token_for("mixed", "u").await;
    set_limits(
        &city,
        "mixed",
        LimitTarget::Studio,
        "",
        Limits {
            cost_micros_per_month: Some(250),
            ..Default::default()
        },
    )
    .await;
    let mut ai = city.ai("mixed", &token);
    let mut stream = ai
        .stream_text(proto::StreamTextRequest {
            model: PRICED.into(),
            messages: vec![user_message(PROMPT)],
            max_tokens: Some(MAX_TOKENS),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let image = |count| proto::ImageRequest {
        model: "priced-image".into(),
        prompt: "a cat".into(),
        count: Some(count),
        ..Default::default()
    };
    ai.image(image(2)).await.unwrap();
    // 5 + 200 used; one more image (100) would pass 250.
    let status = ai.image(image(1)).await.unwrap_err();
    assert_quota_exceeded(&status, "studio", "cost_micros_per_month");
    let month = &standing(&city, "mixed", "").await[0];
    assert_eq!(
        (month.used, month.reserved, month.window.as_str()),
        (205, 0, "month")
    );
}

#[tokio::test]
async fn allow_list_hides_and_refuses_other_models() {
    let (city, token) = TestCity::start_with_user("narrow", "u").await;
    let allow = |ids: &[&str]| proto::UpdateStudioRequest {
        studio_id: "narrow".into(),
        allowed_models: Some(proto::ModelIdList {
            model_ids: ids.iter().map(|id| id.to_string()).collect(),
        }),
        ..Default::default()
    };
    let studio = city
        .admin()
        .update_studio(allow(&["mock-text"]))
        .await
        .unwrap();
    assert_eq!(
        studio.into_inner().studio.unwrap().allowed_model_ids,
        ["mock-text"]
    );
    let mut ai = city.ai("narrow", &token);
    let models = ai
        .list_models(proto::ListModelsRequest::default())
        .await
        .unwrap();
    let ids: Vec<_> = models
        .into_inner()
        .models
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["mock-text"]);
    ai.text(text_request("hi")).await.expect("allowed model");
    let image = proto::ImageRequest {
        prompt: "a cat".into(),
        ..Default::default()
    };
    let status = ai.image(image.clone()).await.unwrap_err();
    assert_error(&status, Code::NotFound, "MODEL_NOT_FOUND");
    assert_eq!(city.usage_rows(studio_filter("narrow")).await.len(), 1);

    let status = city
        .admin()
        .update_studio(allow(&["mock-text", "nosuch"]))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["allowed_models.model_ids[1]"]);
    city.admin().update_studio(allow(&[])).await.unwrap();
    ai.image(image).await.expect("every model allowed again");
}

#[tokio::test]
async fn a_studio_key_sets_its_own_limits_only() {
    let city = priced_city("own").await;
    city.admin()
        .create_studio(proto::CreateStudioRequest {
            studio_id: "other".into(),
            display_name: String::new(),
        })
        .await
        .unwrap();
    let key = city
        .admin()
        .create_studio_key(proto::CreateStudioKeyRequest {
            studio_id: "own".into(),
            display_name: "backend".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let request = |studio: &str| proto::SetLimitsRequest {
        studio_id: studio.into(),
        target: LimitTarget::UserDefault as i32,
        user_id: String::new(),
        limits: Some(Limits {
            tokens_per_day: Some(100),
            ..Default::default()
        }),
    };
    let mut backend = city.admin_with(Some(&key));
    backend
        .set_limits(request("own"))
        .await
        .expect("its own studio");
    let status = backend.set_limits(request("other")).await.unwrap_err();
    assert_error(&status, Code::PermissionDenied, "PERMISSION_DENIED");
    let status = city
        .admin()
        .set_limits(proto::SetLimitsRequest {
            target: LimitTarget::Unspecified as i32,
            ..request("own")
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["target"]);
}

#[tokio::test]
async fn usage_windows_survive_a_restart() {
    let city = priced_city("durable").await;
    let token = city.token_for("durable", "u").await;
    set_limits(
        &city,
        "durable",
        LimitTarget::Studio,
        "",
        Limits {
            tokens_per_day: Some(16),
            ..Default::default()
        },
    )
    .await;
    let mut ai = city.ai("durable", &token);
    ai.text(priced_request()).await.unwrap();
    let dir = city.stop().await;

    let city = TestCity::start_in(dir, |_| {}).await;
    let day = &standing(&city, "durable", "").await[0];
    assert_eq!((day.used, day.reserved), (ACTUAL_COST, 0));
    // 5 used + 15 reserved > 16: the restart did not forget the usage.
    let status = city
        .ai("durable", &token)
        .text(priced_request())
        .await
        .unwrap_err();
    assert_quota_exceeded(&status, "studio", "tokens_per_day");
}

#[tokio::test]
async fn a_caller_that_hangs_up_leaves_a_cancelled_row_and_no_hold() {
    let city = priced_city("impatient").await;
    city.upsert_model(text_model("slow-text", &[("latency_ms", "300")]))
        .await;
    let token = city.token_for("impatient", "u").await;
    set_limits(
        &city,
        "impatient",
        LimitTarget::Studio,
        "",
        Limits {
            tokens_per_day: Some(1_000),
            ..Default::default()
        },
    )
    .await;
    let mut request = tonic::Request::new(proto::TextRequest {
        model: "slow-text".into(),
        max_tokens: Some(MAX_TOKENS),
        ..text_request("wait for me")
    });
    request.set_timeout(Duration::from_millis(50));
    let status = city
        .ai("impatient", &token)
        .text(request)
        .await
        .unwrap_err();
    // The client gives up (its own timer may win the race with the server's).
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    // The call stopped with its caller; its guard settled it on the prompt
    // estimate and recorded it as cancelled.
    let rows = city.wait_for_rows(studio_filter("impatient"), 1).await;
    assert_eq!(rows[0].status_code, Code::Cancelled as i32, "{:?}", rows[0]);
    assert_eq!(rows[0].output_tokens, 0);
    assert!(rows[0].input_tokens > 0);
    assert_eq!(
        rows[0]
            .metadata
            .get("downcity.usage_source")
            .map(String::as_str),
        Some("prompt_estimate")
    );
    let day = &standing(&city, "impatient", "").await[0];
    assert_eq!(day.reserved, 0);
    assert_eq!(day.used, rows[0].input_tokens + rows[0].output_tokens);
}

#[tokio::test]
async fn aggregates_group_by_hour_and_month() {
    let (city, token) = TestCity::start_with_user("periods", "u").await;
    let mut ai = city.ai("periods", &token);
    for _ in 0..3 {
        ai.text(text_request("one two")).await.unwrap();
    }
    let rows = city
        .admin()
        .aggregate_usage(proto::AggregateUsageRequest {
            filter: Some(studio_filter("periods")),
            group_by: vec![
                proto::UsageDimension::Month as i32,
                proto::UsageDimension::Hour as i32,
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let calls: i64 = rows.iter().map(|r| r.calls).sum();
    assert_eq!(calls, 3);
    let today = utc_day(downcity::domain::now_ms());
    assert!(rows.iter().all(|r| r.month == today[..7]), "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.hour.starts_with(&today) && r.hour.len() == 13),
        "{rows:?}"
    );
}

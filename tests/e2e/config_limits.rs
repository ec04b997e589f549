//! The config file's `[[limits]]`: written to the store at start, before the
//! caches load, and refused when they name a studio that does not exist.

use crate::common::{ADMIN_KEY, TestCity, assert_error};
use downcity::config::{Config, LimitsConfig};
use downcity::proto::{self, LimitTarget, Limits};
use downcity::server::City;
use tonic::Code;

async fn limits_of(city: &TestCity, studio: &str, target: LimitTarget, user: &str) -> Limits {
    city.admin()
        .get_limits(proto::GetLimitsRequest {
            studio_id: studio.into(),
            target: target.into(),
            user_id: user.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .limits
        .unwrap_or_default()
}

fn entry(studio: &str) -> LimitsConfig {
    LimitsConfig {
        studio: studio.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn config_limits_bind_from_the_first_call() {
    let city = TestCity::start().await;
    let token = city.studio_with_user("acme", "u1").await;
    let dir = city.stop().await;

    let city = TestCity::start_in(dir, |config| {
        config.limits = vec![
            LimitsConfig {
                requests_per_minute: Some(600),
                cost_micros_per_month: Some(9_000_000),
                ..entry("acme")
            },
            LimitsConfig {
                user_default: true,
                tokens_per_day: Some(1),
                ..entry("acme")
            },
            LimitsConfig {
                user: Some("u2".into()),
                tokens_per_minute: Some(50),
                ..entry("acme")
            },
        ];
    })
    .await;
    let studio = limits_of(&city, "acme", LimitTarget::Studio, "").await;
    assert_eq!(
        studio,
        Limits {
            requests_per_minute: Some(600),
            cost_micros_per_month: Some(9_000_000),
            ..Default::default()
        }
    );
    let default = limits_of(&city, "acme", LimitTarget::UserDefault, "").await;
    assert_eq!(default.tokens_per_day, Some(1));
    let u2 = limits_of(&city, "acme", LimitTarget::User, "u2").await;
    assert_eq!(u2.tokens_per_minute, Some(50));

    // The quota cache loaded them: u1's first call is over its default.
    let status = city
        .ai("acme", &token)
        .text(crate::common::text_request("hello"))
        .await
        .unwrap_err();
    assert_error(&status, Code::ResourceExhausted, "QUOTA_EXCEEDED");
    let standing = city
        .admin()
        .get_quota_standing(proto::GetQuotaStandingRequest {
            studio_id: "acme".into(),
            user_id: "u1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .limits;
    let limits: Vec<_> = standing
        .iter()
        .map(|s| (s.scope.as_str(), s.limit.as_str(), s.value))
        .collect();
    assert_eq!(
        limits,
        [
            ("studio", "requests_per_minute", 600),
            ("studio", "cost_micros_per_month", 9_000_000),
            ("user", "tokens_per_day", 1),
        ]
    );
    city.stop().await;
}

#[tokio::test]
async fn an_empty_entry_removes_the_targets_limits() {
    let city = TestCity::start().await;
    city.studio_with_user("acme", "u1").await;
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: "acme".into(),
            target: LimitTarget::Studio.into(),
            user_id: String::new(),
            limits: Some(Limits {
                tokens_per_day: Some(5),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let dir = city.stop().await;

    let city = TestCity::start_in(dir, |config| config.limits = vec![entry("acme")]).await;
    let studio = limits_of(&city, "acme", LimitTarget::Studio, "").await;
    assert_eq!(studio, Limits::default());
    city.stop().await;
}

#[tokio::test]
async fn a_limit_for_a_missing_studio_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        admin_key: Some(ADMIN_KEY.into()),
        limits: vec![LimitsConfig {
            tokens_per_day: Some(5),
            ..entry("ghost")
        }],
        ..Config::default()
    };
    let err = City::start(config).await.err().expect("the start fails");
    let message = format!("{err:#}");
    assert!(
        message.contains("studio `ghost` does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_entry_stops_the_start_and_writes_nothing() {
    let city = TestCity::start().await;
    city.studio_with_user("acme", "u1").await;
    let dir = city.stop().await;

    let config = Config {
        data_dir: dir.path().to_path_buf(),
        admin_key: Some(ADMIN_KEY.into()),
        limits: vec![
            LimitsConfig {
                tokens_per_day: Some(5),
                ..entry("acme")
            },
            LimitsConfig {
                user: Some("u1".into()),
                user_default: true,
                ..entry("acme")
            },
        ],
        ..Config::default()
    };
    let err = City::start(config).await.err().expect("the start fails");
    let message = format!("{err:#}");
    assert!(message.contains("not both"), "{message}");

    let config = Config {
        data_dir: dir.path().to_path_buf(),
        admin_key: Some(ADMIN_KEY.into()),
        limits: vec![entry("acme"), entry("acme")],
        ..Config::default()
    };
    let err = City::start(config).await.err().expect("the start fails");
    assert!(format!("{err:#}").contains("more than once"), "{err:#}");

    let city = TestCity::start_in(dir, |_| {}).await;
    let studio = limits_of(&city, "acme", LimitTarget::Studio, "").await;
    assert_eq!(studio, Limits::default(), "nothing was written");
    city.stop().await;
}

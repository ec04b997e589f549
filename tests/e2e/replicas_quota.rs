//! Quotas across replicas: three Cities on one PostgreSQL database share one
//! ledger (PostgreSQL counters), so one budget binds 500 concurrent calls
//! spread over all three, and standing, rows and aggregates agree after.

use std::time::{Duration, Instant};

use crate::common::pg::FreshDatabase;
use crate::common::*;
use downcity::config::SecretText;
use downcity::keys::MasterKey;
use downcity::proto::{self, LimitTarget, Limits};
use tonic::Code;

const STUDIO: &str = "shared";
const PRICED: &str = "priced-text";
const USERS: usize = 5;
/// "hello world" with max_tokens 5: reserves 15 micro-units, uses 5 (see quotas.rs).
const MAX_TOKENS: i32 = 5;
const RESERVED_COST: i64 = 15;
const ACTUAL_COST: i64 = 5;
const BUDGET: i64 = 1_000;

/// `n` Cities on one fresh database, sharing a master key.
pub async fn replicas(n: usize) -> Option<(FreshDatabase, Vec<TestCity>)> {
    let database = FreshDatabase::create().await?;
    let master_key = MasterKey::generate().to_base64();
    let mut cities = Vec::new();
    for _ in 0..n {
        let (url, key) = (database.url.clone(), master_key.clone());
        cities.push(
            TestCity::start_with(move |config| {
                config.store.url = Some(SecretText(url));
                config.master_key = Some(SecretText(key));
            })
            .await,
        );
    }
    Some((database, cities))
}

fn priced_request() -> proto::TextRequest {
    proto::TextRequest {
        model: PRICED.into(),
        max_tokens: Some(MAX_TOKENS),
        ..text_request("hello world")
    }
}

/// Polls `ready` until it holds (another replica hears of a write within 1 s).
async fn until(what: &str, mut ready: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ready().await {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: not seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn standing(city: &TestCity) -> Vec<proto::LimitStanding> {
    city.admin()
        .get_quota_standing(proto::GetQuotaStandingRequest {
            studio_id: STUDIO.into(),
            user_id: String::new(),
        })
        .await
        .expect("standing")
        .into_inner()
        .limits
}

/// A priced model and `USERS` tokens made on the first replica, usable on all.
async fn prepare(cities: &[TestCity]) -> Vec<String> {
    let a = &cities[0];
    a.admin()
        .create_studio(req::create_studio(STUDIO, "Shared"))
        .await
        .unwrap();
    a.upsert_model(proto::Model {
        input_micros_per_mtok: 1_000_000,
        output_micros_per_mtok: 1_000_000,
        ..text_model(PRICED, &[])
    })
    .await;
    let mut tokens = Vec::new();
    for user in 0..USERS {
        tokens.push(a.token_for(STUDIO, &format!("user-{user}")).await);
    }
    for city in cities {
        for token in &tokens {
            until("a token and model on every replica", async || {
                city.ai(STUDIO, token).text(priced_request()).await.is_ok()
            })
            .await;
        }
    }
    tokens
}

#[tokio::test]
async fn one_budget_binds_500_concurrent_calls_over_three_replicas() {
    let Some((_database, cities)) = replicas(3).await else {
        return;
    };
    let tokens = prepare(&cities).await;
    // The warm-up calls count too: the budget is on top of them.
    let warm = cities.len() as i64 * USERS as i64 * ACTUAL_COST;
    cities[0]
        .admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: STUDIO.into(),
            target: LimitTarget::Studio as i32,
            user_id: String::new(),
            limits: Some(Limits {
                cost_micros_per_day: Some(warm + BUDGET),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    for city in &cities {
        until("the budget on every replica", async || {
            standing(city).await.first().map(|l| l.value) == Some(warm + BUDGET)
        })
        .await;
    }

    let started = Instant::now();
    let calls: Vec<_> = (0..500)
        .map(|i| {
            let mut ai = cities[i % 3].ai(STUDIO, &tokens[i % USERS]);
            tokio::spawn(async move { ai.text(priced_request()).await })
        })
        .collect();
    let mut admitted = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.into_inner().usage.unwrap().cost_micros, ACTUAL_COST);
                admitted += 1;
            }
            Err(status) => assert_error(&status, Code::ResourceExhausted, "QUOTA_EXCEEDED"),
        }
    }
    eprintln!(
        "500 calls over 3 replicas: {admitted} admitted in {:?}",
        started.elapsed()
    );
    let admitted_cost = admitted * ACTUAL_COST;
    assert!(
        admitted_cost <= BUDGET,
        "admitted {admitted_cost} > {BUDGET}"
    );
    // At least as many as fit reserved at once (15 each, settling to 5).
    assert!(
        admitted >= BUDGET / RESERVED_COST,
        "only {admitted} admitted: the budget was not used"
    );
    assert!(admitted < 500, "the budget admitted every call");

    // Every replica sees the same standing, and it agrees with the rows.
    let rows = cities[1].usage_rows(studio_filter(STUDIO)).await;
    let row_cost: i64 = rows.iter().map(|r| r.cost_micros).sum();
    assert_eq!(rows.len() as i64, warm / ACTUAL_COST + admitted);
    assert_eq!(row_cost, warm + admitted_cost);
    let total = cities[2]
        .admin()
        .aggregate_usage(proto::AggregateUsageRequest {
            filter: Some(studio_filter(STUDIO)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    assert_eq!(total[0].cost_micros, row_cost);
    for city in &cities {
        let limit = &standing(city).await[0];
        assert_eq!((limit.used, limit.reserved), (row_cost, 0));
    }
    for city in cities {
        city.stop().await;
    }
}

/// Waits, if the current minute is nearly over, for the next one to start:
/// a burst counted against a per-minute limit must fit in one minute.
async fn a_fresh_minute() {
    let into_minute = downcity::domain::now_ms() % 60_000;
    if into_minute > 45_000 {
        tokio::time::sleep(Duration::from_millis((60_000 - into_minute) as u64 + 10)).await;
    }
}

async fn set_rpm(city: &TestCity, target: LimitTarget, user_id: &str, rpm: i64) {
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: STUDIO.into(),
            target: target as i32,
            user_id: user_id.into(),
            limits: Some(Limits {
                requests_per_minute: Some(rpm),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
}

/// One replica's claims go to the ledger in groups (one stored-function call
/// for all that wait): 3N calls at once against a budget of N requests make
/// groups that mix admitted and refused claims, each answered on its own.
#[tokio::test]
async fn grouped_claims_admit_exactly_the_budget_and_refuse_the_rest() {
    const BUDGET_CALLS: usize = 40;
    const USER_0_CALLS: i64 = 3;
    let Some((_database, cities)) = replicas(1).await else {
        return;
    };
    let city = &cities[0];
    city.admin()
        .create_studio(req::create_studio(STUDIO, "Shared"))
        .await
        .unwrap();
    city.upsert_model(text_model(PRICED, &[])).await;
    let mut tokens = Vec::new();
    for user in 0..USERS {
        tokens.push(city.token_for(STUDIO, &format!("user-{user}")).await);
    }
    set_rpm(city, LimitTarget::Studio, "", BUDGET_CALLS as i64).await;
    set_rpm(city, LimitTarget::User, "user-0", USER_0_CALLS).await;

    a_fresh_minute().await;
    let calls: Vec<_> = (0..3 * BUDGET_CALLS)
        .map(|i| {
            let mut ai = city.ai(STUDIO, &tokens[i % USERS]);
            tokio::spawn(async move { (i % USERS, ai.text(priced_request()).await) })
        })
        .collect();
    let mut admitted = [0i64; USERS];
    for call in calls {
        let (user, answer) = call.await.unwrap();
        let status = match answer {
            Ok(_) => {
                admitted[user] += 1;
                continue;
            }
            Err(status) => status,
        };
        assert_error(&status, Code::ResourceExhausted, "QUOTA_EXCEEDED");
        let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
        let metadata = |key: &str| info.metadata.get(key).map(String::as_str);
        assert_eq!(metadata("limit"), Some("requests_per_minute"));
        // Only user-0 has a limit of its own.
        let scope = metadata("scope");
        assert!(
            scope == Some("studio") || (user == 0 && scope == Some("user")),
            "user-{user} refused as {scope:?}"
        );
    }
    assert_eq!(admitted.iter().sum::<i64>(), BUDGET_CALLS as i64);
    assert!(
        admitted[0] <= USER_0_CALLS,
        "user-0 admitted {}",
        admitted[0]
    );

    // The rows, the studio's standing and user-0's agree.
    let rows = city.usage_rows(studio_filter(STUDIO)).await;
    assert_eq!(rows.len(), BUDGET_CALLS);
    let rpm = |limits: Vec<proto::LimitStanding>, scope: &str| {
        let limit = limits
            .into_iter()
            .find(|l| l.scope == scope && l.limit == "requests_per_minute")
            .expect("an rpm standing");
        (limit.used, limit.reserved)
    };
    assert_eq!(
        rpm(standing(city).await, "studio"),
        (BUDGET_CALLS as i64, 0)
    );
    let user_0 = city
        .admin()
        .get_quota_standing(proto::GetQuotaStandingRequest {
            studio_id: STUDIO.into(),
            user_id: "user-0".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .limits;
    assert_eq!(rpm(user_0, "user"), (admitted[0], 0));
    for city in cities {
        city.stop().await;
    }
}

//! The checks of the `Store` conformance suite: each takes a `&dyn Store` on
//! an empty store, so every backend runs the same ones.

use std::collections::BTreeMap;
use std::future::Future;

use downcity::domain::{
    DeliveryRecord, ModelRecord, Pathway, ProviderKind, ProviderRecord, StudioKeyRecord,
    StudioRecord, StudioStatus, UsageRow, UserTokenRecord,
};
use downcity::error::{Error, Result};
use downcity::store::{PageQuery, Store};

mod hooks;
mod records;
mod usage;

pub use hooks::*;
pub use records::*;
pub use usage::*;

/// Commits rows (and deliveries) the way the usage writer does: on a
/// thread of its own, since a sink blocks.
pub async fn commit_usage(store: &dyn Store, rows: &[UsageRow], outbox: &[DeliveryRecord]) {
    let mut sink = store.usage_sink().await.unwrap();
    let (rows, outbox) = (rows.to_vec(), outbox.to_vec());
    tokio::task::spawn_blocking(move || sink.insert(&rows, &outbox).unwrap())
        .await
        .unwrap();
}

pub async fn insert_usage(store: &dyn Store, rows: &[UsageRow]) {
    commit_usage(store, rows, &[]).await;
}

pub const DAY_MS: i64 = 86_400_000;
/// 2024-01-01T00:00:00Z.
pub const START_MS: i64 = 1_704_067_200_000;
pub const HOUR_MS: i64 = 3_600_000;

pub fn studio(id: &str) -> StudioRecord {
    StudioRecord {
        id: id.to_string(),
        display_name: format!("Studio {id}"),
        status: StudioStatus::Active,
        create_ms: START_MS,
        update_ms: START_MS,
        allowed_origins: Vec::new(),
    }
}

fn hash(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| seed.wrapping_add(i as u8))
}

pub fn studio_key(id: &str, studio_id: &str) -> StudioKeyRecord {
    StudioKeyRecord {
        id: id.to_string(),
        studio_id: studio_id.to_string(),
        display_name: format!("key {id}"),
        secret_hash: hash(id.len() as u8),
        create_ms: START_MS + 1,
        revoke_ms: None,
    }
}

pub fn user_token(id: &str, studio_id: &str, user_id: &str) -> UserTokenRecord {
    UserTokenRecord {
        id: id.to_string(),
        studio_id: studio_id.to_string(),
        user_id: user_id.to_string(),
        secret_hash: hash(7),
        create_ms: START_MS + 2,
        expire_ms: Some(START_MS + DAY_MS),
        revoke_ms: None,
    }
}

pub fn provider(id: &str) -> ProviderRecord {
    ProviderRecord {
        id: id.to_string(),
        kind: ProviderKind::Mock,
        base_url: format!("http://{id}.invalid"),
        update_ms: START_MS,
        headers: Default::default(),
        timeouts: Default::default(),
        api_key: None,
        api_key_update_ms: None,
    }
}

pub fn model(id: &str, provider_id: &str, pathway: Pathway) -> ModelRecord {
    ModelRecord {
        id: id.to_string(),
        display_name: format!("Model {id}"),
        provider_id: provider_id.to_string(),
        upstream_model: format!("upstream-{id}"),
        pathway,
        enabled: true,
        max_output_tokens: 4096,
        max_input_tokens: 128_000,
        input_micros_per_mtok: 150_000,
        output_micros_per_mtok: 600_000,
        micros_per_image: 40_000,
        fallback_model_ids: vec![],
        options: BTreeMap::new(),
        update_ms: START_MS,
    }
}

/// Varied rows, one an hour from START_MS, so they span about 42 days.
pub fn usage_rows(n: i64) -> Vec<UsageRow> {
    (0..n)
        .map(|i| {
            let failed = i % 10 == 0;
            UsageRow {
                request_id: format!("req-{i:05}"),
                studio_id: format!("s{}", i % 3),
                user_id: format!("u{}", i % 5),
                model_id: format!("m{}", i % 4),
                provider_id: "p1".to_string(),
                pathway: if i % 4 == 3 { "image" } else { "text" }.to_string(),
                input_tokens: i,
                output_tokens: 2 * i + 1,
                images: i % 2,
                cost_micros: 3 * i,
                status_code: if failed { 14 } else { 0 },
                error_reason: if failed { "PROVIDER_UNAVAILABLE" } else { "" }.to_string(),
                latency_us: 1000 + i,
                ttft_us: (i % 3 == 0).then_some(500 + i),
                create_ms: START_MS + i * HOUR_MS + 17,
                metadata: if i % 7 == 0 {
                    BTreeMap::from([("trace".to_string(), i.to_string())])
                } else {
                    BTreeMap::new()
                },
            }
        })
        .collect()
}

pub fn assert_not_found(result: Result<impl std::fmt::Debug>, resource: &str, id: &str) {
    match result {
        Err(Error::NotFound { resource: r, id: i }) => {
            assert_eq!((r, i.as_str()), (resource, id));
        }
        other => panic!("expected NotFound {resource} `{id}`, got {other:?}"),
    }
}

pub fn assert_already_exists(result: Result<()>, resource: &str, id: &str) {
    match result {
        Err(Error::AlreadyExists { resource: r, id: i }) => {
            assert_eq!((r, i.as_str()), (resource, id));
        }
        other => panic!("expected AlreadyExists {resource} `{id}`, got {other:?}"),
    }
}

pub fn assert_precondition(result: Result<()>, reason: &str) {
    match result {
        Err(err) => assert_eq!(
            (err.code(), err.reason()),
            (tonic::Code::FailedPrecondition, reason),
            "{err:?}"
        ),
        other => panic!("expected FailedPrecondition {reason}, got {other:?}"),
    }
}

/// Follows keyset pages of `limit` to the end, checking each page's size.
pub async fn all_pages<T, F, Fut>(limit: u32, id: fn(&T) -> &str, mut list: F) -> Vec<T>
where
    F: FnMut(PageQuery) -> Fut,
    Fut: Future<Output = Result<Vec<T>>>,
{
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = list(PageQuery { after, limit }).await.unwrap();
        assert!(page.len() <= limit as usize);
        let full = page.len() == limit as usize;
        after = page.last().map(|last| id(last).to_string());
        all.extend(page);
        if !full {
            return all;
        }
    }
}

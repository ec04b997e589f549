//! The conformance suite of the `Store` trait.
//!
//! Every check in `conformance` takes a `&dyn Store` on an empty store, so
//! another backend runs the same suite by invoking `conformance_tests!` with
//! its own opener. The SQLite backend runs it on a real file in a temp dir.

use std::path::Path;

use downcity::store::Store;
use downcity::store::sqlite::SqliteStore;
use tempfile::TempDir;

mod conformance {
    use std::collections::{BTreeMap, BTreeSet};
    use std::future::Future;

    use downcity::domain::{
        GroupBy, ModelRecord, Pathway, ProviderKind, ProviderRecord, StudioKeyRecord, StudioRecord,
        StudioStatus, UsageAggregateRow, UsageFilter, UsageRow, UserTokenRecord,
    };
    use downcity::error::{Error, Result};
    use downcity::store::{PageQuery, Store};

    /// Commits rows the way the usage writer does.
    pub async fn insert_usage(store: &dyn Store, rows: &[UsageRow]) {
        let mut sink = store.usage_sink().await.unwrap();
        sink.insert(rows, &[]).unwrap();
    }

    pub const DAY_MS: i64 = 86_400_000;
    /// 2024-01-01T00:00:00Z.
    pub const START_MS: i64 = 1_704_067_200_000;
    const HOUR_MS: i64 = 3_600_000;

    pub fn studio(id: &str) -> StudioRecord {
        StudioRecord {
            id: id.to_string(),
            display_name: format!("Studio {id}"),
            status: StudioStatus::Active,
            create_ms: START_MS,
            update_ms: START_MS,
        }
    }

    fn hash(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| seed.wrapping_add(i as u8))
    }

    fn studio_key(id: &str, studio_id: &str) -> StudioKeyRecord {
        StudioKeyRecord {
            id: id.to_string(),
            studio_id: studio_id.to_string(),
            display_name: format!("key {id}"),
            secret_hash: hash(id.len() as u8),
            create_ms: START_MS + 1,
            revoke_ms: None,
        }
    }

    fn user_token(id: &str, studio_id: &str, user_id: &str) -> UserTokenRecord {
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

    fn provider(id: &str) -> ProviderRecord {
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

    fn model(id: &str, provider_id: &str, pathway: Pathway) -> ModelRecord {
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

    fn assert_not_found(result: Result<impl std::fmt::Debug>, resource: &str, id: &str) {
        match result {
            Err(Error::NotFound { resource: r, id: i }) => {
                assert_eq!((r, i.as_str()), (resource, id));
            }
            other => panic!("expected NotFound {resource} `{id}`, got {other:?}"),
        }
    }

    fn assert_already_exists(result: Result<()>, resource: &str, id: &str) {
        match result {
            Err(Error::AlreadyExists { resource: r, id: i }) => {
                assert_eq!((r, i.as_str()), (resource, id));
            }
            other => panic!("expected AlreadyExists {resource} `{id}`, got {other:?}"),
        }
    }

    fn assert_precondition(result: Result<()>, reason: &str) {
        match result {
            Err(Error::FailedPrecondition { reason: r, .. }) => assert_eq!(r, reason),
            other => panic!("expected FailedPrecondition {reason}, got {other:?}"),
        }
    }

    /// Follows keyset pages of `limit` to the end, checking each page's size.
    async fn all_pages<T, F, Fut>(limit: u32, id: fn(&T) -> &str, mut list: F) -> Vec<T>
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

    pub async fn settings(store: &dyn Store) {
        assert_eq!(store.get_setting("admin_key_hash").await.unwrap(), None);
        store.put_setting("admin_key_hash", "one").await.unwrap();
        store.put_setting("admin_key_hash", "two").await.unwrap();
        let value = store.get_setting("admin_key_hash").await.unwrap();
        assert_eq!(value.as_deref(), Some("two"));
    }

    pub async fn studios(store: &dyn Store) {
        let ids: Vec<String> = (0..25).map(|i| format!("studio-{i:02}")).collect();
        for id in ids.iter().rev() {
            store.insert_studio(&studio(id)).await.unwrap();
        }
        let mut duplicate = studio("studio-03");
        duplicate.display_name = "other".to_string();
        assert_already_exists(store.insert_studio(&duplicate).await, "studio", "studio-03");
        assert_eq!(
            store.get_studio("studio-03").await.unwrap(),
            Some(studio("studio-03"))
        );
        assert_eq!(store.get_studio("nope").await.unwrap(), None);

        let mut updated = studio("studio-07");
        updated.display_name = "Renamed".to_string();
        updated.status = StudioStatus::Suspended;
        updated.update_ms = START_MS + 5;
        store.update_studio(&updated).await.unwrap();
        assert_eq!(store.get_studio("studio-07").await.unwrap(), Some(updated));
        assert_not_found(store.update_studio(&studio("nope")).await, "studio", "nope");

        let listed = all_pages(
            7,
            |s: &StudioRecord| &s.id,
            |page| async move { store.list_studios(&page).await },
        )
        .await;
        let listed: Vec<String> = listed.into_iter().map(|s| s.id).collect();
        assert_eq!(listed, ids);
        let first = PageQuery {
            after: None,
            limit: 2,
        };
        assert_eq!(store.list_studios(&first).await.unwrap().len(), 2);
    }

    pub async fn studio_keys(store: &dyn Store) {
        store.insert_studio(&studio("s1")).await.unwrap();
        store.insert_studio(&studio("s2")).await.unwrap();
        for id in ["k5", "k3", "k1", "k4", "k2"] {
            store
                .insert_studio_key(&studio_key(id, "s1"))
                .await
                .unwrap();
        }
        store
            .insert_studio_key(&studio_key("k6", "s2"))
            .await
            .unwrap();
        let duplicate = studio_key("k2", "s2");
        assert_already_exists(
            store.insert_studio_key(&duplicate).await,
            "studio key",
            "k2",
        );
        let orphan = studio_key("k9", "ghost");
        assert_not_found(store.insert_studio_key(&orphan).await, "studio", "ghost");
        assert_eq!(
            store.get_studio_key("k3").await.unwrap(),
            Some(studio_key("k3", "s1"))
        );
        assert_eq!(store.get_studio_key("k9").await.unwrap(), None);

        // Revocation keeps its first time.
        let revoked = store.revoke_studio_key("k1", START_MS + 100).await.unwrap();
        assert_eq!(revoked.revoke_ms, Some(START_MS + 100));
        let again = store.revoke_studio_key("k1", START_MS + 200).await.unwrap();
        assert_eq!(again, revoked);
        assert_eq!(store.get_studio_key("k1").await.unwrap(), Some(revoked));
        assert_not_found(store.revoke_studio_key("k9", 1).await, "studio key", "k9");

        let listed = all_pages(
            2,
            |k: &StudioKeyRecord| &k.id,
            |page| async move { store.list_studio_keys("s1", &page).await },
        )
        .await;
        let ids: Vec<&str> = listed.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(ids, ["k1", "k2", "k3", "k4", "k5"]);
        let page = PageQuery {
            after: None,
            limit: 10,
        };
        let other = store.list_studio_keys("s2", &page).await.unwrap();
        assert_eq!(other, vec![studio_key("k6", "s2")]);
    }

    pub async fn user_tokens(store: &dyn Store) {
        store.insert_studio(&studio("s1")).await.unwrap();
        store.insert_studio(&studio("s2")).await.unwrap();
        for i in 0..12 {
            let token = user_token(&format!("t{i:02}"), "s1", &format!("u{}", i % 3));
            store.insert_user_token(&token).await.unwrap();
        }
        let mut forever = user_token("t99", "s2", "u0");
        forever.expire_ms = None;
        store.insert_user_token(&forever).await.unwrap();
        let duplicate = user_token("t05", "s2", "u9");
        assert_already_exists(
            store.insert_user_token(&duplicate).await,
            "user token",
            "t05",
        );
        let orphan = user_token("t50", "ghost", "u0");
        assert_not_found(store.insert_user_token(&orphan).await, "studio", "ghost");
        assert_eq!(store.get_user_token("t99").await.unwrap(), Some(forever));
        assert_eq!(store.get_user_token("t50").await.unwrap(), None);

        let revoked = store.revoke_user_token("t04", START_MS + 7).await.unwrap();
        assert_eq!(revoked.revoke_ms, Some(START_MS + 7));
        let again = store.revoke_user_token("t04", START_MS + 9).await.unwrap();
        assert_eq!(again.revoke_ms, Some(START_MS + 7));
        assert_not_found(store.revoke_user_token("t50", 1).await, "user token", "t50");

        let of_studio = all_pages(
            5,
            |t: &UserTokenRecord| &t.id,
            |page| async move { store.list_user_tokens("s1", None, &page).await },
        )
        .await;
        assert_eq!(of_studio.len(), 12);
        assert!(of_studio.windows(2).all(|w| w[0].id < w[1].id));
        let of_user = all_pages(
            2,
            |t: &UserTokenRecord| &t.id,
            |page| async move { store.list_user_tokens("s1", Some("u1"), &page).await },
        )
        .await;
        let ids: Vec<&str> = of_user.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["t01", "t04", "t07", "t10"]);
        assert_eq!(of_user[1], revoked);
        let page = PageQuery {
            after: None,
            limit: 9,
        };
        let none = store
            .list_user_tokens("s2", Some("u1"), &page)
            .await
            .unwrap();
        assert!(none.is_empty());
    }

    pub async fn providers_and_models(store: &dyn Store) {
        for id in ["p3", "p1", "p2"] {
            store.upsert_provider(&provider(id)).await.unwrap();
        }
        let mut moved = provider("p1");
        moved.base_url = "http://elsewhere.invalid".to_string();
        moved.update_ms = START_MS + 1;
        store.upsert_provider(&moved).await.unwrap();
        let providers = all_pages(
            2,
            |p: &ProviderRecord| &p.id,
            |page| async move { store.list_providers(&page).await },
        )
        .await;
        assert_eq!(providers, vec![moved, provider("p2"), provider("p3")]);

        let orphan = model("m0", "ghost", Pathway::Text);
        assert_not_found(store.upsert_model(&orphan).await, "provider", "ghost");
        let mut m1 = model("m1", "p1", Pathway::Text);
        m1.fallback_model_ids = vec!["m2".to_string(), "gone".to_string()];
        m1.options = BTreeMap::from([("temperature".to_string(), "0.5".to_string())]);
        let m2 = model("m2", "p2", Pathway::Image);
        store.upsert_model(&m2).await.unwrap();
        store
            .upsert_model(&model("m1", "p3", Pathway::Text))
            .await
            .unwrap();
        store.upsert_model(&m1).await.unwrap();
        let mut m2_moved = m2.clone();
        m2_moved.provider_id = "ghost".to_string();
        assert_not_found(store.upsert_model(&m2_moved).await, "provider", "ghost");
        let models = all_pages(
            1,
            |m: &ModelRecord| &m.id,
            |page| async move { store.list_models(&page).await },
        )
        .await;
        assert_eq!(models, vec![m1.clone(), m2.clone()]);

        // A provider goes only once no model uses it.
        assert_precondition(store.delete_provider("p1").await, "PROVIDER_IN_USE");
        store.delete_provider("p3").await.unwrap();
        assert_not_found(store.delete_provider("p3").await, "provider", "p3");
        assert_not_found(store.delete_model("nope").await, "model", "nope");

        // Deleting a model that others name as fallback is allowed.
        store.delete_model("m2").await.unwrap();
        store.delete_provider("p2").await.unwrap();
        store.delete_model("m1").await.unwrap();
        store.delete_provider("p1").await.unwrap();
        let page = PageQuery {
            after: None,
            limit: 10,
        };
        assert!(store.list_models(&page).await.unwrap().is_empty());
    }

    pub async fn defaults(store: &dyn Store) {
        store.upsert_provider(&provider("p1")).await.unwrap();
        for (id, pathway) in [
            ("t1", Pathway::Text),
            ("t2", Pathway::Text),
            ("i1", Pathway::Image),
        ] {
            store.upsert_model(&model(id, "p1", pathway)).await.unwrap();
        }
        assert_not_found(
            store.set_default_model(Pathway::Text, "nope").await,
            "model",
            "nope",
        );
        store.set_default_model(Pathway::Text, "t1").await.unwrap();
        store.set_default_model(Pathway::Image, "i1").await.unwrap();
        assert_precondition(store.delete_model("t1").await, "MODEL_IS_DEFAULT");
        // Updating a default model in place is fine.
        let mut renamed = model("t1", "p1", Pathway::Text);
        renamed.display_name = "Renamed".to_string();
        store.upsert_model(&renamed).await.unwrap();

        store.set_default_model(Pathway::Text, "t2").await.unwrap();
        let defaults = store.snapshot().await.unwrap().defaults;
        assert_eq!(defaults.len(), 2);
        assert_eq!(defaults[&Pathway::Text], "t2");
        assert_eq!(defaults[&Pathway::Image], "i1");
        store.delete_model("t1").await.unwrap();
        assert_precondition(store.delete_model("t2").await, "MODEL_IS_DEFAULT");
    }

    pub async fn snapshot(store: &dyn Store) {
        let empty = store.snapshot().await.unwrap();
        assert!(empty.studios.is_empty() && empty.models.is_empty() && empty.defaults.is_empty());

        store.insert_studio(&studio("s1")).await.unwrap();
        store
            .insert_studio_key(&studio_key("k1", "s1"))
            .await
            .unwrap();
        store
            .insert_user_token(&user_token("t1", "s1", "u1"))
            .await
            .unwrap();
        store.upsert_provider(&provider("p1")).await.unwrap();
        store
            .upsert_model(&model("m1", "p1", Pathway::Text))
            .await
            .unwrap();
        store.set_default_model(Pathway::Text, "m1").await.unwrap();

        let snapshot = store.snapshot().await.unwrap();
        assert_eq!(snapshot.studios, vec![studio("s1")]);
        assert_eq!(snapshot.studio_keys, vec![studio_key("k1", "s1")]);
        assert_eq!(snapshot.user_tokens, vec![user_token("t1", "s1", "u1")]);
        assert_eq!(snapshot.providers, vec![provider("p1")]);
        assert_eq!(snapshot.models, vec![model("m1", "p1", Pathway::Text)]);
        assert_eq!(
            snapshot.defaults.get(&Pathway::Text).map(String::as_str),
            Some("m1")
        );
    }

    fn matches(filter: &UsageFilter, row: &UsageRow) -> bool {
        let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        is(&filter.studio_id, &row.studio_id)
            && is(&filter.user_id, &row.user_id)
            && is(&filter.model_id, &row.model_id)
            && filter.start_ms.is_none_or(|start| row.create_ms >= start)
            && filter.end_ms.is_none_or(|end| row.create_ms < end)
    }

    /// Follows newest-first usage pages to the end.
    async fn all_usage(
        store: &dyn Store,
        filter: &UsageFilter,
        limit: u32,
    ) -> Vec<(i64, UsageRow)> {
        let mut all: Vec<(i64, UsageRow)> = Vec::new();
        loop {
            let before = all.last().map(|(seq, _)| *seq);
            let page = store.list_usage(filter, before, limit).await.unwrap();
            assert!(page.len() <= limit as usize);
            let full = page.len() == limit as usize;
            all.extend(page);
            if !full {
                return all;
            }
        }
    }

    pub async fn usage_list(store: &dyn Store) {
        insert_usage(store, &[]).await;
        assert!(
            store
                .list_usage(&UsageFilter::default(), None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let rows = usage_rows(1000);
        insert_usage(store, &rows).await;

        let filters = [
            UsageFilter::default(),
            UsageFilter {
                studio_id: Some("s1".to_string()),
                ..Default::default()
            },
            UsageFilter {
                studio_id: Some("s1".to_string()),
                user_id: Some("u2".to_string()),
                ..Default::default()
            },
            UsageFilter {
                model_id: Some("m3".to_string()),
                start_ms: Some(START_MS + 3 * DAY_MS),
                end_ms: Some(START_MS + 20 * DAY_MS),
                ..Default::default()
            },
            UsageFilter {
                studio_id: Some("nobody".to_string()),
                ..Default::default()
            },
        ];
        for filter in &filters {
            let listed = all_usage(store, filter, 97).await;
            // Newest first, each row once.
            assert!(listed.windows(2).all(|w| w[0].0 > w[1].0), "{filter:?}");
            let expected: Vec<&UsageRow> =
                rows.iter().rev().filter(|r| matches(filter, r)).collect();
            let got: Vec<&UsageRow> = listed.iter().map(|(_, row)| row).collect();
            assert_eq!(got, expected, "{filter:?}");
        }
        let newest = store
            .list_usage(&UsageFilter::default(), None, 1)
            .await
            .unwrap();
        assert_eq!(newest[0].1, rows[999]);
        let first_seq = newest[0].0 - 999;
        let all = UsageFilter::default();
        let before_first = store.list_usage(&all, Some(first_seq), 5).await.unwrap();
        assert!(before_first.is_empty());
    }

    /// YYYY-MM-DD of a time (UTC), by the days-to-civil algorithm.
    fn day_of(ms: i64) -> String {
        let z = ms.div_euclid(DAY_MS) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// The aggregate computed in memory, ordered like the store's.
    fn expected_aggregate(
        rows: &[UsageRow],
        filter: &UsageFilter,
        by: GroupBy,
    ) -> Vec<UsageAggregateRow> {
        let mut groups: BTreeMap<[String; 4], UsageAggregateRow> = BTreeMap::new();
        let keep = |on: bool, value: &str| if on { value.to_string() } else { String::new() };
        for row in rows.iter().filter(|r| matches(filter, r)) {
            let key = [
                keep(by.studio || by.user, &row.studio_id),
                keep(by.user, &row.user_id),
                keep(by.model, &row.model_id),
                keep(by.day, &day_of(row.create_ms)),
            ];
            let [studio_id, user_id, model_id, day] = key.clone();
            let group = groups.entry(key).or_insert_with(|| UsageAggregateRow {
                studio_id,
                user_id,
                model_id,
                day,
                ..Default::default()
            });
            group.calls += 1;
            group.failed_calls += i64::from(row.status_code != 0);
            group.input_tokens += row.input_tokens;
            group.output_tokens += row.output_tokens;
            group.images += row.images;
            group.cost_micros += row.cost_micros;
        }
        let mut expected: Vec<_> = groups.into_values().collect();
        if expected.is_empty() && by == GroupBy::default() {
            expected.push(UsageAggregateRow::default());
        }
        expected
    }

    pub async fn usage_aggregate(store: &dyn Store) {
        let rows = usage_rows(1000);
        insert_usage(store, &rows).await;

        let none = GroupBy::default();
        let totals = store
            .aggregate_usage(&UsageFilter::default(), none, 0, 10)
            .await
            .unwrap();
        let sum = |f: fn(&UsageRow) -> i64| rows.iter().map(f).sum::<i64>();
        assert_eq!(
            totals,
            vec![UsageAggregateRow {
                calls: 1000,
                failed_calls: 100,
                input_tokens: sum(|r| r.input_tokens),
                output_tokens: sum(|r| r.output_tokens),
                images: sum(|r| r.images),
                cost_micros: sum(|r| r.cost_micros),
                ..Default::default()
            }]
        );

        let group_bys = [
            none,
            GroupBy {
                studio: true,
                ..none
            },
            GroupBy { user: true, ..none },
            GroupBy {
                model: true,
                ..none
            },
            GroupBy { day: true, ..none },
            GroupBy {
                studio: true,
                model: true,
                day: true,
                ..none
            },
            GroupBy {
                user: true,
                model: true,
                day: true,
                ..none
            },
        ];
        let filters = [
            UsageFilter::default(),
            UsageFilter {
                studio_id: Some("s2".to_string()),
                start_ms: Some(START_MS + 2 * DAY_MS),
                end_ms: Some(START_MS + 9 * DAY_MS),
                ..Default::default()
            },
            UsageFilter {
                user_id: Some("nobody".to_string()),
                ..Default::default()
            },
        ];
        for filter in &filters {
            for by in group_bys {
                let expected = expected_aggregate(&rows, filter, by);
                let got = store.aggregate_usage(filter, by, 0, 100_000).await.unwrap();
                assert_eq!(got, expected, "{filter:?} {by:?}");
                // Offset pages cover the groups exactly once.
                let mut paged = Vec::new();
                loop {
                    let offset = paged.len() as u64;
                    let page = store.aggregate_usage(filter, by, offset, 7).await.unwrap();
                    let full = page.len() == 7;
                    paged.extend(page);
                    if !full {
                        break;
                    }
                }
                assert_eq!(paged, expected, "{filter:?} {by:?} paged");
            }
        }
        let days = store
            .aggregate_usage(&UsageFilter::default(), group_bys[4], 0, 1)
            .await;
        assert_eq!(days.unwrap()[0].day, "2024-01-01");
    }

    /// Group commits, admin writes and reads at once must not fail on locks.
    pub async fn concurrent_writes(store: &dyn Store) {
        store.insert_studio(&studio("s0")).await.unwrap();
        let writers = (0..8).map(|w| async move {
            for batch in 0..20 {
                let rows = usage_rows(25);
                insert_usage(store, &rows).await;
                let id = format!("t{w}-{batch}");
                store
                    .insert_user_token(&user_token(&id, "s0", "u"))
                    .await
                    .unwrap();
                store.snapshot().await.unwrap();
            }
        });
        futures_util::future::join_all(writers).await;
        let all = UsageFilter::default();
        let totals = store
            .aggregate_usage(&all, GroupBy::default(), 0, 1)
            .await
            .unwrap();
        assert_eq!(totals[0].calls, 8 * 20 * 25);
        let tokens = store.snapshot().await.unwrap().user_tokens;
        let ids: BTreeSet<String> = tokens.into_iter().map(|t| t.id).collect();
        assert_eq!(ids.len(), 8 * 20);
    }
}

/// Runs each named check of `conformance` on a fresh store from `$open`,
/// which returns a guard to keep alive and the store.
macro_rules! conformance_tests {
    ($open:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (_guard, store) = $open().await;
                conformance::$check(&store).await;
            }
        )+
    };
}

async fn open_sqlite() -> (TempDir, SqliteStore) {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(&dir.path().join("city.db"), false)
        .await
        .unwrap();
    (dir, store)
}

conformance_tests!(
    open_sqlite;
    settings,
    studios,
    studio_keys,
    user_tokens,
    providers_and_models,
    defaults,
    snapshot,
    usage_list,
    usage_aggregate,
    concurrent_writes,
);

async fn reopen(path: &Path) -> SqliteStore {
    SqliteStore::open(path, true).await.unwrap()
}

#[tokio::test]
async fn sqlite_keeps_data_across_reopen() {
    let dir = TempDir::new().unwrap();
    // A missing parent directory is created.
    let path = dir.path().join("state").join("city.db");
    let store = SqliteStore::open(&path, false).await.unwrap();
    store
        .insert_studio(&conformance::studio("s1"))
        .await
        .unwrap();
    store.put_setting("k", "v").await.unwrap();
    let rows = conformance::usage_rows(50);
    conformance::insert_usage(&store, &rows).await;
    store.close().await;
    drop(store);

    // Reopening runs the migrations again, which must be a no-op.
    let store = reopen(&path).await;
    assert_eq!(
        store.get_studio("s1").await.unwrap(),
        Some(conformance::studio("s1"))
    );
    assert_eq!(store.get_setting("k").await.unwrap().as_deref(), Some("v"));
    let listed = store
        .list_usage(&Default::default(), None, 100)
        .await
        .unwrap();
    let got: Vec<_> = listed.into_iter().rev().map(|(_, row)| row).collect();
    assert_eq!(got, rows);
    // Sequence numbers keep growing after a reopen.
    conformance::insert_usage(&store, &rows[..1]).await;
    let newest = store
        .list_usage(&Default::default(), None, 1)
        .await
        .unwrap();
    assert_eq!(newest[0].0, 51);
}

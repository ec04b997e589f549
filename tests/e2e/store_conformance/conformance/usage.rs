//! Usage rows: pages, aggregates, concurrent group commits, retention.

use std::collections::{BTreeMap, BTreeSet};

use downcity::domain::{GroupBy, UsageAggregateRow, UsageFilter, UsageRow};
use downcity::store::Store;

use super::*;

fn matches(filter: &UsageFilter, row: &UsageRow) -> bool {
    let is = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
    is(&filter.studio_id, &row.studio_id)
        && is(&filter.user_id, &row.user_id)
        && is(&filter.model_id, &row.model_id)
        && filter.start_ms.is_none_or(|start| row.create_ms >= start)
        && filter.end_ms.is_none_or(|end| row.create_ms < end)
}

/// Follows newest-first usage pages to the end.
async fn all_usage(store: &dyn Store, filter: &UsageFilter, limit: u32) -> Vec<(i64, UsageRow)> {
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
        let expected: Vec<&UsageRow> = rows.iter().rev().filter(|r| matches(filter, r)).collect();
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

/// Retention removes whole months before the cutoff and nothing else.
pub async fn usage_retention(store: &dyn Store) {
    // One row a day for 100 days from 2024-01-01: January to April.
    let rows: Vec<UsageRow> = usage_rows(2400).into_iter().step_by(24).collect();
    insert_usage(store, &rows).await;
    let all = UsageFilter::default();
    // 2024-04-10: keeping one whole month before April keeps March on.
    let now = START_MS + 100 * DAY_MS;
    let march = START_MS + (31 + 29) * DAY_MS;
    let kept = store.maintain_usage(now, None).await.unwrap();
    assert_eq!(kept.rows_deleted + kept.partitions_dropped, 0);
    assert_eq!(all_usage(store, &all, 1000).await.len(), rows.len());

    let done = store.maintain_usage(now, Some(1)).await.unwrap();
    assert!(
        done.rows_deleted == 60 || done.partitions_dropped == 2,
        "{done:?}"
    );
    let left: Vec<UsageRow> = all_usage(store, &all, 1000)
        .await
        .into_iter()
        .rev()
        .map(|(_, row)| row)
        .collect();
    let expected: Vec<UsageRow> = rows
        .iter()
        .filter(|r| r.create_ms >= march)
        .cloned()
        .collect();
    assert_eq!(left, expected);
    // Rows of any month can still be written afterwards, a removed one included.
    insert_usage(store, &rows[..1]).await;
    let again = store.maintain_usage(now, Some(1)).await.unwrap();
    assert!(
        again.rows_deleted == 1 || again.partitions_dropped == 1,
        "{again:?}"
    );
}

//! `[usage] retain_months` in a served City: usage older than the retention
//! goes in the background at start (SQLite: batched deletes; PostgreSQL:
//! dropped monthly partitions), newer usage stays.

use std::time::Duration;

use crate::common::pg::FreshDatabase;
use crate::common::*;
use downcity::config::SecretText;
use downcity::domain::{UsageRow, now_ms};
use downcity::proto;
use downcity::store::Store;
use downcity::store::postgres::PostgresStore;
use downcity::store::sqlite::SqliteStore;
use sqlx::{Connection, PgConnection};

/// 2024-01-01T00:00:00Z: far older than any retention measured from now.
const OLD_MS: i64 = 1_704_067_200_000;

fn row(request_id: &str, create_ms: i64) -> UsageRow {
    UsageRow {
        request_id: request_id.to_string(),
        studio_id: "acme".to_string(),
        user_id: "u1".to_string(),
        model_id: "mock-text".to_string(),
        provider_id: "mock".to_string(),
        pathway: "text".to_string(),
        create_ms,
        ..Default::default()
    }
}

/// Five rows from January 2024 and two from now, committed as the writer does.
async fn write_old_and_new(store: &dyn Store) {
    let mut rows: Vec<UsageRow> = (0..5)
        .map(|i| row(&format!("old-{i}"), OLD_MS + i))
        .collect();
    rows.push(row("new-0", now_ms()));
    rows.push(row("new-1", now_ms()));
    let mut sink = store.usage_sink().await.unwrap();
    tokio::task::spawn_blocking(move || sink.insert(&rows, &[]).unwrap())
        .await
        .unwrap();
    store.close().await;
}

/// Polls the admin API until only the new rows are listed.
async fn only_new_rows_remain(city: &TestCity) {
    for _ in 0..500 {
        let rows = city.usage_rows(proto::UsageFilter::default()).await;
        let mut ids: Vec<String> = rows.into_iter().map(|r| r.request_id).collect();
        ids.sort();
        if ids == ["new-0", "new-1"] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("old usage still listed after 5 s");
}

#[tokio::test]
async fn sqlite_usage_older_than_the_retention_goes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("downcity.db"), false)
        .await
        .unwrap();
    write_old_and_new(&store).await;
    let city = TestCity::start_in(dir, |config| config.usage.retain_months = Some(3)).await;
    only_new_rows_remain(&city).await;
    city.stop().await;
}

#[tokio::test]
async fn postgresql_usage_older_than_the_retention_goes_as_partitions() {
    let Some(database) = FreshDatabase::create().await else {
        return;
    };
    write_old_and_new(&PostgresStore::open(&database.url).await.unwrap()).await;
    let url = database.url.clone();
    let city = TestCity::start_with(move |config| {
        config.store.url = Some(SecretText(url));
        config.usage.retain_months = Some(3);
    })
    .await;
    only_new_rows_remain(&city).await;
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let january: Option<String> = sqlx::query_scalar("SELECT to_regclass('usage_2024_01')::TEXT")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(january, None);
    city.stop().await;
}

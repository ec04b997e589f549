//! The conformance suite of the `Store` trait, run on both backends.
//!
//! Every check in `conformance` takes a `&dyn Store` on an empty store; each
//! backend runs all of them through `conformance_tests!` with its own opener:
//! SQLite on a real file in a temp dir, PostgreSQL in a fresh database on the
//! real server scripts/test starts (`DOWNCITY_TEST_PG_URL`).

use std::path::Path;

use downcity::store::Store;
use downcity::store::sqlite::SqliteStore;
use tempfile::TempDir;

mod conformance;

/// Runs each named check of `conformance` on a fresh store from `$open`,
/// which returns a guard to keep alive and the store, or `None` to skip.
macro_rules! conformance_tests {
    ($open:path; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let Some((_guard, store)) = $open().await else { return };
                conformance::$check(&store).await;
            }
        )+
    };
}

/// Every check, for each backend's module.
macro_rules! all_conformance_tests {
    ($open:path) => {
        conformance_tests!(
            $open;
            settings,
            studios,
            studio_keys,
            user_tokens,
            providers_and_models,
            defaults,
            snapshot,
            limits_and_allow_lists,
            provider_keys_and_reseal,
            hooks_and_outbox,
            usage_list,
            usage_aggregate,
            usage_retention,
            concurrent_writes,
        );
    };
}

// After the macros: a module sees the macros defined before it.
mod postgres;

mod sqlite {
    use super::*;

    async fn open() -> Option<(TempDir, SqliteStore)> {
        let dir = TempDir::new().unwrap();
        let store = SqliteStore::open(&dir.path().join("city.db"), false)
            .await
            .unwrap();
        Some((dir, store))
    }

    all_conformance_tests!(open);
}

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

/// Retention on SQLite gives the deleted rows' pages back to the disk.
#[tokio::test]
async fn sqlite_retention_shrinks_the_file() {
    use sqlx::{Connection, SqliteConnection};

    let dir = TempDir::new().unwrap();
    let path = dir.path().join("city.db");
    let store = SqliteStore::open(&path, false).await.unwrap();
    // 20,000 hourly rows from 2024-01-01 (to April 2026), then a pass in June 2026.
    conformance::insert_usage(&store, &conformance::usage_rows(20_000)).await;
    let pages = |path: std::path::PathBuf| async move {
        let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let pages: (i64, i64) =
            sqlx::query_as("SELECT * FROM pragma_page_count(), pragma_freelist_count()")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        pages
    };
    let (before, _) = pages(path.clone()).await;
    let june_2026 = conformance::START_MS + 900 * conformance::DAY_MS;
    let done = store.maintain_usage(june_2026, Some(0)).await.unwrap();
    assert_eq!(done.rows_deleted, 20_000);
    let (after, free) = pages(path.clone()).await;
    assert_eq!(free, 0);
    assert!(after * 4 < before, "{before} pages before, {after} after");
}

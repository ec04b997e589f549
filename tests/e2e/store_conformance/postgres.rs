//! The suite on PostgreSQL, and what only PostgreSQL does: migrations under
//! an advisory lock, a schema newer than this City refused, leased outbox
//! deliveries, monthly usage partitions.

use downcity::domain::DeliveryState;
use downcity::store::Store;
use downcity::store::postgres::PostgresStore;
use sqlx::{Connection, PgConnection};

use super::conformance::{self, START_MS, commit_usage, insert_usage, usage_rows};
use crate::common::pg::FreshDatabase;

async fn open() -> Option<(FreshDatabase, PostgresStore)> {
    let database = FreshDatabase::create().await?;
    let store = PostgresStore::open(&database.url).await.unwrap();
    Some((database, store))
}

all_conformance_tests!(open);

#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    let Some(database) = FreshDatabase::create().await else {
        return;
    };
    let opens = (0..4).map(|_| PostgresStore::open(&database.url));
    let stores = futures_util::future::join_all(opens).await;
    let stores: Vec<PostgresStore> = stores.into_iter().map(Result::unwrap).collect();
    stores[0]
        .insert_studio(&conformance::studio("s1"))
        .await
        .unwrap();
    for store in &stores {
        assert!(store.get_studio("s1").await.unwrap().is_some());
        store.close().await;
    }
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let known = std::fs::read_dir("src/store/migrations/postgres")
        .unwrap()
        .count();
    assert_eq!(applied, known as i64);
}

#[tokio::test]
async fn a_schema_newer_than_this_city_is_refused() {
    let Some(database) = FreshDatabase::create().await else {
        return;
    };
    PostgresStore::open(&database.url)
        .await
        .unwrap()
        .close()
        .await;
    // What a newer City's start leaves behind: a migration this one lacks.
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, '\\x00', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let refused = PostgresStore::open(&database.url).await.unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("9999") && message.contains("newer City"),
        "{message}"
    );
}

#[tokio::test]
async fn a_due_delivery_is_leased_to_one_replica_until_it_expires() {
    let Some((database, a)) = open().await else {
        return;
    };
    let b = PostgresStore::open(&database.url).await.unwrap();
    let outbox: Vec<_> = (0..6)
        .map(|i| conformance::delivery(&format!("msg{i}"), "hk1", START_MS + i))
        .collect();
    commit_usage(&a, &usage_rows(1), &outbox).await;
    let now = START_MS + 100;
    let (on_a, on_b) = tokio::join!(a.due_deliveries(now, 4), b.due_deliveries(now, 4));
    let (on_a, on_b) = (on_a.unwrap(), on_b.unwrap());
    let mut taken: Vec<String> = on_a.iter().chain(&on_b).map(|d| d.id.clone()).collect();
    taken.sort();
    // Disjoint, and together everything due.
    assert_eq!(taken, ["msg0", "msg1", "msg2", "msg3", "msg4", "msg5"]);
    assert!(a.due_deliveries(now, 10).await.unwrap().is_empty());
    // The lease holds off others until it expires, with the same webhook-id.
    let next = a.next_delivery_ms().await.unwrap().unwrap();
    assert!(next > now);
    let after_expiry = b.due_deliveries(next, 10).await.unwrap();
    assert_eq!(after_expiry.len(), 6);
    assert_eq!(after_expiry[0], outbox[0]);
    // An outcome gives the lease up: a retry is due at its own time.
    let retry = downcity::domain::AttemptOutcome::Failed {
        error: "HTTP 503".into(),
        next_attempt_ms: Some(next + 5),
    };
    b.record_attempt("msg0", &retry).await.unwrap();
    let msg0 = a.due_deliveries(next + 5, 1).await.unwrap();
    assert_eq!(
        (msg0[0].id.as_str(), msg0[0].attempts, msg0[0].state),
        ("msg0", 1, DeliveryState::Pending)
    );
}

#[tokio::test]
async fn usage_goes_to_monthly_partitions() {
    let Some((database, store)) = open().await else {
        return;
    };
    insert_usage(&store, &usage_rows(1000)).await;
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tableoid::regclass::TEXT, count(*) FROM usage GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    // 1000 hourly rows from 2024-01-01: 744 in January, 256 in February.
    assert_eq!(
        counts,
        [
            ("usage_2024_01".to_string(), 744),
            ("usage_2024_02".to_string(), 256)
        ]
    );
}

#[tokio::test]
async fn the_usage_writer_reconnects_after_losing_its_connection() {
    let Some((database, store)) = open().await else {
        return;
    };
    let mut sink = store.usage_sink().await.unwrap();
    let rows = usage_rows(3);
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    // What a server restart or failover does to the writer's connection.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let (first, second, sink) = tokio::task::spawn_blocking(move || {
        let first = sink.insert(&rows[..1], &[]);
        let second = sink.insert(&rows[1..], &[]);
        (first, second, sink)
    })
    .await
    .unwrap();
    drop(sink);
    // The batch on the lost connection fails (its callers are told); the
    // next one reconnects.
    assert!(first.is_err());
    second.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM usage")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

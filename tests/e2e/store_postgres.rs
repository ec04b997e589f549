//! City on PostgreSQL end to end: real `City::start` with `[store] url`,
//! real gRPC calls, usage rows read back from the real PostgreSQL server
//! (a fresh database on the cluster scripts/test starts).

use std::collections::BTreeSet;

use crate::common::pg::FreshDatabase;
use crate::common::*;
use downcity::config::SecretText;
use sqlx::{Connection, PgConnection};
use tokio::task::JoinSet;

const STUDIO: &str = "acme";

async fn city_on(database: &FreshDatabase) -> TestCity {
    let url = database.url.clone();
    TestCity::start_with(move |config| config.store.url = Some(SecretText(url))).await
}

/// Makes `n` Text calls at once; returns their request ids.
async fn calls(city: &TestCity, token: &str, n: usize) -> BTreeSet<String> {
    let mut calls = JoinSet::new();
    for i in 0..n {
        let mut ai = city.ai(STUDIO, token);
        calls.spawn(async move {
            let answer = ai.text(text_request(&format!("hello {i}"))).await.unwrap();
            answer.into_inner().request_id
        });
    }
    calls.join_all().await.into_iter().collect()
}

/// The request ids of the studio's usage rows, read from PostgreSQL itself.
async fn rows_in_postgres(database: &FreshDatabase) -> BTreeSet<String> {
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM usage WHERE studio_id = $1 AND status_code = 0")
            .bind(STUDIO)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    ids.into_iter().collect()
}

#[tokio::test]
async fn two_cities_on_one_postgresql_record_every_answered_call() {
    let Some(database) = FreshDatabase::create().await else {
        return;
    };
    let a = city_on(&database).await;
    let token = a.studio_with_user(STUDIO, "user-1").await;
    // Durable usage: each answer came after its row was committed, so the
    // rows are in PostgreSQL as soon as the calls return.
    let on_a = calls(&a, &token, 40).await;
    assert_eq!(on_a.len(), 40);
    assert_eq!(rows_in_postgres(&database).await, on_a);

    // A second City on the same database loads the studio and the token.
    let b = city_on(&database).await;
    let on_b = calls(&b, &token, 40).await;
    let both: BTreeSet<String> = on_a.union(&on_b).cloned().collect();
    assert_eq!(both.len(), 80);
    assert_eq!(rows_in_postgres(&database).await, both);
    // And each City lists them through the admin API.
    let listed = b.usage_rows(studio_filter(STUDIO)).await;
    let listed: BTreeSet<String> = listed.into_iter().map(|r| r.request_id).collect();
    assert_eq!(listed, both);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn city_restarts_on_its_postgresql_state() {
    let Some(database) = FreshDatabase::create().await else {
        return;
    };
    let city = city_on(&database).await;
    let token = city.studio_with_user(STUDIO, "user-1").await;
    let before = calls(&city, &token, 3).await;
    city.stop().await;
    let city = city_on(&database).await;
    let after = calls(&city, &token, 3).await;
    let all: BTreeSet<String> = before.union(&after).cloned().collect();
    assert_eq!(rows_in_postgres(&database).await, all);
    city.stop().await;
}

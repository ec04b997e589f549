//! A fresh PostgreSQL database per test on the server scripts/test starts
//! (scripts/pg-test-cluster), named by `DOWNCITY_TEST_PG_URL`.
//!
//! Without that variable the PostgreSQL tests are skipped, except in CI
//! (`CI=true`), where they fail: CI must never pass without running them.

use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub const URL_VAR: &str = "DOWNCITY_TEST_PG_URL";

/// A database that lives as long as this guard; dropped (connections and
/// all) when it goes.
pub struct FreshDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl FreshDatabase {
    /// A new empty database, or `None` (skip) when no server is configured.
    pub async fn create() -> Option<FreshDatabase> {
        let Ok(admin_url) = std::env::var(URL_VAR) else {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "{URL_VAR} is not set: CI must run the PostgreSQL tests"
            );
            eprintln!("skipped: {URL_VAR} is not set (scripts/pg-test-cluster run … sets it)");
            return None;
        };
        let name = format!("downcity_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("a URL ending in /database");
        let url = format!("{base}/{name}");
        Some(FreshDatabase {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: do the async work on a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

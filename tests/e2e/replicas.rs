//! Several Cities on one PostgreSQL database keep their caches in step: an
//! admin write on one replica reaches the others (LISTEN/NOTIFY) within 1 s.
//! Real `City::serve` on each, real gRPC, a fresh database on the cluster
//! scripts/test starts. Each test polls with a deadline and prints how long
//! the change took to arrive.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::common::pg::FreshDatabase;
use crate::common::*;
use downcity::config::SecretText;
use downcity::keys::MasterKey;
use downcity::proto::{self, HookEvent, LimitTarget, StudioStatus};
use sqlx::{Connection, PgConnection};
use tonic::Code;

/// How soon a write on one replica must bind on the others.
const PROPAGATION: Duration = Duration::from_secs(1);

/// `n` Cities on one fresh database, sharing a master key (hook secrets).
async fn replicas(n: usize) -> Option<(FreshDatabase, Vec<TestCity>)> {
    replicas_refreshing(n, 30).await
}

/// `replicas` with a periodic full reload every `refresh_secs`.
async fn replicas_refreshing(
    n: usize,
    refresh_secs: u64,
) -> Option<(FreshDatabase, Vec<TestCity>)> {
    let database = FreshDatabase::create().await?;
    let master_key = MasterKey::generate().to_base64();
    let mut cities = Vec::new();
    for _ in 0..n {
        let (url, key) = (database.url.clone(), master_key.clone());
        cities.push(
            TestCity::start_with(move |config| {
                config.store.url = Some(SecretText(url));
                config.master_key = Some(SecretText(key));
                config.store.refresh_secs = refresh_secs;
            })
            .await,
        );
    }
    Some((database, cities))
}

async fn stop_all(cities: Vec<TestCity>) {
    for city in cities {
        city.stop().await;
    }
}

/// Polls `seen` until it holds; returns how long that took. Fails the test
/// when it still does not hold after `PROPAGATION`.
async fn within_propagation<F, Fut>(what: &str, seen: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    within(PROPAGATION, what, seen).await
}

/// Polls `seen` until it holds; returns how long that took. Fails the test
/// when it still does not hold after `deadline`.
async fn within<F, Fut>(deadline: Duration, what: &str, mut seen: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if seen().await {
            let took = start.elapsed();
            eprintln!("propagation: {what} took {took:?}");
            return took;
        }
        assert!(
            start.elapsed() < deadline,
            "{what}: not seen within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether a Text call on `city` fails with this reason.
async fn refused_with(city: &TestCity, studio: &str, token: &str, reason: &str) -> bool {
    match city.ai(studio, token).text(text_request("hi")).await {
        Ok(_) => false,
        Err(status) => {
            use tonic_types::StatusExt;
            status
                .get_details_error_info()
                .is_some_and(|info| info.reason == reason)
        }
    }
}

async fn set_status(city: &TestCity, studio: &str, status: StudioStatus) {
    city.admin()
        .update_studio(req::update_studio(studio, None, status))
        .await
        .expect("update studio");
}

/// Studio `acme` and its user `user-1` created on `a`, once `b` answers that
/// user's calls (so `b` follows `a`'s announcements); the user's token.
async fn user_of_a_seen_on_b(a: &TestCity, b: &TestCity) -> String {
    let token = a.studio_with_user("acme", "user-1").await;
    within_propagation("a new studio and token on B", || async {
        b.ai("acme", &token).text(text_request("hi")).await.is_ok()
    })
    .await;
    token
}

fn median(mut took: Vec<Duration>) -> Duration {
    took.sort();
    took[took.len() / 2]
}

#[tokio::test]
async fn a_studio_created_and_suspended_on_one_replica_binds_on_another() {
    let Some((_database, cities)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&cities[0], &cities[1]);
    let token = user_of_a_seen_on_b(a, b).await;

    let mut took = Vec::new();
    for _ in 0..5 {
        set_status(a, "acme", StudioStatus::Suspended).await;
        took.push(
            within_propagation("a suspension on B", || {
                refused_with(b, "acme", &token, "STUDIO_SUSPENDED")
            })
            .await,
        );
        set_status(a, "acme", StudioStatus::Active).await;
        took.push(
            within_propagation("a reactivation on B", || async {
                b.ai("acme", &token).text(text_request("hi")).await.is_ok()
            })
            .await,
        );
    }
    eprintln!(
        "propagation: studio status, median of {} runs: {:?}",
        took.len(),
        median(took)
    );
    // The refusal itself is the one every replica gives.
    set_status(a, "acme", StudioStatus::Suspended).await;
    within_propagation("a suspension on B", || {
        refused_with(b, "acme", &token, "STUDIO_SUSPENDED")
    })
    .await;
    assert_refused(
        b.ai("acme", &token).text(text_request("hi")).await,
        Code::PermissionDenied,
        "STUDIO_SUSPENDED",
    );
    stop_all(cities).await;
}

#[tokio::test]
async fn a_token_revoked_on_one_replica_is_refused_on_the_others() {
    let Some((_database, cities)) = replicas(3).await else {
        return;
    };
    let (a, b, c) = (&cities[0], &cities[1], &cities[2]);
    a.admin()
        .create_studio(req::create_studio("acme", "Acme"))
        .await
        .unwrap();
    let mut took = Vec::new();
    for run in 0..5 {
        let issued = a
            .admin()
            .issue_user_token(req::issue_user_token("acme", &format!("user-{run}"), None))
            .await
            .unwrap()
            .into_inner();
        let id = issued.token.unwrap().id;
        within_propagation("a new token on C", || async {
            c.ai("acme", &issued.secret)
                .text(text_request("hi"))
                .await
                .is_ok()
        })
        .await;
        a.admin()
            .revoke_user_token(req::revoke_user_token("acme", id))
            .await
            .unwrap();
        took.push(
            within_propagation("a revocation on C", || {
                refused_with(c, "acme", &issued.secret, "TOKEN_REVOKED")
            })
            .await,
        );
        // B hears it too.
        within_propagation("a revocation on B", || {
            refused_with(b, "acme", &issued.secret, "TOKEN_REVOKED")
        })
        .await;
        assert_refused(
            c.ai("acme", &issued.secret).text(text_request("hi")).await,
            Code::Unauthenticated,
            "TOKEN_REVOKED",
        );
    }
    eprintln!(
        "propagation: token revocation, median of {} runs: {:?}",
        took.len(),
        median(took)
    );
    stop_all(cities).await;
}

#[tokio::test]
async fn a_model_upserted_on_one_replica_is_callable_on_another() {
    let Some((_database, cities)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&cities[0], &cities[1]);
    let token = a.studio_with_user("acme", "user-1").await;
    let call = |id: String| {
        let mut ai = b.ai("acme", &token);
        async move {
            ai.text(proto::TextRequest {
                model: id,
                ..text_request("hi")
            })
            .await
        }
    };
    within_propagation("a new studio on B", || async {
        call(String::new()).await.is_ok()
    })
    .await;
    let mut took = Vec::new();
    for run in 0..5 {
        let id = format!("replicated-{run}");
        assert_refused(call(id.clone()).await, Code::NotFound, "MODEL_NOT_FOUND");
        a.upsert_model(text_model(&id, &[])).await;
        took.push(
            within_propagation("a new model on B", || async {
                call(id.clone()).await.is_ok()
            })
            .await,
        );
    }
    eprintln!(
        "propagation: model upsert, median of {} runs: {:?}",
        took.len(),
        median(took)
    );
    stop_all(cities).await;
}

#[tokio::test]
async fn limits_set_on_one_replica_bind_on_another() {
    let Some((_database, cities)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&cities[0], &cities[1]);
    let token = user_of_a_seen_on_b(a, b).await;
    let set_requests_per_minute = |limit: i64| async move {
        a.admin()
            .set_limits(proto::SetLimitsRequest {
                studio_id: "acme".into(),
                target: LimitTarget::Studio as i32,
                user_id: String::new(),
                limits: Some(proto::Limits {
                    requests_per_minute: Some(limit),
                    ..Default::default()
                }),
            })
            .await
            .expect("set limits");
    };
    let mut took = Vec::new();
    for _ in 0..3 {
        set_requests_per_minute(0).await;
        took.push(
            within_propagation("a limit on B", || {
                refused_with(b, "acme", &token, "QUOTA_EXCEEDED")
            })
            .await,
        );
        set_requests_per_minute(1_000_000).await;
        took.push(
            within_propagation("a raised limit on B", || async {
                b.ai("acme", &token).text(text_request("hi")).await.is_ok()
            })
            .await,
        );
    }
    eprintln!(
        "propagation: limits, median of {} runs: {:?}",
        took.len(),
        median(took)
    );
    stop_all(cities).await;
}

#[tokio::test]
async fn a_hook_created_on_one_replica_exists_on_another() {
    let Some((_database, cities)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&cities[0], &cities[1]);
    a.studio_with_user("acme", "user-1").await;
    let hooks_on_b = || async {
        b.admin()
            .list_hooks(proto::ListHooksRequest {
                studio_id: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .hooks
    };
    assert!(hooks_on_b().await.is_empty());
    let created = a
        .admin()
        .upsert_hook(proto::UpsertHookRequest {
            hook: Some(proto::Hook {
                studio_id: "acme".into(),
                url: "http://127.0.0.1:9/hook".into(),
                events: vec![HookEvent::AfterCall as i32],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .hook
        .unwrap();
    within_propagation("a new hook on B", || async {
        hooks_on_b().await.iter().any(|h| h.id == created.id)
    })
    .await;
    a.admin()
        .delete_hook(proto::DeleteHookRequest {
            studio_id: "acme".into(),
            hook_id: created.id.clone(),
        })
        .await
        .unwrap();
    within_propagation("a deleted hook on B", || async {
        hooks_on_b().await.is_empty()
    })
    .await;
    stop_all(cities).await;
}

/// Suspends a studio behind City's back: straight in the database, so no
/// replica is told.
async fn suspend_silently(database: &FreshDatabase, studio: &str) {
    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let updated = sqlx::query("UPDATE studios SET status = 'suspended' WHERE id = $1")
        .bind(studio)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 1);
}

/// A replica whose listening connection drops may have missed changes: on
/// reconnecting it reloads everything.
#[tokio::test]
async fn a_replica_reloads_everything_when_its_listening_connection_comes_back() {
    let Some((database, cities)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&cities[0], &cities[1]);
    let token = user_of_a_seen_on_b(a, b).await;
    suspend_silently(&database, "acme").await;
    // Nobody announced it: B still serves the studio (next full reload in 30 s).
    b.ai("acme", &token).text(text_request("hi")).await.unwrap();

    let mut conn = PgConnection::connect(&database.url).await.unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        terminated,
        vec![true, true],
        "one listening connection per replica"
    );
    within_propagation("a reload on reconnect on B", || {
        refused_with(b, "acme", &token, "STUDIO_SUSPENDED")
    })
    .await;
    stop_all(cities).await;
}

/// Under the announcements, a periodic full reload (here every 2 s)
/// catches whatever they missed.
#[tokio::test]
async fn a_periodic_reload_catches_a_change_nobody_announced() {
    let Some((database, cities)) = replicas_refreshing(2, 2).await else {
        return;
    };
    let (a, b) = (&cities[0], &cities[1]);
    let token = user_of_a_seen_on_b(a, b).await;
    suspend_silently(&database, "acme").await;
    b.ai("acme", &token).text(text_request("hi")).await.unwrap();
    within(
        Duration::from_millis(3_500),
        "a periodic reload on B",
        || refused_with(b, "acme", &token, "STUDIO_SUSPENDED"),
    )
    .await;
    stop_all(cities).await;
}

#[tokio::test]
async fn a_studios_web_origins_set_on_one_replica_bind_on_another() {
    let Some((_database, cities)) = replicas(2).await else {
        return;
    };
    let (a, b) = (&cities[0], &cities[1]);
    let token = a.studio_with_user("webby", "user-1").await;
    let from_page = || {
        let mut request = tonic::Request::new(text_request("hi"));
        request
            .metadata_mut()
            .insert("origin", "https://play.example".parse().unwrap());
        request
    };
    within_propagation("the studio on B, refusing the page", || async {
        b.ai("webby", &token)
            .text(from_page())
            .await
            .is_err_and(|status| status.code() == Code::PermissionDenied)
    })
    .await;
    a.admin()
        .update_studio(proto::UpdateStudioRequest {
            studio_id: "webby".into(),
            allowed_origins: Some(proto::OriginList {
                origins: vec!["https://play.example".into()],
            }),
            ..Default::default()
        })
        .await
        .expect("set origins on A");
    within_propagation("the studio's origin on B", || async {
        b.ai("webby", &token).text(from_page()).await.is_ok()
    })
    .await;
    stop_all(cities).await;
}

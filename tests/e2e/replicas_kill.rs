//! A City that dies mid-call (SIGKILL, the real binary): no answered call
//! loses its row, none is doubled, and its open streams' rows — written at
//! admission — are settled as estimated: by the sweeper of another replica
//! on PostgreSQL, by the next start on SQLite. A restarted replica catches up.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tonic::Code;

use crate::common::pg::FreshDatabase;
use crate::common::process::{CityProcess, admin_client, ai_client, connect};
use crate::common::*;
use downcity::keys::MasterKey;
use downcity::proto::{self, LimitTarget, Limits};

const STUDIO: &str = "k";
/// Streams a word every 100 ms for 20 s: still open when its City dies.
const SLOW: &str = "slow-stream";
const FAST: &str = "fast-text";
const STREAMS: usize = 4;
/// A replica silent this long is dead to the others.
const LEASE_MS: &str = "1500";

fn slow_model() -> proto::Model {
    let words = vec!["word"; 200].join(" ");
    text_model(SLOW, &[("chunk_delay_ms", "100"), ("reply", &words)])
}

fn spawn_replica(url: &str, master_key: &str, dir: &Path, name: &str) -> CityProcess {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let data = data.to_str().unwrap().to_string();
    CityProcess::spawn(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", &data],
        &[
            ("DOWNCITY_STORE__URL", url),
            ("DOWNCITY_ADMIN_KEY", ADMIN_KEY),
            ("DOWNCITY_MASTER_KEY", master_key),
            ("DOWNCITY_STORE__REPLICA_LEASE_MS", LEASE_MS),
        ],
        dir,
        name,
    )
}

/// Polls `ready` (within `limit`) until it holds.
async fn until(what: &str, limit: Duration, mut ready: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !ready().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens `n` slow streams and reads each one's first piece: each is then
/// admitted, its open row durable. Returns their request ids and the streams.
async fn open_streams(
    ai: &mut Ai,
    n: usize,
) -> (
    Vec<String>,
    Vec<tonic::Streaming<proto::StreamTextResponse>>,
) {
    let (mut ids, mut streams) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let request = proto::StreamTextRequest {
            model: SLOW.into(),
            messages: vec![user_message("hi")],
            ..Default::default()
        };
        let mut stream = ai
            .stream_text(request)
            .await
            .expect("stream starts")
            .into_inner();
        let first = stream
            .message()
            .await
            .expect("a first piece")
            .expect("not ended");
        ids.push(first.request_id);
        streams.push(stream);
    }
    (ids, streams)
}

/// Unary calls in a loop until `stop`; the request ids of those answered.
fn load(mut ai: Ai, stop: Arc<AtomicBool>, may_fail: bool) -> JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut answered = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let request = proto::TextRequest {
                model: FAST.into(),
                ..text_request("hello")
            };
            match ai.text(request).await {
                Ok(answer) => answered.push(answer.into_inner().request_id),
                // C's calls fail once it is killed; its answered ones count.
                Err(_) if may_fail => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(status) => panic!("a call on a live replica failed: {status:?}"),
            }
        }
        answered
    })
}

/// Every row of the studio, by request id; fails on a doubled one.
async fn rows_by_id(admin: &mut Admin) -> BTreeMap<String, proto::UsageRecord> {
    let mut rows = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_usage_records(proto::ListUsageRecordsRequest {
                filter: Some(studio_filter(STUDIO)),
                page_size: 1000,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        for row in page.records {
            let id = row.request_id.clone();
            assert!(rows.insert(id.clone(), row).is_none(), "row {id} doubled");
        }
        if page.next_page_token.is_empty() {
            return rows;
        }
        page_token = page.next_page_token;
    }
}

fn estimated(row: &proto::UsageRecord) -> bool {
    row.metadata
        .get("downcity.usage_source")
        .map(String::as_str)
        == Some("reserved_estimate")
        && row.error_reason == "REPLICA_LOST"
        && row.status_code == Code::Unavailable as i32
}

#[tokio::test]
async fn a_replica_killed_under_load_loses_no_row_and_its_streams_are_settled() {
    let Some(database) = FreshDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let master_key = MasterKey::generate().to_base64();
    let mut processes = Vec::new();
    let mut addrs = Vec::new();
    for name in ["a", "b", "c"] {
        let mut city = spawn_replica(&database.url, &master_key, dir.path(), name);
        addrs.push(city.wait_listening().await);
        processes.push(city);
    }
    let mut channels = Vec::new();
    for addr in &addrs {
        channels.push(connect(addr).await);
    }
    let mut admin = admin_client(channels[0].clone(), Some(ADMIN_KEY));
    admin
        .create_studio(req::create_studio(STUDIO, "Kill"))
        .await
        .unwrap();
    for model in [slow_model(), text_model(FAST, &[])] {
        admin.upsert_model(req::upsert_model(model)).await.unwrap();
    }
    admin
        .set_limits(proto::SetLimitsRequest {
            studio_id: STUDIO.into(),
            target: LimitTarget::Studio as i32,
            user_id: String::new(),
            limits: Some(Limits {
                tokens_per_day: Some(1_000_000_000),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let token = admin
        .issue_user_token(req::issue_user_token(STUDIO, "u", None))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let ai = |i: usize| ai_client(channels[i].clone(), STUDIO, &token);
    for i in 0..3 {
        let mut ai = ai(i);
        until(
            "the studio on every replica",
            Duration::from_secs(5),
            async || {
                let request = proto::TextRequest {
                    model: FAST.into(),
                    ..text_request("hello")
                };
                ai.text(request).await.is_ok()
            },
        )
        .await;
    }

    // Load on all three; streams open on C; then C dies.
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = (0..3)
        .flat_map(|i| (0..4).map(move |_| i))
        .map(|i| load(ai(i), stop.clone(), i == 2))
        .collect();
    let (stream_ids, streams) = open_streams(&mut ai(2), STREAMS).await;
    until("the load under way", Duration::from_secs(10), async || {
        rows_by_id(&mut admin).await.len() >= 100
    })
    .await;
    processes[2].kill();
    let killed_at = Instant::now();
    drop(streams);

    // Another replica's sweeper settles C's open streams once its lease lapses.
    until(
        "C's open streams settled",
        Duration::from_secs(15),
        async || {
            let rows = rows_by_id(&mut admin).await;
            stream_ids
                .iter()
                .all(|id| rows.get(id).is_some_and(estimated))
        },
    )
    .await;
    eprintln!(
        "C's streams settled {:?} after the kill",
        killed_at.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    let mut answered = Vec::new();
    for load in loads {
        answered.extend(load.await.unwrap());
    }

    let rows = rows_by_id(&mut admin).await;
    for id in &answered {
        let row = rows
            .get(id)
            .unwrap_or_else(|| panic!("answered call {id} has no row"));
        assert_eq!(row.status_code, 0, "{row:?}");
    }
    let streams: HashSet<&String> = stream_ids.iter().collect();
    let lost: Vec<_> = rows.values().filter(|r| estimated(r)).collect();
    assert!(
        lost.iter().all(|r| streams.contains(&r.request_id)),
        "only C's open streams are estimated: {lost:?}"
    );
    for id in &stream_ids {
        let row = &rows[id];
        assert_eq!(row.model_id, SLOW);
        assert!(row.output_tokens > 0, "the reserved estimate: {row:?}");
    }
    eprintln!(
        "{} answered calls, {} rows, {} streams settled by the sweeper",
        answered.len(),
        rows.len(),
        stream_ids.len()
    );
    // The dead replica's holds are gone: nothing stays reserved, and the
    // standing counts exactly the rows.
    let standing = admin
        .get_quota_standing(proto::GetQuotaStandingRequest {
            studio_id: STUDIO.into(),
            user_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .limits;
    let tokens: i64 = rows
        .values()
        .map(|r| r.input_tokens + r.output_tokens)
        .sum();
    assert_eq!((standing[0].used, standing[0].reserved), (tokens, 0));

    // Written while C was down, known to C as soon as it is back.
    let late = admin
        .issue_user_token(req::issue_user_token(STUDIO, "late", None))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut restarted = spawn_replica(&database.url, &master_key, dir.path(), "c-again");
    let addr = restarted.wait_listening().await;
    let request = proto::TextRequest {
        model: FAST.into(),
        ..text_request("back")
    };
    ai_client(connect(&addr).await, STUDIO, &late)
        .text(request)
        .await
        .expect("the restarted replica knows the token made while it was down");
    restarted.terminate_cleanly().await;
    for city in processes.iter_mut().take(2) {
        city.terminate_cleanly().await;
    }
}

#[tokio::test]
async fn a_crashed_sqlite_city_settles_its_open_streams_when_it_starts_again() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut city, env) = CityProcess::serve_dev(data.path(), &[], logs.path(), "first").await;
    let channel = connect(&env.addr).await;
    admin_client(channel.clone(), Some(&env.admin_key))
        .upsert_model(req::upsert_model(slow_model()))
        .await
        .unwrap();
    let mut ai = ai_client(channel, &env.studio_id, &env.user_token);
    let (stream_ids, streams) = open_streams(&mut ai, 2).await;
    city.kill();
    drop(streams);

    let (mut again, env) = CityProcess::serve_dev(data.path(), &[], logs.path(), "again").await;
    let mut admin = admin_client(connect(&env.addr).await, Some(&env.admin_key));
    let rows = admin
        .list_usage_records(proto::ListUsageRecordsRequest {
            filter: Some(studio_filter(&env.studio_id)),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    for id in &stream_ids {
        let matching: Vec<_> = rows.iter().filter(|r| &r.request_id == id).collect();
        assert_eq!(matching.len(), 1, "one row for stream {id}: {rows:?}");
        assert!(estimated(matching[0]), "{:?}", matching[0]);
    }
    assert!(
        again
            .stderr()
            .contains("settled usage rows left open by a crash")
    );
    again.terminate_cleanly().await;
}

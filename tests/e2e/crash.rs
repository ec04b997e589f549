//! The real binary killed with SIGKILL under load, then restarted on the
//! same SQLite data: every call answered before the kill has its usage row
//! (rows are durable before the answer), and no call has two.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use downcity::proto;
use tokio::sync::{Mutex, Notify};
use tonic::Request;
use tonic::transport::Channel;

use crate::common::process::{CityProcess, DevEnv, admin_client, ai_client, connect};
use crate::common::{text_model, user_message};

/// Calls in flight at any moment.
const IN_FLIGHT: usize = 32;
/// Answered calls before the kill.
const ANSWERED_BEFORE_KILL: usize = 200;

/// Request ids sent, and those answered OK.
#[derive(Default)]
struct Ledger {
    sent: BTreeSet<String>,
    answered: BTreeSet<String>,
}

/// `message` with our request id in `x-request-id`.
fn tagged<T>(message: T, request_id: &str) -> Request<T> {
    let mut request = Request::new(message);
    let id = request_id.parse().expect("an ASCII request id");
    request.metadata_mut().insert("x-request-id", id);
    request
}

/// One call, Text or StreamText by `n`, with our own request id; whether
/// City answered it OK, to the last stream message.
async fn one_call(channel: Channel, env: &DevEnv, request_id: &str, n: usize) -> bool {
    let mut ai = ai_client(channel, &env.studio_id, &env.user_token);
    let messages = vec![user_message(&format!("call {n} of the crash test"))];
    if n.is_multiple_of(2) {
        let request = proto::TextRequest {
            model: "crash-text".into(),
            messages,
            ..Default::default()
        };
        return ai.text(tagged(request, request_id)).await.is_ok();
    }
    let request = proto::StreamTextRequest {
        model: "crash-text".into(),
        messages,
        ..Default::default()
    };
    let Ok(response) = ai.stream_text(tagged(request, request_id)).await else {
        return false;
    };
    let mut stream = response.into_inner();
    loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// Keeps one call in flight until `stop`, recording each in `ledger`.
async fn worker(
    worker: usize,
    channel: Channel,
    env: Arc<DevEnv>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    enough: Arc<Notify>,
) {
    for round in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let n = round * IN_FLIGHT + worker;
        let request_id = format!("crash-{n}");
        ledger.lock().await.sent.insert(request_id.clone());
        if one_call(channel.clone(), &env, &request_id, n).await {
            let mut ledger = ledger.lock().await;
            ledger.answered.insert(request_id);
            if ledger.answered.len() >= ANSWERED_BEFORE_KILL {
                enough.notify_one();
            }
        }
    }
}

/// Every usage row's request id, with how many rows carry it.
async fn rows_per_request_id(channel: Channel, env: &DevEnv) -> BTreeMap<String, usize> {
    let mut admin = admin_client(channel, Some(&env.admin_key));
    let mut counts = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_usage_records(proto::ListUsageRecordsRequest {
                filter: None,
                page_size: 1000,
                page_token,
            })
            .await
            .expect("list usage")
            .into_inner();
        for record in page.records {
            *counts.entry(record.request_id).or_insert(0) += 1;
        }
        if page.next_page_token.is_empty() {
            return counts;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_answered_row_and_doubles_none() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut city, env) = CityProcess::serve_dev(dir.path(), &[], logs.path(), "first").await;
    let channel = connect(&env.addr).await;
    // Streams of a few paced chunks, so many calls are mid-answer at the kill.
    let model = text_model("crash-text", &[("chunk_delay_ms", "2")]);
    admin_client(channel.clone(), Some(&env.admin_key))
        .upsert_model(proto::UpsertModelRequest { model: Some(model) })
        .await
        .expect("upsert model");

    let env = Arc::new(env);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let enough = Arc::new(Notify::new());
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|w| {
            tokio::spawn(worker(
                w,
                channel.clone(),
                env.clone(),
                ledger.clone(),
                stop.clone(),
                enough.clone(),
            ))
        })
        .collect();
    enough.notified().await;
    // What was answered up to now is what must survive; calls that end
    // after this point die with the process.
    let answered = ledger.lock().await.answered.clone();
    city.kill();
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
    let ledger = ledger.lock().await;
    drop(channel);

    let (mut again, env2) = CityProcess::serve_dev(dir.path(), &[], logs.path(), "second").await;
    let counts = rows_per_request_id(connect(&env2.addr).await, &env2).await;
    let missing: Vec<_> = answered
        .iter()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "answered, no row: {missing:?}");
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "more than one row: {doubled:?}");
    let strangers: Vec<_> = counts
        .keys()
        .filter(|id| !ledger.sent.contains(*id))
        .collect();
    assert!(
        strangers.is_empty(),
        "rows of calls never sent: {strangers:?}"
    );
    eprintln!(
        "{} sent, {} answered before the kill, {} rows after the restart, in {:?}",
        ledger.sent.len(),
        answered.len(),
        counts.len(),
        started.elapsed()
    );
    again.terminate_cleanly().await;
}

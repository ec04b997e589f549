//! AI calls that succeed (or end early), over real gRPC against a real City:
//! what the client receives and the usage rows the calls leave behind.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::common::*;
use downcity::proto::{self, FinishReason, Pathway, StreamTextResponse, UsageRecord};
use tokio::task::JoinSet;
use tonic::codec::Streaming;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const STUDIO: &str = "acme";
const USER: &str = "user-1";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn text_on(model: &str, prompt: &str) -> proto::TextRequest {
    proto::TextRequest {
        model: model.into(),
        ..text_request(prompt)
    }
}

fn stream_on(model: &str, prompt: &str) -> proto::StreamTextRequest {
    proto::StreamTextRequest {
        model: model.into(),
        messages: vec![user_message(prompt)],
        ..Default::default()
    }
}

/// A prompt of `n` distinct words ("w1 w2 …"): the mock counts `n` tokens.
fn words(n: usize) -> String {
    (1..=n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A request carrying the client's own `x-request-id`.
fn with_request_id<T>(message: T, request_id: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "x-request-id",
        request_id.parse().expect("an ASCII request id"),
    );
    request
}

async fn text(
    ai: &mut Ai,
    request: impl tonic::IntoRequest<proto::TextRequest>,
) -> proto::TextResponse {
    ai.text(request).await.expect("Text succeeds").into_inner()
}

async fn open_stream(
    ai: &mut Ai,
    request: impl tonic::IntoRequest<proto::StreamTextRequest>,
) -> Streaming<StreamTextResponse> {
    ai.stream_text(request)
        .await
        .expect("StreamText starts")
        .into_inner()
}

/// Reads a stream to its end: its messages, and its status if it failed.
async fn read_to_end(
    stream: &mut Streaming<StreamTextResponse>,
) -> (Vec<StreamTextResponse>, Option<Status>) {
    let mut messages = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(message)) => messages.push(message),
            Ok(None) => return (messages, None),
            Err(status) => return (messages, Some(status)),
        }
    }
}

fn concat_deltas(messages: &[StreamTextResponse]) -> String {
    messages.iter().map(|m| m.delta.as_str()).collect()
}

/// The usage rows keyed by request id; panics on a duplicate id.
fn rows_by_request_id(rows: Vec<UsageRecord>) -> HashMap<String, UsageRecord> {
    let mut by_id = HashMap::new();
    for row in rows {
        let id = row.request_id.clone();
        assert!(
            by_id.insert(id.clone(), row).is_none(),
            "two rows with request id {id}"
        );
    }
    by_id
}

/// The only usage row of the studio.
async fn only_row(city: &TestCity) -> UsageRecord {
    let mut rows = city.wait_for_rows(studio_filter(STUDIO), 1).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

/// Calls, input tokens and output tokens, summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    calls: i64,
    input_tokens: i64,
    output_tokens: i64,
}

impl Totals {
    fn add(&mut self, input_tokens: i64, output_tokens: i64) {
        self.calls += 1;
        self.input_tokens += input_tokens;
        self.output_tokens += output_tokens;
    }

    fn add_usage(&mut self, usage: Option<&proto::Usage>) {
        let usage = usage.expect("usage");
        self.add(usage.input_tokens, usage.output_tokens);
    }

    fn of_rows<'a>(rows: impl IntoIterator<Item = &'a UsageRecord>) -> Totals {
        let mut totals = Totals::default();
        for row in rows {
            totals.add(row.input_tokens, row.output_tokens);
        }
        totals
    }

    fn of_aggregate(row: &proto::UsageAggregate) -> Totals {
        Totals {
            calls: row.calls,
            input_tokens: row.input_tokens,
            output_tokens: row.output_tokens,
        }
    }
}

// ---- Text -------------------------------------------------------------------

#[tokio::test]
async fn text_echoes_with_an_explicit_or_the_default_model() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let mut ai = city.ai(STUDIO, &token);
    for model in ["mock-text", ""] {
        let response = text(&mut ai, text_on(model, "hello brave new world")).await;
        assert_eq!(
            response.text, "Echo: hello brave new world",
            "model `{model}`"
        );
        assert_eq!(response.model, "mock-text", "model `{model}`");
        assert_eq!(response.finish_reason, FinishReason::Stop as i32);
        let usage = response.usage.expect("usage");
        assert_eq!((usage.input_tokens, usage.output_tokens), (4, 5));
        assert!(!response.request_id.is_empty());
    }
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_length() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let request = proto::TextRequest {
        max_tokens: Some(3),
        ..text_request("one two three four five")
    };
    let response = text(&mut city.ai(STUDIO, &token), request).await;
    assert_eq!(response.text, "Echo: one two");
    assert_eq!(response.finish_reason, FinishReason::Length as i32);
    assert_eq!(response.usage.expect("usage").output_tokens, 3);
}

#[tokio::test]
async fn a_new_text_default_serves_the_next_empty_model_call() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let mut ai = city.ai(STUDIO, &token);
    city.upsert_model(text_model("alt-text", &[("reply", "from the alternative")]))
        .await;
    assert_eq!(text(&mut ai, text_request("hi")).await.model, "mock-text");

    city.admin()
        .set_default_model(proto::SetDefaultModelRequest {
            pathway: Pathway::Text as i32,
            model_id: "alt-text".into(),
        })
        .await
        .expect("set default");

    let response = text(&mut ai, text_request("hi")).await;
    assert_eq!(response.model, "alt-text");
    assert_eq!(response.text, "from the alternative");
}

/// Prices are per million tokens, each component rounded up.
fn expected_cost(usage: &proto::Usage, input_price: i64, output_price: i64) -> i64 {
    let per_mtok = |tokens: i64, price: i64| (tokens * price + 999_999) / 1_000_000;
    per_mtok(usage.input_tokens, input_price) + per_mtok(usage.output_tokens, output_price)
}

#[tokio::test]
async fn cost_follows_the_models_prices_rounded_up() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let mut ai = city.ai(STUDIO, &token);
    // The second pair does not divide evenly: 4 × 0.15 and 5 × 0.6 micros.
    for (id, input_price, output_price) in [
        ("priced", 1_000_000, 2_000_000),
        ("cheap", 150_000, 600_000),
    ] {
        city.upsert_model(proto::Model {
            input_micros_per_mtok: input_price,
            output_micros_per_mtok: output_price,
            ..text_model(id, &[])
        })
        .await;
        let response = text(&mut ai, text_on(id, "hello brave new world")).await;
        let usage = response.usage.expect("usage");
        assert_eq!(
            usage.cost_micros,
            expected_cost(&usage, input_price, output_price),
            "{id}"
        );
        assert!(usage.cost_micros > 0);

        let rows = rows_by_request_id(city.usage_rows(studio_filter(STUDIO)).await);
        let row = &rows[&response.request_id];
        assert_eq!(
            (row.cost_micros, row.input_tokens, row.output_tokens),
            (usage.cost_micros, usage.input_tokens, usage.output_tokens)
        );
    }
}

#[tokio::test]
async fn client_request_id_is_echoed_and_recorded() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let request = with_request_id(text_request("hello"), "client-req-42");
    let response = text(&mut city.ai(STUDIO, &token), request).await;
    assert_eq!(response.request_id, "client-req-42");
    assert_eq!(only_row(&city).await.request_id, "client-req-42");
}

// ---- StreamText -------------------------------------------------------------

#[tokio::test]
async fn stream_relays_the_text_answer_in_order() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let mut ai = city.ai(STUDIO, &token);
    let prompt = "the quick brown fox jumps";
    let answer = text(&mut ai, text_request(prompt)).await;

    let (messages, failure) =
        read_to_end(&mut open_stream(&mut ai, stream_on("", prompt)).await).await;
    assert!(failure.is_none(), "{failure:?}");
    assert_eq!(concat_deltas(&messages), answer.text);

    assert!(messages.len() > 2, "{messages:?}");
    let (first, last) = (&messages[0], &messages[messages.len() - 1]);
    assert_eq!(first.model, "mock-text");
    assert!(!first.request_id.is_empty());
    for message in &messages[..messages.len() - 1] {
        assert!(message.usage.is_none(), "usage before the end: {message:?}");
        assert_eq!(message.finish_reason, FinishReason::Unspecified as i32);
    }
    for middle in &messages[1..messages.len() - 1] {
        assert!(
            middle.model.is_empty() && middle.request_id.is_empty(),
            "{middle:?}"
        );
    }
    assert_eq!(last.finish_reason, FinishReason::Stop as i32);
    assert_eq!(last.request_id, first.request_id);
    let usage = last.usage.expect("usage on the last message");
    let answered = answer.usage.expect("usage");
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (answered.input_tokens, answered.output_tokens)
    );

    let rows = rows_by_request_id(city.wait_for_rows(studio_filter(STUDIO), 2).await);
    let row = &rows[&first.request_id];
    assert!(row.time_to_first_token.is_some(), "{row:?}");
    assert_eq!(
        (row.status_code, row.output_tokens),
        (0, usage.output_tokens)
    );
}

/// A fresh City with a text model made of these mock options, and a stream
/// on it opened by a user of the studio.
async fn stream_on_custom_model(
    options: &[(&str, &str)],
    prompt: &str,
) -> (TestCity, Streaming<StreamTextResponse>) {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    city.upsert_model(text_model("custom-text", options)).await;
    let stream = open_stream(
        &mut city.ai(STUDIO, &token),
        stream_on("custom-text", prompt),
    )
    .await;
    (city, stream)
}

#[tokio::test]
async fn cancelled_stream_leaves_its_row() {
    let (city, mut stream) = stream_on_custom_model(&[("chunk_delay_ms", "50")], &words(40)).await;
    let first = stream.message().await.expect("first").expect("first");
    stream.message().await.expect("second").expect("second");
    drop(stream);

    let row = only_row(&city).await;
    assert_eq!(row.request_id, first.request_id);
    assert_eq!(
        (row.status_code, row.error_reason.as_str()),
        (Code::Cancelled as i32, "CANCELLED")
    );
    // "Echo:" and 40 words: 41 tokens in the whole answer.
    assert!(0 < row.output_tokens && row.output_tokens < 41, "{row:?}");
    // The row says its counts are what was relayed, not the upstream's.
    assert_eq!(
        row.metadata
            .get("downcity.usage_source")
            .map(String::as_str),
        Some("relayed_so_far")
    );
}

#[tokio::test]
async fn stream_failing_midway_ends_with_unavailable() {
    let (city, mut stream) = stream_on_custom_model(&[("fail_after_chunks", "2")], "a b c d").await;
    let (messages, failure) = read_to_end(&mut stream).await;
    assert_eq!(concat_deltas(&messages), "Echo: a");
    assert_eq!(messages.len(), 2);
    assert_error(
        &failure.expect("a failure status"),
        Code::Unavailable,
        "PROVIDER_UNAVAILABLE",
    );

    let row = only_row(&city).await;
    assert_eq!(
        (row.status_code, row.error_reason.as_str()),
        (Code::Unavailable as i32, "PROVIDER_UNAVAILABLE")
    );
    assert_eq!(row.output_tokens, 2);
}

// ---- Image and ListModels ---------------------------------------------------

#[tokio::test]
async fn image_returns_distinct_real_pngs() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let request = proto::ImageRequest {
        prompt: "a lighthouse at dusk".into(),
        count: Some(3),
        ..Default::default()
    };
    let response = city
        .ai(STUDIO, &token)
        .image(request)
        .await
        .expect("Image")
        .into_inner();
    assert_eq!(response.model, "mock-image");
    assert_eq!(response.images.len(), 3);
    for image in &response.images {
        assert_eq!(image.mime_type, "image/png");
        assert!(image.data.starts_with(PNG_SIGNATURE), "not a PNG");
    }
    let distinct: HashSet<_> = response.images.iter().map(|i| &i.data).collect();
    assert_eq!(distinct.len(), 3);
    assert_eq!(response.usage.expect("usage").images, 3);

    let row = only_row(&city).await;
    assert_eq!((row.images, row.pathway), (3, Pathway::Image as i32));
    assert_eq!(row.request_id, response.request_id);
}

async fn list_models(ai: &mut Ai, pathway: Pathway) -> Vec<(String, Pathway, bool)> {
    let request = proto::ListModelsRequest {
        pathway: pathway as i32,
    };
    let response = ai
        .list_models(request)
        .await
        .expect("ListModels")
        .into_inner();
    response
        .models
        .into_iter()
        .map(|m| {
            let pathway = m.pathway();
            (m.id, pathway, m.is_default)
        })
        .collect()
}

#[tokio::test]
async fn list_models_shows_enabled_models_with_pathways_and_defaults() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let mut ai = city.ai(STUDIO, &token);
    city.upsert_model(text_model("extra-text", &[])).await;
    city.upsert_model(proto::Model {
        enabled: Some(false),
        ..text_model("hidden-text", &[])
    })
    .await;

    let model = |id: &str, pathway, is_default| (id.to_string(), pathway, is_default);
    assert_eq!(
        list_models(&mut ai, Pathway::Unspecified).await,
        [
            model("extra-text", Pathway::Text, false),
            model("mock-image", Pathway::Image, true),
            model("mock-text", Pathway::Text, true),
        ]
    );
    assert_eq!(
        list_models(&mut ai, Pathway::Text).await,
        [
            model("extra-text", Pathway::Text, false),
            model("mock-text", Pathway::Text, true)
        ]
    );
    assert_eq!(
        list_models(&mut ai, Pathway::Image).await,
        [model("mock-image", Pathway::Image, true)]
    );
}

// ---- usage: rows, pages and aggregates -------------------------------------

/// The studio's usage summed by one dimension, keyed by `key` of each group.
async fn aggregate_by(
    city: &TestCity,
    by: proto::UsageDimension,
    key: fn(&proto::UsageAggregate) -> String,
) -> BTreeMap<String, Totals> {
    let response = city
        .admin()
        .aggregate_usage(proto::AggregateUsageRequest {
            filter: Some(studio_filter(STUDIO)),
            group_by: vec![by as i32],
            ..Default::default()
        })
        .await
        .expect("aggregate usage")
        .into_inner();
    assert!(response.next_page_token.is_empty());
    response
        .rows
        .iter()
        .map(|a| (key(a), Totals::of_aggregate(a)))
        .collect()
}

#[tokio::test]
async fn usage_records_and_aggregates_agree_with_the_responses() {
    let (city, first_token) = TestCity::start_with_user(STUDIO, "user-0").await;
    let mut clients = vec![city.ai(STUDIO, &first_token)];
    for user in ["user-1", "user-2"] {
        clients.push(city.ai(STUDIO, &city.token_for(STUDIO, user).await));
    }

    let mut per_user: BTreeMap<String, Totals> = BTreeMap::new();
    let mut request_ids = HashSet::new();
    for i in 0..25 {
        let response = text(&mut clients[i % 3], text_request(&words(i + 1))).await;
        per_user
            .entry(format!("user-{}", i % 3))
            .or_default()
            .add_usage(response.usage.as_ref());
        assert!(request_ids.insert(response.request_id));
    }

    // Pages of 7: every row exactly once, newest first.
    let pages = city.usage_pages(studio_filter(STUDIO), 7).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [7, 7, 7, 4]);
    let rows: Vec<UsageRecord> = pages.into_iter().flatten().collect();
    let listed: HashSet<String> = rows.iter().map(|r| r.request_id.clone()).collect();
    assert_eq!(listed, request_ids);
    let times: Vec<_> = rows
        .iter()
        .map(|r| r.create_time.expect("create_time"))
        .collect();
    assert!(
        times
            .windows(2)
            .all(|w| (w[0].seconds, w[0].nanos) >= (w[1].seconds, w[1].nanos))
    );

    let by_user = aggregate_by(&city, proto::UsageDimension::User, |a| a.user_id.clone()).await;
    assert_eq!(by_user, per_user);

    let by_model = aggregate_by(&city, proto::UsageDimension::Model, |a| a.model_id.clone()).await;
    assert_eq!(
        by_model,
        BTreeMap::from([("mock-text".to_string(), Totals::of_rows(&rows))])
    );

    let mut days: BTreeMap<String, Totals> = BTreeMap::new();
    for row in &rows {
        let day = utc_day(row.create_time.expect("create_time").seconds * 1000);
        days.entry(day)
            .or_default()
            .add(row.input_tokens, row.output_tokens);
    }
    let by_day = aggregate_by(&city, proto::UsageDimension::Day, |a| a.day.clone()).await;
    assert_eq!(by_day, days);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_from_many_studios_are_all_recorded() {
    let city = TestCity::start().await;
    let mut clients = Vec::new();
    for s in 0..20 {
        let studio = format!("studio-{s:02}");
        let first = city.studio_with_user(&studio, "user-0").await;
        let second = city.token_for(&studio, "user-1").await;
        for token in [first, second] {
            clients.push((studio.clone(), city.ai(&studio, &token)));
        }
    }

    let mut calls = JoinSet::new();
    for (i, (studio, ai)) in clients.iter().cycle().take(200).enumerate() {
        let (studio, mut ai) = (studio.clone(), ai.clone());
        calls.spawn(async move { (studio, text(&mut ai, text_request(&words(i % 7 + 1))).await) });
    }
    let mut per_studio: BTreeMap<String, (Totals, HashSet<String>)> = BTreeMap::new();
    let mut request_ids = HashSet::new();
    while let Some(call) = calls.join_next().await {
        let (studio, response) = call.expect("the call task");
        assert!(
            request_ids.insert(response.request_id.clone()),
            "duplicate request id"
        );
        let (totals, ids) = per_studio.entry(studio).or_default();
        totals.add_usage(response.usage.as_ref());
        ids.insert(response.request_id);
    }
    assert_eq!(request_ids.len(), 200);
    assert_eq!(per_studio.len(), 20);

    for (studio, (totals, ids)) in &per_studio {
        let rows = city.usage_rows(studio_filter(studio)).await;
        assert_eq!(Totals::of_rows(&rows), *totals, "{studio}");
        let recorded: HashSet<String> = rows.into_iter().map(|r| r.request_id).collect();
        assert_eq!(&recorded, ids, "{studio}");
    }
}

// ---- graceful shutdown --------------------------------------------------------

/// A started stream read to its end: the usage of its final message, if it got one.
async fn final_usage(mut stream: Streaming<StreamTextResponse>) -> Option<proto::Usage> {
    let (messages, _failure) = read_to_end(&mut stream).await;
    messages.last().and_then(|m| m.usage)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_loses_no_row() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    city.upsert_model(text_model("slow-text", &[("chunk_delay_ms", "20")]))
        .await;
    let ai = city.ai(STUDIO, &token);

    // 20 streams, each under way (its first message received).
    let mut streams = JoinSet::new();
    for i in 0..20 {
        let id = format!("stream-{i}");
        let request = with_request_id(stream_on("slow-text", &words(10)), &id);
        let mut stream = open_stream(&mut ai.clone(), request).await;
        let first = stream.message().await.expect("first").expect("first");
        assert_eq!(first.request_id, id);
        streams.spawn(async move { (id, final_usage(stream).await) });
    }
    // 50 unary calls racing the shutdown: some answered, some refused.
    let mut unary = JoinSet::new();
    for i in 0..50 {
        let (mut ai, id) = (ai.clone(), format!("unary-{i}"));
        unary.spawn(async move {
            let result = ai.text(with_request_id(text_request("hello"), &id)).await;
            (id, result)
        });
    }
    let dir = city.stop().await;

    let mut answered_ids = HashMap::new();
    let mut started = 20;
    while let Some(call) = streams.join_next().await {
        let (id, usage) = call.expect("stream task");
        if let Some(usage) = usage {
            answered_ids.insert(id, usage.output_tokens);
        }
    }
    while let Some(call) = unary.join_next().await {
        let (id, result) = call.expect("unary task");
        match result {
            Ok(response) => {
                let usage = response.into_inner().usage.expect("usage");
                answered_ids.insert(id, usage.output_tokens);
                started += 1;
            }
            // Refused while City drains (UNAVAILABLE, SHUTTING_DOWN), or by
            // the transport once its listener closed (no ErrorInfo of City's).
            Err(status) => {
                if let Some(info) = status.get_details_error_info() {
                    assert_eq!(
                        (status.code(), info.reason.as_str()),
                        (Code::Unavailable, "SHUTTING_DOWN"),
                        "{id}: {status:?}"
                    );
                }
            }
        }
    }

    let city = TestCity::start_in(dir, |_| {}).await;
    let rows = rows_by_request_id(city.usage_rows(studio_filter(STUDIO)).await);
    for (id, output_tokens) in &answered_ids {
        let row = rows
            .get(id)
            .unwrap_or_else(|| panic!("no row for answered call {id}"));
        assert_eq!(
            (row.status_code, row.output_tokens),
            (0, *output_tokens),
            "{id}"
        );
    }
    for i in 0..20 {
        assert!(
            rows.contains_key(&format!("stream-{i}")),
            "no row for started stream-{i}"
        );
    }
    assert_eq!(
        rows.len(),
        started,
        "rows: {:?}",
        rows.keys().collect::<Vec<_>>()
    );
}

/// With asynchronous durability a call answers before its row is committed,
/// yet every answered call still has its row: the queue is flushed at
/// shutdown, and the rows are there after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn asynchronous_usage_rows_are_flushed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let city = TestCity::start_in(dir, |config| {
        config.usage.durability = downcity::config::Durability::Async;
    })
    .await;
    let token = city.studio_with_user(STUDIO, USER).await;
    let ai = city.ai(STUDIO, &token);
    let mut calls = JoinSet::new();
    for i in 0..100 {
        let (mut ai, id) = (ai.clone(), format!("async-{i}"));
        calls.spawn(async move {
            let request = with_request_id(text_request(&words(i % 7 + 1)), &id);
            let usage = ai.text(request).await.expect("answered").into_inner().usage;
            (id, usage.expect("usage").output_tokens)
        });
    }
    let stream = open_stream(&mut ai.clone(), stream_on("", &words(3))).await;
    let stream_usage = final_usage(stream).await.expect("stream finished");
    let mut answered: HashMap<String, i64> = HashMap::new();
    while let Some(call) = calls.join_next().await {
        let (id, output_tokens) = call.expect("call task");
        answered.insert(id, output_tokens);
    }
    let dir = city.stop().await;

    let city = TestCity::start_in(dir, |_| {}).await;
    let rows = city.usage_rows(studio_filter(STUDIO)).await;
    assert_eq!(rows.len(), 101, "100 unary calls and one stream");
    let by_id = rows_by_request_id(rows);
    for (id, output_tokens) in &answered {
        assert_eq!(by_id[id].output_tokens, *output_tokens, "{id}");
    }
    let stream_rows: Vec<_> = by_id
        .values()
        .filter(|row| !row.request_id.starts_with("async-"))
        .collect();
    assert_eq!(stream_rows[0].output_tokens, stream_usage.output_tokens);
}

//! Metrics end to end: a real Prometheus scrapes City's `/metrics` every
//! second, and PromQL returns exactly the calls the test made, by studio,
//! model, pathway and code: answered, refused at the door, unknown model,
//! over quota; the studio beyond `max_studio_labels` counted as `other`.

use std::collections::{BTreeMap, BTreeSet};

use downcity::proto::{self, LimitTarget, Limits};
use downcity::server::{MOCK_IMAGE_MODEL, MOCK_TEXT_MODEL};
use serde_json::Value;
use tonic::Code;

use crate::common::process::{CityProcess, strip_ansi};
use crate::common::prometheus::Prometheus;
use crate::common::*;

type Series = BTreeMap<Vec<String>, f64>;

/// Each series of `promql`, keyed by the values of `labels`.
async fn series(prometheus: &Prometheus, promql: &str, labels: &[&str]) -> Series {
    prometheus
        .query(promql)
        .await
        .into_iter()
        .map(|(metric, value)| {
            let key = labels
                .iter()
                .map(|l| metric[*l].as_str().unwrap_or_default().to_string())
                .collect();
            (key, value)
        })
        .collect()
}

fn expect(rows: &[(&[&str], f64)]) -> Series {
    rows.iter()
        .map(|(key, value)| (key.iter().map(|s| s.to_string()).collect(), *value))
        .collect()
}

/// A model on an upstream nobody listens on.
const DOWN_MODEL: &str = "down-text";

fn text_request_for(model: &str) -> proto::TextRequest {
    proto::TextRequest {
        model: model.into(),
        ..text_request("hello")
    }
}

/// The calls: each studio in turn, so alpha and beta get their own labels.
async fn make_calls(city: &TestCity) {
    let provider = proto::Provider {
        id: "down".into(),
        kind: proto::ProviderKind::OpenaiCompatible as i32,
        base_url: "http://127.0.0.1:1/v1".into(),
        ..Default::default()
    };
    city.admin()
        .upsert_provider(proto::UpsertProviderRequest {
            provider: Some(provider),
            api_key: None,
        })
        .await
        .expect("upsert provider");
    city.upsert_model(proto::Model {
        provider_id: "down".into(),
        ..text_model(DOWN_MODEL, &[])
    })
    .await;
    let alpha = city.studio_with_user("alpha", "ann").await;
    let beta = city.studio_with_user("beta", "bob").await;
    let gamma = city.studio_with_user("gamma", "gus").await;
    let mut ai = city.ai("alpha", &alpha);
    for _ in 0..2 {
        ai.text(text_request("hello")).await.expect("Text");
    }
    let mut stream = ai
        .stream_text(proto::StreamTextRequest {
            messages: vec![user_message("stream please")],
            ..Default::default()
        })
        .await
        .expect("StreamText")
        .into_inner();
    while stream.message().await.expect("stream message").is_some() {}
    let unknown = proto::TextRequest {
        model: "no-such-model".into(),
        ..text_request("hello")
    };
    let status = ai.text(unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let no_messages = proto::TextRequest::default();
    let status = ai.text(no_messages).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let image = proto::ImageRequest {
        model: MOCK_IMAGE_MODEL.into(),
        prompt: "a lighthouse".into(),
        count: Some(1),
        ..Default::default()
    };
    ai.image(image).await.expect("Image");
    let status = ai.text(text_request_for(DOWN_MODEL)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = city
        .ai("alpha", "not-a-token")
        .text(text_request("hello"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let mut ai = city.ai("beta", &beta);
    ai.text(text_request("hello")).await.expect("Text");
    city.admin()
        .set_limits(proto::SetLimitsRequest {
            studio_id: "beta".into(),
            target: LimitTarget::UserDefault as i32,
            user_id: String::new(),
            limits: Some(Limits {
                requests_per_minute: Some(0),
                ..Default::default()
            }),
        })
        .await
        .expect("set limits");
    let status = ai.text(text_request("hello")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    city.ai("gamma", &gamma)
        .text(text_request("hello"))
        .await
        .expect("Text");
}

#[tokio::test]
async fn prometheus_sees_exactly_the_calls_made_by_studio_and_code() {
    let city = TestCity::start_with(|config| {
        config.metrics.listen = Some("127.0.0.1:0".into());
        config.metrics.max_studio_labels = 2;
    })
    .await;
    let target = city.metrics_addr.expect("a metrics listener");
    let Some(prometheus) = Prometheus::start(target).await else {
        return;
    };
    make_calls(&city).await;
    prometheus
        .wait_for("sum(downcity_ai_calls_total)", 10.0)
        .await;

    let calls = series(
        &prometheus,
        "downcity_ai_calls_total",
        &["studio", "model", "pathway", "code"],
    )
    .await;
    let text = MOCK_TEXT_MODEL;
    let expected = expect(&[
        (&["alpha", text, "text", "OK"], 3.0),
        (&["alpha", MOCK_IMAGE_MODEL, "image", "OK"], 1.0),
        (&["alpha", "unknown", "text", "NOT_FOUND"], 1.0),
        (&["alpha", DOWN_MODEL, "text", "UNAVAILABLE"], 1.0),
        (&["alpha", text, "text", "INVALID_ARGUMENT"], 1.0),
        (&["beta", text, "text", "OK"], 1.0),
        (&["beta", text, "text", "RESOURCE_EXHAUSTED"], 1.0),
        (&["other", text, "text", "OK"], 1.0),
    ]);
    assert_eq!(calls, expected);

    let quota = series(
        &prometheus,
        "downcity_quota_rejections_total",
        &["scope", "limit"],
    )
    .await;
    assert_eq!(quota, expect(&[(&["user", "requests_per_minute"], 1.0)]));

    let provider_errors = series(
        &prometheus,
        "downcity_provider_errors_total",
        &["provider", "reason"],
    )
    .await;
    assert_eq!(
        provider_errors,
        expect(&[(&["down", "PROVIDER_UNAVAILABLE"], 1.0)])
    );

    let grpc = series(
        &prometheus,
        r#"downcity_grpc_requests_total{method="/downcity.v1.AIService/Text"}"#,
        &["code"],
    )
    .await;
    let expected = expect(&[
        (&["OK"], 4.0),
        (&["NOT_FOUND"], 1.0),
        (&["UNAVAILABLE"], 1.0),
        (&["INVALID_ARGUMENT"], 1.0),
        (&["RESOURCE_EXHAUSTED"], 1.0),
        (&["UNAUTHENTICATED"], 1.0),
    ]);
    assert_eq!(grpc, expected);

    let single = |promql: &'static str| {
        let prometheus = &prometheus;
        async move {
            let result = prometheus.query(promql).await;
            assert_eq!(result.len(), 1, "`{promql}`: {result:?}");
            result[0].1
        }
    };
    let ttft = r#"downcity_ai_time_to_first_token_seconds_count{model="mock-text"}"#;
    assert_eq!(single(ttft).await, 1.0, "one stream had a first token");
    let output = r#"sum(downcity_ai_output_tokens_total{studio="alpha"})"#;
    assert!(single(output).await > 0.0);
    assert_eq!(single("downcity_ai_calls_in_flight").await, 0.0);
    assert_eq!(single("downcity_ai_streams_open").await, 0.0);
    assert_eq!(single("downcity_build_info").await, 1.0);
    assert!(single("sum(downcity_usage_batch_rows_count)").await >= 1.0);

    // Every dashboard query is PromQL this Prometheus evaluates (`query`
    // fails the test on an error answer).
    for (_title, expr) in dashboard_queries(&dashboard()) {
        prometheus.query(&expr).await;
    }
}

#[tokio::test]
async fn metrics_are_off_unless_a_listener_is_set() {
    let city = TestCity::start().await;
    assert!(city.metrics_addr.is_none());
}

// ---- The Grafana dashboard ---------------------------------------------------

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/downcity.json");

fn dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("deploy/grafana/downcity.json");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel's PromQL, with Grafana's variables as Prometheus would get them.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__range", "1h")
                .replace("$studio", ".*");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    queries
}

/// The series names `/metrics` can carry, from its `# TYPE` lines (a family
/// is described even before its first sample).
async fn exported_names(metrics_addr: std::net::SocketAddr) -> BTreeSet<String> {
    let text = crate::common::http_get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("scrapes /metrics")
        .text()
        .await
        .unwrap();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("#") || words.next() != Some("TYPE") {
            continue;
        }
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            "info" => &["_info"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

/// The `downcity_*` names a PromQL expression reads.
fn names_in(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("downcity_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.push(name);
    }
    names
}

/// The shape Grafana needs to load a dashboard: identity, schema version,
/// and panels with unique ids, a type, a grid position and their queries.
fn check_dashboard_shape(dashboard: &Value) {
    for key in ["title", "uid"] {
        assert!(dashboard[key].is_string(), "dashboard `{key}`");
    }
    assert!(dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().expect("a panel title");
        assert!(
            ids.insert(panel["id"].as_u64().expect("a panel id")),
            "{title}: id"
        );
        assert!(panel["type"].is_string(), "{title}: type");
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for target in targets {
            assert!(target["refId"].is_string(), "{title}: refId");
            assert!(target["expr"].is_string(), "{title}: expr");
        }
    }
}

#[tokio::test]
async fn the_dashboard_loads_and_reads_only_metrics_city_exports() {
    let city = TestCity::start_with(|config| {
        config.metrics.listen = Some("127.0.0.1:0".into());
    })
    .await;
    make_calls(&city).await;
    let dashboard = dashboard();
    check_dashboard_shape(&dashboard);
    let exported = exported_names(city.metrics_addr.unwrap()).await;
    assert!(exported.contains("downcity_ai_calls_total"), "{exported:?}");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "{queries:?}");
    for (title, expr) in &queries {
        let names = names_in(expr);
        assert!(!names.is_empty(), "{title}: reads no City metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "{title}: `{name}` is not exported"
            );
        }
    }
}

#[tokio::test]
async fn the_metrics_listen_flag_serves_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let mut city = CityProcess::spawn(&args, &[], dir.path(), "city");
    let addr = city
        .wait_for("the metrics log line", |p| {
            let stderr = strip_ansi(&p.stderr());
            let line = stderr
                .lines()
                .find(|l| l.contains("metrics at"))?
                .to_string();
            let start = line.find("addr=")? + "addr=".len();
            Some(line[start..].split_whitespace().next()?.to_string())
        })
        .await;
    let metrics = crate::common::http_get(format!("http://{addr}/metrics"))
        .await
        .expect("scrapes /metrics")
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("downcity_build_info{version="),
        "{metrics}"
    );
    city.terminate_cleanly().await;
}

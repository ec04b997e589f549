//! The admin CLI's quota commands against a real `downcity serve --dev`:
//! limits set/get/standing, allow-models, hour and month aggregates, and
//! the CSV usage export.

use std::collections::HashMap;

use crate::common::process::{CityProcess, ai_client, connect, json};
use crate::common::text_request;

/// Splits RFC 4180 CSV into rows of cells (enough of it for these tests).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "the last row is not ended"
    );
    rows
}

#[tokio::test]
async fn quota_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let args = [
        "serve",
        "--dev",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir,
    ];
    let mut city = CityProcess::spawn(&args, &[], logs.path(), "cli-quotas");
    let env = city.wait_dev_env(dir.path()).await;

    // Three calls, one with metadata that needs CSV quoting.
    let channel = connect(&env.addr).await;
    let mut ai = ai_client(channel.clone(), &env.studio_id, &env.user_token);
    let tricky = "a, \"quoted\"\nsecond line";
    for i in 0..3 {
        let mut request = text_request(&format!("call {i}"));
        if i == 1 {
            request.metadata = HashMap::from([("note".into(), tricky.into())]);
        }
        ai.text(request).await.expect("the call is served");
    }

    // limits set / get, for the studio and one user.
    let set = json(&env.admin(&[
        "--json",
        "limits",
        "set",
        "demo",
        "--requests-per-minute",
        "100",
        "--cost-per-month",
        "5000000",
    ]));
    assert_eq!(set["limits"]["requests_per_minute"], 100, "{set}");
    assert_eq!(set["limits"]["cost_micros_per_month"], 5_000_000, "{set}");
    assert!(set["limits"]["tokens_per_day"].is_null(), "{set}");
    env.admin(&[
        "limits",
        "set",
        "demo",
        "--user",
        "demo-user",
        "--tokens-per-day",
        "1000000",
    ]);
    let got = json(&env.admin(&["--json", "limits", "get", "demo", "--user", "demo-user"]));
    assert_eq!(got["limits"]["tokens_per_day"], 1_000_000, "{got}");
    let table = env.admin(&["limits", "get", "demo", "--user-default"]);
    assert!(
        table.contains("TOKENS_PER_DAY") && table.contains("none"),
        "{table}"
    );

    // standing: the studio's limits and the user's, with what is used.
    let standing = json(&env.admin(&[
        "--json",
        "limits",
        "standing",
        "demo",
        "--user",
        "demo-user",
    ]));
    let rows = standing["limits"].as_array().expect("limits");
    let find = |scope: &str, limit: &str| {
        rows.iter()
            .find(|r| r["scope"] == scope && r["limit"] == limit)
            .unwrap_or_else(|| panic!("no {scope} {limit} in {standing}"))
    };
    let rpm = find("studio", "requests_per_minute");
    assert_eq!(
        (rpm["value"].as_i64(), rpm["window"].as_str()),
        (Some(100), Some("minute"))
    );
    let tpd = find("user", "tokens_per_day");
    assert!(tpd["used"].as_i64().unwrap() > 0, "{standing}");
    assert_eq!(tpd["reserved"], 0, "{standing}");
    let table = env.admin(&["limits", "standing", "demo"]);
    for column in ["SCOPE", "LIMIT", "WINDOW", "REMAINING", "RESET_TIME"] {
        assert!(table.contains(column), "{table}");
    }
    // No flags: every limit of the target is removed.
    let cleared = json(&env.admin(&["--json", "limits", "set", "demo", "--user", "demo-user"]));
    assert!(cleared["limits"]["tokens_per_day"].is_null(), "{cleared}");

    // allow-models, then --all.
    let studio = json(&env.admin(&["--json", "studios", "allow-models", "demo", "mock-text"]));
    assert_eq!(
        studio["studio"]["allowed_model_ids"],
        serde_json::json!(["mock-text"])
    );
    let listed = env.admin(&["studios", "list"]);
    assert!(
        listed.contains("ALLOWED_MODEL_IDS") && listed.contains("mock-text"),
        "{listed}"
    );
    let studio = json(&env.admin(&["--json", "studios", "allow-models", "demo", "--all"]));
    assert_eq!(studio["studio"]["allowed_model_ids"], serde_json::json!([]));

    // Aggregates by hour and month.
    let by = json(&env.admin(&["--json", "usage", "aggregate", "--by", "hour,month"]));
    let row = &by["rows"][0];
    assert_eq!(row["calls"], 3, "{by}");
    assert_eq!(
        row["hour"].as_str().unwrap().len(),
        "2025-01-31T08".len(),
        "{by}"
    );
    assert_eq!(
        row["month"].as_str().unwrap().len(),
        "2025-01".len(),
        "{by}"
    );

    // The CSV export, to a file and to stdout.
    let file = dir.path().join("usage.csv");
    env.admin(&[
        "usage",
        "export",
        "--studio",
        "demo",
        "--output",
        file.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&file).unwrap();
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 4, "a header and three records:\n{text}");
    let header = &rows[0];
    assert_eq!(header[0], "request_id");
    assert!(rows.iter().all(|r| r.len() == header.len()), "{rows:?}");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let metadata = rows[1..]
        .iter()
        .find(|r| !r[column("metadata")].is_empty() && r[column("metadata")] != "{}")
        .map(|r| json(&r[column("metadata")]))
        .unwrap_or_else(|| panic!("no metadata:\n{text}"));
    assert_eq!(metadata["note"], tricky);
    let time = &rows[1][column("create_time")];
    assert!(
        humantime::parse_rfc3339(time).is_ok(),
        "not RFC 3339: {time}"
    );
    let stdout = env.admin(&["usage", "export", "--user", "nobody"]);
    assert_eq!(parse_csv(&stdout).len(), 1, "only the header:\n{stdout}");

    drop((ai, channel));
    let status = city.terminate().await;
    assert!(status.success(), "SIGTERM → exit 0, got {status}");
}

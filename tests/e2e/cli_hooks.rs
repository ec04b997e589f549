//! The admin CLI's hook commands against a real `downcity serve --dev` and a
//! real HTTP receiver on 127.0.0.1: upsert prints the signing secret once
//! (and that secret signs the deliveries), list never shows it, deliveries
//! and redeliver follow a real after_call delivery, delete works, and bad
//! input fails with a clear message.

use std::time::{Duration, Instant};

use crate::common::process::{CityProcess, DevEnv, ai_client, connect, json};
use crate::common::receiver::{Before, Receiver, assert_signed};
use crate::common::text_request;

/// The first whitespace- or table-separated word of `text` starting with
/// `prefix`.
fn word_with(text: &str, prefix: &str) -> String {
    text.split(|c: char| c.is_whitespace() || c == '│')
        .find(|w| w.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}...` in:\n{text}"))
        .to_string()
}

/// `hooks upsert --url <url> <args>`.
fn upsert<'a>(url: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    [&["hooks", "upsert", "--url", url][..], args].concat()
}

/// Runs `hooks deliveries --json` for the demo studio until `done` holds for
/// the listed deliveries (at most 20 s); returns them.
fn wait_deliveries(
    env: &DevEnv,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = json(&env.admin(&["--json", "hooks", "deliveries", "--studio", "demo"]));
        let deliveries = listed["deliveries"].as_array().expect("deliveries").clone();
        if done(&deliveries) {
            return deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never reached the expected state: {listed}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// Multi-threaded: the receiver must answer while the test blocks on the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_commands_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut city, env) = CityProcess::serve_dev(dir.path(), &[], logs.path(), "cli-hooks").await;
    let receiver = Receiver::start(Before::Allow(serde_json::json!({"tier": "gold"})), 0).await;
    let url = receiver.url();

    // upsert, as a table: the hook, then its secret, once.
    let created = env.admin(&upsert(
        &url,
        &["--studio", "demo", "--event", "after_call"],
    ));
    let after_id = word_with(&created, "hk_");
    let after_secret = word_with(&created, "whsec_");
    assert!(created.contains("shown only this once"), "{created}");
    assert!(
        created.contains("AFTER_CALL") && created.contains(&url),
        "{created}"
    );

    // upsert, as JSON, with every option.
    let before = json(&env.admin(&upsert(
        &url,
        &[
            "--json",
            "--studio",
            "demo",
            "--event",
            "before_call",
            "--timeout",
            "1500ms",
            "--failure-policy",
            "open",
            "--include-prompt",
        ],
    )));
    let before_id = before["hook"]["id"].as_str().unwrap().to_string();
    let before_secret = before["secret"].as_str().unwrap().to_string();
    assert!(before_secret.starts_with("whsec_"), "{before}");
    assert_eq!(before["hook"]["studio_id"], "demo");
    assert_eq!(
        before["hook"]["events"],
        serde_json::json!(["HOOK_EVENT_BEFORE_CALL"])
    );
    assert_eq!(before["hook"]["timeout"], "1.500s");
    assert_eq!(
        before["hook"]["failure_policy"],
        "HOOK_FAILURE_POLICY_FAIL_OPEN"
    );
    assert_eq!(before["hook"]["include_prompt"], true);

    // Replacing a hook keeps its secret and does not show it again.
    let replace = [
        "--id",
        &before_id,
        "--studio",
        "demo",
        "--event",
        "before_call",
    ];
    let replaced = env.admin(&upsert(
        &url,
        &[&replace[..], &["--failure-policy", "closed"]].concat(),
    ));
    assert!(replaced.contains("FAIL_CLOSED"), "{replaced}");
    assert!(
        !replaced.contains("whsec_") && !replaced.contains("Secret"),
        "{replaced}"
    );
    let replaced = json(&env.admin(&upsert(&url, &[&replace[..], &["--json"]].concat())));
    assert!(replaced.get("secret").is_none(), "{replaced}");
    assert_eq!(replaced["hook"]["id"], before_id.as_str());

    // list: both hooks, never a secret.
    let secrets = [&after_secret, &before_secret];
    let table = env.admin(&["hooks", "list", "--studio", "demo"]);
    let listed = env.admin(&["--json", "hooks", "list", "--studio", "demo"]);
    for output in [&table, &listed] {
        assert!(
            output.contains(&after_id) && output.contains(&before_id),
            "{output}"
        );
        assert!(!output.contains("whsec_"), "{output}");
        for secret in secrets {
            assert!(!output.contains(&secret["whsec_".len()..]), "{output}");
        }
    }
    assert_eq!(json(&listed)["hooks"].as_array().unwrap().len(), 2);
    let city_wide = env.admin(&["hooks", "list"]);
    assert!(city_wide.contains("No hooks found."), "{city_wide}");

    // One call: the before_call hook allows it, the after_call hook gets its
    // row, signed with the secret the CLI printed.
    let channel = connect(&env.addr).await;
    let mut ai = ai_client(channel.clone(), &env.studio_id, &env.user_token);
    let answer = ai
        .text(text_request("hello hooks"))
        .await
        .expect("the call is served")
        .into_inner();
    let asked = receiver.received("before_call");
    assert_eq!(asked.len(), 1);
    assert_signed(&asked[0], &before_secret);
    let delivered = wait_deliveries(&env, |d| {
        d.len() == 1 && d[0]["state"] == "HOOK_DELIVERY_STATE_DELIVERED"
    });
    let delivery = &delivered[0];
    let delivery_id = delivery["id"].as_str().unwrap().to_string();
    assert_eq!(delivery["hook_id"], after_id.as_str());
    assert_eq!(delivery["request_id"], answer.request_id.as_str());
    assert_eq!(delivery["attempts"], 1);
    let sent = receiver.received("after_call");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].headers["webhook-id"], delivery_id);
    assert_signed(&sent[0], &after_secret);

    // deliveries, as a table and filtered by state.
    let table = env.admin(&[
        "hooks",
        "deliveries",
        "--studio",
        "demo",
        "--state",
        "delivered",
    ]);
    for expected in [
        &delivery_id,
        &after_id,
        "DELIVERED",
        "ATTEMPTS",
        "LAST_ERROR",
    ] {
        assert!(table.contains(expected), "{expected} missing:\n{table}");
    }
    let pending = env.admin(&[
        "hooks",
        "deliveries",
        "--studio",
        "demo",
        "--state",
        "pending",
    ]);
    assert!(pending.contains("No deliveries found."), "{pending}");

    // redeliver: pending again with its attempts reset, then sent again
    // under the same webhook-id.
    let again = json(&env.admin(&[
        "--json",
        "hooks",
        "redeliver",
        &delivery_id,
        "--studio",
        "demo",
    ]));
    assert_eq!(again["delivery"]["id"], delivery_id.as_str());
    assert_eq!(again["delivery"]["state"], "HOOK_DELIVERY_STATE_PENDING");
    assert_eq!(again["delivery"]["attempts"], 0);
    wait_deliveries(&env, |d| {
        d.len() == 1 && d[0]["state"] == "HOOK_DELIVERY_STATE_DELIVERED" && d[0]["attempts"] == 1
    });
    let sent = receiver.received("after_call");
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].headers["webhook-id"], delivery_id);
    assert_signed(&sent[1], &after_secret);

    // Bad input fails with the server's reason and no output.
    let err = env.admin_fails(&["hooks", "delete", "hk_nope", "--studio", "demo"]);
    assert!(
        err.contains("NOT_FOUND") && err.contains("hk_nope"),
        "{err}"
    );
    let err = env.admin_fails(&["hooks", "redeliver", "msg_nope", "--studio", "demo"]);
    assert!(
        err.contains("NOT_FOUND") && err.contains("msg_nope"),
        "{err}"
    );
    let err = env.admin_fails(&upsert(
        "not a url",
        &["--studio", "demo", "--event", "after_call"],
    ));
    assert!(
        err.contains("INVALID_ARGUMENT") && err.contains("hook.url"),
        "{err}"
    );
    let err = env.admin_fails(&upsert(
        &url,
        &["--studio", "nosuch", "--event", "after_call"],
    ));
    assert!(
        err.contains("NOT_FOUND") && err.contains("studio `nosuch`"),
        "{err}"
    );
    let err = env.admin_fails(&upsert(&url, &["--event", "after_call"]));
    assert!(
        err.contains("--studio") && err.contains("--city-wide"),
        "{err}"
    );
    let err = env.admin_fails(&upsert(&url, &["--studio", "demo", "--event", "whenever"]));
    assert!(
        err.contains("before_call") && err.contains("after_call"),
        "{err}"
    );

    // delete, as a table and as JSON.
    let deleted = env.admin(&["hooks", "delete", &before_id, "--studio", "demo"]);
    assert!(
        deleted.contains(&format!("Deleted hook `{before_id}`.")),
        "{deleted}"
    );
    let listed = json(&env.admin(&["--json", "hooks", "list", "--studio", "demo"]));
    let ids: Vec<_> = listed["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [after_id.as_str()]);
    let deleted = json(&env.admin(&["--json", "hooks", "delete", &after_id, "--studio", "demo"]));
    assert_eq!(deleted, serde_json::json!({}));
    let table = env.admin(&["hooks", "list", "--studio", "demo"]);
    assert!(table.contains("No hooks found."), "{table}");

    drop((ai, channel));
    city.terminate_cleanly().await;
}

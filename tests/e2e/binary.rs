//! The real `downcity` binary, as the README uses it: `serve --dev`, the
//! admin CLI against it, SIGTERM, a restart on the same data directory, a bad
//! config file, and the admin key generated once without `--dev`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;

use crate::common::process::{
    CityProcess, admin_cli, admin_client, ai_client, command, connect, hello_with_dev_token, json,
    run,
};
use crate::common::{assert_refused, req, text_request};
use downcity::proto;
use tonic::Code;
use tonic::transport::Channel;

/// The string `field` of every element of the array `value[list]`.
fn strings_of(value: &serde_json::Value, list: &str, field: &str) -> Vec<String> {
    value[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}: {value}"))
        .iter()
        .map(|item| item[field].as_str().unwrap().to_string())
        .collect()
}

/// ListStudios with `key` as the bearer.
async fn studios_with_key(
    channel: &Channel,
    key: &str,
) -> Result<tonic::Response<proto::ListStudiosResponse>, tonic::Status> {
    admin_client(channel.clone(), Some(key))
        .list_studios(proto::ListStudiosRequest::default())
        .await
}

#[tokio::test]
async fn serve_dev_works_with_the_admin_cli_and_restarts_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();

    // ---- first start
    let (mut city, env) = CityProcess::serve_dev(dir.path(), &[], logs.path(), "first").await;
    let keys: Vec<_> = env.lines.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "DOWNCITY_ADDR",
            "DOWNCITY_ADMIN_KEY",
            "DOWNCITY_METRICS_ADDR",
            "DOWNCITY_STUDIO_ID",
            "DOWNCITY_USER_TOKEN"
        ]
    );
    let text = std::fs::read_to_string(dir.path().join("dev.env")).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    let mode = std::fs::metadata(dir.path().join("dev.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "dev.env holds secrets: mode {mode:o}");
    let addr: SocketAddr = env.addr.parse().expect("DOWNCITY_ADDR is host:port");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "dev.env holds the real port");
    assert!(env.admin_key.starts_with("dca_"), "{}", env.admin_key);
    assert_eq!(env.studio_id, "demo");
    assert!(env.user_token.starts_with("dcu_"), "{}", env.user_token);

    // A Text call with the dev credentials.
    let channel = connect(&env.addr).await;
    let answer = hello_with_dev_token(channel.clone(), &env).await;
    assert_eq!(answer.model, "mock-text");
    assert!(!answer.request_id.is_empty());

    // --dev serves /metrics where dev.env says, counting that call.
    let metrics_addr = &env.lines["DOWNCITY_METRICS_ADDR"];
    let metrics = crate::common::http_get(format!("http://{metrics_addr}/metrics"))
        .await
        .expect("scrapes /metrics")
        .text()
        .await
        .unwrap();
    let counted =
        r#"downcity_ai_calls_total{studio="demo",model="mock-text",pathway="text",code="OK"} 1"#;
    assert!(metrics.contains(counted), "{metrics}");

    // The admin CLI, with flags ...
    let studios = admin_cli(&env.addr, &env.admin_key, &["studios", "list"]);
    assert!(studios.contains("demo"), "{studios}");
    // ... and from the environment, as after `. dev.env`.
    let output = command(&["admin", "--json", "usage", "list"])
        .env("DOWNCITY_ADDR", &env.addr)
        .env("DOWNCITY_ADMIN_KEY", &env.admin_key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "admin --json usage list failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let usage = json(&stdout);
    let records = usage["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records: {usage}"));
    assert_eq!(records.len(), 1, "{usage}");
    assert_eq!(
        records[0]["request_id"],
        answer.request_id.as_str(),
        "{usage}"
    );
    assert_eq!(records[0]["studio_id"], "demo", "{usage}");
    assert_eq!(records[0]["user_id"], "demo-user", "{usage}");
    assert_eq!(records[0]["model_id"], "mock-text", "{usage}");
    assert_eq!(records[0]["status_code"], 0, "{usage}");

    // A wrong key: the CLI fails with the reason on stderr.
    let output = run(&[
        "admin",
        "--addr",
        &env.addr,
        "--admin-key",
        "wrong",
        "studios",
        "list",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TOKEN_INVALID"), "{stderr}");

    drop(channel);
    city.terminate_cleanly().await;

    // ---- second start on the same data dir
    let (mut again, env2) = CityProcess::serve_dev(dir.path(), &[], logs.path(), "second").await;
    assert_eq!(env2.admin_key, env.admin_key, "the admin key is kept");
    assert_eq!(env2.user_token, env.user_token, "the user token is kept");
    assert_eq!(env2.studio_id, "demo");
    assert!(
        !again.stdout().contains("Admin key"),
        "no new admin key:\n{}",
        again.stdout()
    );

    let channel = connect(&env2.addr).await;
    let second = ai_client(channel.clone(), "demo", &env.user_token)
        .text(text_request("Hello again"))
        .await
        .expect("the kept token still works")
        .into_inner();
    assert_eq!(second.text, "Echo: Hello again");
    let listing = json(&admin_cli(
        &env2.addr,
        &env.admin_key,
        &["--json", "studios", "list"],
    ));
    let ids = strings_of(&listing, "studios", "id");
    assert_eq!(ids, ["demo"], "the demo studio is not duplicated");
    let tokens = admin_client(channel.clone(), Some(&env.admin_key))
        .list_user_tokens(req::list_user_tokens("demo"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tokens.tokens.len(), 1, "no second dev token: {tokens:?}");
    // The first run's usage survived the restart.
    let usage = json(&admin_cli(
        &env2.addr,
        &env.admin_key,
        &["--json", "usage", "list"],
    ));
    let request_ids = strings_of(&usage, "records", "request_id");
    assert_eq!(
        request_ids,
        [second.request_id.clone(), answer.request_id.clone()],
        "{usage}"
    );

    drop(channel);
    again.terminate_cleanly().await;
}

#[tokio::test]
async fn unknown_config_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("f.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nbogus_knob = 3\n").unwrap();
    let mut city = CityProcess::spawn(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
        dir.path(),
        "city",
    );
    let status = city.exit_status().await;
    assert!(!status.success(), "an unknown key must stop City");
    let stderr = city.stderr();
    assert!(
        stderr.contains("bogus_knob"),
        "the message names the key:\n{stderr}"
    );
    assert!(
        !dir.path().join("downcity.db").exists(),
        "a refused config must not open the store"
    );
}

#[tokio::test]
async fn admin_key_is_generated_once_without_dev() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    // `command` removes every inherited DOWNCITY_* variable, DOWNCITY_ADMIN_KEY included.
    let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];

    let mut city = CityProcess::spawn(&args, &[], logs.path(), "first");
    let addr = city.wait_listening().await;
    let stdout = city.stdout();
    assert_eq!(stdout.matches("Admin key").count(), 1, "{stdout}");
    assert_eq!(
        stdout.matches("dca_").count(),
        1,
        "the key is printed once:\n{stdout}"
    );
    let line = stdout.lines().find(|l| l.contains("Admin key")).unwrap();
    let start = line.find("dca_").expect("a dca_ key on the Admin key line");
    let key: String = line[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert!(key.len() > "dca_".len() + 16, "{line}");
    assert!(
        !dir.path().join("dev.env").exists(),
        "no dev.env without --dev"
    );

    let channel = connect(&addr).await;
    studios_with_key(&channel, &key)
        .await
        .expect("the printed key is the admin key");
    drop(channel);
    city.terminate_cleanly().await;

    // Second start: no new key, and the first one still works.
    let mut again = CityProcess::spawn(&args, &[], logs.path(), "second");
    let addr = again.wait_listening().await;
    let stdout = again.stdout();
    assert!(
        !stdout.contains("Admin key") && !stdout.contains("dca_"),
        "a second key was printed:\n{stdout}"
    );
    let channel = connect(&addr).await;
    studios_with_key(&channel, &key)
        .await
        .expect("the first key still works after a restart");
    assert_refused(
        studios_with_key(&channel, "dca_not-the-key").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    drop(channel);
    again.terminate_cleanly().await;
}

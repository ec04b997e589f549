//! Provider API keys: write-only through the admin API (hint only), sealed
//! at rest under the master key, a wrong master key refused at start, the
//! offline re-key, `api_key_env` in the config, `--dev`'s key file, and no
//! key in any log line, error or admin response of the real binary.

use crate::common::process::{CityProcess, admin_client, ai_client, connect};
use crate::common::{TestCity, assert_invalid_argument, assert_refused, req};
use crate::fake_upstream::{FakeUpstream, KEY, Reply, model, provider, text_request};
use downcity::config::SecretText;
use downcity::keys::{self, MasterKey};
use downcity::proto::{self, Pathway, ProviderKind};
use downcity::store::Store;
use downcity::store::sqlite::SqliteStore;
use serde_json::json;
use tonic::Code;

fn ok_completion() -> Reply {
    Reply::ok(&json!({
        "choices": [{ "index": 0, "finish_reason": "stop", "message": { "role": "assistant", "content": "ok" } }],
        "usage": { "prompt_tokens": 1, "completion_tokens": 1 }
    }))
}

/// `Bearer <KEY>`: what the upstream gets when City sends the provider key.
fn bearer_key() -> String {
    format!("Bearer {KEY}")
}

/// Makes a Text call on `gpt` in studio s1 and returns the authorization
/// header the fake upstream got with it.
async fn authorization_sent(city: &TestCity, token: &str, fake: &FakeUpstream) -> Option<String> {
    city.ai("s1", token)
        .text(text_request("gpt", "Hi"))
        .await
        .unwrap();
    fake.last().header("authorization").map(str::to_string)
}

/// Every provider, as AdminService lists them.
async fn list_providers(city: &TestCity) -> proto::ListProvidersResponse {
    city.admin()
        .list_providers(proto::ListProvidersRequest::default())
        .await
        .unwrap()
        .into_inner()
}

fn with_master(master: &MasterKey) -> impl FnOnce(&mut downcity::config::Config) + use<> {
    let text = master.to_base64();
    move |config| config.master_key = Some(SecretText(text))
}

#[tokio::test]
async fn the_key_is_write_only_kept_replaced_and_cleared() {
    let (city, token) = crate::fake_upstream::city().await;
    let fake = FakeUpstream::start().await;
    fake.always(ok_completion());
    let base = format!("{}/v1", fake.url());
    let stored = provider(&city, "oai", ProviderKind::Openai, &base, Some(KEY), |_| {}).await;
    assert_eq!(stored.api_key_hint, "wxyz");
    assert!(stored.api_key_update_time.is_some());
    assert!(!format!("{stored:?}").contains(KEY));
    model(&city, "gpt", "oai", "gpt-4o-mini", Pathway::Text, &[]).await;
    assert_eq!(
        authorization_sent(&city, &token, &fake).await,
        Some(bearer_key())
    );

    // Unset keeps the key, even as other fields change.
    let kept = provider(&city, "oai", ProviderKind::Openai, &base, None, |p| {
        p.headers.insert("x-extra".into(), "1".into());
    })
    .await;
    assert_eq!(
        (kept.api_key_hint.as_str(), kept.api_key_update_time),
        ("wxyz", stored.api_key_update_time)
    );
    assert_eq!(
        authorization_sent(&city, &token, &fake).await,
        Some(bearer_key())
    );
    assert_eq!(fake.last().header("x-extra"), Some("1"));

    let listed = list_providers(&city).await;
    assert!(!format!("{listed:?}").contains(KEY));
    let oai = listed.providers.iter().find(|p| p.id == "oai").unwrap();
    assert_eq!(oai.api_key_hint, "wxyz");

    // A new key replaces it.
    let replaced = provider(
        &city,
        "oai",
        ProviderKind::Openai,
        &base,
        Some("sk-other-1234"),
        |_| {},
    )
    .await;
    assert_eq!(replaced.api_key_hint, "1234");
    assert_eq!(
        authorization_sent(&city, &token, &fake).await.as_deref(),
        Some("Bearer sk-other-1234")
    );

    // Empty clears it.
    let cleared = provider(&city, "oai", ProviderKind::Openai, &base, Some(""), |_| {}).await;
    assert_eq!(cleared.api_key_hint, "");
    assert_eq!(authorization_sent(&city, &token, &fake).await, None);
}

#[tokio::test]
async fn without_a_master_key_no_key_is_accepted() {
    let city = TestCity::start().await;
    assert_refused(
        city.admin()
            .upsert_provider(req::upsert_provider("oai", ProviderKind::Openai, Some(KEY)))
            .await,
        Code::FailedPrecondition,
        "MASTER_KEY_MISSING",
    );
    assert_invalid_argument(
        city.admin()
            .upsert_provider(req::upsert_provider(
                "oai",
                ProviderKind::Openai,
                Some("bad\nkey"),
            ))
            .await,
    );
}

/// Every byte City keeps on disk under `dir`.
fn disk_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

#[tokio::test]
async fn keys_are_sealed_a_wrong_master_key_fails_and_rekey_moves_them() {
    let old = MasterKey::generate();
    let new = MasterKey::generate();
    let fake = FakeUpstream::start().await;
    fake.always(ok_completion());
    let base = format!("{}/v1", fake.url());

    let city = TestCity::start_with(with_master(&old)).await;
    provider(&city, "oai", ProviderKind::Openai, &base, Some(KEY), |_| {}).await;
    model(&city, "gpt", "oai", "gpt-4o-mini", Pathway::Text, &[]).await;
    let dir = city.stop().await;
    let on_disk = disk_bytes(dir.path());
    assert!(
        !on_disk.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
        "the key is on disk in plaintext"
    );

    // Another master key: a clear error at start.
    let mut config = downcity::config::Config {
        data_dir: dir.path().to_path_buf(),
        admin_key: Some(crate::common::ADMIN_KEY.into()),
        ..Default::default()
    };
    with_master(&new)(&mut config);
    let err = downcity::server::City::start(config.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("master key does not match"),
        "{err:#}"
    );
    // No master key at all: also refused.
    config.master_key = None;
    let err = downcity::server::City::start(config)
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{err:#}").contains("DOWNCITY_MASTER_KEY"),
        "{err:#}"
    );

    // Re-key offline, then the new key serves and the old one is refused.
    let store = SqliteStore::open(&dir.path().join("downcity.db"), false)
        .await
        .unwrap();
    assert!(
        keys::rekey(&store, Some(&new), &new).await.is_err(),
        "the wrong current key changes nothing"
    );
    assert_eq!(keys::rekey(&store, Some(&old), &new).await.unwrap(), 1);
    store.close().await;

    let city = TestCity::start_in(dir, with_master(&new)).await;
    let token = city.studio_with_user("s1", "u1").await;
    assert_eq!(
        authorization_sent(&city, &token, &fake).await,
        Some(bearer_key())
    );
    let dir = city.stop().await;
    let mut config = downcity::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    with_master(&old)(&mut config);
    assert!(downcity::server::City::start(config).await.is_err());
}

#[tokio::test]
async fn api_key_env_in_the_config_is_sealed_and_used() {
    let fake = FakeUpstream::start().await;
    fake.always(ok_completion());
    // A name no other test uses; set before City reads it.
    let var = "DOWNCITY_TEST_PROVIDER_KEY_FROM_ENV";
    // SAFETY: no other thread of this test binary reads or writes this variable.
    unsafe { std::env::set_var(var, KEY) };
    let master = MasterKey::generate();
    let base = format!("{}/v1", fake.url());
    let city = TestCity::start_with(|config| {
        with_master(&master)(config);
        config.providers.push(downcity::config::ProviderConfig {
            id: "envkey".into(),
            kind: downcity::domain::ProviderKind::OpenAi,
            base_url: base,
            api_key_env: Some(var.into()),
            headers: Default::default(),
            connect_timeout_ms: None,
            first_byte_timeout_ms: Some(5000),
            total_timeout_ms: None,
        });
    })
    .await;
    let token = city.studio_with_user("s1", "u1").await;
    model(&city, "gpt", "envkey", "gpt-4o-mini", Pathway::Text, &[]).await;
    assert_eq!(
        authorization_sent(&city, &token, &fake).await,
        Some(bearer_key())
    );
    let listed = list_providers(&city).await;
    let p = listed.providers.iter().find(|p| p.id == "envkey").unwrap();
    assert_eq!(p.api_key_hint, "wxyz");
    assert_eq!(p.first_byte_timeout.map(|d| d.seconds), Some(5));
}

#[tokio::test]
async fn no_provider_key_reaches_logs_errors_or_admin_responses() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    let (mut city, env) =
        CityProcess::serve_dev(dir.path(), &[("RUST_LOG", "trace")], logs.path(), "city").await;
    let master_file = dir.path().join("master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&master_file).unwrap().permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "--dev writes the master key file private"
    );

    let channel = connect(&env.addr).await;
    let mut admin = admin_client(channel.clone(), Some(&env.admin_key));
    let mut responses = String::new();
    for (id, kind, path) in [
        ("oai", ProviderKind::Openai, "/v1"),
        ("ant", ProviderKind::Anthropic, ""),
        ("gem", ProviderKind::Gemini, "/v1beta"),
    ] {
        let upserted = admin
            .upsert_provider(proto::UpsertProviderRequest {
                provider: Some(proto::Provider {
                    id: id.into(),
                    kind: kind as i32,
                    base_url: format!("{}{path}", fake.url()),
                    ..Default::default()
                }),
                api_key: Some(KEY.into()),
            })
            .await
            .unwrap();
        responses.push_str(&format!("{upserted:?}"));
        admin
            .upsert_model(proto::UpsertModelRequest {
                model: Some(proto::Model {
                    id: format!("{id}-model"),
                    provider_id: id.into(),
                    upstream_model: "m".into(),
                    pathway: Pathway::Text as i32,
                    enabled: Some(true),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    responses.push_str(&format!(
        "{:?}",
        admin
            .list_providers(proto::ListProvidersRequest::default())
            .await
            .unwrap()
    ));

    // Upstreams that echo the key back in their error bodies.
    let echo = json!({ "error": { "message": format!("Incorrect API key provided: {KEY}") } });
    let mut ai = ai_client(channel, &env.studio_id, &env.user_token);
    let mut errors = String::new();
    for status in [401, 429, 500, 400] {
        fake.always(Reply::json(status, &echo).header("retry-after", "0"));
        for model in ["oai-model", "ant-model", "gem-model"] {
            let err = ai.text(text_request(model, "Hi")).await.unwrap_err();
            errors.push_str(&format!("{err:?} {}", err.message()));
        }
    }
    fake.always(Reply::raw(
        200,
        "application/json",
        format!("{{\"broken\": \"{KEY}").into_bytes(),
    ));
    let err = ai.text(text_request("oai-model", "Hi")).await.unwrap_err();
    errors.push_str(&format!("{err:?}"));
    // The fake really got the key, so its absence below means something.
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&bearer_key()))
    );

    city.terminate().await;
    let secret_part = &KEY[8..];
    for (place, text) in [
        ("admin responses", responses),
        ("errors", errors),
        ("stdout", city.stdout()),
        ("stderr", city.stderr()),
    ] {
        assert!(
            !text.contains(secret_part),
            "the provider key appears in {place}:\n{text}"
        );
    }
    assert!(
        city.stderr().contains("upstream answered with an error"),
        "the upstream errors are logged"
    );
    let on_disk = disk_bytes(dir.path());
    assert!(
        !on_disk
            .windows(secret_part.len())
            .any(|w| w == secret_part.as_bytes())
    );
}

#[tokio::test]
async fn the_rekey_command_reseals_under_a_new_key_file() {
    let old = MasterKey::generate();
    let fake = FakeUpstream::start().await;
    fake.always(ok_completion());
    let city = TestCity::start_with(with_master(&old)).await;
    let base = format!("{}/v1", fake.url());
    provider(&city, "oai", ProviderKind::Openai, &base, Some(KEY), |_| {}).await;
    model(&city, "gpt", "oai", "gpt-4o-mini", Pathway::Text, &[]).await;
    let dir = city.stop().await;

    let keys_dir = tempfile::tempdir().unwrap();
    let new_file = keys_dir.path().join("new.key");
    let data_dir = dir.path().to_str().unwrap();
    let new_path = new_file.to_str().unwrap();
    let args = [
        "rekey",
        "--data-dir",
        data_dir,
        "--new-master-key-file",
        new_path,
        "--generate",
    ];
    // Without the current key it refuses and changes nothing.
    let refused = crate::common::process::command(&args).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("DOWNCITY_MASTER_KEY"));
    let done = crate::common::process::command(&args)
        .env("DOWNCITY_MASTER_KEY", old.to_base64())
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("Re-encrypted 1 provider key"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&new_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let new = MasterKey::read_file(&new_file).unwrap();
    let city = TestCity::start_in(dir, with_master(&new)).await;
    let token = city.studio_with_user("s1", "u1").await;
    assert_eq!(
        authorization_sent(&city, &token, &fake).await,
        Some(bearer_key())
    );
}

//! No secret (the admin key, a studio key, a user token) ever reaches City's
//! logs or a list/get response: the real binary at `RUST_LOG=trace`, driven
//! over gRPC with good and bad credentials, then stopped with SIGTERM.

use crate::common::process::{CityProcess, admin_client, ai_client, connect, hello_with_dev_token};
use crate::common::{assert_denied, assert_refused, req, text_request};
use downcity::proto;
use tonic::Code;
use tonic::transport::Channel;

/// Every secret to look for: each whole bearer and its part after the id.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    /// `dca_<secret>`: the admin key and its secret part.
    fn admin_key(&mut self, key: &str) {
        let part = key
            .strip_prefix("dca_")
            .expect("a generated admin key starts with dca_");
        self.add("admin key", key);
        self.add("admin key secret part", part);
    }

    /// `dck_<id>_<secret>` or `dcu_<id>_<secret>`: the bearer and its secret part.
    fn bearer(&mut self, what: &str, bearer: &str) {
        let mut parts = bearer.splitn(3, '_');
        let (prefix, id, secret) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        assert!(matches!(prefix, "dck" | "dcu"), "{bearer}");
        assert!(!id.is_empty() && secret.len() >= 16, "{bearer}");
        self.add(what, bearer);
        self.add(&format!("{what} (secret part)"), secret);
    }

    fn add(&mut self, what: &str, secret: &str) {
        self.0.push((what.to_string(), secret.to_string()));
    }

    /// Panics naming the first secret found in `text`.
    #[track_caller]
    fn assert_absent(&self, place: &str, text: &str) {
        for (what, secret) in &self.0 {
            assert!(
                !text.contains(secret.as_str()),
                "the {what} appears in {place}:\n{text}"
            );
        }
    }
}

/// A Text call of `prompt` as `token` in `studio_id`.
async fn text_as(
    channel: &Channel,
    studio_id: &str,
    token: &str,
    prompt: &str,
) -> Result<tonic::Response<proto::TextResponse>, tonic::Status> {
    ai_client(channel.clone(), studio_id, token)
        .text(text_request(prompt))
        .await
}

/// A successful response as `{:?}` shows it.
fn shown<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> String {
    format!("{:?}", result.unwrap().into_inner())
}

#[tokio::test]
async fn secrets_never_reach_the_logs_or_list_responses() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let (mut city, env) =
        CityProcess::serve_dev(dir.path(), &[("RUST_LOG", "trace")], logs.path(), "city").await;
    let mut secrets = Secrets::default();
    secrets.admin_key(&env.admin_key);
    secrets.bearer("dev user token", &env.user_token);

    let channel = connect(&env.addr).await;
    let mut admin = admin_client(channel.clone(), Some(&env.admin_key));
    // Every list/get response, formatted with {:?}.
    let mut responses = Vec::new();

    // The dev token works.
    hello_with_dev_token(channel.clone(), &env).await;

    // A studio, a studio key, user tokens.
    admin
        .create_studio(req::create_studio("acme", "Acme"))
        .await
        .unwrap();
    let key = admin
        .create_studio_key(req::create_studio_key("acme", "backend"))
        .await
        .unwrap()
        .into_inner();
    secrets.bearer("studio key", &key.secret);
    let key_id = key.key.unwrap().id;

    let mut user_tokens = Vec::new();
    for (user, ttl) in [("alice", None), ("bob", Some(3600)), ("carol", None)] {
        let issued = admin
            .issue_user_token(req::issue_user_token("acme", user, ttl))
            .await
            .unwrap()
            .into_inner();
        secrets.bearer(&format!("user token of {user}"), &issued.secret);
        user_tokens.push((issued.token.unwrap().id, issued.secret));
    }
    // A token issued with the studio key.
    let mut backend = admin_client(channel.clone(), Some(&key.secret));
    let by_key = backend
        .issue_user_token(req::issue_user_token("acme", "dave", None))
        .await
        .expect("the studio key issues tokens")
        .into_inner();
    secrets.bearer("user token issued by the studio key", &by_key.secret);
    user_tokens.push((by_key.token.unwrap().id, by_key.secret.clone()));

    // Good calls.
    for (_, token) in &user_tokens {
        ai_client(channel.clone(), "acme", token)
            .text(text_request("a good call"))
            .await
            .expect("a fresh token works");
    }
    let (alice_id, alice_token) = user_tokens[0].clone();

    // Bad calls: a wrong secret for a real token id, a token of another
    // studio, a revoked token, a malformed token.
    let wrong_secret = format!("dcu_{alice_id}_{}", "W".repeat(32));
    assert_refused(
        text_as(&channel, "acme", &wrong_secret, "a forged call").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    assert_refused(
        text_as(&channel, "demo", &alice_token, "the wrong studio").await,
        Code::PermissionDenied,
        "STUDIO_MISMATCH",
    );
    assert_refused(
        ai_client(channel.clone(), &env.studio_id, &alice_token)
            .list_models(proto::ListModelsRequest::default())
            .await,
        Code::PermissionDenied,
        "STUDIO_MISMATCH",
    );
    let (carol_id, carol_token) = user_tokens[2].clone();
    admin
        .revoke_user_token(req::revoke_user_token("acme", carol_id))
        .await
        .unwrap();
    assert_refused(
        text_as(&channel, "acme", &carol_token, "a revoked token").await,
        Code::Unauthenticated,
        "TOKEN_REVOKED",
    );
    assert_refused(
        text_as(&channel, "acme", "not-a-token", "a malformed token").await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // A user token on AdminService, a studio key with a wrong secret, an
    // admin key with one character more.
    assert_denied(
        admin_client(channel.clone(), Some(&alice_token))
            .list_studios(proto::ListStudiosRequest::default())
            .await,
    );
    assert_refused(
        admin_client(
            channel.clone(),
            Some(&format!("dck_{key_id}_{}", "K".repeat(32))),
        )
        .list_user_tokens(req::list_user_tokens("acme"))
        .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    assert_refused(
        admin_client(channel.clone(), Some(&format!("{}x", env.admin_key)))
            .list_studios(proto::ListStudiosRequest::default())
            .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // A studio key beyond its scope.
    assert_denied(
        backend
            .list_studios(proto::ListStudiosRequest::default())
            .await,
    );

    // Every list and get.
    responses.push(shown(
        admin
            .list_studios(proto::ListStudiosRequest::default())
            .await,
    ));
    for studio in ["acme", "demo"] {
        responses.push(shown(admin.get_studio(req::get_studio(studio)).await));
        responses.push(shown(
            admin.list_studio_keys(req::list_studio_keys(studio)).await,
        ));
        responses.push(shown(
            admin.list_user_tokens(req::list_user_tokens(studio)).await,
        ));
    }
    responses.push(shown(
        backend
            .list_user_tokens(req::list_tokens_of("acme", "alice"))
            .await,
    ));
    let usage = admin
        .list_usage_records(proto::ListUsageRecordsRequest::default())
        .await
        .unwrap()
        .into_inner();
    // The good calls: the dev token's and one per acme token; rejected calls leave none.
    assert_eq!(usage.records.len(), 1 + user_tokens.len(), "{usage:?}");
    responses.push(format!("{usage:?}"));
    responses.push(shown(
        backend
            .list_usage_records(proto::ListUsageRecordsRequest::default())
            .await,
    ));
    responses.push(shown(
        admin
            .aggregate_usage(proto::AggregateUsageRequest {
                group_by: vec![proto::UsageDimension::User as i32],
                ..Default::default()
            })
            .await,
    ));
    responses.push(shown(
        admin
            .list_providers(proto::ListProvidersRequest::default())
            .await,
    ));
    responses.push(shown(
        admin
            .list_catalog_models(proto::ListCatalogModelsRequest::default())
            .await,
    ));
    responses.push(shown(
        ai_client(channel.clone(), "acme", &alice_token)
            .list_models(proto::ListModelsRequest::default())
            .await,
    ));
    // The responses are real: they name what the calls created.
    let all = responses.join("\n");
    assert!(
        all.contains(&key_id) && all.contains(&alice_id) && all.contains("dave"),
        "{all}"
    );
    secrets.assert_absent("a list/get response", &all);

    drop(admin);
    drop(backend);
    drop(channel);
    let status = city.terminate().await;
    assert!(
        status.success(),
        "SIGTERM should end City with exit 0, got {status}\n{}",
        city.stderr()
    );

    let stderr = city.stderr();
    // The log is really at trace level and covers the calls and the shutdown.
    assert!(
        stderr.contains("TRACE"),
        "RUST_LOG=trace logged no TRACE line:\n{stderr}"
    );
    assert!(stderr.contains("/downcity.v1.AIService/Text"), "{stderr}");
    assert!(
        stderr.contains("/downcity.v1.AdminService/CreateStudioKey"),
        "{stderr}"
    );
    assert!(stderr.contains("usage flushed"), "{stderr}");
    secrets.assert_absent("City's log (stderr)", &stderr);

    // stdout is the "shown once" channel: the admin key at most once there.
    let stdout = city.stdout();
    assert!(
        stdout.matches(env.admin_key.as_str()).count() <= 1,
        "{stdout}"
    );
}

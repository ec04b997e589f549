//! AdminService end to end: studios, studio keys, user tokens, the catalog,
//! admin authentication, health and reflection, against a real City.

use std::collections::BTreeSet;

use crate::common::{
    Admin, TestCity, assert_denied, assert_invalid_argument, assert_not_found, assert_refused, req,
    text_request, violated_fields,
};
use downcity::proto::{self, Pathway, ProviderKind, StudioStatus};
use tonic::Code;

fn text_model(id: &str, provider: &str) -> proto::Model {
    proto::Model {
        id: id.into(),
        display_name: format!("Model {id}"),
        provider_id: provider.into(),
        upstream_model: "echo".into(),
        pathway: Pathway::Text as i32,
        enabled: Some(true),
        ..Default::default()
    }
}

/// The first page of the catalog, as the operator sees it.
async fn catalog(admin: &mut Admin) -> proto::ListCatalogModelsResponse {
    admin
        .list_catalog_models(proto::ListCatalogModelsRequest::default())
        .await
        .unwrap()
        .into_inner()
}

/// The first page of the providers, as the operator sees them.
async fn provider_list(admin: &mut Admin) -> proto::ListProvidersResponse {
    admin
        .list_providers(proto::ListProvidersRequest::default())
        .await
        .unwrap()
        .into_inner()
}

// ---------------------------------------------------------------- studios

#[tokio::test]
async fn studios_create_get_duplicate_invalid_and_unknown() {
    let city = TestCity::start().await;
    let mut admin = city.admin();

    let acme = admin
        .create_studio(req::create_studio("acme", "Acme"))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert_eq!(acme.id, "acme");
    assert_eq!(acme.display_name, "Acme");
    assert_eq!(acme.status, StudioStatus::Active as i32);
    assert!(acme.create_time.is_some() && acme.update_time.is_some());

    // No id: City picks a valid one.
    let picked = admin
        .create_studio(req::create_studio("", "Picked"))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert!(!picked.id.is_empty());
    assert_ne!(picked.id, "acme");
    downcity::domain::validate_studio_id(&picked.id)
        .expect("a City-chosen id is a valid studio id");
    let fetched = admin
        .get_studio(req::get_studio(picked.id.clone()))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert_eq!(fetched, picked);

    // Two studios without an id get two ids.
    let another = admin
        .create_studio(req::create_studio("", "Another"))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert_ne!(another.id, picked.id);

    assert_refused(
        admin
            .create_studio(req::create_studio("acme", "Acme again"))
            .await,
        Code::AlreadyExists,
        "ALREADY_EXISTS",
    );
    // The duplicate changed nothing.
    let still = admin
        .get_studio(req::get_studio("acme"))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert_eq!(still.display_name, "Acme");

    let bad = assert_invalid_argument(
        admin
            .create_studio(req::create_studio("Bad Id!", "Bad"))
            .await,
    );
    assert_eq!(violated_fields(&bad), ["studio_id"]);

    assert_not_found(admin.get_studio(req::get_studio("nowhere")).await);

    // Only the three valid studios exist.
    let all = admin
        .list_studios(proto::ListStudiosRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: BTreeSet<_> = all.studios.iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from(["acme".to_string(), picked.id.clone(), another.id.clone()])
    );
    city.stop().await;
}

#[tokio::test]
async fn studios_list_paginates_by_id() {
    let city = TestCity::start().await;
    let mut admin = city.admin();
    // Created out of order: the list is ordered by id.
    let ids = ["s-g", "s-c", "s-a", "s-e", "s-b", "s-f", "s-d"];
    for id in ids {
        admin
            .create_studio(req::create_studio(id, id))
            .await
            .unwrap();
    }

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = Vec::new();
    loop {
        let page = admin
            .list_studios(req::list_studios(3, page_token.clone()))
            .await
            .unwrap()
            .into_inner();
        assert!(page.studios.len() <= 3, "{page:?}");
        pages.push(page.studios.len());
        seen.extend(page.studios.iter().map(|s| s.id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(pages.len() < 10, "pagination does not end");
        page_token = page.next_page_token;
    }
    assert_eq!(pages, [3, 3, 1]);
    let mut expected: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every studio exactly once, in id order");

    // A page token of another list is refused.
    let models = admin
        .list_catalog_models(req::list_catalog_models(1, ""))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !models.next_page_token.is_empty(),
        "two built-in models, page of one"
    );
    let err = assert_invalid_argument(
        admin
            .list_studios(req::list_studios(3, models.next_page_token))
            .await,
    );
    assert_eq!(violated_fields(&err), ["page_token"]);

    // ... and the other way round.
    let first = admin
        .list_studios(req::list_studios(3, ""))
        .await
        .unwrap()
        .into_inner();
    assert_invalid_argument(
        admin
            .list_catalog_models(req::list_catalog_models(1, first.next_page_token))
            .await,
    );

    // Garbage is refused too, and so is a page size beyond 1000.
    assert_invalid_argument(
        admin
            .list_studios(req::list_studios(3, "not-a-token!"))
            .await,
    );
    let err = assert_invalid_argument(admin.list_studios(req::list_studios(1001, "")).await);
    assert_eq!(violated_fields(&err), ["page_size"]);
    city.stop().await;
}

#[tokio::test]
async fn studios_update_name_and_status() {
    let city = TestCity::start().await;
    let token = city.studio_with_user("acme", "u1").await;
    let mut admin = city.admin();

    let renamed = admin
        .update_studio(req::update_studio(
            "acme",
            Some("Acme Corp"),
            StudioStatus::Unspecified,
        ))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert_eq!(renamed.display_name, "Acme Corp");
    assert_eq!(
        renamed.status,
        StudioStatus::Active as i32,
        "unspecified leaves the status"
    );

    let suspended = admin
        .update_studio(req::update_studio("acme", None, StudioStatus::Suspended))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert_eq!(suspended.display_name, "Acme Corp", "unset leaves the name");
    assert_eq!(suspended.status, StudioStatus::Suspended as i32);

    let got = admin
        .get_studio(req::get_studio("acme"))
        .await
        .unwrap()
        .into_inner()
        .studio
        .unwrap();
    assert_eq!(got.display_name, "Acme Corp");
    assert_eq!(got.status, StudioStatus::Suspended as i32);

    // The suspension applies to the very next call.
    assert_refused(
        city.ai("acme", &token).text(text_request("hi")).await,
        Code::PermissionDenied,
        "STUDIO_SUSPENDED",
    );

    admin
        .update_studio(req::update_studio("acme", None, StudioStatus::Active))
        .await
        .unwrap();
    city.ai("acme", &token)
        .text(text_request("hi"))
        .await
        .expect("active again");

    assert_not_found(
        admin
            .update_studio(req::update_studio(
                "nowhere",
                Some("x"),
                StudioStatus::Unspecified,
            ))
            .await,
    );
    city.stop().await;
}

// ---------------------------------------------------------------- studio keys

#[tokio::test]
async fn studio_keys_are_scoped_to_their_studio_and_revocable() {
    let city = TestCity::start().await;
    let acme_user = city.studio_with_user("acme", "u-acme").await;
    let globex_user = city.studio_with_user("globex", "u-globex").await;
    // One usage row in each studio.
    city.ai("acme", &acme_user)
        .text(text_request("hello acme"))
        .await
        .unwrap();
    city.ai("globex", &globex_user)
        .text(text_request("hello globex"))
        .await
        .unwrap();

    let mut admin = city.admin();
    let created = admin
        .create_studio_key(req::create_studio_key("acme", "backend"))
        .await
        .unwrap()
        .into_inner();
    let key = created.key.unwrap();
    let secret = created.secret;
    assert!(secret.starts_with("dck_"), "{secret}");
    assert!(
        secret.starts_with(&format!("dck_{}_", key.id)),
        "{secret} / {}",
        key.id
    );
    assert_eq!(key.studio_id, "acme");
    assert_eq!(key.display_name, "backend");
    assert!(key.revoke_time.is_none());
    let secret_part = &secret[format!("dck_{}_", key.id).len()..];
    assert!(secret_part.len() >= 16);

    let listed = admin
        .list_studio_keys(req::list_studio_keys("acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(listed.keys[0].id, key.id);
    assert_eq!(listed.keys[0].display_name, "backend");
    let shown = format!("{listed:?}");
    assert!(
        !shown.contains(secret_part),
        "the list shows the secret: {shown}"
    );
    // Another studio's list does not show it.
    let other = admin
        .list_studio_keys(req::list_studio_keys("globex"))
        .await
        .unwrap()
        .into_inner();
    assert!(other.keys.is_empty(), "{other:?}");

    // The key works for its own studio's scoped calls.
    let mut backend = city.admin_with(Some(&secret));
    let issued = backend
        .issue_user_token(req::issue_user_token("acme", "u-new", None))
        .await
        .expect("a studio key issues tokens in its studio")
        .into_inner();
    city.ai("acme", &issued.secret)
        .text(text_request("from a key-issued token"))
        .await
        .unwrap();
    let tokens = backend
        .list_user_tokens(req::list_user_tokens("acme"))
        .await
        .expect("a studio key lists its studio's tokens")
        .into_inner();
    assert_eq!(tokens.tokens.len(), 2);
    assert!(tokens.tokens.iter().all(|t| t.studio_id == "acme"));
    backend
        .get_studio(req::get_studio("acme"))
        .await
        .expect("a studio key reads its studio");
    // Usage with no studio in the filter means its own studio.
    let usage = backend
        .list_usage_records(proto::ListUsageRecordsRequest::default())
        .await
        .expect("a studio key lists its studio's usage")
        .into_inner();
    assert_eq!(usage.records.len(), 2, "{usage:?}");
    assert!(
        usage.records.iter().all(|r| r.studio_id == "acme"),
        "{usage:?}"
    );
    let usage = backend
        .list_usage_records(req::usage_of("acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(usage.records.len(), 2);

    // Another studio: denied.
    assert_denied(
        backend
            .issue_user_token(req::issue_user_token("globex", "intruder", None))
            .await,
    );
    assert_denied(
        backend
            .list_user_tokens(req::list_user_tokens("globex"))
            .await,
    );
    assert_denied(backend.list_usage_records(req::usage_of("globex")).await);
    assert_denied(backend.get_studio(req::get_studio("globex")).await);

    // Operator-only calls: denied, and they changed nothing.
    assert_denied(
        backend
            .create_studio(req::create_studio("sneaky", "Sneaky"))
            .await,
    );
    assert_denied(
        backend
            .upsert_model(req::upsert_model(text_model("sneaky-model", "mock")))
            .await,
    );
    assert_denied(
        backend
            .list_studios(proto::ListStudiosRequest::default())
            .await,
    );
    assert_denied(
        backend
            .create_studio_key(req::create_studio_key("acme", "second"))
            .await,
    );
    assert_not_found(admin.get_studio(req::get_studio("sneaky")).await);
    let models = catalog(&mut admin).await;
    assert!(models.models.iter().all(|m| m.id != "sneaky-model"));

    // A wrong secret for the real key id is not the key.
    let forged = format!("dck_{}_{}", key.id, "x".repeat(secret_part.len()));
    assert_refused(
        city.admin_with(Some(&forged))
            .list_user_tokens(req::list_user_tokens("acme"))
            .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );

    // Revocation applies to the next call.
    let revoked = admin
        .revoke_studio_key(req::revoke_studio_key("acme", key.id.clone()))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    assert_refused(
        backend
            .list_user_tokens(req::list_user_tokens("acme"))
            .await,
        Code::Unauthenticated,
        "TOKEN_REVOKED",
    );
    let listed = admin
        .list_studio_keys(req::list_studio_keys("acme"))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.keys[0].revoke_time.is_some());

    // Revoking it through another studio: NOT_FOUND.
    assert_not_found(
        admin
            .revoke_studio_key(req::revoke_studio_key("globex", key.id.clone()))
            .await,
    );
    city.stop().await;
}

// ---------------------------------------------------------------- user tokens

#[tokio::test]
async fn user_tokens_issue_list_and_revoke() {
    let city = TestCity::start().await;
    let mut admin = city.admin();
    admin
        .create_studio(req::create_studio("acme", "Acme"))
        .await
        .unwrap();
    admin
        .create_studio(req::create_studio("globex", "Globex"))
        .await
        .unwrap();

    let with_ttl = admin
        .issue_user_token(req::issue_user_token("acme", "alice", Some(3600)))
        .await
        .unwrap()
        .into_inner();
    let token = with_ttl.token.clone().unwrap();
    assert!(
        with_ttl.secret.starts_with(&format!("dcu_{}_", token.id)),
        "{}",
        with_ttl.secret
    );
    assert_eq!(token.studio_id, "acme");
    assert_eq!(token.user_id, "alice");
    let created = token.create_time.unwrap();
    let expires = token.expire_time.expect("a ttl sets expire_time");
    assert_eq!(
        expires.seconds - created.seconds,
        3600,
        "{created:?} → {expires:?}"
    );
    assert!(token.revoke_time.is_none());

    let forever = admin
        .issue_user_token(req::issue_user_token("acme", "alice", None))
        .await
        .unwrap()
        .into_inner();
    assert!(
        forever.token.as_ref().unwrap().expire_time.is_none(),
        "no ttl: never expires"
    );
    let bob = admin
        .issue_user_token(req::issue_user_token("acme", "bob", None))
        .await
        .unwrap()
        .into_inner();
    let globex = admin
        .issue_user_token(req::issue_user_token("globex", "alice", None))
        .await
        .unwrap()
        .into_inner();
    // Every token works.
    for secret in [&with_ttl.secret, &forever.secret, &bob.secret] {
        city.ai("acme", secret)
            .text(text_request("hi"))
            .await
            .expect("a fresh token works");
    }
    city.ai("globex", &globex.secret)
        .text(text_request("hi"))
        .await
        .unwrap();

    // Bad input.
    let err = assert_invalid_argument(
        admin
            .issue_user_token(req::issue_user_token("acme", "", None))
            .await,
    );
    assert_eq!(violated_fields(&err), ["user_id"]);
    let err = assert_invalid_argument(
        admin
            .issue_user_token(req::issue_user_token("acme", "carol", Some(-5)))
            .await,
    );
    assert_eq!(violated_fields(&err), ["ttl"]);
    assert_not_found(
        admin
            .issue_user_token(req::issue_user_token("nowhere", "carol", None))
            .await,
    );

    // List by user.
    let alice = admin
        .list_user_tokens(req::list_tokens_of("acme", "alice"))
        .await
        .unwrap()
        .into_inner();
    let ids: BTreeSet<_> = alice.tokens.iter().map(|t| t.id.clone()).collect();
    assert_eq!(
        ids,
        BTreeSet::from([token.id.clone(), forever.token.as_ref().unwrap().id.clone()]),
        "{alice:?}"
    );
    assert!(
        alice
            .tokens
            .iter()
            .all(|t| t.user_id == "alice" && t.studio_id == "acme")
    );
    let listed_ttl = alice.tokens.iter().find(|t| t.id == token.id).unwrap();
    assert_eq!(listed_ttl.expire_time, token.expire_time);
    let all = admin
        .list_user_tokens(req::list_user_tokens("acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.tokens.len(), 3, "{all:?}");
    let shown = format!("{all:?}");
    for secret in [&with_ttl.secret, &forever.secret, &bob.secret] {
        let suffix = secret.rsplit('_').next().unwrap();
        assert!(!shown.contains(suffix), "the list shows a secret: {shown}");
    }

    // Revoke.
    let revoked = admin
        .revoke_user_token(req::revoke_user_token("acme", token.id.clone()))
        .await
        .unwrap()
        .into_inner()
        .token
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    assert_eq!(revoked.id, token.id);
    assert_refused(
        city.ai("acme", &with_ttl.secret)
            .text(text_request("hi"))
            .await,
        Code::Unauthenticated,
        "TOKEN_REVOKED",
    );
    // The other tokens still work.
    city.ai("acme", &forever.secret)
        .text(text_request("hi"))
        .await
        .unwrap();
    let alice = admin
        .list_user_tokens(req::list_tokens_of("acme", "alice"))
        .await
        .unwrap()
        .into_inner();
    for t in &alice.tokens {
        assert_eq!(t.revoke_time.is_some(), t.id == token.id, "{t:?}");
    }

    // A token of another studio: NOT_FOUND, and it stays valid.
    let globex_id = globex.token.as_ref().unwrap().id.clone();
    assert_not_found(
        admin
            .revoke_user_token(req::revoke_user_token("acme", globex_id.clone()))
            .await,
    );
    city.ai("globex", &globex.secret)
        .text(text_request("still here"))
        .await
        .unwrap();
    let globex_tokens = admin
        .list_user_tokens(req::list_user_tokens("globex"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(globex_tokens.tokens.len(), 1);
    assert!(globex_tokens.tokens[0].revoke_time.is_none());
    assert_not_found(
        admin
            .revoke_user_token(req::revoke_user_token("acme", "no-such-token"))
            .await,
    );
    city.stop().await;
}

// ---------------------------------------------------------------- catalog

#[tokio::test]
async fn providers_models_and_defaults() {
    let city = TestCity::start().await;
    let token = city.studio_with_user("acme", "u1").await;
    let mut admin = city.admin();

    let provider = admin
        .upsert_provider(req::upsert_provider("local-mock", ProviderKind::Mock, None))
        .await
        .unwrap()
        .into_inner()
        .provider
        .unwrap();
    assert_eq!(provider.id, "local-mock");
    assert_eq!(provider.kind, ProviderKind::Mock as i32);
    assert!(provider.update_time.is_some());

    let mut fast = text_model("fast-text", "local-mock");
    fast.options.insert("reply".into(), "from fast-text".into());
    fast.output_micros_per_mtok = 2_000_000;
    let model = admin
        .upsert_model(req::upsert_model(fast))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(model.id, "fast-text");
    assert_eq!(model.provider_id, "local-mock");
    assert_eq!(model.pathway, Pathway::Text as i32);
    assert!(!model.is_default);
    assert_eq!(model.max_output_tokens, 4096, "0 takes the default");

    let providers = provider_list(&mut admin).await;
    let ids: Vec<_> = providers.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["local-mock", "mock"], "ordered by id");
    let models = catalog(&mut admin).await;
    let listed: Vec<_> = models
        .models
        .iter()
        .map(|m| (m.id.as_str(), m.is_default))
        .collect();
    assert_eq!(
        listed,
        [
            ("fast-text", false),
            ("mock-image", true),
            ("mock-text", true)
        ]
    );
    let listed_fast = models.models.iter().find(|m| m.id == "fast-text").unwrap();
    assert_eq!(
        listed_fast.options.get("reply").map(String::as_str),
        Some("from fast-text")
    );
    assert_eq!(listed_fast.output_micros_per_mtok, 2_000_000);

    // The new model serves calls that name it.
    let answer = city
        .ai("acme", &token)
        .text(proto::TextRequest {
            model: "fast-text".into(),
            ..text_request("hi")
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model, "fast-text");
    assert_eq!(answer.text, "from fast-text");

    // Wrong pathway.
    assert_invalid_argument(
        admin
            .set_default_model(req::set_default_model(Pathway::Image, "fast-text"))
            .await,
    );
    assert_invalid_argument(
        admin
            .set_default_model(req::set_default_model(Pathway::Unspecified, "fast-text"))
            .await,
    );
    let err = admin
        .set_default_model(req::set_default_model(Pathway::Text, "no-such-model"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // The right pathway: the default changes, and calls without a model follow.
    let default = admin
        .set_default_model(req::set_default_model(Pathway::Text, "fast-text"))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(default.id, "fast-text");
    assert!(default.is_default);
    let answer = city
        .ai("acme", &token)
        .text(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model, "fast-text");
    let models = catalog(&mut admin).await;
    let listed: Vec<_> = models
        .models
        .iter()
        .map(|m| (m.id.as_str(), m.is_default))
        .collect();
    assert_eq!(
        listed,
        [
            ("fast-text", true),
            ("mock-image", true),
            ("mock-text", false)
        ]
    );

    // In use / default: refused, and nothing changed.
    assert_refused(
        admin
            .delete_provider(req::delete_provider("local-mock"))
            .await,
        Code::FailedPrecondition,
        "PROVIDER_IN_USE",
    );
    assert_refused(
        admin.delete_model(req::delete_model("fast-text")).await,
        Code::FailedPrecondition,
        "MODEL_IS_DEFAULT",
    );
    let answer = city
        .ai("acme", &token)
        .text(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model, "fast-text");

    // Unknown provider.
    assert_not_found(
        admin
            .upsert_model(req::upsert_model(text_model("orphan", "no-such-provider")))
            .await,
    );
    let models = catalog(&mut admin).await;
    assert!(models.models.iter().all(|m| m.id != "orphan"));

    // Kind unspecified.
    let err = assert_invalid_argument(
        admin
            .upsert_provider(req::upsert_provider(
                "kindless",
                ProviderKind::Unspecified,
                None,
            ))
            .await,
    );
    assert_eq!(violated_fields(&err), ["provider.kind"]);
    let providers = provider_list(&mut admin).await;
    assert!(providers.providers.iter().all(|p| p.id != "kindless"));

    // Undo in order: default back, delete the model, then the provider.
    admin
        .set_default_model(req::set_default_model(Pathway::Text, "mock-text"))
        .await
        .unwrap();
    admin
        .delete_model(req::delete_model("fast-text"))
        .await
        .expect("a model that is no default can be deleted");
    admin
        .delete_provider(req::delete_provider("local-mock"))
        .await
        .expect("a provider no model uses can be deleted");
    let providers = provider_list(&mut admin).await;
    let ids: Vec<_> = providers.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["mock"]);
    assert_refused(
        city.ai("acme", &token)
            .text(proto::TextRequest {
                model: "fast-text".into(),
                ..text_request("hi")
            })
            .await,
        Code::NotFound,
        "MODEL_NOT_FOUND",
    );
    let answer = city
        .ai("acme", &token)
        .text(text_request("hi"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model, "mock-text");
    city.stop().await;
}

// ---------------------------------------------------------------- admin auth

#[tokio::test]
async fn admin_calls_need_the_admin_key() {
    let city = TestCity::start().await;
    let user_token = city.studio_with_user("acme", "u1").await;

    assert_refused(
        city.admin_with(None)
            .list_studios(proto::ListStudiosRequest::default())
            .await,
        Code::Unauthenticated,
        "TOKEN_MISSING",
    );
    assert_refused(
        city.admin_with(Some("not-the-admin-key"))
            .list_studios(proto::ListStudiosRequest::default())
            .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    let almost = format!("{}x", crate::common::ADMIN_KEY);
    assert_refused(
        city.admin_with(Some(&almost))
            .create_studio(req::create_studio("sneaky", "Sneaky"))
            .await,
        Code::Unauthenticated,
        "TOKEN_INVALID",
    );
    // A user token is no admin credential.
    assert_denied(
        city.admin_with(Some(&user_token))
            .list_studios(proto::ListStudiosRequest::default())
            .await,
    );

    // Nothing was created by the refused calls.
    let studios = city
        .admin()
        .list_studios(proto::ListStudiosRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = studios.studios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["acme"]);
    city.stop().await;
}

// ---------------------------------------------------------------- health, reflection

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let city = TestCity::start().await;
    let mut health = HealthClient::new(city.channel());
    for service in ["", "downcity.v1.AIService", "downcity.v1.AdminService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of {service:?}: {e:?}"))
            .into_inner();
        assert_eq!(
            response.status,
            ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let err = health
        .check(HealthCheckRequest {
            service: "downcity.v1.NoSuchService".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    city.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let city = TestCity::start().await;
    let mut client = ServerReflectionClient::new(city.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a list of services: {response:?}");
    };
    let services: BTreeSet<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "downcity.v1.AIService",
        "downcity.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(expected),
            "{expected} missing from {services:?}"
        );
    }

    // The descriptors behind a service are served too (what grpcurl needs).
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "downcity.v1.AdminService".into(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("one response");
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("no descriptors: {response:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    city.stop().await;
}

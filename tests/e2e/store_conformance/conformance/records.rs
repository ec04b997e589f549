//! Studios, keys, tokens, the catalog, limits and settings.

use std::collections::BTreeMap;

use downcity::domain::{
    LimitTarget, LimitValues, LimitsRecord, ModelRecord, Pathway, ProviderRecord, SealedKey,
    StudioKeyRecord, StudioRecord, StudioStatus, UserTokenRecord,
};
use downcity::store::{PageQuery, Store};

use super::*;

pub async fn settings(store: &dyn Store) {
    assert_eq!(store.get_setting("admin_key_hash").await.unwrap(), None);
    store.put_setting("admin_key_hash", "one").await.unwrap();
    store.put_setting("admin_key_hash", "two").await.unwrap();
    let value = store.get_setting("admin_key_hash").await.unwrap();
    assert_eq!(value.as_deref(), Some("two"));
}

pub async fn studios(store: &dyn Store) {
    let ids: Vec<String> = (0..25).map(|i| format!("studio-{i:02}")).collect();
    for id in ids.iter().rev() {
        store.insert_studio(&studio(id)).await.unwrap();
    }
    let mut duplicate = studio("studio-03");
    duplicate.display_name = "other".to_string();
    assert_already_exists(store.insert_studio(&duplicate).await, "studio", "studio-03");
    assert_eq!(
        store.get_studio("studio-03").await.unwrap(),
        Some(studio("studio-03"))
    );
    assert_eq!(store.get_studio("nope").await.unwrap(), None);

    let mut updated = studio("studio-07");
    updated.display_name = "Renamed".to_string();
    updated.status = StudioStatus::Suspended;
    updated.update_ms = START_MS + 5;
    updated.allowed_origins = vec![
        "https://game.example".to_string(),
        "http://localhost:8080".to_string(),
    ];
    store.update_studio(&updated).await.unwrap();
    assert_eq!(store.get_studio("studio-07").await.unwrap(), Some(updated));
    assert_not_found(store.update_studio(&studio("nope")).await, "studio", "nope");

    let listed = all_pages(
        7,
        |s: &StudioRecord| &s.id,
        |page| async move { store.list_studios(&page).await },
    )
    .await;
    let listed: Vec<String> = listed.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, ids);
    let first = PageQuery {
        after: None,
        limit: 2,
    };
    assert_eq!(store.list_studios(&first).await.unwrap().len(), 2);
}

pub async fn studio_keys(store: &dyn Store) {
    store.insert_studio(&studio("s1")).await.unwrap();
    store.insert_studio(&studio("s2")).await.unwrap();
    for id in ["k5", "k3", "k1", "k4", "k2"] {
        store
            .insert_studio_key(&studio_key(id, "s1"))
            .await
            .unwrap();
    }
    store
        .insert_studio_key(&studio_key("k6", "s2"))
        .await
        .unwrap();
    let duplicate = studio_key("k2", "s2");
    assert_already_exists(
        store.insert_studio_key(&duplicate).await,
        "studio key",
        "k2",
    );
    let orphan = studio_key("k9", "ghost");
    assert_not_found(store.insert_studio_key(&orphan).await, "studio", "ghost");
    assert_eq!(
        store.get_studio_key("k3").await.unwrap(),
        Some(studio_key("k3", "s1"))
    );
    assert_eq!(store.get_studio_key("k9").await.unwrap(), None);

    // Revocation keeps its first time.
    let revoked = store.revoke_studio_key("k1", START_MS + 100).await.unwrap();
    assert_eq!(revoked.revoke_ms, Some(START_MS + 100));
    let again = store.revoke_studio_key("k1", START_MS + 200).await.unwrap();
    assert_eq!(again, revoked);
    assert_eq!(store.get_studio_key("k1").await.unwrap(), Some(revoked));
    assert_not_found(store.revoke_studio_key("k9", 1).await, "studio key", "k9");

    let listed = all_pages(
        2,
        |k: &StudioKeyRecord| &k.id,
        |page| async move { store.list_studio_keys("s1", &page).await },
    )
    .await;
    let ids: Vec<&str> = listed.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["k1", "k2", "k3", "k4", "k5"]);
    let page = PageQuery {
        after: None,
        limit: 10,
    };
    let other = store.list_studio_keys("s2", &page).await.unwrap();
    assert_eq!(other, vec![studio_key("k6", "s2")]);
}

pub async fn user_tokens(store: &dyn Store) {
    store.insert_studio(&studio("s1")).await.unwrap();
    store.insert_studio(&studio("s2")).await.unwrap();
    for i in 0..12 {
        let token = user_token(&format!("t{i:02}"), "s1", &format!("u{}", i % 3));
        store.insert_user_token(&token).await.unwrap();
    }
    let mut forever = user_token("t99", "s2", "u0");
    forever.expire_ms = None;
    store.insert_user_token(&forever).await.unwrap();
    let duplicate = user_token("t05", "s2", "u9");
    assert_already_exists(
        store.insert_user_token(&duplicate).await,
        "user token",
        "t05",
    );
    let orphan = user_token("t50", "ghost", "u0");
    assert_not_found(store.insert_user_token(&orphan).await, "studio", "ghost");
    assert_eq!(store.get_user_token("t99").await.unwrap(), Some(forever));
    assert_eq!(store.get_user_token("t50").await.unwrap(), None);

    let revoked = store.revoke_user_token("t04", START_MS + 7).await.unwrap();
    assert_eq!(revoked.revoke_ms, Some(START_MS + 7));
    let again = store.revoke_user_token("t04", START_MS + 9).await.unwrap();
    assert_eq!(again.revoke_ms, Some(START_MS + 7));
    assert_not_found(store.revoke_user_token("t50", 1).await, "user token", "t50");

    let of_studio = all_pages(
        5,
        |t: &UserTokenRecord| &t.id,
        |page| async move { store.list_user_tokens("s1", None, &page).await },
    )
    .await;
    assert_eq!(of_studio.len(), 12);
    assert!(of_studio.windows(2).all(|w| w[0].id < w[1].id));
    let of_user = all_pages(
        2,
        |t: &UserTokenRecord| &t.id,
        |page| async move { store.list_user_tokens("s1", Some("u1"), &page).await },
    )
    .await;
    let ids: Vec<&str> = of_user.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t01", "t04", "t07", "t10"]);
    assert_eq!(of_user[1], revoked);
    let page = PageQuery {
        after: None,
        limit: 9,
    };
    let none = store
        .list_user_tokens("s2", Some("u1"), &page)
        .await
        .unwrap();
    assert!(none.is_empty());
}

pub async fn providers_and_models(store: &dyn Store) {
    for id in ["p3", "p1", "p2"] {
        store.upsert_provider(&provider(id)).await.unwrap();
    }
    let mut moved = provider("p1");
    moved.base_url = "http://elsewhere.invalid".to_string();
    moved.update_ms = START_MS + 1;
    store.upsert_provider(&moved).await.unwrap();
    let providers = all_pages(
        2,
        |p: &ProviderRecord| &p.id,
        |page| async move { store.list_providers(&page).await },
    )
    .await;
    assert_eq!(providers, vec![moved, provider("p2"), provider("p3")]);

    let orphan = model("m0", "ghost", Pathway::Text);
    assert_not_found(store.upsert_model(&orphan).await, "provider", "ghost");
    let mut m1 = model("m1", "p1", Pathway::Text);
    m1.fallback_model_ids = vec!["m2".to_string(), "gone".to_string()];
    m1.options = BTreeMap::from([("temperature".to_string(), "0.5".to_string())]);
    let m2 = model("m2", "p2", Pathway::Image);
    store.upsert_model(&m2).await.unwrap();
    store
        .upsert_model(&model("m1", "p3", Pathway::Text))
        .await
        .unwrap();
    store.upsert_model(&m1).await.unwrap();
    let mut m2_moved = m2.clone();
    m2_moved.provider_id = "ghost".to_string();
    assert_not_found(store.upsert_model(&m2_moved).await, "provider", "ghost");
    let models = all_pages(
        1,
        |m: &ModelRecord| &m.id,
        |page| async move { store.list_models(&page).await },
    )
    .await;
    assert_eq!(models, vec![m1.clone(), m2.clone()]);

    // A provider goes only once no model uses it.
    assert_precondition(store.delete_provider("p1").await, "PROVIDER_IN_USE");
    store.delete_provider("p3").await.unwrap();
    assert_not_found(store.delete_provider("p3").await, "provider", "p3");
    assert_not_found(store.delete_model("nope").await, "model", "nope");

    // Deleting a model that others name as fallback is allowed.
    store.delete_model("m2").await.unwrap();
    store.delete_provider("p2").await.unwrap();
    store.delete_model("m1").await.unwrap();
    store.delete_provider("p1").await.unwrap();
    let page = PageQuery {
        after: None,
        limit: 10,
    };
    assert!(store.list_models(&page).await.unwrap().is_empty());
}

pub async fn defaults(store: &dyn Store) {
    store.upsert_provider(&provider("p1")).await.unwrap();
    for (id, pathway) in [
        ("t1", Pathway::Text),
        ("t2", Pathway::Text),
        ("i1", Pathway::Image),
    ] {
        store.upsert_model(&model(id, "p1", pathway)).await.unwrap();
    }
    assert_not_found(
        store.set_default_model(Pathway::Text, "nope").await,
        "model",
        "nope",
    );
    store.set_default_model(Pathway::Text, "t1").await.unwrap();
    store.set_default_model(Pathway::Image, "i1").await.unwrap();
    assert_precondition(store.delete_model("t1").await, "MODEL_IS_DEFAULT");
    // Updating a default model in place is fine.
    let mut renamed = model("t1", "p1", Pathway::Text);
    renamed.display_name = "Renamed".to_string();
    store.upsert_model(&renamed).await.unwrap();

    store.set_default_model(Pathway::Text, "t2").await.unwrap();
    let defaults = store.snapshot().await.unwrap().defaults;
    assert_eq!(defaults.len(), 2);
    assert_eq!(defaults[&Pathway::Text], "t2");
    assert_eq!(defaults[&Pathway::Image], "i1");
    store.delete_model("t1").await.unwrap();
    assert_precondition(store.delete_model("t2").await, "MODEL_IS_DEFAULT");
}

pub async fn snapshot(store: &dyn Store) {
    let empty = store.snapshot().await.unwrap();
    assert!(empty.studios.is_empty() && empty.models.is_empty() && empty.defaults.is_empty());

    store.insert_studio(&studio("s1")).await.unwrap();
    store
        .insert_studio_key(&studio_key("k1", "s1"))
        .await
        .unwrap();
    store
        .insert_user_token(&user_token("t1", "s1", "u1"))
        .await
        .unwrap();
    store.upsert_provider(&provider("p1")).await.unwrap();
    store
        .upsert_model(&model("m1", "p1", Pathway::Text))
        .await
        .unwrap();
    store.set_default_model(Pathway::Text, "m1").await.unwrap();

    let snapshot = store.snapshot().await.unwrap();
    assert_eq!(snapshot.studios, vec![studio("s1")]);
    assert_eq!(snapshot.studio_keys, vec![studio_key("k1", "s1")]);
    assert_eq!(snapshot.user_tokens, vec![user_token("t1", "s1", "u1")]);
    assert_eq!(snapshot.providers, vec![provider("p1")]);
    assert_eq!(snapshot.models, vec![model("m1", "p1", Pathway::Text)]);
    assert_eq!(
        snapshot.defaults.get(&Pathway::Text).map(String::as_str),
        Some("m1")
    );
}

pub async fn limits_and_allow_lists(store: &dyn Store) {
    store.insert_studio(&studio("s1")).await.unwrap();
    let values = LimitValues {
        requests_per_minute: Some(60),
        cost_micros_per_month: Some(5_000_000),
        ..Default::default()
    };
    let of = |target: LimitTarget, values: LimitValues| LimitsRecord {
        studio_id: "s1".to_string(),
        target,
        values,
        update_ms: START_MS,
    };
    let studio_limits = of(LimitTarget::Studio, values);
    let user_default = of(
        LimitTarget::UserDefault,
        LimitValues {
            tokens_per_day: Some(1000),
            ..Default::default()
        },
    );
    let user = of(LimitTarget::User("u1".to_string()), values);
    for limits in [&studio_limits, &user_default, &user] {
        store.put_limits(limits).await.unwrap();
    }
    // Replacing keeps one row per target; all-None values remove it.
    let mut tighter = user.clone();
    tighter.values.requests_per_minute = Some(6);
    tighter.update_ms = START_MS + 1;
    store.put_limits(&tighter).await.unwrap();
    store
        .put_limits(&of(LimitTarget::UserDefault, LimitValues::default()))
        .await
        .unwrap();
    let mut orphan = studio_limits.clone();
    orphan.studio_id = "ghost".to_string();
    assert_not_found(store.put_limits(&orphan).await, "studio", "ghost");
    let mut limits = store.snapshot().await.unwrap().limits;
    limits.sort_by_key(|l| format!("{:?}", l.target));
    assert_eq!(limits, vec![studio_limits, tighter]);

    let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    store
        .set_allowed_models("s1", &ids(&["m2", "m1", "m2"]))
        .await
        .unwrap();
    let allowed = store.snapshot().await.unwrap().allowed_models;
    assert_eq!(allowed["s1"], ids(&["m1", "m2"]));
    store.set_allowed_models("s1", &ids(&["m3"])).await.unwrap();
    assert_eq!(
        store.snapshot().await.unwrap().allowed_models["s1"],
        ids(&["m3"])
    );
    store.set_allowed_models("s1", &[]).await.unwrap();
    assert!(store.snapshot().await.unwrap().allowed_models.is_empty());
    assert_not_found(
        store.set_allowed_models("ghost", &ids(&["m1"])).await,
        "studio",
        "ghost",
    );
}

pub async fn provider_keys_and_reseal(store: &dyn Store) {
    store.upsert_provider(&provider("p1")).await.unwrap();
    store.upsert_provider(&provider("p2")).await.unwrap();
    let sealed = |bytes: &[u8], hint: &str| SealedKey {
        ciphertext: bytes.to_vec(),
        hint: hint.to_string(),
    };
    let key = sealed(&[1, 2, 3, 0, 255], "abcd");
    store
        .set_provider_api_key("p1", Some(&key), START_MS + 3)
        .await
        .unwrap();
    assert_not_found(
        store.set_provider_api_key("ghost", Some(&key), 1).await,
        "provider",
        "ghost",
    );
    // An upsert leaves the key alone.
    let mut moved = provider("p1");
    moved.base_url = "http://moved.invalid".to_string();
    moved.headers = BTreeMap::from([("x-team".to_string(), "city".to_string())]);
    moved.timeouts.total_ms = Some(30_000);
    store.upsert_provider(&moved).await.unwrap();
    let catalog = store.catalog_snapshot().await.unwrap();
    let p1 = &catalog.providers[0];
    assert_eq!(p1.api_key.as_ref(), Some(&key));
    assert_eq!(p1.api_key_update_ms, Some(START_MS + 3));
    assert_eq!(
        (&p1.base_url, &p1.headers, p1.timeouts),
        (&moved.base_url, &moved.headers, moved.timeouts)
    );

    let resealed = sealed(&[9; 40], "abcd");
    store
        .reseal(
            &[("p1".to_string(), resealed.clone())],
            &[],
            &[("master_key_canary".to_string(), "new".to_string())],
        )
        .await
        .unwrap();
    let catalog = store.catalog_snapshot().await.unwrap();
    assert_eq!(catalog.providers[0].api_key.as_ref(), Some(&resealed));
    assert_eq!(catalog.providers[1].api_key, None);
    let canary = store.get_setting("master_key_canary").await.unwrap();
    assert_eq!(canary.as_deref(), Some("new"));

    store
        .set_provider_api_key("p1", None, START_MS + 4)
        .await
        .unwrap();
    let p1 = store.catalog_snapshot().await.unwrap().providers[0].clone();
    assert_eq!(
        (p1.api_key, p1.api_key_update_ms),
        (None, Some(START_MS + 4))
    );
}

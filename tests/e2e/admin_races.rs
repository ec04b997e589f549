//! Concurrent admin writes never leave a cache older than the store: after a
//! burst of racing writes to one studio, one model, one limit and one hook,
//! what the running City acts on equals what a City restarted on the same
//! store loads.

use tokio::task::JoinSet;
use tonic::Code;

use crate::common::{TestCity, text_request};
use downcity::proto::{self, LimitTarget, Limits, StudioStatus};

const WRITERS: i64 = 32;

/// What City acts on: the studio's status as calls see it, its limits, the
/// model's name in the studio's list, and the hook's URL.
#[derive(Debug, PartialEq)]
struct Observed {
    call: Result<(), String>,
    limits: Option<Limits>,
    model_name: Option<String>,
    hook_url: Vec<String>,
}

async fn observe(city: &TestCity, token: &str) -> Observed {
    let mut ai = city.ai("race", token);
    let call = match ai.text(text_request("hello")).await {
        Ok(_) => Ok(()),
        Err(status) if status.code() == Code::PermissionDenied => Err(status.message().into()),
        Err(status) => panic!("{status:?}"),
    };
    let mut admin = city.admin();
    let limits = admin
        .get_limits(proto::GetLimitsRequest {
            studio_id: "race".into(),
            target: LimitTarget::Studio as i32,
            ..Default::default()
        })
        .await
        .expect("limits")
        .into_inner()
        .limits;
    let models = city
        .ai("race", token)
        .list_models(proto::ListModelsRequest::default())
        .await
        .map(|r| r.into_inner().models)
        .unwrap_or_default();
    let model_name = models
        .into_iter()
        .find(|m| m.id == "racer")
        .map(|m| m.display_name);
    let hook_url = admin
        .list_hooks(proto::ListHooksRequest {
            studio_id: "race".into(),
            ..Default::default()
        })
        .await
        .expect("hooks")
        .into_inner()
        .hooks
        .into_iter()
        .map(|h| h.url)
        .collect();
    Observed {
        call,
        limits,
        model_name,
        hook_url,
    }
}

async fn write_everything(mut admin: crate::common::Admin, hook_id: String, i: i64) {
    let status = if i % 2 == 0 {
        StudioStatus::Suspended
    } else {
        StudioStatus::Active
    };
    let studio = admin.update_studio(proto::UpdateStudioRequest {
        studio_id: "race".into(),
        status: status as i32,
        display_name: Some(format!("Race {i}")),
        ..Default::default()
    });
    studio.await.expect("update studio");
    admin
        .set_limits(proto::SetLimitsRequest {
            studio_id: "race".into(),
            target: LimitTarget::Studio as i32,
            limits: Some(Limits {
                requests_per_minute: Some(1_000 + i),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("set limits");
    admin
        .upsert_model(proto::UpsertModelRequest {
            model: Some(proto::Model {
                display_name: format!("racer v{i}"),
                ..crate::common::text_model("racer", &[])
            }),
        })
        .await
        .expect("upsert model");
    admin
        .upsert_hook(proto::UpsertHookRequest {
            hook: Some(proto::Hook {
                id: hook_id,
                studio_id: "race".into(),
                url: format!("http://127.0.0.1:9/hook-{i}"),
                events: vec![proto::HookEvent::AfterCall as i32],
                ..Default::default()
            }),
        })
        .await
        .expect("upsert hook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_admin_writes_leave_the_caches_equal_to_the_store() {
    let master_key = downcity::keys::MasterKey::generate().to_base64();
    let adjust = |config: &mut downcity::config::Config| {
        config.master_key = Some(downcity::config::SecretText(master_key.clone()));
    };
    let city = TestCity::start_with(adjust).await;
    let token = city.studio_with_user("race", "u").await;
    let hook_id = city
        .admin()
        .upsert_hook(proto::UpsertHookRequest {
            hook: Some(proto::Hook {
                studio_id: "race".into(),
                url: "http://127.0.0.1:9/first".into(),
                events: vec![proto::HookEvent::AfterCall as i32],
                ..Default::default()
            }),
        })
        .await
        .expect("create hook")
        .into_inner()
        .hook
        .expect("hook")
        .id;

    let mut writers = JoinSet::new();
    for i in 0..WRITERS {
        writers.spawn(write_everything(city.admin(), hook_id.clone(), i));
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }

    let live = observe(&city, &token).await;
    let city = TestCity::start_in(city.stop().await, adjust).await;
    let stored = observe(&city, &token).await;
    assert_eq!(live, stored);
    assert!(live.model_name.is_some() || live.call.is_err(), "{live:?}");
}

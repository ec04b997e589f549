//! Authorization, cell by cell: every AdminService method called by each
//! kind of caller against studio `acme` on a real City over real gRPC, and
//! the answer checked against one table — the same table README shows (the
//! test reads README and fails if the two differ). Then the one rule with
//! more to it: the operator's studio limits are a ceiling.

use std::collections::BTreeSet;

use crate::common::receiver::{Before, Receiver};
use crate::common::*;
use downcity::config::SecretText;
use downcity::keys::MasterKey;
use downcity::proto::{self, HookEvent, LimitTarget, Limits, Pathway, ProviderKind};
use prost::Message as _;
use tonic::{Code, Status};

/// Who calls. Requests always act on studio `acme`.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Operator,
    /// A studio key of `acme`.
    OwnKey,
    /// A studio key of `globex`.
    OtherKey,
    /// A user token of `acme`.
    UserToken,
    /// No `authorization` at all.
    Nothing,
}

const CALLERS: [Caller; 5] = [
    Caller::Operator,
    Caller::OwnKey,
    Caller::OtherKey,
    Caller::UserToken,
    Caller::Nothing,
];

/// One cell's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The call succeeds.
    Allowed,
    /// PERMISSION_DENIED, reason PERMISSION_DENIED.
    Denied,
    /// UNAUTHENTICATED, reason TOKEN_MISSING.
    Missing,
}
use Expect::{Allowed as A, Denied as D, Missing as M};

/// Method → [operator, own studio key, other studio key, user token, nothing].
const TABLE: &[(&str, [Expect; 5])] = &[
    ("CreateStudio", [A, D, D, D, M]),
    ("GetStudio", [A, A, D, D, M]),
    ("ListStudios", [A, D, D, D, M]),
    ("UpdateStudio", [A, D, D, D, M]),
    ("CreateStudioKey", [A, D, D, D, M]),
    ("ListStudioKeys", [A, D, D, D, M]),
    ("RevokeStudioKey", [A, D, D, D, M]),
    ("IssueUserToken", [A, A, D, D, M]),
    ("ListUserTokens", [A, A, D, D, M]),
    ("RevokeUserToken", [A, A, D, D, M]),
    ("UpsertProvider", [A, D, D, D, M]),
    ("ListProviders", [A, D, D, D, M]),
    ("DeleteProvider", [A, D, D, D, M]),
    ("UpsertModel", [A, D, D, D, M]),
    ("ListCatalogModels", [A, D, D, D, M]),
    ("DeleteModel", [A, D, D, D, M]),
    ("SetDefaultModel", [A, D, D, D, M]),
    ("ListUsageRecords", [A, A, D, D, M]),
    ("AggregateUsage", [A, A, D, D, M]),
    ("SetLimits", [A, A, D, D, M]),
    ("GetLimits", [A, A, D, D, M]),
    ("GetQuotaStanding", [A, A, D, D, M]),
    ("UpsertHook", [A, A, D, D, M]),
    ("ListHooks", [A, A, D, D, M]),
    ("DeleteHook", [A, A, D, D, M]),
    ("ListHookDeliveries", [A, A, D, D, M]),
    ("RedeliverHook", [A, A, D, D, M]),
];

/// A City with studios `acme` and `globex`, a key for each, a user token of
/// `acme`, and one hook delivery of `acme` to redeliver.
struct Fixture {
    city: TestCity,
    own_key: String,
    other_key: String,
    user_token: String,
    delivery_id: String,
    _receiver: Receiver,
}

const STUDIO: &str = "acme";

/// The URL of hooks that never see a call.
const UNUSED_URL: &str = "http://127.0.0.1:9/";

impl Fixture {
    async fn start() -> Fixture {
        let master_key = MasterKey::generate().to_base64();
        let city = TestCity::start_with(|config| {
            config.master_key = Some(SecretText(master_key));
        })
        .await;
        let user_token = city.studio_with_user(STUDIO, "u1").await;
        city.admin()
            .create_studio(req::create_studio("globex", "Globex"))
            .await
            .unwrap();
        let own_key = studio_key(&city, STUDIO).await;
        let other_key = studio_key(&city, "globex").await;
        let receiver = Receiver::start(Before::Allow(serde_json::json!({})), 0).await;
        new_hook(&mut city.admin(), &receiver.url()).await;
        city.ai(STUDIO, &user_token)
            .text(text_request("hello"))
            .await
            .unwrap();
        let delivery_id = first_delivery(&city).await;
        Fixture {
            city,
            own_key,
            other_key,
            user_token,
            delivery_id,
            _receiver: receiver,
        }
    }

    fn admin(&self, caller: Caller) -> Admin {
        let bearer = match caller {
            Caller::Operator => Some(ADMIN_KEY),
            Caller::OwnKey => Some(self.own_key.as_str()),
            Caller::OtherKey => Some(self.other_key.as_str()),
            Caller::UserToken => Some(self.user_token.as_str()),
            Caller::Nothing => None,
        };
        self.city.admin_with(bearer)
    }
}

async fn studio_key(city: &TestCity, studio: &str) -> String {
    city.admin()
        .create_studio_key(req::create_studio_key(studio, "backend"))
        .await
        .unwrap()
        .into_inner()
        .secret
}

/// Creates an after_call hook of `acme` and returns its id.
async fn new_hook(admin: &mut Admin, url: &str) -> String {
    let created = admin.upsert_hook(new_hook_request(url)).await.unwrap();
    created.into_inner().hook.unwrap().id
}

/// A new hook (no id: UpsertHook creates it) of `acme`.
fn new_hook_request(url: &str) -> proto::UpsertHookRequest {
    proto::UpsertHookRequest {
        hook: Some(proto::Hook {
            studio_id: STUDIO.into(),
            url: url.into(),
            events: vec![HookEvent::AfterCall as i32],
            ..Default::default()
        }),
    }
}

/// The id of `acme`'s first hook delivery, once the call has queued it.
async fn first_delivery(city: &TestCity) -> String {
    for _ in 0..500 {
        let found = city
            .admin()
            .list_hook_deliveries(proto::ListHookDeliveriesRequest {
                studio_id: STUDIO.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .deliveries;
        if let Some(delivery) = found.first() {
            return delivery.id.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no hook delivery after 5 s");
}

fn acme_usage() -> Option<proto::UsageFilter> {
    Some(studio_filter(STUDIO))
}

/// Calls `method` on `acme` as `admin`. What a successful call would
/// destroy is made first by the operator, fresh for each cell (`n`).
async fn call(fx: &Fixture, admin: &mut Admin, method: &str, n: usize) -> Result<(), Status> {
    let operator = &mut fx.city.admin();
    let acme = || STUDIO.to_string();
    match method {
        "CreateStudio" => {
            let r = req::create_studio(&format!("new{n}"), "New");
            admin.create_studio(r).await.map(drop)
        }
        "GetStudio" => admin.get_studio(req::get_studio(STUDIO)).await.map(drop),
        "ListStudios" => admin.list_studios(req::list_studios(0, "")).await.map(drop),
        "UpdateStudio" => {
            let r = req::update_studio(STUDIO, Some("Acme"), proto::StudioStatus::Unspecified);
            admin.update_studio(r).await.map(drop)
        }
        "CreateStudioKey" => {
            let r = req::create_studio_key(STUDIO, "more");
            admin.create_studio_key(r).await.map(drop)
        }
        "ListStudioKeys" => {
            let r = req::list_studio_keys(STUDIO);
            admin.list_studio_keys(r).await.map(drop)
        }
        "RevokeStudioKey" => {
            let r = req::create_studio_key(STUDIO, "doomed");
            let key = operator.create_studio_key(r).await.unwrap().into_inner();
            let r = req::revoke_studio_key(STUDIO, key.key.unwrap().id);
            admin.revoke_studio_key(r).await.map(drop)
        }
        "IssueUserToken" => {
            let r = proto::IssueUserTokenRequest {
                studio_id: acme(),
                user_id: format!("user{n}"),
                ttl: None,
            };
            admin.issue_user_token(r).await.map(drop)
        }
        "ListUserTokens" => {
            let r = proto::ListUserTokensRequest {
                studio_id: acme(),
                ..Default::default()
            };
            admin.list_user_tokens(r).await.map(drop)
        }
        "RevokeUserToken" => {
            let r = proto::IssueUserTokenRequest {
                studio_id: acme(),
                user_id: format!("doomed{n}"),
                ttl: None,
            };
            let token = operator.issue_user_token(r).await.unwrap().into_inner();
            let r = proto::RevokeUserTokenRequest {
                studio_id: acme(),
                token_id: token.token.unwrap().id,
            };
            admin.revoke_user_token(r).await.map(drop)
        }
        "UpsertProvider" => admin.upsert_provider(provider(n)).await.map(drop),
        "ListProviders" => {
            let r = proto::ListProvidersRequest::default();
            admin.list_providers(r).await.map(drop)
        }
        "DeleteProvider" => {
            operator.upsert_provider(provider(n)).await.unwrap();
            let r = proto::DeleteProviderRequest {
                provider_id: format!("p{n}"),
            };
            admin.delete_provider(r).await.map(drop)
        }
        "UpsertModel" => admin.upsert_model(model(n)).await.map(drop),
        "ListCatalogModels" => {
            let r = req::list_catalog_models(0, "");
            admin.list_catalog_models(r).await.map(drop)
        }
        "DeleteModel" => {
            operator.upsert_model(model(n)).await.unwrap();
            let r = proto::DeleteModelRequest {
                model_id: format!("m{n}"),
            };
            admin.delete_model(r).await.map(drop)
        }
        "SetDefaultModel" => {
            operator.upsert_model(model(n)).await.unwrap();
            let r = proto::SetDefaultModelRequest {
                pathway: Pathway::Text as i32,
                model_id: format!("m{n}"),
            };
            admin.set_default_model(r).await.map(drop)
        }
        "ListUsageRecords" => {
            let r = proto::ListUsageRecordsRequest {
                filter: acme_usage(),
                ..Default::default()
            };
            admin.list_usage_records(r).await.map(drop)
        }
        "AggregateUsage" => {
            let r = proto::AggregateUsageRequest {
                filter: acme_usage(),
                ..Default::default()
            };
            admin.aggregate_usage(r).await.map(drop)
        }
        "SetLimits" => {
            let r = proto::SetLimitsRequest {
                studio_id: acme(),
                target: LimitTarget::Studio as i32,
                user_id: String::new(),
                limits: Some(Limits {
                    requests_per_minute: Some(1000),
                    ..Default::default()
                }),
            };
            admin.set_limits(r).await.map(drop)
        }
        "GetLimits" => {
            let r = proto::GetLimitsRequest {
                studio_id: acme(),
                target: LimitTarget::Studio as i32,
                user_id: String::new(),
            };
            admin.get_limits(r).await.map(drop)
        }
        "GetQuotaStanding" => {
            let r = proto::GetQuotaStandingRequest {
                studio_id: acme(),
                user_id: "u1".into(),
            };
            admin.get_quota_standing(r).await.map(drop)
        }
        "UpsertHook" => {
            let r = new_hook_request(UNUSED_URL);
            admin.upsert_hook(r).await.map(drop)
        }
        "ListHooks" => {
            let r = proto::ListHooksRequest {
                studio_id: acme(),
                ..Default::default()
            };
            admin.list_hooks(r).await.map(drop)
        }
        "DeleteHook" => {
            let id = new_hook(operator, UNUSED_URL).await;
            let r = proto::DeleteHookRequest {
                studio_id: acme(),
                hook_id: id,
            };
            admin.delete_hook(r).await.map(drop)
        }
        "ListHookDeliveries" => {
            let r = proto::ListHookDeliveriesRequest {
                studio_id: acme(),
                ..Default::default()
            };
            admin.list_hook_deliveries(r).await.map(drop)
        }
        "RedeliverHook" => {
            let r = proto::RedeliverHookRequest {
                studio_id: acme(),
                delivery_id: fx.delivery_id.clone(),
            };
            admin.redeliver_hook(r).await.map(drop)
        }
        other => panic!("no call for {other}: add it here and to README's table"),
    }
}

fn provider(n: usize) -> proto::UpsertProviderRequest {
    proto::UpsertProviderRequest {
        provider: Some(proto::Provider {
            id: format!("p{n}"),
            kind: ProviderKind::Mock as i32,
            ..Default::default()
        }),
        api_key: None,
    }
}

fn model(n: usize) -> proto::UpsertModelRequest {
    proto::UpsertModelRequest {
        model: Some(text_model(&format!("m{n}"), &[])),
    }
}

/// Whether a call's outcome is the cell's answer; a description if not.
fn check(expect: Expect, outcome: &Result<(), Status>) -> Result<(), String> {
    use tonic_types::StatusExt;
    let (code, reason) = match expect {
        Expect::Allowed => {
            return outcome
                .as_ref()
                .map_err(|s| format!("expected OK, got {s:?}"))
                .copied();
        }
        Expect::Denied => (Code::PermissionDenied, "PERMISSION_DENIED"),
        Expect::Missing => (Code::Unauthenticated, "TOKEN_MISSING"),
    };
    let Err(status) = outcome else {
        return Err(format!("expected {code:?} {reason}, got OK"));
    };
    let got = status.get_details_error_info().map(|info| info.reason);
    if status.code() == code && got.as_deref() == Some(reason) {
        Ok(())
    } else {
        Err(format!("expected {code:?} {reason}, got {status:?}"))
    }
}

#[tokio::test]
async fn every_admin_method_by_every_caller() {
    let fx = Fixture::start().await;
    let mut wrong = Vec::new();
    let mut n = 0;
    for (method, row) in TABLE {
        for (caller, expect) in CALLERS.into_iter().zip(row) {
            n += 1;
            let outcome = call(&fx, &mut fx.admin(caller), method, n).await;
            if let Err(why) = check(*expect, &outcome) {
                wrong.push(format!("{method} by {caller:?}: {why}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The table names every AdminService method, each once.
#[test]
fn the_table_covers_every_admin_method() {
    let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
    let service: BTreeSet<String> = set
        .file
        .iter()
        .flat_map(|file| &file.service)
        .filter(|service| service.name() == "AdminService")
        .flat_map(|service| &service.method)
        .map(|method| method.name().to_string())
        .collect();
    let table: BTreeSet<String> = TABLE.iter().map(|(m, _)| m.to_string()).collect();
    assert_eq!(table.len(), TABLE.len(), "a method twice in the table");
    assert_eq!(table, service);
}

/// README's authorization table is this table.
#[test]
fn readme_shows_the_tested_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Who may call what")
        .nth(1)
        .expect("README section `Who may call what`");
    let section = section.split("\n## ").next().unwrap();
    let shown: Vec<(String, Vec<Expect>)> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .map(|line| {
            let mut cells = line.split('|').map(str::trim);
            let method = cells.next().unwrap().trim_end_matches('`').to_string();
            let answers = cells
                .filter(|cell| !cell.is_empty())
                .map(|cell| match cell {
                    "✓" => Expect::Allowed,
                    "`PERMISSION_DENIED`" => Expect::Denied,
                    "`TOKEN_MISSING`" => Expect::Missing,
                    other => panic!("README cell `{other}` of {method}"),
                })
                .collect();
            (method, answers)
        })
        .collect();
    let tested: Vec<(String, Vec<Expect>)> = TABLE
        .iter()
        .map(|(method, row)| (method.to_string(), row.to_vec()))
        .collect();
    assert_eq!(shown, tested);
}

async fn set_studio_limits(
    admin: &mut Admin,
    rpm: Option<i64>,
    tokens_per_day: Option<i64>,
) -> Result<Option<Limits>, Status> {
    let r = proto::SetLimitsRequest {
        studio_id: STUDIO.into(),
        target: LimitTarget::Studio as i32,
        user_id: String::new(),
        limits: Some(Limits {
            requests_per_minute: rpm,
            tokens_per_day,
            ..Default::default()
        }),
    };
    admin.set_limits(r).await.map(|r| r.into_inner().limits)
}

async fn studio_limits(admin: &mut Admin) -> Limits {
    let r = proto::GetLimitsRequest {
        studio_id: STUDIO.into(),
        target: LimitTarget::Studio as i32,
        user_id: String::new(),
    };
    admin
        .get_limits(r)
        .await
        .unwrap()
        .into_inner()
        .limits
        .unwrap()
}

/// The studio-wide requests-per-minute that binds, as GetQuotaStanding shows it.
async fn binding_rpm(city: &TestCity) -> Option<i64> {
    let r = proto::GetQuotaStandingRequest {
        studio_id: STUDIO.into(),
        user_id: String::new(),
    };
    let standing = city.admin().get_quota_standing(r).await.unwrap();
    let standing = standing.into_inner().limits;
    let rpm = standing
        .iter()
        .find(|l| l.scope == "studio" && l.limit == "requests_per_minute");
    rpm.map(|l| l.value)
}

#[tokio::test]
async fn the_operators_studio_limits_are_a_ceiling_for_the_studio_key() {
    let (city, user_token) = TestCity::start_with_user(STUDIO, "u1").await;
    let key = studio_key(&city, STUDIO).await;
    let (mut operator, mut backend) = (city.admin(), city.admin_with(Some(&key)));
    set_studio_limits(&mut operator, Some(10), None)
        .await
        .unwrap();

    // Above the ceiling: refused, with the limit and both values.
    let status = set_studio_limits(&mut backend, Some(11), None)
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "LIMIT_ABOVE_CEILING");
    let info = tonic_types::StatusExt::get_details_error_info(&status).unwrap();
    assert_eq!(info.metadata["limit"], "requests_per_minute");
    assert_eq!(
        (&*info.metadata["value"], &*info.metadata["ceiling"]),
        ("11", "10")
    );
    assert_eq!(binding_rpm(&city).await, Some(10));

    // Tighter: its own tier, which binds; the operator's stays as it was.
    let own = set_studio_limits(&mut backend, Some(1), Some(1_000_000)).await;
    assert_eq!(own.unwrap().unwrap().requests_per_minute, Some(1));
    assert_eq!(
        studio_limits(&mut backend).await.requests_per_minute,
        Some(1)
    );
    assert_eq!(
        studio_limits(&mut operator).await.requests_per_minute,
        Some(10)
    );
    assert_eq!(binding_rpm(&city).await, Some(1));
    let mut ai = city.ai(STUDIO, &user_token);
    ai.text(text_request("one")).await.unwrap();
    let status = ai.text(text_request("two")).await.unwrap_err();
    assert_error(&status, Code::ResourceExhausted, "QUOTA_EXCEEDED");

    // Removing its own tier falls back to the operator's, never below it.
    set_studio_limits(&mut backend, None, None).await.unwrap();
    assert_eq!(studio_limits(&mut backend).await, Limits::default());
    assert_eq!(binding_rpm(&city).await, Some(10));
    ai.text(text_request("three"))
        .await
        .expect("10 per minute again");

    // Lowering the ceiling below the studio's own tier: the ceiling binds.
    set_studio_limits(&mut backend, Some(8), None)
        .await
        .unwrap();
    set_studio_limits(&mut operator, Some(5), None)
        .await
        .unwrap();
    assert_eq!(binding_rpm(&city).await, Some(5));
    // And the studio key cannot touch its allow-list or status.
    let allow = proto::UpdateStudioRequest {
        studio_id: STUDIO.into(),
        allowed_models: Some(proto::ModelIdList {
            model_ids: vec!["mock-text".into()],
        }),
        ..Default::default()
    };
    assert_denied(backend.update_studio(allow).await);
    let suspend = req::update_studio(STUDIO, None, proto::StudioStatus::Suspended);
    assert_denied(backend.update_studio(suspend).await);
    let studio = operator.get_studio(req::get_studio(STUDIO)).await.unwrap();
    let studio = studio.into_inner().studio.unwrap();
    assert!(studio.allowed_model_ids.is_empty(), "{studio:?}");
    assert_eq!(studio.status, proto::StudioStatus::Active as i32);
}

#[tokio::test]
async fn both_tiers_survive_a_restart() {
    let (city, _) = TestCity::start_with_user(STUDIO, "u1").await;
    let key = studio_key(&city, STUDIO).await;
    set_studio_limits(&mut city.admin(), Some(10), None)
        .await
        .unwrap();
    set_studio_limits(&mut city.admin_with(Some(&key)), Some(3), None)
        .await
        .unwrap();
    let city = TestCity::start_in(city.stop().await, |_| {}).await;
    let mut backend = city.admin_with(Some(&key));
    assert_eq!(
        studio_limits(&mut backend).await.requests_per_minute,
        Some(3)
    );
    assert_eq!(
        studio_limits(&mut city.admin()).await.requests_per_minute,
        Some(10)
    );
    assert_eq!(binding_rpm(&city).await, Some(3));
    let status = set_studio_limits(&mut backend, Some(20), None)
        .await
        .unwrap_err();
    assert_error(&status, Code::PermissionDenied, "LIMIT_ABOVE_CEILING");
}

//! `downcity.v1.AdminService`.
//!
//! Every handler has one shape (see `handle`): resolve the caller, check its
//! scope, convert the request, call the directory / catalog / store, convert
//! back. Which caller may do what is one table (`admin_requests!`).

use std::future::Future;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::admin_convert::{
    aggregate_to_proto, api_key_change, decode_number_token, group_by, limit_target,
    limits_from_proto, limits_to_proto, model_from_proto, model_to_proto, provider_from_proto,
    provider_to_proto, required, standing_to_proto, studio_key_to_proto, studio_status_update,
    studio_to_proto, ttl, usage_filter, usage_record_to_proto, user_token_to_proto,
};
use super::convert::{decode_page_token, next_page_token, page_size, pathway_from_proto};
use super::hook_convert::{
    delivery_state_filter, delivery_to_proto, hook_from_proto, hook_to_proto,
};
use super::{request_id, status};
use crate::auth::{AdminCaller, Directory};
use crate::catalog::CatalogCache;
use crate::domain::{ModelRecord, StudioRecord};
use crate::error::{Error, Result};
use crate::hooks::Hooks;
use crate::proto::{self, admin_service_server::AdminService};
use crate::quota::Quotas;
use crate::store::{PageQuery, Store};

pub struct AdminApi {
    directory: Arc<Directory>,
    catalog: Arc<CatalogCache>,
    quotas: Arc<Quotas>,
    store: Arc<dyn Store>,
    hooks: Arc<Hooks>,
}

impl AdminApi {
    pub fn new(
        directory: Arc<Directory>,
        catalog: Arc<CatalogCache>,
        quotas: Arc<Quotas>,
        store: Arc<dyn Store>,
        hooks: Arc<Hooks>,
    ) -> Self {
        AdminApi {
            directory,
            catalog,
            quotas,
            store,
            hooks,
        }
    }

    /// A hook's studio must exist; empty is City-wide.
    async fn check_hook_studio(&self, studio_id: &str) -> Result<()> {
        if !studio_id.is_empty() {
            self.directory.get_studio(studio_id).await?;
        }
        Ok(())
    }

    /// A studio as shown, with its model allow-list.
    fn studio(&self, record: StudioRecord) -> proto::Studio {
        let allowed_model_ids = self.quotas.allowed_models(&record.id);
        proto::Studio {
            allowed_model_ids,
            ..studio_to_proto(record)
        }
    }

    /// An allow-list may name only catalog models: an unknown id would lock
    /// the studio out of every model.
    fn check_models_exist(&self, model_ids: &[String]) -> Result<()> {
        let catalog = self.catalog.current();
        match model_ids.iter().position(|id| !catalog.contains(id)) {
            Some(i) => Err(Error::invalid(
                format!("allowed_models.model_ids[{i}]"),
                format!("no model `{}` in the catalog", model_ids[i]),
            )),
            None => Ok(()),
        }
    }

    /// A model as listed, with `is_default` from the live catalog.
    fn model(&self, record: ModelRecord) -> proto::Model {
        model_to_proto(record, &self.catalog.current())
    }
}

/// The studio a request acts on, as the scope check sees it.
enum Scope<'a> {
    /// An operator-only call.
    Operator,
    /// A studio-scoped call on this studio.
    Studio(&'a mut String),
    /// A usage call: for a studio key, empty (all studios) means its own.
    Usage(&'a mut String),
}

/// A request of an AdminService RPC: its name and the studio it acts on.
trait AdminRequest {
    const METHOD: &'static str;
    fn scope(&mut self) -> Scope<'_> {
        Scope::Operator
    }
}

/// The authorization table: operator-only unless a scope is given.
macro_rules! admin_requests {
    ($($request:ident => $method:literal $(, |$r:ident| $scope:expr)?;)+) => {$(
        impl AdminRequest for proto::$request {
            const METHOD: &'static str = $method;
            $(fn scope(&mut self) -> Scope<'_> {
                let $r = self;
                $scope
            })?
        }
    )+};
}

admin_requests! {
    CreateStudioRequest => "CreateStudio";
    GetStudioRequest => "GetStudio", |r| Scope::Studio(&mut r.studio_id);
    ListStudiosRequest => "ListStudios";
    UpdateStudioRequest => "UpdateStudio";
    CreateStudioKeyRequest => "CreateStudioKey";
    ListStudioKeysRequest => "ListStudioKeys";
    RevokeStudioKeyRequest => "RevokeStudioKey";
    IssueUserTokenRequest => "IssueUserToken", |r| Scope::Studio(&mut r.studio_id);
    ListUserTokensRequest => "ListUserTokens", |r| Scope::Studio(&mut r.studio_id);
    RevokeUserTokenRequest => "RevokeUserToken", |r| Scope::Studio(&mut r.studio_id);
    UpsertProviderRequest => "UpsertProvider";
    ListProvidersRequest => "ListProviders";
    DeleteProviderRequest => "DeleteProvider";
    UpsertModelRequest => "UpsertModel";
    ListCatalogModelsRequest => "ListCatalogModels";
    DeleteModelRequest => "DeleteModel";
    SetDefaultModelRequest => "SetDefaultModel";
    ListUsageRecordsRequest => "ListUsageRecords",
        |r| Scope::Usage(&mut r.filter.get_or_insert_default().studio_id);
    AggregateUsageRequest => "AggregateUsage",
        |r| Scope::Usage(&mut r.filter.get_or_insert_default().studio_id);
    SetLimitsRequest => "SetLimits", |r| Scope::Studio(&mut r.studio_id);
    GetLimitsRequest => "GetLimits", |r| Scope::Studio(&mut r.studio_id);
    GetQuotaStandingRequest => "GetQuotaStanding", |r| Scope::Studio(&mut r.studio_id);
    UpsertHookRequest => "UpsertHook",
        |r| Scope::Studio(&mut r.hook.get_or_insert_default().studio_id);
    ListHooksRequest => "ListHooks", |r| Scope::Studio(&mut r.studio_id);
    DeleteHookRequest => "DeleteHook", |r| Scope::Studio(&mut r.studio_id);
    ListHookDeliveriesRequest => "ListHookDeliveries", |r| Scope::Studio(&mut r.studio_id);
    RedeliverHookRequest => "RedeliverHook", |r| Scope::Studio(&mut r.studio_id);
}

/// The scope check: the operator may do everything; a studio key only
/// studio-scoped calls on its own studio (usage calls default to it).
fn authorize(caller: &AdminCaller, method: &'static str, scope: Scope<'_>) -> Result<()> {
    let AdminCaller::Studio(own) = caller else {
        return Ok(());
    };
    let studio = match scope {
        Scope::Operator => None,
        Scope::Studio(studio) => Some(studio),
        Scope::Usage(studio) => {
            if studio.is_empty() {
                studio.push_str(own);
            }
            Some(studio)
        }
    };
    match studio {
        Some(studio) if studio.as_str() == &**own => Ok(()),
        _ => Err(Error::PermissionDenied { method }),
    }
}

/// Every handler's shape: resolve the caller, check its scope, run `body`,
/// and map any error to a status tagged with the request id.
async fn handle<Req, Res, Fut>(
    request: Request<Req>,
    body: impl FnOnce(Req) -> Fut,
) -> Result<Response<Res>, Status>
where
    Req: AdminRequest,
    Fut: Future<Output = Result<Res>>,
{
    let id = request_id(&request);
    let caller = request
        .extensions()
        .get::<AdminCaller>()
        .cloned()
        .ok_or_else(|| Error::internal("no admin caller in request extensions"))
        .map_err(status(&id))?;
    let mut message = request.into_inner();
    authorize(&caller, Req::METHOD, message.scope()).map_err(status(&id))?;
    body(message).await.map(Response::new).map_err(status(&id))
}

/// One page of an id-ordered list (AIP-158, keyset on the id): the query
/// from the request's page size and token, and the next token from the page.
struct IdPage {
    list: String,
    query: PageQuery,
}

impl IdPage {
    fn new(list: impl Into<String>, page_size_requested: i32, page_token: &str) -> Result<Self> {
        let list = list.into();
        let query = PageQuery {
            limit: page_size(page_size_requested)?,
            after: decode_page_token(&list, page_token)?,
        };
        Ok(IdPage { list, query })
    }

    /// The converted rows and the next page token.
    fn finish<R, P>(
        self,
        rows: Vec<R>,
        id: impl Fn(&R) -> &str,
        convert: impl FnMut(R) -> P,
    ) -> (Vec<P>, String) {
        let next = next_page_token(&self.list, &rows, self.query.limit, |row| {
            id(row).to_string()
        });
        (rows.into_iter().map(convert).collect(), next)
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_studio(
        &self,
        request: Request<proto::CreateStudioRequest>,
    ) -> Result<Response<proto::CreateStudioResponse>, Status> {
        handle(request, |r| async move {
            let studio = self
                .directory
                .create_studio(Some(r.studio_id), r.display_name)
                .await?;
            Ok(proto::CreateStudioResponse {
                studio: Some(self.studio(studio)),
            })
        })
        .await
    }

    async fn get_studio(
        &self,
        request: Request<proto::GetStudioRequest>,
    ) -> Result<Response<proto::GetStudioResponse>, Status> {
        handle(request, |r| async move {
            let studio = self.directory.get_studio(&r.studio_id).await?;
            Ok(proto::GetStudioResponse {
                studio: Some(self.studio(studio)),
            })
        })
        .await
    }

    async fn list_studios(
        &self,
        request: Request<proto::ListStudiosRequest>,
    ) -> Result<Response<proto::ListStudiosResponse>, Status> {
        handle(request, |r| async move {
            let page = IdPage::new("studios", r.page_size, &r.page_token)?;
            let rows = self.directory.list_studios(&page.query).await?;
            let (studios, next_page_token) =
                page.finish(rows, |s| &s.id, |studio| self.studio(studio));
            Ok(proto::ListStudiosResponse {
                studios,
                next_page_token,
            })
        })
        .await
    }

    async fn update_studio(
        &self,
        request: Request<proto::UpdateStudioRequest>,
    ) -> Result<Response<proto::UpdateStudioResponse>, Status> {
        handle(request, |r| async move {
            let status = studio_status_update(r.status)?;
            if let Some(allowed) = &r.allowed_models {
                self.check_models_exist(&allowed.model_ids)?;
            }
            let studio = self
                .directory
                .update_studio(&r.studio_id, r.display_name, status)
                .await?;
            if let Some(allowed) = r.allowed_models {
                self.quotas
                    .set_allowed_models(&studio.id, allowed.model_ids)
                    .await?;
            }
            Ok(proto::UpdateStudioResponse {
                studio: Some(self.studio(studio)),
            })
        })
        .await
    }

    async fn create_studio_key(
        &self,
        request: Request<proto::CreateStudioKeyRequest>,
    ) -> Result<Response<proto::CreateStudioKeyResponse>, Status> {
        handle(request, |r| async move {
            let (key, secret) = self
                .directory
                .create_studio_key(&r.studio_id, r.display_name)
                .await?;
            Ok(proto::CreateStudioKeyResponse {
                key: Some(studio_key_to_proto(key)),
                secret,
            })
        })
        .await
    }

    async fn list_studio_keys(
        &self,
        request: Request<proto::ListStudioKeysRequest>,
    ) -> Result<Response<proto::ListStudioKeysResponse>, Status> {
        handle(request, |r| async move {
            let page = IdPage::new(format!("keys:{}", r.studio_id), r.page_size, &r.page_token)?;
            let rows = self
                .directory
                .list_studio_keys(&r.studio_id, &page.query)
                .await?;
            let (keys, next_page_token) = page.finish(rows, |k| &k.id, studio_key_to_proto);
            Ok(proto::ListStudioKeysResponse {
                keys,
                next_page_token,
            })
        })
        .await
    }

    async fn revoke_studio_key(
        &self,
        request: Request<proto::RevokeStudioKeyRequest>,
    ) -> Result<Response<proto::RevokeStudioKeyResponse>, Status> {
        handle(request, |r| async move {
            let key = self
                .directory
                .revoke_studio_key(&r.studio_id, &r.key_id)
                .await?;
            Ok(proto::RevokeStudioKeyResponse {
                key: Some(studio_key_to_proto(key)),
            })
        })
        .await
    }

    async fn issue_user_token(
        &self,
        request: Request<proto::IssueUserTokenRequest>,
    ) -> Result<Response<proto::IssueUserTokenResponse>, Status> {
        handle(request, |r| async move {
            let ttl = ttl(r.ttl)?;
            let (token, secret) = self
                .directory
                .issue_user_token(&r.studio_id, r.user_id, ttl)
                .await?;
            Ok(proto::IssueUserTokenResponse {
                token: Some(user_token_to_proto(token)),
                secret,
            })
        })
        .await
    }

    async fn list_user_tokens(
        &self,
        request: Request<proto::ListUserTokensRequest>,
    ) -> Result<Response<proto::ListUserTokensResponse>, Status> {
        handle(request, |r| async move {
            let (studio, user) = (r.studio_id.as_str(), r.user_id.as_str());
            let page = IdPage::new(
                format!("tokens:{studio}:{user}"),
                r.page_size,
                &r.page_token,
            )?;
            let user_filter = (!user.is_empty()).then_some(user);
            let rows = self
                .directory
                .list_user_tokens(studio, user_filter, &page.query)
                .await?;
            let (tokens, next_page_token) = page.finish(rows, |t| &t.id, user_token_to_proto);
            Ok(proto::ListUserTokensResponse {
                tokens,
                next_page_token,
            })
        })
        .await
    }

    async fn revoke_user_token(
        &self,
        request: Request<proto::RevokeUserTokenRequest>,
    ) -> Result<Response<proto::RevokeUserTokenResponse>, Status> {
        handle(request, |r| async move {
            let token = self
                .directory
                .revoke_user_token(&r.studio_id, &r.token_id)
                .await?;
            Ok(proto::RevokeUserTokenResponse {
                token: Some(user_token_to_proto(token)),
            })
        })
        .await
    }

    async fn upsert_provider(
        &self,
        request: Request<proto::UpsertProviderRequest>,
    ) -> Result<Response<proto::UpsertProviderResponse>, Status> {
        handle(request, |r| async move {
            let provider = provider_from_proto(required(r.provider, "provider")?)?;
            let key = api_key_change(r.api_key)?;
            let provider = self.catalog.upsert_provider(provider, key).await?;
            Ok(proto::UpsertProviderResponse {
                provider: Some(provider_to_proto(provider)),
            })
        })
        .await
    }

    async fn list_providers(
        &self,
        request: Request<proto::ListProvidersRequest>,
    ) -> Result<Response<proto::ListProvidersResponse>, Status> {
        handle(request, |r| async move {
            let page = IdPage::new("providers", r.page_size, &r.page_token)?;
            let rows = self.catalog.list_providers(&page.query).await?;
            let (providers, next_page_token) = page.finish(rows, |p| &p.id, provider_to_proto);
            Ok(proto::ListProvidersResponse {
                providers,
                next_page_token,
            })
        })
        .await
    }

    async fn delete_provider(
        &self,
        request: Request<proto::DeleteProviderRequest>,
    ) -> Result<Response<proto::DeleteProviderResponse>, Status> {
        handle(request, |r| async move {
            self.catalog.delete_provider(&r.provider_id).await?;
            Ok(proto::DeleteProviderResponse {})
        })
        .await
    }

    async fn upsert_model(
        &self,
        request: Request<proto::UpsertModelRequest>,
    ) -> Result<Response<proto::UpsertModelResponse>, Status> {
        handle(request, |r| async move {
            let model = model_from_proto(required(r.model, "model")?)?;
            let model = self.catalog.upsert_model(model).await?;
            Ok(proto::UpsertModelResponse {
                model: Some(self.model(model)),
            })
        })
        .await
    }

    async fn list_catalog_models(
        &self,
        request: Request<proto::ListCatalogModelsRequest>,
    ) -> Result<Response<proto::ListCatalogModelsResponse>, Status> {
        handle(request, |r| async move {
            let page = IdPage::new("models", r.page_size, &r.page_token)?;
            let rows = self.catalog.list_models(&page.query).await?;
            let catalog = self.catalog.current();
            let (models, next_page_token) =
                page.finish(rows, |m| &m.id, |m| model_to_proto(m, &catalog));
            Ok(proto::ListCatalogModelsResponse {
                models,
                next_page_token,
            })
        })
        .await
    }

    async fn delete_model(
        &self,
        request: Request<proto::DeleteModelRequest>,
    ) -> Result<Response<proto::DeleteModelResponse>, Status> {
        handle(request, |r| async move {
            self.catalog.delete_model(&r.model_id).await?;
            Ok(proto::DeleteModelResponse {})
        })
        .await
    }

    async fn set_default_model(
        &self,
        request: Request<proto::SetDefaultModelRequest>,
    ) -> Result<Response<proto::SetDefaultModelResponse>, Status> {
        handle(request, |r| async move {
            let pathway = pathway_from_proto("pathway", r.pathway)?;
            if r.model_id.is_empty() {
                return Err(Error::invalid("model_id", "required"));
            }
            let model = self.catalog.set_default(pathway, &r.model_id).await?;
            Ok(proto::SetDefaultModelResponse {
                model: Some(self.model(model.record.clone())),
            })
        })
        .await
    }

    async fn list_usage_records(
        &self,
        request: Request<proto::ListUsageRecordsRequest>,
    ) -> Result<Response<proto::ListUsageRecordsResponse>, Status> {
        handle(request, |r| async move {
            let filter = usage_filter(r.filter)?;
            let limit = page_size(r.page_size)?;
            let before_seq = decode_number_token("usage", &r.page_token)?;
            let rows = self.store.list_usage(&filter, before_seq, limit).await?;
            let next_page_token =
                next_page_token("usage", &rows, limit, |(seq, _)| seq.to_string());
            Ok(proto::ListUsageRecordsResponse {
                records: rows
                    .into_iter()
                    .map(|(_, row)| usage_record_to_proto(row))
                    .collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn aggregate_usage(
        &self,
        request: Request<proto::AggregateUsageRequest>,
    ) -> Result<Response<proto::AggregateUsageResponse>, Status> {
        handle(request, |r| async move {
            let filter = usage_filter(r.filter)?;
            let group_by = group_by(&r.group_by)?;
            let limit = page_size(r.page_size)?;
            let offset: u64 = decode_number_token("aggregate", &r.page_token)?.unwrap_or(0);
            let rows = self
                .store
                .aggregate_usage(&filter, group_by, offset, limit)
                .await?;
            let next_offset = offset.saturating_add(rows.len() as u64);
            let next_page_token =
                next_page_token("aggregate", &rows, limit, |_| next_offset.to_string());
            Ok(proto::AggregateUsageResponse {
                rows: rows.into_iter().map(aggregate_to_proto).collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn set_limits(
        &self,
        request: Request<proto::SetLimitsRequest>,
    ) -> Result<Response<proto::SetLimitsResponse>, Status> {
        handle(request, |r| async move {
            let target = limit_target(r.target, r.user_id)?;
            let values = limits_from_proto(r.limits);
            let stored = self.quotas.set_limits(&r.studio_id, target, values).await?;
            Ok(proto::SetLimitsResponse {
                limits: Some(limits_to_proto(stored)),
            })
        })
        .await
    }

    async fn get_limits(
        &self,
        request: Request<proto::GetLimitsRequest>,
    ) -> Result<Response<proto::GetLimitsResponse>, Status> {
        handle(request, |r| async move {
            self.directory.get_studio(&r.studio_id).await?;
            let target = limit_target(r.target, r.user_id)?;
            Ok(proto::GetLimitsResponse {
                limits: Some(limits_to_proto(self.quotas.limits(&r.studio_id, &target))),
            })
        })
        .await
    }

    async fn get_quota_standing(
        &self,
        request: Request<proto::GetQuotaStandingRequest>,
    ) -> Result<Response<proto::GetQuotaStandingResponse>, Status> {
        handle(request, |r| async move {
            self.directory.get_studio(&r.studio_id).await?;
            let user = Some(r.user_id.as_str()).filter(|u| !u.is_empty());
            let standing = self.quotas.standing(&r.studio_id, user).await;
            Ok(proto::GetQuotaStandingResponse {
                limits: standing.into_iter().map(standing_to_proto).collect(),
            })
        })
        .await
    }
    async fn upsert_hook(
        &self,
        request: Request<proto::UpsertHookRequest>,
    ) -> Result<Response<proto::UpsertHookResponse>, Status> {
        handle(request, |r| async move {
            let hook = hook_from_proto(required(r.hook, "hook")?)?;
            self.check_hook_studio(&hook.studio_id).await?;
            let (hook, secret) = self.hooks.upsert(hook).await?;
            Ok(proto::UpsertHookResponse {
                hook: Some(hook_to_proto(hook)),
                secret: secret.unwrap_or_default(),
            })
        })
        .await
    }

    async fn list_hooks(
        &self,
        request: Request<proto::ListHooksRequest>,
    ) -> Result<Response<proto::ListHooksResponse>, Status> {
        handle(request, |r| async move {
            let page = IdPage::new(format!("hooks:{}", r.studio_id), r.page_size, &r.page_token)?;
            let rows: Vec<_> = self
                .hooks
                .list(&r.studio_id)
                .into_iter()
                .filter(|h| page.query.after.as_ref().is_none_or(|after| h.id > *after))
                .take(page.query.limit as usize)
                .collect();
            let (hooks, next_page_token) = page.finish(rows, |h| &h.id, hook_to_proto);
            Ok(proto::ListHooksResponse {
                hooks,
                next_page_token,
            })
        })
        .await
    }

    async fn delete_hook(
        &self,
        request: Request<proto::DeleteHookRequest>,
    ) -> Result<Response<proto::DeleteHookResponse>, Status> {
        handle(request, |r| async move {
            self.hooks.delete(&r.studio_id, &r.hook_id).await?;
            Ok(proto::DeleteHookResponse {})
        })
        .await
    }

    async fn list_hook_deliveries(
        &self,
        request: Request<proto::ListHookDeliveriesRequest>,
    ) -> Result<Response<proto::ListHookDeliveriesResponse>, Status> {
        handle(request, |r| async move {
            let filter = crate::domain::DeliveryFilter {
                studio_id: r.studio_id,
                hook_id: Some(r.hook_id).filter(|h| !h.is_empty()),
                state: delivery_state_filter(r.state)?,
            };
            let limit = page_size(r.page_size)?;
            let before_seq = decode_number_token("deliveries", &r.page_token)?;
            let rows = self
                .store
                .list_deliveries(&filter, before_seq, limit)
                .await?;
            let next_page_token =
                next_page_token("deliveries", &rows, limit, |(seq, _)| seq.to_string());
            Ok(proto::ListHookDeliveriesResponse {
                deliveries: rows
                    .into_iter()
                    .map(|(_, d)| delivery_to_proto(d))
                    .collect(),
                next_page_token,
            })
        })
        .await
    }

    async fn redeliver_hook(
        &self,
        request: Request<proto::RedeliverHookRequest>,
    ) -> Result<Response<proto::RedeliverHookResponse>, Status> {
        handle(request, |r| async move {
            let not_found = || Error::NotFound {
                resource: "hook delivery",
                id: r.delivery_id.clone(),
            };
            let delivery = self
                .store
                .get_delivery(&r.delivery_id)
                .await?
                .filter(|d| d.studio_id == r.studio_id)
                .ok_or_else(not_found)?;
            // Queued again, it could only go dead: its hook is gone.
            if self.hooks.get(&delivery.hook_id).is_none() {
                return Err(Error::FailedPrecondition {
                    reason: "HOOK_DELETED",
                    message: format!(
                        "delivery `{}` cannot be sent again: its hook `{}` was deleted",
                        delivery.id, delivery.hook_id
                    ),
                });
            }
            let delivery = self
                .store
                .redeliver(&delivery.id, crate::domain::now_ms())
                .await?;
            self.hooks.wake();
            Ok(proto::RedeliverHookResponse {
                delivery: Some(delivery_to_proto(delivery)),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn studio(id: &str) -> AdminCaller {
        AdminCaller::Studio(id.into())
    }

    fn denied(result: Result<()>) -> Option<&'static str> {
        match result {
            Err(Error::PermissionDenied { method }) => Some(method),
            _ => None,
        }
    }

    #[test]
    fn operator_may_do_everything() {
        let mut r = proto::CreateStudioRequest::default();
        assert!(authorize(&AdminCaller::Operator, "CreateStudio", r.scope()).is_ok());
        let mut r = proto::GetStudioRequest {
            studio_id: "other".into(),
        };
        assert!(authorize(&AdminCaller::Operator, "GetStudio", r.scope()).is_ok());
        let mut r = proto::ListUsageRecordsRequest::default();
        assert!(authorize(&AdminCaller::Operator, "ListUsageRecords", r.scope()).is_ok());
        assert_eq!(
            r.filter.unwrap().studio_id,
            "",
            "the operator's filter is left alone"
        );
    }

    #[test]
    fn studio_key_is_confined_to_its_own_studio() {
        let caller = studio("acme");
        let mut own = proto::IssueUserTokenRequest {
            studio_id: "acme".into(),
            ..Default::default()
        };
        assert!(authorize(&caller, "IssueUserToken", own.scope()).is_ok());
        let mut other = proto::RevokeUserTokenRequest {
            studio_id: "globex".into(),
            ..Default::default()
        };
        assert_eq!(
            denied(authorize(&caller, "RevokeUserToken", other.scope())),
            Some("RevokeUserToken")
        );
        let mut empty = proto::GetStudioRequest::default();
        assert_eq!(
            denied(authorize(&caller, "GetStudio", empty.scope())),
            Some("GetStudio")
        );
        let mut operator_only = proto::CreateStudioKeyRequest {
            studio_id: "acme".into(),
            ..Default::default()
        };
        assert_eq!(
            denied(authorize(
                &caller,
                proto::CreateStudioKeyRequest::METHOD,
                operator_only.scope()
            )),
            Some("CreateStudioKey")
        );
    }

    #[test]
    fn studio_key_usage_defaults_to_its_own_studio() {
        let caller = studio("acme");
        let mut r = proto::AggregateUsageRequest::default();
        assert!(authorize(&caller, "AggregateUsage", r.scope()).is_ok());
        assert_eq!(r.filter.unwrap().studio_id, "acme");
        let mut other = proto::ListUsageRecordsRequest {
            filter: Some(proto::UsageFilter {
                studio_id: "globex".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(denied(authorize(&caller, "ListUsageRecords", other.scope())).is_some());
    }
}

//! `downcity.v1.AdminService`.
//!
//! Every handler has one shape (see `handle`): resolve the caller, check its
//! scope, convert the request, call the directory / catalog / store, convert
//! back; one handler file per resource. Which caller may do what is one
//! table (`admin_requests!` in authorize.rs, README's "Who may call what");
//! the studio limit ceiling is the one rule that also looks at the caller
//! inside a handler (limits.rs).

mod authorize;
mod catalog;
mod hooks;
mod keys;
mod limits;
mod studios;
mod usage;

use std::future::Future;
use std::sync::Arc;

use tonic::{Request, Response, Status};

use self::authorize::{AdminRequest, authorize};
use super::convert::{decode_page_token, model_to_proto, next_page_token, page_size};
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
            ..proto::Studio::from(record)
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

/// Every handler's shape: resolve the caller, check its scope, run `body`
/// (given the caller, for the few rules that depend on who asks), and map
/// any error to a status tagged with the request id.
async fn handle<Req, Res, Fut>(
    request: Request<Req>,
    body: impl FnOnce(Req, AdminCaller) -> Fut,
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
    body(message, caller)
        .await
        .map(Response::new)
        .map_err(status(&id))
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

/// The service: each method runs its handler through `handle`; a row
/// ending in `, caller` hands the handler the caller too.
macro_rules! admin_service {
    (@call $api:expr, $handler:path, $r:ident, $caller:ident) => {{
        drop($caller);
        $handler($api, $r)
    }};
    (@call $api:expr, $handler:path, $r:ident, $caller:ident, caller) => {
        $handler($api, $r, $caller)
    };
    ($($method:ident($request:ident) -> $response:ident = $handler:path $(, $by:ident)?;)+) => {
        #[tonic::async_trait]
        impl AdminService for AdminApi {
            $(async fn $method(
                &self,
                request: Request<proto::$request>,
            ) -> Result<Response<proto::$response>, Status> {
                handle(request, |r, caller| {
                    admin_service!(@call self, $handler, r, caller $(, $by)?)
                })
                .await
            })+
        }
    };
}

admin_service! {
    create_studio(CreateStudioRequest) -> CreateStudioResponse = studios::create_studio;
    get_studio(GetStudioRequest) -> GetStudioResponse = studios::get_studio;
    list_studios(ListStudiosRequest) -> ListStudiosResponse = studios::list_studios;
    update_studio(UpdateStudioRequest) -> UpdateStudioResponse = studios::update_studio;
    create_studio_key(CreateStudioKeyRequest) -> CreateStudioKeyResponse = keys::create_studio_key;
    list_studio_keys(ListStudioKeysRequest) -> ListStudioKeysResponse = keys::list_studio_keys;
    revoke_studio_key(RevokeStudioKeyRequest) -> RevokeStudioKeyResponse = keys::revoke_studio_key;
    issue_user_token(IssueUserTokenRequest) -> IssueUserTokenResponse = keys::issue_user_token;
    list_user_tokens(ListUserTokensRequest) -> ListUserTokensResponse = keys::list_user_tokens;
    revoke_user_token(RevokeUserTokenRequest) -> RevokeUserTokenResponse = keys::revoke_user_token;
    upsert_provider(UpsertProviderRequest) -> UpsertProviderResponse = catalog::upsert_provider;
    list_providers(ListProvidersRequest) -> ListProvidersResponse = catalog::list_providers;
    delete_provider(DeleteProviderRequest) -> DeleteProviderResponse = catalog::delete_provider;
    upsert_model(UpsertModelRequest) -> UpsertModelResponse = catalog::upsert_model;
    list_catalog_models(ListCatalogModelsRequest) -> ListCatalogModelsResponse
        = catalog::list_catalog_models;
    delete_model(DeleteModelRequest) -> DeleteModelResponse = catalog::delete_model;
    set_default_model(SetDefaultModelRequest) -> SetDefaultModelResponse
        = catalog::set_default_model;
    list_usage_records(ListUsageRecordsRequest) -> ListUsageRecordsResponse
        = usage::list_usage_records;
    aggregate_usage(AggregateUsageRequest) -> AggregateUsageResponse = usage::aggregate_usage;
    set_limits(SetLimitsRequest) -> SetLimitsResponse = limits::set_limits, caller;
    get_limits(GetLimitsRequest) -> GetLimitsResponse = limits::get_limits, caller;
    get_quota_standing(GetQuotaStandingRequest) -> GetQuotaStandingResponse
        = limits::get_quota_standing;
    upsert_hook(UpsertHookRequest) -> UpsertHookResponse = hooks::upsert_hook;
    list_hooks(ListHooksRequest) -> ListHooksResponse = hooks::list_hooks;
    delete_hook(DeleteHookRequest) -> DeleteHookResponse = hooks::delete_hook;
    list_hook_deliveries(ListHookDeliveriesRequest) -> ListHookDeliveriesResponse
        = hooks::list_hook_deliveries;
    redeliver_hook(RedeliverHookRequest) -> RedeliverHookResponse = hooks::redeliver_hook;
}

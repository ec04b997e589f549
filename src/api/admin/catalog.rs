//! The catalog: providers, models and the default model of each pathway.

use super::{AdminApi, IdPage};
use crate::api::convert::{api_key_change, model_to_proto, pathway_from_proto, required};
use crate::domain::{ModelRecord, ProviderRecord};
use crate::error::{Error, Result};
use crate::proto;

pub(super) async fn upsert_provider(
    api: &AdminApi,
    r: proto::UpsertProviderRequest,
) -> Result<proto::UpsertProviderResponse> {
    let provider = ProviderRecord::try_from(required(r.provider, "provider")?)?;
    let key = api_key_change(r.api_key)?;
    let provider = api.catalog.upsert_provider(provider, key).await?;
    Ok(proto::UpsertProviderResponse {
        provider: Some(proto::Provider::from(provider)),
    })
}

pub(super) async fn list_providers(
    api: &AdminApi,
    r: proto::ListProvidersRequest,
) -> Result<proto::ListProvidersResponse> {
    let page = IdPage::new("providers", r.page_size, &r.page_token)?;
    let rows = api.catalog.list_providers(&page.query).await?;
    let (providers, next_page_token) = page.finish(rows, |p| &p.id, proto::Provider::from);
    Ok(proto::ListProvidersResponse {
        providers,
        next_page_token,
    })
}

pub(super) async fn delete_provider(
    api: &AdminApi,
    r: proto::DeleteProviderRequest,
) -> Result<proto::DeleteProviderResponse> {
    api.catalog.delete_provider(&r.provider_id).await?;
    Ok(proto::DeleteProviderResponse {})
}

pub(super) async fn upsert_model(
    api: &AdminApi,
    r: proto::UpsertModelRequest,
) -> Result<proto::UpsertModelResponse> {
    let model = ModelRecord::try_from(required(r.model, "model")?)?;
    let model = api.catalog.upsert_model(model).await?;
    Ok(proto::UpsertModelResponse {
        model: Some(api.model(model)),
    })
}

pub(super) async fn list_catalog_models(
    api: &AdminApi,
    r: proto::ListCatalogModelsRequest,
) -> Result<proto::ListCatalogModelsResponse> {
    let page = IdPage::new("models", r.page_size, &r.page_token)?;
    let rows = api.catalog.list_models(&page.query).await?;
    let catalog = api.catalog.current();
    let (models, next_page_token) = page.finish(rows, |m| &m.id, |m| model_to_proto(m, &catalog));
    Ok(proto::ListCatalogModelsResponse {
        models,
        next_page_token,
    })
}

pub(super) async fn delete_model(
    api: &AdminApi,
    r: proto::DeleteModelRequest,
) -> Result<proto::DeleteModelResponse> {
    api.catalog.delete_model(&r.model_id).await?;
    Ok(proto::DeleteModelResponse {})
}

pub(super) async fn set_default_model(
    api: &AdminApi,
    r: proto::SetDefaultModelRequest,
) -> Result<proto::SetDefaultModelResponse> {
    let pathway = pathway_from_proto("pathway", r.pathway)?;
    if r.model_id.is_empty() {
        return Err(Error::invalid("model_id", "required"));
    }
    let model = api.catalog.set_default(pathway, &r.model_id).await?;
    Ok(proto::SetDefaultModelResponse {
        model: Some(api.model(model.record.clone())),
    })
}

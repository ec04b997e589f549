//! Studios: create, read, list, update (status, model allow-list, web origins).

use super::{AdminApi, IdPage};
use crate::api::convert::studio_status_update;
use crate::auth::StudioChanges;
use crate::domain::normalize_origins;
use crate::error::Result;
use crate::proto;

pub(super) async fn create_studio(
    api: &AdminApi,
    r: proto::CreateStudioRequest,
) -> Result<proto::CreateStudioResponse> {
    let studio = api
        .directory
        .create_studio(Some(r.studio_id), r.display_name)
        .await?;
    Ok(proto::CreateStudioResponse {
        studio: Some(api.studio(studio)),
    })
}

pub(super) async fn get_studio(
    api: &AdminApi,
    r: proto::GetStudioRequest,
) -> Result<proto::GetStudioResponse> {
    let studio = api.directory.get_studio(&r.studio_id).await?;
    Ok(proto::GetStudioResponse {
        studio: Some(api.studio(studio)),
    })
}

pub(super) async fn list_studios(
    api: &AdminApi,
    r: proto::ListStudiosRequest,
) -> Result<proto::ListStudiosResponse> {
    let page = IdPage::new("studios", r.page_size, &r.page_token)?;
    let rows = api.directory.list_studios(&page.query).await?;
    let (studios, next_page_token) = page.finish(rows, |s| &s.id, |studio| api.studio(studio));
    Ok(proto::ListStudiosResponse {
        studios,
        next_page_token,
    })
}

pub(super) async fn update_studio(
    api: &AdminApi,
    r: proto::UpdateStudioRequest,
) -> Result<proto::UpdateStudioResponse> {
    let status = studio_status_update(r.status)?;
    if let Some(allowed) = &r.allowed_models {
        api.check_models_exist(&allowed.model_ids)?;
    }
    let origins = r
        .allowed_origins
        .map(|list| normalize_origins("allowed_origins.origins", &list.origins))
        .transpose()?;
    let changes = StudioChanges {
        display_name: r.display_name,
        status,
        allowed_origins: origins,
    };
    let studio = api.directory.update_studio(&r.studio_id, changes).await?;
    if let Some(allowed) = r.allowed_models {
        api.quotas
            .set_allowed_models(&studio.id, allowed.model_ids)
            .await?;
    }
    Ok(proto::UpdateStudioResponse {
        studio: Some(api.studio(studio)),
    })
}

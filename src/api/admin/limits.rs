//! Limits and a studio's standing against them.

use super::AdminApi;
use crate::api::convert::limit_target;
use crate::domain::LimitValues;
use crate::error::Result;
use crate::proto;

pub(super) async fn set_limits(
    api: &AdminApi,
    r: proto::SetLimitsRequest,
) -> Result<proto::SetLimitsResponse> {
    let target = limit_target(r.target, r.user_id)?;
    let values = LimitValues::from(r.limits.unwrap_or_default());
    let stored = api.quotas.set_limits(&r.studio_id, target, values).await?;
    Ok(proto::SetLimitsResponse {
        limits: Some(proto::Limits::from(stored)),
    })
}

pub(super) async fn get_limits(
    api: &AdminApi,
    r: proto::GetLimitsRequest,
) -> Result<proto::GetLimitsResponse> {
    api.directory.get_studio(&r.studio_id).await?;
    let target = limit_target(r.target, r.user_id)?;
    Ok(proto::GetLimitsResponse {
        limits: Some(proto::Limits::from(
            api.quotas.limits(&r.studio_id, &target),
        )),
    })
}

pub(super) async fn get_quota_standing(
    api: &AdminApi,
    r: proto::GetQuotaStandingRequest,
) -> Result<proto::GetQuotaStandingResponse> {
    api.directory.get_studio(&r.studio_id).await?;
    let user = Some(r.user_id.as_str()).filter(|u| !u.is_empty());
    let standing = api.quotas.standing(&r.studio_id, user).await;
    Ok(proto::GetQuotaStandingResponse {
        limits: standing
            .into_iter()
            .map(proto::LimitStanding::from)
            .collect(),
    })
}

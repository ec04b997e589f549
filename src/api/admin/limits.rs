//! Limits and a studio's standing against them.

use super::AdminApi;
use crate::api::convert::limit_target;
use crate::auth::AdminCaller;
use crate::domain::{LimitTarget, LimitValues};
use crate::error::Result;
use crate::proto;

/// The limits a SetLimits / GetLimits of this caller acts on. Studio-wide,
/// the operator's are a ceiling and a studio key's are its studio's own
/// (the tighter of the two binds); user limits are the same for both.
fn tier(target: LimitTarget, caller: &AdminCaller) -> LimitTarget {
    match (target, caller) {
        (LimitTarget::Studio, AdminCaller::Studio(_)) => LimitTarget::StudioOwn,
        (target, _) => target,
    }
}

pub(super) async fn set_limits(
    api: &AdminApi,
    r: proto::SetLimitsRequest,
    caller: AdminCaller,
) -> Result<proto::SetLimitsResponse> {
    let target = tier(limit_target(r.target, r.user_id)?, &caller);
    let values = LimitValues::from(r.limits.unwrap_or_default());
    let stored = api.quotas.set_limits(&r.studio_id, target, values).await?;
    Ok(proto::SetLimitsResponse {
        limits: Some(proto::Limits::from(stored)),
    })
}

pub(super) async fn get_limits(
    api: &AdminApi,
    r: proto::GetLimitsRequest,
    caller: AdminCaller,
) -> Result<proto::GetLimitsResponse> {
    api.directory.get_studio(&r.studio_id).await?;
    let target = tier(limit_target(r.target, r.user_id)?, &caller);
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

//! Hooks and their deliveries.

use super::{AdminApi, IdPage};
use crate::api::convert::{
    decode_number_token, delivery_state_filter, next_page_token, page_size, required,
};
use crate::domain::{DeliveryFilter, HookRecord, now_ms};
use crate::error::{Error, Result};
use crate::proto;

pub(super) async fn upsert_hook(
    api: &AdminApi,
    r: proto::UpsertHookRequest,
) -> Result<proto::UpsertHookResponse> {
    let hook = HookRecord::try_from(required(r.hook, "hook")?)?;
    api.check_hook_studio(&hook.studio_id).await?;
    let (hook, secret) = api.hooks.upsert(hook).await?;
    Ok(proto::UpsertHookResponse {
        hook: Some(proto::Hook::from(hook)),
        secret: secret.unwrap_or_default(),
    })
}

pub(super) async fn list_hooks(
    api: &AdminApi,
    r: proto::ListHooksRequest,
) -> Result<proto::ListHooksResponse> {
    let page = IdPage::new(format!("hooks:{}", r.studio_id), r.page_size, &r.page_token)?;
    let rows: Vec<_> = api
        .hooks
        .list(&r.studio_id)
        .into_iter()
        .filter(|h| page.query.after.as_ref().is_none_or(|after| h.id > *after))
        .take(page.query.limit as usize)
        .collect();
    let (hooks, next_page_token) = page.finish(rows, |h| &h.id, proto::Hook::from);
    Ok(proto::ListHooksResponse {
        hooks,
        next_page_token,
    })
}

pub(super) async fn delete_hook(
    api: &AdminApi,
    r: proto::DeleteHookRequest,
) -> Result<proto::DeleteHookResponse> {
    api.hooks.delete(&r.studio_id, &r.hook_id).await?;
    Ok(proto::DeleteHookResponse {})
}

pub(super) async fn list_hook_deliveries(
    api: &AdminApi,
    r: proto::ListHookDeliveriesRequest,
) -> Result<proto::ListHookDeliveriesResponse> {
    let filter = DeliveryFilter {
        studio_id: r.studio_id,
        hook_id: Some(r.hook_id).filter(|h| !h.is_empty()),
        state: delivery_state_filter(r.state)?,
    };
    let limit = page_size(r.page_size)?;
    let before_seq = decode_number_token("deliveries", &r.page_token)?;
    let rows = api
        .store
        .list_deliveries(&filter, before_seq, limit)
        .await?;
    let next_page_token = next_page_token("deliveries", &rows, limit, |(seq, _)| seq.to_string());
    Ok(proto::ListHookDeliveriesResponse {
        deliveries: rows
            .into_iter()
            .map(|(_, d)| proto::HookDelivery::from(d))
            .collect(),
        next_page_token,
    })
}

pub(super) async fn redeliver_hook(
    api: &AdminApi,
    r: proto::RedeliverHookRequest,
) -> Result<proto::RedeliverHookResponse> {
    let not_found = || Error::NotFound {
        resource: "hook delivery",
        id: r.delivery_id.clone(),
    };
    let delivery = api
        .store
        .get_delivery(&r.delivery_id)
        .await?
        .filter(|d| d.studio_id == r.studio_id)
        .ok_or_else(not_found)?;
    // Queued again, it could only go dead: its hook is gone.
    if api.hooks.get(&delivery.hook_id).is_none() {
        return Err(Error::FailedPrecondition {
            reason: "HOOK_DELETED",
            message: format!(
                "delivery `{}` cannot be sent again: its hook `{}` was deleted",
                delivery.id, delivery.hook_id
            ),
        });
    }
    let delivery = api.store.redeliver(&delivery.id, now_ms()).await?;
    api.hooks.wake();
    Ok(proto::RedeliverHookResponse {
        delivery: Some(proto::HookDelivery::from(delivery)),
    })
}

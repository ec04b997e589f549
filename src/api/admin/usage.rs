//! Usage: rows and aggregates.

use super::AdminApi;
use crate::api::convert::{
    decode_number_token, group_by, next_page_token, page_size, usage_filter,
};
use crate::error::Result;
use crate::proto;

pub(super) async fn list_usage_records(
    api: &AdminApi,
    r: proto::ListUsageRecordsRequest,
) -> Result<proto::ListUsageRecordsResponse> {
    let filter = usage_filter(r.filter)?;
    let limit = page_size(r.page_size)?;
    let before_seq = decode_number_token("usage", &r.page_token)?;
    let rows = api.store.list_usage(&filter, before_seq, limit).await?;
    let next_page_token = next_page_token("usage", &rows, limit, |(seq, _)| seq.to_string());
    Ok(proto::ListUsageRecordsResponse {
        records: rows
            .into_iter()
            .map(|(_, row)| proto::UsageRecord::from(row))
            .collect(),
        next_page_token,
    })
}

pub(super) async fn aggregate_usage(
    api: &AdminApi,
    r: proto::AggregateUsageRequest,
) -> Result<proto::AggregateUsageResponse> {
    let filter = usage_filter(r.filter)?;
    let group_by = group_by(&r.group_by)?;
    let limit = page_size(r.page_size)?;
    let offset: u64 = decode_number_token("aggregate", &r.page_token)?.unwrap_or(0);
    let rows = api
        .store
        .aggregate_usage(&filter, group_by, offset, limit)
        .await?;
    let next_offset = offset.saturating_add(rows.len() as u64);
    let next_page_token = next_page_token("aggregate", &rows, limit, |_| next_offset.to_string());
    Ok(proto::AggregateUsageResponse {
        rows: rows.into_iter().map(proto::UsageAggregate::from).collect(),
        next_page_token,
    })
}

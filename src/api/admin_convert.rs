//! Conversions between `AdminService` wire messages and store records, with
//! validation: every invalid field becomes a `BadRequest` field violation.

use std::str::FromStr;
use std::time::Duration;

use super::convert::{
    decode_page_token, duration_us, millis, pathway_from_proto, pathway_to_proto, timestamp,
};
use crate::catalog::Catalog;
use crate::domain::{
    DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_OUTPUT_TOKENS, GroupBy, LimitTarget, LimitValues,
    ModelRecord, Pathway, ProviderKind, ProviderRecord, StudioKeyRecord, StudioRecord,
    StudioStatus, UsageAggregateRow, UsageFilter, UsageRow, UserTokenRecord,
};
use crate::error::{Error, Result, Violations};
use crate::proto;
use crate::quota::Standing;

/// The longest user-token ttl: the range of `google.protobuf.Duration` (10 000 years).
const MAX_TTL_SECONDS: i64 = 315_576_000_000;

/// A message field the request must set.
pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| Error::invalid(field, "required"))
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// A page token whose key is a number: a usage sequence number or an offset.
pub(crate) fn decode_number_token<T: FromStr>(list: &str, token: &str) -> Result<Option<T>> {
    decode_page_token(list, token)?
        .map(|key| {
            key.parse()
                .map_err(|_| Error::invalid("page_token", "not a page token of this list"))
        })
        .transpose()
}

pub(crate) fn studio_to_proto(studio: StudioRecord) -> proto::Studio {
    let status = match studio.status {
        StudioStatus::Active => proto::StudioStatus::Active,
        StudioStatus::Suspended => proto::StudioStatus::Suspended,
    };
    proto::Studio {
        id: studio.id,
        display_name: studio.display_name,
        status: status as i32,
        create_time: Some(timestamp(studio.create_ms)),
        update_time: Some(timestamp(studio.update_ms)),
        allowed_model_ids: Vec::new(),
    }
}

/// The status of an UpdateStudio: unspecified leaves it unchanged.
pub(crate) fn studio_status_update(value: i32) -> Result<Option<StudioStatus>> {
    match proto::StudioStatus::try_from(value) {
        Ok(proto::StudioStatus::Unspecified) => Ok(None),
        Ok(proto::StudioStatus::Active) => Ok(Some(StudioStatus::Active)),
        Ok(proto::StudioStatus::Suspended) => Ok(Some(StudioStatus::Suspended)),
        Err(_) => Err(Error::invalid("status", "unknown studio status")),
    }
}

pub(crate) fn studio_key_to_proto(key: StudioKeyRecord) -> proto::StudioKey {
    proto::StudioKey {
        id: key.id,
        studio_id: key.studio_id,
        display_name: key.display_name,
        create_time: Some(timestamp(key.create_ms)),
        revoke_time: key.revoke_ms.map(timestamp),
    }
}

pub(crate) fn user_token_to_proto(token: UserTokenRecord) -> proto::UserToken {
    proto::UserToken {
        id: token.id,
        studio_id: token.studio_id,
        user_id: token.user_id,
        create_time: Some(timestamp(token.create_ms)),
        expire_time: token.expire_ms.map(timestamp),
        revoke_time: token.revoke_ms.map(timestamp),
    }
}

/// A user token's ttl: unset never expires; otherwise positive and within
/// the range of a protobuf Duration.
pub(crate) fn ttl(value: Option<pbjson_types::Duration>) -> Result<Option<Duration>> {
    let Some(ttl) = value else { return Ok(None) };
    let valid = (0..=MAX_TTL_SECONDS).contains(&ttl.seconds)
        && (0..1_000_000_000).contains(&ttl.nanos)
        && (ttl.seconds, ttl.nanos) != (0, 0);
    if !valid {
        return Err(Error::invalid(
            "ttl",
            "must be positive and at most 10000 years",
        ));
    }
    Ok(Some(Duration::new(ttl.seconds as u64, ttl.nanos as u32)))
}

/// A provider timeout in milliseconds; unset stays unset (the default).
/// The range is the record's rule (`ProviderRecord::validate`).
fn provider_timeout(
    v: &mut Violations,
    field: &str,
    value: Option<pbjson_types::Duration>,
) -> Option<i64> {
    let d = value?;
    let valid = d.seconds >= 0 && d.nanos >= 0;
    v.check(valid, field, "must be between 1 ms and 1 hour");
    valid.then(|| d.seconds.saturating_mul(1000) + i64::from(d.nanos) / 1_000_000)
}

fn ms_duration(ms: Option<i64>) -> Option<pbjson_types::Duration> {
    ms.map(|ms| duration_us(ms.saturating_mul(1000)))
}

/// The provider of an UpsertProvider; output-only fields are ignored.
pub(crate) fn provider_from_proto(provider: proto::Provider) -> Result<ProviderRecord> {
    let mut v = Violations::default();
    let kind = match proto::ProviderKind::try_from(provider.kind) {
        Ok(proto::ProviderKind::Mock) => Some(ProviderKind::Mock),
        Ok(proto::ProviderKind::Openai) => Some(ProviderKind::OpenAi),
        Ok(proto::ProviderKind::OpenaiCompatible) => Some(ProviderKind::OpenAiCompatible),
        Ok(proto::ProviderKind::Anthropic) => Some(ProviderKind::Anthropic),
        Ok(proto::ProviderKind::Gemini) => Some(ProviderKind::Gemini),
        Ok(proto::ProviderKind::Unspecified) | Err(_) => None,
    };
    v.check(
        kind.is_some(),
        "provider.kind",
        "must be a PROVIDER_KIND_ value other than UNSPECIFIED",
    );
    let headers: std::collections::BTreeMap<_, _> = provider.headers.into_iter().collect();
    let timeouts = crate::domain::ProviderTimeouts {
        connect_ms: provider_timeout(&mut v, "provider.connect_timeout", provider.connect_timeout),
        first_byte_ms: provider_timeout(
            &mut v,
            "provider.first_byte_timeout",
            provider.first_byte_timeout,
        ),
        total_ms: provider_timeout(&mut v, "provider.total_timeout", provider.total_timeout),
    };
    let record = ProviderRecord {
        id: provider.id,
        // A placeholder when unset: the violation above already names it.
        kind: kind.unwrap_or(ProviderKind::Mock),
        base_url: provider.base_url,
        update_ms: 0,
        headers,
        timeouts,
        api_key: None,
        api_key_update_ms: None,
    };
    // The record's own rules, so one answer names every invalid field.
    v.absorb(record.validate());
    v.finish(record)
}

/// What an UpsertProvider's `api_key` asks: unset keeps, empty clears.
pub(crate) fn api_key_change(api_key: Option<String>) -> Result<crate::catalog::KeyChange> {
    use crate::catalog::KeyChange;
    Ok(match api_key {
        None => KeyChange::Keep,
        Some(key) if key.is_empty() => KeyChange::Clear,
        Some(key) => {
            // It travels in an HTTP header: printable ASCII, no spaces around.
            let valid = key.len() <= 4096
                && key.trim() == key
                && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
            if !valid {
                return Err(Error::invalid(
                    "api_key",
                    "must be printable ASCII without surrounding spaces, at most 4096 bytes",
                ));
            }
            KeyChange::Set(crate::keys::ApiKey::new(key))
        }
    })
}

/// The provider as the API shows it: the key only as its last 4 characters.
pub(crate) fn provider_to_proto(provider: ProviderRecord) -> proto::Provider {
    let kind = match provider.kind {
        ProviderKind::Mock => proto::ProviderKind::Mock,
        ProviderKind::OpenAi => proto::ProviderKind::Openai,
        ProviderKind::OpenAiCompatible => proto::ProviderKind::OpenaiCompatible,
        ProviderKind::Anthropic => proto::ProviderKind::Anthropic,
        ProviderKind::Gemini => proto::ProviderKind::Gemini,
    };
    proto::Provider {
        id: provider.id,
        kind: kind as i32,
        base_url: provider.base_url,
        update_time: Some(timestamp(provider.update_ms)),
        api_key_hint: provider.api_key.map(|k| k.hint).unwrap_or_default(),
        api_key_update_time: provider.api_key_update_ms.map(timestamp),
        headers: provider.headers.into_iter().collect(),
        connect_timeout: ms_duration(provider.timeouts.connect_ms),
        first_byte_timeout: ms_duration(provider.timeouts.first_byte_ms),
        total_timeout: ms_duration(provider.timeouts.total_ms),
    }
}

/// The model of an UpsertModel; `is_default` and `update_time` are ignored,
/// zero token limits take the defaults.
pub(crate) fn model_from_proto(model: proto::Model) -> Result<ModelRecord> {
    let or_default = |value: i32, default: i32| if value == 0 { default } else { value };
    Ok(ModelRecord {
        pathway: pathway_from_proto("model.pathway", model.pathway)?,
        id: model.id,
        display_name: model.display_name,
        provider_id: model.provider_id,
        upstream_model: model.upstream_model,
        // Unset means enabled: a first model made with grpcurl just works.
        enabled: model.enabled.unwrap_or(true),
        max_output_tokens: or_default(model.max_output_tokens, DEFAULT_MAX_OUTPUT_TOKENS),
        max_input_tokens: or_default(model.max_input_tokens, DEFAULT_MAX_INPUT_TOKENS),
        input_micros_per_mtok: model.input_micros_per_mtok,
        output_micros_per_mtok: model.output_micros_per_mtok,
        micros_per_image: model.micros_per_image,
        fallback_model_ids: model.fallback_model_ids,
        options: model.options.into_iter().collect(),
        update_ms: 0,
    })
}

/// A model as listed; `is_default` comes from the live catalog.
pub(crate) fn model_to_proto(model: ModelRecord, catalog: &Catalog) -> proto::Model {
    proto::Model {
        is_default: catalog.is_default(&model.id),
        pathway: pathway_to_proto(model.pathway) as i32,
        id: model.id,
        display_name: model.display_name,
        provider_id: model.provider_id,
        upstream_model: model.upstream_model,
        enabled: Some(model.enabled),
        max_output_tokens: model.max_output_tokens,
        max_input_tokens: model.max_input_tokens,
        input_micros_per_mtok: model.input_micros_per_mtok,
        output_micros_per_mtok: model.output_micros_per_mtok,
        micros_per_image: model.micros_per_image,
        fallback_model_ids: model.fallback_model_ids,
        options: model.options.into_iter().collect(),
        update_time: Some(timestamp(model.update_ms)),
    }
}

/// A usage filter: empty fields match everything; start before end.
pub(crate) fn usage_filter(filter: Option<proto::UsageFilter>) -> Result<UsageFilter> {
    let filter = filter.unwrap_or_default();
    let start_ms = filter.start_time.as_ref().map(millis);
    let end_ms = filter.end_time.as_ref().map(millis);
    if start_ms
        .zip(end_ms)
        .is_some_and(|(start, end)| start >= end)
    {
        return Err(Error::invalid(
            "filter.end_time",
            "must be after filter.start_time",
        ));
    }
    Ok(UsageFilter {
        studio_id: non_empty(filter.studio_id),
        user_id: non_empty(filter.user_id),
        model_id: non_empty(filter.model_id),
        start_ms,
        end_ms,
    })
}

/// The dimensions of an AggregateUsage; unspecified ones are rejected.
pub(crate) fn group_by(dimensions: &[i32]) -> Result<GroupBy> {
    let mut v = Violations::default();
    let mut group_by = GroupBy::default();
    for (i, &dimension) in dimensions.iter().enumerate() {
        match proto::UsageDimension::try_from(dimension) {
            Ok(proto::UsageDimension::Studio) => group_by.studio = true,
            Ok(proto::UsageDimension::User) => group_by.user = true,
            Ok(proto::UsageDimension::Model) => group_by.model = true,
            Ok(proto::UsageDimension::Day) => group_by.day = true,
            Ok(proto::UsageDimension::Hour) => group_by.hour = true,
            Ok(proto::UsageDimension::Month) => group_by.month = true,
            Ok(proto::UsageDimension::Unspecified) | Err(_) => v.check(
                false,
                format!("group_by[{i}]"),
                "must be USAGE_DIMENSION_STUDIO, _USER, _MODEL, _HOUR, _DAY or _MONTH",
            ),
        }
    }
    v.finish(group_by)
}

pub(crate) fn usage_record_to_proto(row: UsageRow) -> proto::UsageRecord {
    let pathway =
        Pathway::parse(&row.pathway).map_or(proto::Pathway::Unspecified, pathway_to_proto);
    proto::UsageRecord {
        request_id: row.request_id,
        studio_id: row.studio_id,
        user_id: row.user_id,
        model_id: row.model_id,
        provider_id: row.provider_id,
        pathway: pathway as i32,
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        images: row.images,
        cost_micros: row.cost_micros,
        status_code: row.status_code,
        error_reason: row.error_reason,
        latency: Some(duration_us(row.latency_us)),
        time_to_first_token: row.ttft_us.map(duration_us),
        create_time: Some(timestamp(row.create_ms)),
        metadata: row.metadata.into_iter().collect(),
    }
}

pub(crate) fn aggregate_to_proto(row: UsageAggregateRow) -> proto::UsageAggregate {
    proto::UsageAggregate {
        studio_id: row.studio_id,
        user_id: row.user_id,
        model_id: row.model_id,
        day: row.day,
        hour: row.hour,
        month: row.month,
        calls: row.calls,
        failed_calls: row.failed_calls,
        input_tokens: row.input_tokens,
        output_tokens: row.output_tokens,
        images: row.images,
        cost_micros: row.cost_micros,
    }
}

pub(crate) fn limits_to_proto(values: LimitValues) -> proto::Limits {
    proto::Limits {
        requests_per_minute: values.requests_per_minute,
        tokens_per_minute: values.tokens_per_minute,
        tokens_per_day: values.tokens_per_day,
        cost_micros_per_day: values.cost_micros_per_day,
        cost_micros_per_month: values.cost_micros_per_month,
    }
}

pub(crate) fn limits_from_proto(limits: Option<proto::Limits>) -> LimitValues {
    let limits = limits.unwrap_or_default();
    LimitValues {
        requests_per_minute: limits.requests_per_minute,
        tokens_per_minute: limits.tokens_per_minute,
        tokens_per_day: limits.tokens_per_day,
        cost_micros_per_day: limits.cost_micros_per_day,
        cost_micros_per_month: limits.cost_micros_per_month,
    }
}

/// The target of a SetLimits / GetLimits.
pub(crate) fn limit_target(target: i32, user_id: String) -> Result<LimitTarget> {
    match proto::LimitTarget::try_from(target) {
        Ok(proto::LimitTarget::Studio) => Ok(LimitTarget::Studio),
        Ok(proto::LimitTarget::UserDefault) => Ok(LimitTarget::UserDefault),
        Ok(proto::LimitTarget::User) if !user_id.is_empty() => Ok(LimitTarget::User(user_id)),
        Ok(proto::LimitTarget::User) => {
            Err(Error::invalid("user_id", "required for LIMIT_TARGET_USER"))
        }
        Ok(proto::LimitTarget::Unspecified) | Err(_) => Err(Error::invalid(
            "target",
            "must be LIMIT_TARGET_STUDIO, LIMIT_TARGET_USER_DEFAULT or LIMIT_TARGET_USER",
        )),
    }
}

pub(crate) fn standing_to_proto(standing: Standing) -> proto::LimitStanding {
    proto::LimitStanding {
        scope: standing.scope.to_string(),
        limit: standing.kind.name().to_string(),
        value: standing.value,
        window: standing.kind.window().as_str().to_string(),
        used: standing.used,
        reserved: standing.reserved,
        remaining: (standing.value - standing.used - standing.reserved).max(0),
        reset_time: Some(timestamp(standing.reset_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::convert::encode_page_token;
    use super::*;

    fn fields(err: Error) -> Vec<String> {
        let Error::InvalidArgument(violations) = err else {
            panic!("not INVALID_ARGUMENT: {err}")
        };
        violations.into_iter().map(|v| v.field).collect()
    }

    fn duration(seconds: i64, nanos: i32) -> Option<pbjson_types::Duration> {
        Some(pbjson_types::Duration { seconds, nanos })
    }

    fn ts(seconds: i64) -> Option<pbjson_types::Timestamp> {
        Some(pbjson_types::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn ttl_is_unset_or_positive() {
        assert_eq!(ttl(None).unwrap(), None);
        assert_eq!(
            ttl(duration(3600, 0)).unwrap(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(
            ttl(duration(0, 5_000_000)).unwrap(),
            Some(Duration::from_millis(5))
        );
        for (seconds, nanos) in [
            (0, 0),
            (-1, 0),
            (0, -1),
            (1, 1_000_000_000),
            (MAX_TTL_SECONDS + 1, 0),
        ] {
            assert_eq!(
                fields(ttl(duration(seconds, nanos)).unwrap_err()),
                ["ttl"],
                "{seconds}s {nanos}ns"
            );
        }
    }

    #[test]
    fn studio_status_update_maps_every_value() {
        assert_eq!(studio_status_update(0).unwrap(), None);
        assert_eq!(studio_status_update(1).unwrap(), Some(StudioStatus::Active));
        assert_eq!(
            studio_status_update(2).unwrap(),
            Some(StudioStatus::Suspended)
        );
        assert_eq!(fields(studio_status_update(9).unwrap_err()), ["status"]);
        let studio = StudioRecord {
            id: "s".into(),
            display_name: String::new(),
            status: StudioStatus::Suspended,
            create_ms: 1,
            update_ms: 2,
        };
        assert_eq!(
            studio_to_proto(studio).status,
            proto::StudioStatus::Suspended as i32
        );
    }

    #[test]
    fn provider_kind_and_base_url_are_checked_together() {
        let provider = |kind: proto::ProviderKind, base_url: &str| proto::Provider {
            id: "p".into(),
            kind: kind as i32,
            base_url: base_url.into(),
            ..Default::default()
        };
        let err =
            provider_from_proto(provider(proto::ProviderKind::Unspecified, "ftp://x")).unwrap_err();
        assert_eq!(fields(err), ["provider.kind", "provider.base_url"]);
        for url in ["", "http://localhost:1", "https://api.example.com"] {
            let record = provider_from_proto(provider(proto::ProviderKind::Mock, url)).unwrap();
            assert_eq!(record.kind, ProviderKind::Mock);
            let back = provider_to_proto(record);
            assert_eq!(
                (back.kind, back.base_url.as_str()),
                (proto::ProviderKind::Mock as i32, url)
            );
        }
    }

    #[test]
    fn model_defaults_limits_and_requires_a_pathway() {
        let mut model = proto::Model {
            id: "m".into(),
            pathway: proto::Pathway::Image as i32,
            is_default: true,
            ..Default::default()
        };
        let record = model_from_proto(model.clone()).unwrap();
        assert_eq!(record.pathway, Pathway::Image);
        assert_eq!(record.max_output_tokens, DEFAULT_MAX_OUTPUT_TOKENS);
        assert_eq!(record.max_input_tokens, DEFAULT_MAX_INPUT_TOKENS);
        let listed = model_to_proto(record, &Catalog::default());
        assert!(
            !listed.is_default,
            "is_default comes from the catalog, not the input"
        );
        assert_eq!(listed.pathway, proto::Pathway::Image as i32);

        model.max_output_tokens = 7;
        assert_eq!(
            model_from_proto(model.clone()).unwrap().max_output_tokens,
            7
        );
        model.pathway = proto::Pathway::Unspecified as i32;
        assert_eq!(
            fields(model_from_proto(model).unwrap_err()),
            ["model.pathway"]
        );
    }

    #[test]
    fn usage_filter_drops_empty_fields_and_orders_times() {
        assert_eq!(usage_filter(None).unwrap(), UsageFilter::default());
        let filter = proto::UsageFilter {
            user_id: "u".into(),
            start_time: ts(1),
            end_time: ts(2),
            ..Default::default()
        };
        let converted = usage_filter(Some(filter.clone())).unwrap();
        assert_eq!(converted.studio_id, None);
        assert_eq!(converted.user_id.as_deref(), Some("u"));
        assert_eq!(
            (converted.start_ms, converted.end_ms),
            (Some(1000), Some(2000))
        );
        for (start, end) in [(2, 2), (3, 2)] {
            let bad = proto::UsageFilter {
                start_time: ts(start),
                end_time: ts(end),
                ..filter.clone()
            };
            assert_eq!(
                fields(usage_filter(Some(bad)).unwrap_err()),
                ["filter.end_time"]
            );
        }
    }

    #[test]
    fn group_by_rejects_unspecified_and_unknown_dimensions() {
        let all = [1, 2, 3, 4, 5, 6];
        let expected = GroupBy {
            studio: true,
            user: true,
            model: true,
            day: true,
            hour: true,
            month: true,
        };
        assert_eq!(group_by(&all).unwrap(), expected);
        assert_eq!(group_by(&[]).unwrap(), GroupBy::default());
        assert_eq!(
            fields(group_by(&[3, 0, 42]).unwrap_err()),
            ["group_by[1]", "group_by[2]"]
        );
    }

    #[test]
    fn usage_record_keeps_latency_ttft_and_pathway() {
        let row = UsageRow {
            pathway: "text".into(),
            latency_us: 1_500_000,
            ttft_us: Some(250),
            ..Default::default()
        };
        let record = usage_record_to_proto(row.clone());
        assert_eq!(record.pathway, proto::Pathway::Text as i32);
        assert_eq!(record.latency, duration(1, 500_000_000));
        assert_eq!(record.time_to_first_token, duration(0, 250_000));
        let unary = usage_record_to_proto(UsageRow {
            ttft_us: None,
            ..row
        });
        assert_eq!(unary.time_to_first_token, None);
    }

    #[test]
    fn number_tokens_reject_other_lists_and_non_numbers() {
        let token = encode_page_token("usage", "42");
        assert_eq!(
            decode_number_token::<i64>("usage", &token).unwrap(),
            Some(42)
        );
        assert_eq!(decode_number_token::<i64>("usage", "").unwrap(), None);
        assert!(decode_number_token::<u64>("aggregate", &token).is_err());
        let junk = encode_page_token("aggregate", "-1");
        assert_eq!(
            fields(decode_number_token::<u64>("aggregate", &junk).unwrap_err()),
            ["page_token"]
        );
    }
}

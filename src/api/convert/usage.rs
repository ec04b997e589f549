//! Usage: the filter and grouping of a query, and its rows as shown.

use super::{duration_us, millis, pathway_to_proto, timestamp};
use crate::domain::{GroupBy, Pathway, UsageAggregateRow, UsageFilter, UsageRow};
use crate::error::{Error, Result, Violations};
use crate::proto;

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// A usage filter: empty fields match everything; start before end.
impl TryFrom<proto::UsageFilter> for UsageFilter {
    type Error = Error;

    fn try_from(filter: proto::UsageFilter) -> Result<Self> {
        let proto::UsageFilter {
            studio_id,
            user_id,
            model_id,
            start_time,
            end_time,
        } = filter;
        let start_ms = start_time.as_ref().map(millis);
        let end_ms = end_time.as_ref().map(millis);
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
            studio_id: non_empty(studio_id),
            user_id: non_empty(user_id),
            model_id: non_empty(model_id),
            start_ms,
            end_ms,
        })
    }
}

/// A request's usage filter; unset matches everything.
pub(crate) fn usage_filter(filter: Option<proto::UsageFilter>) -> Result<UsageFilter> {
    filter.unwrap_or_default().try_into()
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

impl From<UsageRow> for proto::UsageRecord {
    fn from(row: UsageRow) -> Self {
        let UsageRow {
            request_id,
            studio_id,
            user_id,
            model_id,
            provider_id,
            pathway,
            input_tokens,
            output_tokens,
            images,
            cost_micros,
            status_code,
            error_reason,
            latency_us,
            ttft_us,
            create_ms,
            metadata,
        } = row;
        let pathway =
            Pathway::parse(&pathway).map_or(proto::Pathway::Unspecified, pathway_to_proto);
        proto::UsageRecord {
            request_id,
            studio_id,
            user_id,
            model_id,
            provider_id,
            pathway: pathway as i32,
            input_tokens,
            output_tokens,
            images,
            cost_micros,
            status_code,
            error_reason,
            latency: Some(duration_us(latency_us)),
            time_to_first_token: ttft_us.map(duration_us),
            create_time: Some(timestamp(create_ms)),
            metadata: metadata.into_iter().collect(),
        }
    }
}

impl From<UsageAggregateRow> for proto::UsageAggregate {
    fn from(row: UsageAggregateRow) -> Self {
        let UsageAggregateRow {
            studio_id,
            user_id,
            model_id,
            day,
            hour,
            month,
            calls,
            failed_calls,
            input_tokens,
            output_tokens,
            images,
            cost_micros,
        } = row;
        proto::UsageAggregate {
            studio_id,
            user_id,
            model_id,
            day,
            hour,
            month,
            calls,
            failed_calls,
            input_tokens,
            output_tokens,
            images,
            cost_micros,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{duration, fields, ts};
    use super::*;

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
        let record = proto::UsageRecord::from(row.clone());
        assert_eq!(record.pathway, proto::Pathway::Text as i32);
        assert_eq!(record.latency, duration(1, 500_000_000));
        assert_eq!(record.time_to_first_token, duration(0, 250_000));
        let unary = proto::UsageRecord::from(UsageRow {
            ttft_us: None,
            ..row
        });
        assert_eq!(unary.time_to_first_token, None);
    }
}

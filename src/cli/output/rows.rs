//! Each shown message as a table row: its fields in proto order, and what
//! an unset field shows.

use downcity::proto::{
    Hook, HookDelivery, HookDeliveryState, HookEvent, HookFailurePolicy, LimitStanding, Limits,
    Model, Pathway, Provider, ProviderKind, Studio, StudioKey, StudioStatus, UsageAggregate,
    UsageRecord, UserToken,
};

use super::table::{Field, Render};

impl Render for Studio {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("display_name", &self.display_name),
            Field::enumeration::<StudioStatus>("status", self.status),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("update_time", self.update_time.as_ref()),
            Field::list("allowed_model_ids", &self.allowed_model_ids).or("all"),
            Field::list("allowed_origins", &self.allowed_origins).or("City-wide only"),
        ]
    }
}

impl Render for StudioKey {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("studio_id", &self.studio_id),
            Field::text("display_name", &self.display_name),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("revoke_time", self.revoke_time.as_ref()),
        ]
    }
}

impl Render for UserToken {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("studio_id", &self.studio_id),
            Field::text("user_id", &self.user_id),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("expire_time", self.expire_time.as_ref()).or("never"),
            Field::time("revoke_time", self.revoke_time.as_ref()),
        ]
    }
}

impl Render for Provider {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::enumeration::<ProviderKind>("kind", self.kind),
            Field::text("base_url", &self.base_url),
            Field::text("api_key_hint", &self.api_key_hint),
            Field::time("api_key_update_time", self.api_key_update_time.as_ref()),
            Field::map("headers", &self.headers),
            Field::duration("connect_timeout", self.connect_timeout.as_ref()),
            Field::duration("first_byte_timeout", self.first_byte_timeout.as_ref()),
            Field::duration("total_timeout", self.total_timeout.as_ref()),
            Field::time("update_time", self.update_time.as_ref()),
        ]
    }
}

impl Render for Model {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("display_name", &self.display_name),
            Field::text("provider_id", &self.provider_id),
            Field::text("upstream_model", &self.upstream_model),
            Field::enumeration::<Pathway>("pathway", self.pathway),
            Field::flag("enabled", self.enabled.unwrap_or(true)),
            Field::flag("is_default", self.is_default),
            Field::number("max_output_tokens", self.max_output_tokens),
            Field::number("max_input_tokens", self.max_input_tokens),
            Field::number("input_micros_per_mtok", self.input_micros_per_mtok),
            Field::number("output_micros_per_mtok", self.output_micros_per_mtok),
            Field::number("micros_per_image", self.micros_per_image),
            Field::list("fallback_model_ids", &self.fallback_model_ids),
            Field::map("options", &self.options),
            Field::time("update_time", self.update_time.as_ref()),
        ]
    }
}

impl Render for UsageRecord {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("request_id", &self.request_id),
            Field::text("studio_id", &self.studio_id),
            Field::text("user_id", &self.user_id),
            Field::text("model_id", &self.model_id),
            Field::text("provider_id", &self.provider_id),
            Field::enumeration::<Pathway>("pathway", self.pathway),
            Field::number("input_tokens", self.input_tokens),
            Field::number("output_tokens", self.output_tokens),
            Field::number("images", self.images),
            Field::number("cost_micros", self.cost_micros),
            Field::code("status_code", self.status_code),
            Field::text("error_reason", &self.error_reason),
            Field::duration("latency", self.latency.as_ref()),
            Field::duration("time_to_first_token", self.time_to_first_token.as_ref()),
            Field::time("create_time", self.create_time.as_ref()),
            Field::map("metadata", &self.metadata),
        ]
    }
}

impl Render for UsageAggregate {
    // Only the grouped dimensions are filled in.
    const SPARSE: bool = true;

    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("studio_id", &self.studio_id),
            Field::text("user_id", &self.user_id),
            Field::text("model_id", &self.model_id),
            Field::text("day", &self.day),
            Field::text("hour", &self.hour),
            Field::text("month", &self.month),
            Field::number("calls", self.calls),
            Field::number("failed_calls", self.failed_calls),
            Field::number("input_tokens", self.input_tokens),
            Field::number("output_tokens", self.output_tokens),
            Field::number("images", self.images),
            Field::number("cost_micros", self.cost_micros),
        ]
    }
}

impl Render for Limits {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::optional("requests_per_minute", self.requests_per_minute).or("none"),
            Field::optional("tokens_per_minute", self.tokens_per_minute).or("none"),
            Field::optional("tokens_per_day", self.tokens_per_day).or("none"),
            Field::optional("cost_micros_per_day", self.cost_micros_per_day).or("none"),
            Field::optional("cost_micros_per_month", self.cost_micros_per_month).or("none"),
        ]
    }
}

impl Render for LimitStanding {
    // Shown in the order people read them: the window before the numbers.
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("scope", &self.scope),
            Field::text("limit", &self.limit),
            Field::text("window", &self.window),
            Field::number("value", self.value),
            Field::number("used", self.used),
            Field::number("reserved", self.reserved),
            Field::number("remaining", self.remaining),
            Field::time("reset_time", self.reset_time.as_ref()),
        ]
    }
}

impl Render for Hook {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("studio_id", &self.studio_id).or(CITY_WIDE),
            Field::text("url", &self.url),
            Field::enumerations::<HookEvent>("events", &self.events),
            Field::duration("timeout", self.timeout.as_ref()),
            Field::enumeration::<HookFailurePolicy>("failure_policy", self.failure_policy),
            Field::flag("include_prompt", self.include_prompt),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("update_time", self.update_time.as_ref()),
        ]
    }
}

impl Render for HookDelivery {
    fn fields(&self) -> Vec<Field> {
        vec![
            Field::text("id", &self.id),
            Field::text("hook_id", &self.hook_id),
            Field::text("studio_id", &self.studio_id).or(CITY_WIDE),
            Field::text("request_id", &self.request_id),
            Field::enumeration::<HookDeliveryState>("state", self.state),
            Field::number("attempts", self.attempts),
            Field::time("next_attempt_time", self.next_attempt_time.as_ref()),
            Field::text("last_error", &self.last_error),
            Field::time("create_time", self.create_time.as_ref()),
            Field::time("deliver_time", self.deliver_time.as_ref()),
        ]
    }
}

/// How the table shows the empty studio id of a City-wide hook.
const CITY_WIDE: &str = "(city-wide)";

#[cfg(test)]
mod tests {
    use pbjson_types::{Duration, Timestamp};
    use serde_json::{Value, json};
    use tonic::Code;

    use super::*;
    use crate::cli::output::table::{cells, columns};

    /// The JSON the same message prints with `--json`.
    fn to_json<T: serde::Serialize + prost::Name>(item: &T) -> Value {
        crate::cli::output::json::to_json(item).unwrap()
    }

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    /// The columns of `T`, and the fields of its proto message.
    fn columns_and_fields<T: Render + prost::Name>() -> (Vec<String>, Vec<String>) {
        let mut columns: Vec<_> = columns::<T>().iter().map(|c| c.to_lowercase()).collect();
        let descriptor = crate::cli::output::json::descriptor::<T>().unwrap();
        let mut fields: Vec<_> = descriptor
            .field
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        columns.sort();
        fields.sort();
        (columns, fields)
    }

    /// A field added to a .proto fails here until its table shows it.
    #[test]
    fn every_field_has_a_column() {
        macro_rules! assert_every_field {
            ($($message:ty),*) => {$(
                let (columns, fields) = columns_and_fields::<$message>();
                assert_eq!(columns, fields, "{}", stringify!($message));
            )*};
        }
        assert_every_field!(
            Studio,
            StudioKey,
            UserToken,
            Provider,
            Model,
            UsageRecord,
            UsageAggregate,
            Limits,
            LimitStanding,
            Hook,
            HookDelivery
        );
    }

    #[test]
    fn columns_are_the_proto_field_names() {
        assert_eq!(
            columns::<Studio>(),
            [
                "ID",
                "DISPLAY_NAME",
                "STATUS",
                "CREATE_TIME",
                "UPDATE_TIME",
                "ALLOWED_MODEL_IDS",
                "ALLOWED_ORIGINS"
            ]
        );
        let token = UserToken::default();
        assert_eq!(cells(&token)[4], "never");
        assert_eq!(to_json(&token)["expire_time"], Value::Null);
    }

    #[test]
    fn usage_records_show_status_names_and_keep_codes_in_json() {
        let record = UsageRecord {
            status_code: Code::NotFound as i32,
            error_reason: "MODEL_NOT_FOUND".into(),
            latency: Some(Duration {
                seconds: 0,
                nanos: 12_000_000,
            }),
            ..Default::default()
        };
        let row = cells(&record);
        assert!(row.contains(&"NOT_FOUND".to_owned()), "{row:?}");
        assert!(row.contains(&"12ms".to_owned()), "{row:?}");
        let value = to_json(&record);
        assert_eq!(value["status_code"], json!(5));
        assert_eq!(value["error_reason"], json!("MODEL_NOT_FOUND"));
        assert_eq!(value["latency"], json!("0.012s"));
        assert_eq!(value["time_to_first_token"], Value::Null);
        assert_eq!(
            value.as_object().unwrap().len(),
            columns::<UsageRecord>().len()
        );
    }

    #[test]
    fn studios_show_their_allowed_models_or_all() {
        let open = Studio::default();
        assert_eq!(cells(&open)[5], "all");
        assert_eq!(to_json(&open)["allowed_model_ids"], json!([]));
        let narrow = Studio {
            allowed_model_ids: vec!["fast".into(), "slow".into()],
            ..Default::default()
        };
        assert_eq!(cells(&narrow)[5], "fast, slow");
        assert_eq!(
            to_json(&narrow)["allowed_model_ids"],
            json!(["fast", "slow"])
        );
    }

    #[test]
    fn unset_limits_show_none_and_null() {
        let limits = Limits {
            tokens_per_day: Some(50_000),
            cost_micros_per_month: Some(0),
            ..Default::default()
        };
        assert_eq!(cells(&limits), ["none", "none", "50000", "none", "0"]);
        let value = to_json(&limits);
        assert_eq!(value["tokens_per_day"], json!(50_000));
        assert_eq!(value["cost_micros_per_month"], json!(0));
        assert_eq!(value["requests_per_minute"], Value::Null);
    }

    #[test]
    fn standing_rows_put_the_window_before_the_numbers() {
        assert_eq!(
            columns::<LimitStanding>(),
            [
                "SCOPE",
                "LIMIT",
                "WINDOW",
                "VALUE",
                "USED",
                "RESERVED",
                "REMAINING",
                "RESET_TIME"
            ]
        );
        let standing = LimitStanding {
            scope: "user".into(),
            limit: "tokens_per_day".into(),
            value: 100,
            window: "day".into(),
            used: 30,
            reserved: 20,
            remaining: 50,
            reset_time: Some(ts(1_738_368_000, 0)),
        };
        assert_eq!(
            cells(&standing),
            [
                "user",
                "tokens_per_day",
                "day",
                "100",
                "30",
                "20",
                "50",
                "2025-02-01T00:00:00Z"
            ]
        );
    }

    #[test]
    fn hooks_show_their_events_and_city_wide_owner() {
        let hook = Hook {
            id: "hk_1".into(),
            url: "http://h/x".into(),
            events: vec![HookEvent::BeforeCall as i32, HookEvent::AfterCall as i32],
            timeout: Some(Duration {
                seconds: 0,
                nanos: 500_000_000,
            }),
            failure_policy: HookFailurePolicy::FailClosed as i32,
            ..Default::default()
        };
        let row = cells(&hook);
        assert_eq!(
            row[..6],
            [
                "hk_1",
                "(city-wide)",
                "http://h/x",
                "BEFORE_CALL, AFTER_CALL",
                "500ms",
                "FAIL_CLOSED"
            ]
        );
        let value = to_json(&hook);
        assert_eq!(value["studio_id"], json!(""));
        assert_eq!(
            value["events"],
            json!(["HOOK_EVENT_BEFORE_CALL", "HOOK_EVENT_AFTER_CALL"])
        );
        assert_eq!(value["timeout"], json!("0.500s"));
        assert_eq!(
            value["failure_policy"],
            json!("HOOK_FAILURE_POLICY_FAIL_CLOSED")
        );
        assert_eq!(value["include_prompt"], json!(false));
    }

    #[test]
    fn deliveries_show_state_attempts_and_the_last_error() {
        let delivery = HookDelivery {
            id: "msg_1".into(),
            hook_id: "hk_1".into(),
            studio_id: "acme".into(),
            state: HookDeliveryState::Pending as i32,
            attempts: 2,
            last_error: "HTTP 500".into(),
            next_attempt_time: Some(ts(1_738_281_600, 0)),
            ..Default::default()
        };
        assert_eq!(
            columns::<HookDelivery>(),
            [
                "ID",
                "HOOK_ID",
                "STUDIO_ID",
                "REQUEST_ID",
                "STATE",
                "ATTEMPTS",
                "NEXT_ATTEMPT_TIME",
                "LAST_ERROR",
                "CREATE_TIME",
                "DELIVER_TIME"
            ]
        );
        let row = cells(&delivery);
        assert_eq!(
            row[4..8],
            ["PENDING", "2", "2025-01-31T00:00:00Z", "HTTP 500"]
        );
        let value = to_json(&delivery);
        assert_eq!(value["state"], json!("HOOK_DELIVERY_STATE_PENDING"));
        assert_eq!(value["attempts"], json!(2));
        assert_eq!(value["deliver_time"], Value::Null);
    }
}

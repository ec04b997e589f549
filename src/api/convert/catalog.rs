//! Providers and models: the validated records of UpsertProvider and
//! UpsertModel, and the records as listed.

use super::{duration_us, pathway_from_proto, pathway_to_proto, timestamp};
use crate::catalog::{Catalog, KeyChange};
use crate::domain::{
    DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_OUTPUT_TOKENS, ModelRecord, ProviderKind, ProviderRecord,
    ProviderTimeouts,
};
use crate::error::{Error, Result, Violations};
use crate::proto;

fn provider_kind(value: i32) -> Option<ProviderKind> {
    match proto::ProviderKind::try_from(value) {
        Ok(proto::ProviderKind::Mock) => Some(ProviderKind::Mock),
        Ok(proto::ProviderKind::Openai) => Some(ProviderKind::OpenAi),
        Ok(proto::ProviderKind::OpenaiCompatible) => Some(ProviderKind::OpenAiCompatible),
        Ok(proto::ProviderKind::Anthropic) => Some(ProviderKind::Anthropic),
        Ok(proto::ProviderKind::Gemini) => Some(ProviderKind::Gemini),
        Ok(proto::ProviderKind::Unspecified) | Err(_) => None,
    }
}

impl From<ProviderKind> for proto::ProviderKind {
    fn from(kind: ProviderKind) -> Self {
        match kind {
            ProviderKind::Mock => proto::ProviderKind::Mock,
            ProviderKind::OpenAi => proto::ProviderKind::Openai,
            ProviderKind::OpenAiCompatible => proto::ProviderKind::OpenaiCompatible,
            ProviderKind::Anthropic => proto::ProviderKind::Anthropic,
            ProviderKind::Gemini => proto::ProviderKind::Gemini,
        }
    }
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
impl TryFrom<proto::Provider> for ProviderRecord {
    type Error = Error;

    fn try_from(provider: proto::Provider) -> Result<Self> {
        let proto::Provider {
            id,
            kind,
            base_url,
            headers,
            connect_timeout,
            first_byte_timeout,
            total_timeout,
            update_time: _,
            api_key_hint: _,
            api_key_update_time: _,
        } = provider;
        let mut v = Violations::default();
        let kind = provider_kind(kind);
        v.check(
            kind.is_some(),
            "provider.kind",
            "must be a PROVIDER_KIND_ value other than UNSPECIFIED",
        );
        let timeouts = ProviderTimeouts {
            connect_ms: provider_timeout(&mut v, "provider.connect_timeout", connect_timeout),
            first_byte_ms: provider_timeout(
                &mut v,
                "provider.first_byte_timeout",
                first_byte_timeout,
            ),
            total_ms: provider_timeout(&mut v, "provider.total_timeout", total_timeout),
        };
        let record = ProviderRecord {
            id,
            // A placeholder when unset: the violation above already names it.
            kind: kind.unwrap_or(ProviderKind::Mock),
            base_url,
            update_ms: 0,
            headers: headers.into_iter().collect(),
            timeouts,
            api_key: None,
            api_key_update_ms: None,
        };
        // The record's own rules, so one answer names every invalid field.
        v.absorb(record.validate());
        v.finish(record)
    }
}

/// What an UpsertProvider's `api_key` asks: unset keeps, empty clears.
pub(crate) fn api_key_change(api_key: Option<String>) -> Result<KeyChange> {
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
impl From<ProviderRecord> for proto::Provider {
    fn from(provider: ProviderRecord) -> Self {
        let ProviderRecord {
            id,
            kind,
            base_url,
            update_ms,
            headers,
            timeouts:
                ProviderTimeouts {
                    connect_ms,
                    first_byte_ms,
                    total_ms,
                },
            api_key,
            api_key_update_ms,
        } = provider;
        proto::Provider {
            id,
            kind: proto::ProviderKind::from(kind) as i32,
            base_url,
            update_time: Some(timestamp(update_ms)),
            api_key_hint: api_key.map(|k| k.hint).unwrap_or_default(),
            api_key_update_time: api_key_update_ms.map(timestamp),
            headers: headers.into_iter().collect(),
            connect_timeout: ms_duration(connect_ms),
            first_byte_timeout: ms_duration(first_byte_ms),
            total_timeout: ms_duration(total_ms),
        }
    }
}

/// The model of an UpsertModel; `is_default` and `update_time` are ignored,
/// zero token limits take the defaults.
impl TryFrom<proto::Model> for ModelRecord {
    type Error = Error;

    fn try_from(model: proto::Model) -> Result<Self> {
        let proto::Model {
            id,
            display_name,
            provider_id,
            upstream_model,
            pathway,
            enabled,
            max_output_tokens,
            max_input_tokens,
            input_micros_per_mtok,
            output_micros_per_mtok,
            micros_per_image,
            fallback_model_ids,
            options,
            is_default: _,
            update_time: _,
        } = model;
        let or_default = |value: i32, default: i32| if value == 0 { default } else { value };
        Ok(ModelRecord {
            pathway: pathway_from_proto("model.pathway", pathway)?,
            id,
            display_name,
            provider_id,
            upstream_model,
            // Unset means enabled: a first model made with grpcurl just works.
            enabled: enabled.unwrap_or(true),
            max_output_tokens: or_default(max_output_tokens, DEFAULT_MAX_OUTPUT_TOKENS),
            max_input_tokens: or_default(max_input_tokens, DEFAULT_MAX_INPUT_TOKENS),
            input_micros_per_mtok,
            output_micros_per_mtok,
            micros_per_image,
            fallback_model_ids,
            options: options.into_iter().collect(),
            update_ms: 0,
        })
    }
}

/// A model as listed; `is_default` comes from the live catalog.
pub(crate) fn model_to_proto(model: ModelRecord, catalog: &Catalog) -> proto::Model {
    let is_default = catalog.is_default(&model.id);
    let ModelRecord {
        id,
        display_name,
        provider_id,
        upstream_model,
        pathway,
        enabled,
        max_output_tokens,
        max_input_tokens,
        input_micros_per_mtok,
        output_micros_per_mtok,
        micros_per_image,
        fallback_model_ids,
        options,
        update_ms,
    } = model;
    proto::Model {
        is_default,
        pathway: pathway_to_proto(pathway) as i32,
        id,
        display_name,
        provider_id,
        upstream_model,
        enabled: Some(enabled),
        max_output_tokens,
        max_input_tokens,
        input_micros_per_mtok,
        output_micros_per_mtok,
        micros_per_image,
        fallback_model_ids,
        options: options.into_iter().collect(),
        update_time: Some(timestamp(update_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fields;
    use super::*;
    use crate::domain::Pathway;

    #[test]
    fn provider_kind_and_base_url_are_checked_together() {
        let provider = |kind: proto::ProviderKind, base_url: &str| proto::Provider {
            id: "p".into(),
            kind: kind as i32,
            base_url: base_url.into(),
            ..Default::default()
        };
        let err = ProviderRecord::try_from(provider(proto::ProviderKind::Unspecified, "ftp://x"))
            .unwrap_err();
        assert_eq!(fields(err), ["provider.kind", "provider.base_url"]);
        for url in ["", "http://localhost:1", "https://api.example.com"] {
            let record =
                ProviderRecord::try_from(provider(proto::ProviderKind::Mock, url)).unwrap();
            assert_eq!(record.kind, ProviderKind::Mock);
            let back = proto::Provider::from(record);
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
        let record = ModelRecord::try_from(model.clone()).unwrap();
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
            ModelRecord::try_from(model.clone())
                .unwrap()
                .max_output_tokens,
            7
        );
        model.pathway = proto::Pathway::Unspecified as i32;
        assert_eq!(
            fields(ModelRecord::try_from(model).unwrap_err()),
            ["model.pathway"]
        );
    }
}

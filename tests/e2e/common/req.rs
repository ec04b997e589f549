//! Builders for the AdminService requests the tests send again and again,
//! so a call reads as what it asks (`admin.get_studio(req::get_studio("acme"))`).

use downcity::proto::{self, Pathway, ProviderKind, StudioStatus};

pub fn create_studio(studio_id: &str, display_name: &str) -> proto::CreateStudioRequest {
    proto::CreateStudioRequest {
        studio_id: studio_id.into(),
        display_name: display_name.into(),
    }
}

pub fn get_studio(studio_id: impl Into<String>) -> proto::GetStudioRequest {
    proto::GetStudioRequest {
        studio_id: studio_id.into(),
    }
}

/// Sets the name if `Some`; `StudioStatus::Unspecified` leaves the status.
pub fn update_studio(
    studio_id: &str,
    display_name: Option<&str>,
    status: StudioStatus,
) -> proto::UpdateStudioRequest {
    proto::UpdateStudioRequest {
        studio_id: studio_id.into(),
        display_name: display_name.map(str::to_string),
        status: status as i32,
        allowed_models: None,
        allowed_origins: None,
    }
}

pub fn list_studios(page_size: i32, page_token: impl Into<String>) -> proto::ListStudiosRequest {
    proto::ListStudiosRequest {
        page_size,
        page_token: page_token.into(),
    }
}

pub fn list_catalog_models(
    page_size: i32,
    page_token: impl Into<String>,
) -> proto::ListCatalogModelsRequest {
    proto::ListCatalogModelsRequest {
        page_size,
        page_token: page_token.into(),
    }
}

pub fn create_studio_key(studio_id: &str, display_name: &str) -> proto::CreateStudioKeyRequest {
    proto::CreateStudioKeyRequest {
        studio_id: studio_id.into(),
        display_name: display_name.into(),
    }
}

pub fn list_studio_keys(studio_id: &str) -> proto::ListStudioKeysRequest {
    proto::ListStudioKeysRequest {
        studio_id: studio_id.into(),
        ..Default::default()
    }
}

pub fn revoke_studio_key(
    studio_id: &str,
    key_id: impl Into<String>,
) -> proto::RevokeStudioKeyRequest {
    proto::RevokeStudioKeyRequest {
        studio_id: studio_id.into(),
        key_id: key_id.into(),
    }
}

/// A token for `user_id` that expires after `ttl_seconds` (never if `None`).
pub fn issue_user_token(
    studio_id: &str,
    user_id: &str,
    ttl_seconds: Option<i64>,
) -> proto::IssueUserTokenRequest {
    proto::IssueUserTokenRequest {
        studio_id: studio_id.into(),
        user_id: user_id.into(),
        ttl: ttl_seconds.map(|seconds| pbjson_types::Duration { seconds, nanos: 0 }),
    }
}

/// Every user's tokens in a studio.
pub fn list_user_tokens(studio_id: &str) -> proto::ListUserTokensRequest {
    proto::ListUserTokensRequest {
        studio_id: studio_id.into(),
        ..Default::default()
    }
}

/// One user's tokens in a studio.
pub fn list_tokens_of(studio_id: &str, user_id: &str) -> proto::ListUserTokensRequest {
    proto::ListUserTokensRequest {
        user_id: user_id.into(),
        ..list_user_tokens(studio_id)
    }
}

pub fn revoke_user_token(
    studio_id: &str,
    token_id: impl Into<String>,
) -> proto::RevokeUserTokenRequest {
    proto::RevokeUserTokenRequest {
        studio_id: studio_id.into(),
        token_id: token_id.into(),
    }
}

/// The usage records of one studio (first page).
pub fn usage_of(studio_id: &str) -> proto::ListUsageRecordsRequest {
    proto::ListUsageRecordsRequest {
        filter: Some(proto::UsageFilter {
            studio_id: studio_id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Upserts a provider with only an id and a kind; `api_key` as given.
pub fn upsert_provider(
    id: &str,
    kind: ProviderKind,
    api_key: Option<&str>,
) -> proto::UpsertProviderRequest {
    proto::UpsertProviderRequest {
        provider: Some(proto::Provider {
            id: id.into(),
            kind: kind as i32,
            ..Default::default()
        }),
        api_key: api_key.map(str::to_string),
    }
}

pub fn upsert_model(model: proto::Model) -> proto::UpsertModelRequest {
    proto::UpsertModelRequest { model: Some(model) }
}

pub fn set_default_model(pathway: Pathway, model_id: &str) -> proto::SetDefaultModelRequest {
    proto::SetDefaultModelRequest {
        pathway: pathway as i32,
        model_id: model_id.into(),
    }
}

pub fn delete_model(model_id: &str) -> proto::DeleteModelRequest {
    proto::DeleteModelRequest {
        model_id: model_id.into(),
    }
}

pub fn delete_provider(provider_id: &str) -> proto::DeleteProviderRequest {
    proto::DeleteProviderRequest {
        provider_id: provider_id.into(),
    }
}

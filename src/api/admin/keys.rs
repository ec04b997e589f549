//! Credentials: a studio's keys and its users' tokens.

use super::{AdminApi, IdPage};
use crate::api::convert::ttl;
use crate::error::Result;
use crate::proto;

pub(super) async fn create_studio_key(
    api: &AdminApi,
    r: proto::CreateStudioKeyRequest,
) -> Result<proto::CreateStudioKeyResponse> {
    let (key, secret) = api
        .directory
        .create_studio_key(&r.studio_id, r.display_name)
        .await?;
    Ok(proto::CreateStudioKeyResponse {
        key: Some(proto::StudioKey::from(key)),
        secret,
    })
}

pub(super) async fn list_studio_keys(
    api: &AdminApi,
    r: proto::ListStudioKeysRequest,
) -> Result<proto::ListStudioKeysResponse> {
    let page = IdPage::new(format!("keys:{}", r.studio_id), r.page_size, &r.page_token)?;
    let rows = api
        .directory
        .list_studio_keys(&r.studio_id, &page.query)
        .await?;
    let (keys, next_page_token) = page.finish(rows, |k| &k.id, proto::StudioKey::from);
    Ok(proto::ListStudioKeysResponse {
        keys,
        next_page_token,
    })
}

pub(super) async fn revoke_studio_key(
    api: &AdminApi,
    r: proto::RevokeStudioKeyRequest,
) -> Result<proto::RevokeStudioKeyResponse> {
    let key = api
        .directory
        .revoke_studio_key(&r.studio_id, &r.key_id)
        .await?;
    Ok(proto::RevokeStudioKeyResponse {
        key: Some(proto::StudioKey::from(key)),
    })
}

pub(super) async fn issue_user_token(
    api: &AdminApi,
    r: proto::IssueUserTokenRequest,
) -> Result<proto::IssueUserTokenResponse> {
    let ttl = ttl(r.ttl)?;
    let (token, secret) = api
        .directory
        .issue_user_token(&r.studio_id, r.user_id, ttl)
        .await?;
    Ok(proto::IssueUserTokenResponse {
        token: Some(proto::UserToken::from(token)),
        secret,
    })
}

pub(super) async fn list_user_tokens(
    api: &AdminApi,
    r: proto::ListUserTokensRequest,
) -> Result<proto::ListUserTokensResponse> {
    let (studio, user) = (r.studio_id.as_str(), r.user_id.as_str());
    let page = IdPage::new(
        format!("tokens:{studio}:{user}"),
        r.page_size,
        &r.page_token,
    )?;
    let user_filter = (!user.is_empty()).then_some(user);
    let rows = api
        .directory
        .list_user_tokens(studio, user_filter, &page.query)
        .await?;
    let (tokens, next_page_token) = page.finish(rows, |t| &t.id, proto::UserToken::from);
    Ok(proto::ListUserTokensResponse {
        tokens,
        next_page_token,
    })
}

pub(super) async fn revoke_user_token(
    api: &AdminApi,
    r: proto::RevokeUserTokenRequest,
) -> Result<proto::RevokeUserTokenResponse> {
    let token = api
        .directory
        .revoke_user_token(&r.studio_id, &r.token_id)
        .await?;
    Ok(proto::RevokeUserTokenResponse {
        token: Some(proto::UserToken::from(token)),
    })
}

//! Which admin caller may call which method on which studio.

use crate::auth::AdminCaller;
use crate::error::{Error, Result};
use crate::proto;

/// The studio a request acts on, as the scope check sees it.
pub(super) enum Scope<'a> {
    /// An operator-only call.
    Operator,
    /// A studio-scoped call on this studio.
    Studio(&'a mut String),
    /// A usage call: for a studio key, empty (all studios) means its own.
    Usage(&'a mut String),
}

/// A request of an AdminService RPC: its name and the studio it acts on.
pub(super) trait AdminRequest {
    const METHOD: &'static str;
    fn scope(&mut self) -> Scope<'_> {
        Scope::Operator
    }
}

/// The authorization table: operator-only unless a scope is given.
macro_rules! admin_requests {
    ($($request:ident => $method:literal $(, |$r:ident| $scope:expr)?;)+) => {$(
        impl AdminRequest for proto::$request {
            const METHOD: &'static str = $method;
            $(fn scope(&mut self) -> Scope<'_> {
                let $r = self;
                $scope
            })?
        }
    )+};
}

admin_requests! {
    CreateStudioRequest => "CreateStudio";
    GetStudioRequest => "GetStudio", |r| Scope::Studio(&mut r.studio_id);
    ListStudiosRequest => "ListStudios";
    UpdateStudioRequest => "UpdateStudio";
    CreateStudioKeyRequest => "CreateStudioKey";
    ListStudioKeysRequest => "ListStudioKeys";
    RevokeStudioKeyRequest => "RevokeStudioKey";
    IssueUserTokenRequest => "IssueUserToken", |r| Scope::Studio(&mut r.studio_id);
    ListUserTokensRequest => "ListUserTokens", |r| Scope::Studio(&mut r.studio_id);
    RevokeUserTokenRequest => "RevokeUserToken", |r| Scope::Studio(&mut r.studio_id);
    UpsertProviderRequest => "UpsertProvider";
    ListProvidersRequest => "ListProviders";
    DeleteProviderRequest => "DeleteProvider";
    UpsertModelRequest => "UpsertModel";
    ListCatalogModelsRequest => "ListCatalogModels";
    DeleteModelRequest => "DeleteModel";
    SetDefaultModelRequest => "SetDefaultModel";
    ListUsageRecordsRequest => "ListUsageRecords",
        |r| Scope::Usage(&mut r.filter.get_or_insert_default().studio_id);
    AggregateUsageRequest => "AggregateUsage",
        |r| Scope::Usage(&mut r.filter.get_or_insert_default().studio_id);
    SetLimitsRequest => "SetLimits", |r| Scope::Studio(&mut r.studio_id);
    GetLimitsRequest => "GetLimits", |r| Scope::Studio(&mut r.studio_id);
    GetQuotaStandingRequest => "GetQuotaStanding", |r| Scope::Studio(&mut r.studio_id);
    UpsertHookRequest => "UpsertHook",
        |r| Scope::Studio(&mut r.hook.get_or_insert_default().studio_id);
    ListHooksRequest => "ListHooks", |r| Scope::Studio(&mut r.studio_id);
    DeleteHookRequest => "DeleteHook", |r| Scope::Studio(&mut r.studio_id);
    ListHookDeliveriesRequest => "ListHookDeliveries", |r| Scope::Studio(&mut r.studio_id);
    RedeliverHookRequest => "RedeliverHook", |r| Scope::Studio(&mut r.studio_id);
}

/// The scope check: the operator may do everything; a studio key only
/// studio-scoped calls on its own studio (usage calls default to it).
pub(super) fn authorize(
    caller: &AdminCaller,
    method: &'static str,
    scope: Scope<'_>,
) -> Result<()> {
    let AdminCaller::Studio(own) = caller else {
        return Ok(());
    };
    let studio = match scope {
        Scope::Operator => None,
        Scope::Studio(studio) => Some(studio),
        Scope::Usage(studio) => {
            if studio.is_empty() {
                studio.push_str(own);
            }
            Some(studio)
        }
    };
    match studio {
        Some(studio) if studio.as_str() == &**own => Ok(()),
        _ => Err(Error::PermissionDenied { method }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn studio(id: &str) -> AdminCaller {
        AdminCaller::Studio(id.into())
    }

    fn denied(result: Result<()>) -> Option<&'static str> {
        match result {
            Err(Error::PermissionDenied { method }) => Some(method),
            _ => None,
        }
    }

    #[test]
    fn operator_may_do_everything() {
        let mut r = proto::CreateStudioRequest::default();
        assert!(authorize(&AdminCaller::Operator, "CreateStudio", r.scope()).is_ok());
        let mut r = proto::GetStudioRequest {
            studio_id: "other".into(),
        };
        assert!(authorize(&AdminCaller::Operator, "GetStudio", r.scope()).is_ok());
        let mut r = proto::ListUsageRecordsRequest::default();
        assert!(authorize(&AdminCaller::Operator, "ListUsageRecords", r.scope()).is_ok());
        assert_eq!(
            r.filter.unwrap().studio_id,
            "",
            "the operator's filter is left alone"
        );
    }

    #[test]
    fn studio_key_is_confined_to_its_own_studio() {
        let caller = studio("acme");
        let mut own = proto::IssueUserTokenRequest {
            studio_id: "acme".into(),
            ..Default::default()
        };
        assert!(authorize(&caller, "IssueUserToken", own.scope()).is_ok());
        let mut other = proto::RevokeUserTokenRequest {
            studio_id: "globex".into(),
            ..Default::default()
        };
        assert_eq!(
            denied(authorize(&caller, "RevokeUserToken", other.scope())),
            Some("RevokeUserToken")
        );
        let mut empty = proto::GetStudioRequest::default();
        assert_eq!(
            denied(authorize(&caller, "GetStudio", empty.scope())),
            Some("GetStudio")
        );
        let mut operator_only = proto::CreateStudioKeyRequest {
            studio_id: "acme".into(),
            ..Default::default()
        };
        assert_eq!(
            denied(authorize(
                &caller,
                proto::CreateStudioKeyRequest::METHOD,
                operator_only.scope()
            )),
            Some("CreateStudioKey")
        );
    }

    #[test]
    fn studio_key_usage_defaults_to_its_own_studio() {
        let caller = studio("acme");
        let mut r = proto::AggregateUsageRequest::default();
        assert!(authorize(&caller, "AggregateUsage", r.scope()).is_ok());
        assert_eq!(r.filter.unwrap().studio_id, "acme");
        let mut other = proto::ListUsageRecordsRequest {
            filter: Some(proto::UsageFilter {
                studio_id: "globex".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(denied(authorize(&caller, "ListUsageRecords", other.scope())).is_some());
    }
}

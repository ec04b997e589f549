//! One error enum for the whole City and its one mapping to `tonic::Status`.
//!
//! Every status carries exactly one `google.rpc.ErrorInfo` (domain
//! `downcity`), plus `BadRequest` field violations for invalid input and
//! `RetryInfo` where a retry may succeed (AIP-193). Internal errors reach the
//! client as an opaque message with the request id; the detail is logged.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The ErrorInfo domain of every Downcity error.
pub const ERROR_DOMAIN: &str = "downcity";

/// Everything that can go wrong in City, as seen by a caller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing credentials: send `authorization: Bearer <token>`")]
    TokenMissing,
    #[error("the credential is malformed or unknown")]
    TokenInvalid,
    #[error("the user token has expired")]
    TokenExpired,
    #[error("the credential has been revoked")]
    TokenRevoked,
    #[error("the user token belongs to another studio than x-studio-id `{studio_id}`")]
    StudioMismatch { studio_id: String },
    #[error("studio `{studio_id}` is suspended")]
    StudioSuspended { studio_id: String },
    #[error("studio `{studio_id}` does not exist")]
    StudioNotFound { studio_id: String },
    #[error("missing `x-studio-id` metadata")]
    StudioIdMissing,
    #[error("City is shutting down; retry on another replica")]
    ShuttingDown,
    #[error("`{header}` was sent more than once; send exactly one")]
    AmbiguousCredentials { header: &'static str },
    #[error("this credential may not call {method}")]
    PermissionDenied { method: &'static str },
    /// A browser call from a web origin neither its studio nor City allows.
    #[error("calls from the web origin `{origin}` are not allowed for this studio")]
    OriginNotAllowed { origin: String },
    /// A studio key asked for a studio-wide limit above the operator's.
    #[error(
        "{limit} {value} is above the operator's limit {ceiling} on this studio: \
         a studio key may only tighten the operator's limits"
    )]
    LimitAboveCeiling {
        limit: &'static str,
        value: i64,
        ceiling: i64,
    },
    #[error("model `{model_id}` does not exist")]
    ModelNotFound { model_id: String },
    /// Reported like a missing model (studios see only callable models),
    /// but its message says what an operator needs to know.
    #[error("model `{model_id}` is disabled")]
    ModelDisabled { model_id: String },
    #[error("no default model is set for the {pathway} pathway")]
    NoDefaultModel { pathway: &'static str },
    #[error("{resource} `{id}` does not exist")]
    NotFound { resource: &'static str, id: String },
    #[error("{resource} `{id}` already exists")]
    AlreadyExists { resource: &'static str, id: String },
    /// A provider API key or hook secret to seal, and no master key.
    #[error(
        "City has no master key to encrypt {what} with: set DOWNCITY_MASTER_KEY or master_key_file"
    )]
    MasterKeyMissing { what: &'static str },
    #[error(
        "provider `{provider_id}` is still used by model `{model_id}`; delete or move its models first"
    )]
    ProviderInUse {
        provider_id: String,
        model_id: String,
    },
    #[error(
        "model `{model_id}` is the default of the {pathway} pathway; set another default first"
    )]
    ModelIsDefault { model_id: String, pathway: String },
    #[error("delivery `{delivery_id}` cannot be sent again: its hook `{hook_id}` was deleted")]
    HookDeleted {
        delivery_id: String,
        hook_id: String,
    },
    /// The store failed; the source is kept for the log, the caller sees an
    /// opaque INTERNAL.
    #[error("store: {0}")]
    Store(#[source] StoreError),
    #[error("invalid request: {}", describe_violations(.0))]
    InvalidArgument(Vec<Violation>),
    #[error("provider `{provider_id}` failed: {message}")]
    Provider {
        provider_id: String,
        kind: ProviderFailure,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error(
        "the {scope}'s {limit} limit ({value}) would be exceeded; it resets at the end of the {window}"
    )]
    QuotaExceeded {
        scope: &'static str,
        limit: &'static str,
        value: i64,
        window: &'static str,
        reset_ms: i64,
        now_ms: i64,
    },
    #[error("{message}")]
    HookDenied { hook_id: String, message: String },
    #[error("the studio's before_call hook failed: {message}")]
    HookUnavailable { hook_id: String, message: String },
    #[error("the request was cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
}

/// How an upstream call failed; each maps to its own code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderFailure {
    Unavailable,
    RateLimited,
    AuthFailed,
    BadResponse,
    Timeout,
    Rejected,
    /// The provider's kind cannot serve this pathway (Anthropic images).
    Unsupported,
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Collects the field violations of one request or record, so a caller
/// learns every problem at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn check(&mut self, ok: bool, field: impl Into<String>, description: impl Into<String>) {
        if !ok {
            self.0.push(Violation::new(field, description));
        }
    }

    /// As `check`, with a description built only when the check fails: for
    /// checks on the path of every call, where a `format!` up front would
    /// allocate for nothing.
    pub fn check_with(
        &mut self,
        ok: bool,
        field: impl Into<String>,
        describe: impl FnOnce() -> String,
    ) {
        if !ok {
            self.0.push(Violation::new(field, describe()));
        }
    }

    /// Adds the violations of a nested check (e.g. a record's own rules).
    pub fn absorb(&mut self, result: Result<()>) {
        match result {
            Err(Error::InvalidArgument(mut violations)) => self.0.append(&mut violations),
            Err(other) => self.0.push(Violation::new("", other.to_string())),
            Ok(()) => {}
        }
    }

    pub fn finish<T>(self, value: T) -> Result<T> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(Error::InvalidArgument(self.0))
        }
    }
}

fn describe_violations(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A single-field INVALID_ARGUMENT.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument(vec![Violation::new(field, description)])
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        Error::Internal(err.to_string())
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::TokenMissing
            | Error::TokenInvalid
            | Error::TokenExpired
            | Error::TokenRevoked => Code::Unauthenticated,
            Error::StudioMismatch { .. }
            | Error::StudioSuspended { .. }
            | Error::PermissionDenied { .. }
            | Error::OriginNotAllowed { .. }
            | Error::LimitAboveCeiling { .. } => Code::PermissionDenied,
            Error::StudioNotFound { .. } => Code::Unauthenticated,
            Error::StudioIdMissing | Error::AmbiguousCredentials { .. } => Code::Unauthenticated,
            Error::ShuttingDown => Code::Unavailable,
            Error::ModelNotFound { .. } | Error::ModelDisabled { .. } | Error::NotFound { .. } => {
                Code::NotFound
            }
            Error::NoDefaultModel { .. }
            | Error::MasterKeyMissing { .. }
            | Error::ProviderInUse { .. }
            | Error::ModelIsDefault { .. }
            | Error::HookDeleted { .. } => Code::FailedPrecondition,
            Error::AlreadyExists { .. } => Code::AlreadyExists,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Provider { kind, .. } => match kind {
                ProviderFailure::Unavailable => Code::Unavailable,
                ProviderFailure::RateLimited => Code::ResourceExhausted,
                ProviderFailure::AuthFailed | ProviderFailure::BadResponse => Code::Internal,
                ProviderFailure::Timeout => Code::DeadlineExceeded,
                ProviderFailure::Rejected => Code::InvalidArgument,
                ProviderFailure::Unsupported => Code::Unimplemented,
            },
            Error::QuotaExceeded { .. } => Code::ResourceExhausted,
            Error::HookDenied { .. } => Code::PermissionDenied,
            Error::HookUnavailable { .. } => Code::Unavailable,
            Error::Cancelled => Code::Cancelled,
            Error::Internal(_) | Error::Store(_) => Code::Internal,
        }
    }

    /// The UPPER_SNAKE ErrorInfo reason of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::TokenMissing => "TOKEN_MISSING",
            Error::TokenInvalid => "TOKEN_INVALID",
            Error::TokenExpired => "TOKEN_EXPIRED",
            Error::TokenRevoked => "TOKEN_REVOKED",
            Error::StudioMismatch { .. } => "STUDIO_MISMATCH",
            Error::StudioSuspended { .. } => "STUDIO_SUSPENDED",
            Error::StudioNotFound { .. } => "STUDIO_NOT_FOUND",
            Error::StudioIdMissing => "STUDIO_ID_MISSING",
            Error::AmbiguousCredentials { .. } => "AMBIGUOUS_CREDENTIALS",
            Error::ShuttingDown => "SHUTTING_DOWN",
            Error::PermissionDenied { .. } => "PERMISSION_DENIED",
            Error::OriginNotAllowed { .. } => "ORIGIN_NOT_ALLOWED",
            Error::LimitAboveCeiling { .. } => "LIMIT_ABOVE_CEILING",
            Error::ModelNotFound { .. } | Error::ModelDisabled { .. } => "MODEL_NOT_FOUND",
            Error::NoDefaultModel { .. } => "NO_DEFAULT_MODEL",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::MasterKeyMissing { .. } => "MASTER_KEY_MISSING",
            Error::ProviderInUse { .. } => "PROVIDER_IN_USE",
            Error::ModelIsDefault { .. } => "MODEL_IS_DEFAULT",
            Error::HookDeleted { .. } => "HOOK_DELETED",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::Provider { kind, .. } => match kind {
                ProviderFailure::Unavailable => "PROVIDER_UNAVAILABLE",
                ProviderFailure::RateLimited => "PROVIDER_RATE_LIMITED",
                ProviderFailure::AuthFailed => "PROVIDER_AUTH_FAILED",
                ProviderFailure::BadResponse => "PROVIDER_BAD_RESPONSE",
                ProviderFailure::Timeout => "PROVIDER_TIMEOUT",
                ProviderFailure::Rejected => "PROVIDER_REJECTED",
                ProviderFailure::Unsupported => "PATHWAY_UNSUPPORTED",
            },
            Error::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            Error::HookDenied { .. } => "HOOK_DENIED",
            Error::HookUnavailable { .. } => "HOOK_UNAVAILABLE",
            Error::Cancelled => "CANCELLED",
            Error::Internal(_) | Error::Store(_) => "INTERNAL",
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        let pair = |k: &str, v: &str| HashMap::from([(k.to_string(), v.to_string())]);
        match self {
            Error::StudioMismatch { studio_id }
            | Error::StudioSuspended { studio_id }
            | Error::StudioNotFound { studio_id } => pair("studio_id", studio_id),
            Error::PermissionDenied { method } => pair("method", method),
            Error::OriginNotAllowed { origin } => pair("origin", origin),
            Error::LimitAboveCeiling {
                limit,
                value,
                ceiling,
            } => HashMap::from([
                ("limit".to_string(), limit.to_string()),
                ("value".to_string(), value.to_string()),
                ("ceiling".to_string(), ceiling.to_string()),
            ]),
            Error::AmbiguousCredentials { header } => pair("header", header),
            Error::ModelNotFound { model_id } => pair("model", model_id),
            Error::ModelDisabled { model_id } => HashMap::from([
                ("model".to_string(), model_id.clone()),
                ("disabled".to_string(), "true".to_string()),
            ]),
            Error::NoDefaultModel { pathway } => pair("pathway", pathway),
            Error::NotFound { resource, id } | Error::AlreadyExists { resource, id } => {
                HashMap::from([
                    ("resource".to_string(), resource.to_string()),
                    ("id".to_string(), id.clone()),
                ])
            }
            Error::Provider { provider_id, .. } => pair("provider", provider_id),
            Error::HookDenied { hook_id, .. } | Error::HookUnavailable { hook_id, .. } => {
                pair("hook_id", hook_id)
            }
            Error::QuotaExceeded {
                scope,
                limit,
                value,
                window,
                reset_ms,
                ..
            } => HashMap::from([
                ("scope".to_string(), scope.to_string()),
                ("limit".to_string(), limit.to_string()),
                ("value".to_string(), value.to_string()),
                ("window".to_string(), window.to_string()),
                ("reset_time".to_string(), rfc3339(*reset_ms)),
            ]),
            _ => HashMap::new(),
        }
    }

    /// The status a client sees. `request_id` ties an opaque internal error
    /// to the log line that holds its detail.
    pub fn to_status(&self, request_id: &str) -> Status {
        let message = match self {
            Error::Internal(detail) => {
                tracing::error!(request_id, detail, "internal error");
                format!("internal error (request id {request_id})")
            }
            Error::Store(source) => {
                tracing::error!(
                    request_id,
                    error = source as &dyn std::error::Error,
                    "store error"
                );
                format!("internal error (request id {request_id})")
            }
            // City's own words, with nothing of the upstream in them.
            Error::Provider {
                kind: ProviderFailure::Unsupported,
                message,
                ..
            } => message.clone(),
            Error::Provider {
                provider_id,
                message,
                ..
            } => {
                tracing::warn!(request_id, provider_id, message, "provider call failed");
                format!("the upstream provider failed (request id {request_id})")
            }
            other => other.to_string(),
        };
        let mut details = ErrorDetails::with_error_info(self.reason(), ERROR_DOMAIN, {
            let mut metadata = self.metadata();
            if !request_id.is_empty() {
                metadata.insert("request_id".to_string(), request_id.to_string());
            }
            metadata
        });
        if let Error::InvalidArgument(violations) = self {
            details.set_bad_request(
                violations
                    .iter()
                    .map(|v| FieldViolation::new(&v.field, &v.description))
                    .collect::<Vec<_>>(),
            );
        }
        if let Error::Provider {
            retry_after: Some(delay),
            ..
        } = self
        {
            details.set_retry_info(Some(*delay));
        }
        if let Error::QuotaExceeded {
            reset_ms, now_ms, ..
        } = self
        {
            let wait = u64::try_from(reset_ms - now_ms).unwrap_or(0);
            details.set_retry_info(Some(Duration::from_millis(wait)));
        }
        Status::with_error_details(self.code(), message, details)
    }
}

/// RFC 3339 (UTC, milliseconds) of a Unix time in milliseconds.
fn rfc3339(ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

/// What a store driver reported, kept whole as the error's source.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Store(err.into())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Store(err.into())
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        err.to_status("")
    }
}

/// The canonical name of a gRPC code (`OK`, `RESOURCE_EXHAUSTED`, …), as in
/// `google.rpc.Code`: metric labels and the CLI's messages spell codes so.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

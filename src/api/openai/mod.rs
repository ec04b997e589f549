//! The OpenAI-compatible HTTP face on City's main port: Chat Completions
//! (plain and SSE), image generation and the model list, for the tools that
//! speak only OpenAI's API. Every call takes the one path of the gRPC face:
//! the same auth directory, the same request conversion and caps, the same
//! `Gateway` (quotas, hooks, fallbacks, usage rows). Only the wire differs.

mod chat;
mod errors;
mod images;
mod models;
mod wire;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::{any, get, post};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::caps::CallCaps;
use crate::auth::{Directory, RequestId};
use crate::domain::now_ms;
use crate::error::{Error, Violations};
use crate::gateway::{CallContext, Gateway};

pub use errors::ApiError;

/// What the face needs of City: the same parts AIService is built from.
#[derive(Clone)]
pub struct OpenAiFace {
    pub gateway: Arc<Gateway>,
    pub directory: Arc<Directory>,
    /// Set once City begins to shut down: new calls are refused.
    pub draining: CancellationToken,
    pub caps: CallCaps,
    /// `[server] max_request_bytes`, for the whole JSON body.
    pub max_request_bytes: usize,
}

type Face = Arc<OpenAiFace>;

/// The face's routes, to merge into the main listener's router.
pub fn router(face: OpenAiFace) -> Router {
    let limit = face.max_request_bytes;
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/images/generations", post(images::generations))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{model}", get(models::retrieve))
        .route("/v1/{*rest}", any(unknown_route))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(face))
}

/// Any other path under /v1: an OpenAI-shaped 404 rather than gRPC's
/// UNIMPLEMENTED, which an HTTP client could not read.
async fn unknown_route(uri: Uri, headers: HeaderMap) -> ApiError {
    let request_id = request_id(&headers);
    ApiError::new(
        Error::NotFound {
            resource: "route",
            id: uri.path().to_string(),
        },
        &request_id,
    )
}

/// The client's `x-request-id` when sane, else a new one.
fn request_id(headers: &HeaderMap) -> RequestId {
    RequestId::from_client(
        headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok()),
    )
}

impl OpenAiFace {
    /// The caller of one request, as the gRPC face's auth step finds it:
    /// refused while draining; `Authorization: Bearer <user token>`; the
    /// studio from `X-Studio-Id` when sent, which must then be the token's.
    fn context(&self, headers: &HeaderMap) -> Result<CallContext, ApiError> {
        let request_id = request_id(headers);
        let caller = (|| {
            if self.draining.is_cancelled() {
                return Err(Error::ShuttingDown);
            }
            let token = bearer(headers)?;
            let studio_id = single(headers, "x-studio-id")?.filter(|id| !id.is_empty());
            self.directory
                .authenticate_user_token(studio_id, token, now_ms())
        })();
        match caller {
            Ok(caller) => Ok(CallContext::new(caller, request_id)),
            Err(err) => Err(ApiError::new(err, &request_id)),
        }
    }
}

/// The one value of a header; two are refused (AMBIGUOUS_CREDENTIALS).
fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, Error> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::AmbiguousCredentials { header: name });
    }
    first
        .map(|value| value.to_str().map_err(|_| Error::TokenInvalid))
        .transpose()
}

fn bearer(headers: &HeaderMap) -> Result<&str, Error> {
    let value = single(headers, "authorization")?.ok_or(Error::TokenMissing)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(Error::TokenInvalid)?;
    Ok(token.trim())
}

/// Parses a JSON body; too large is 413, anything unreadable a 400.
fn parse<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
    request_id: &RequestId,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit, request_id)
        } else {
            ApiError::new(Error::invalid("body", rejection.body_text()), request_id)
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::new(
            Error::invalid("body", format!("not a valid request: {err}")),
            request_id,
        )
    })
}

/// How City treats a request field it does not implement.
enum Unsupported {
    /// A hint OpenAI itself may disregard: accepted and ignored.
    Hint,
    /// Accepted only at its default value (the value City always applies).
    OnlyDefault(fn(&serde_json::Value) -> bool),
}

/// Refuses every field of `other` (the fields City has no slot for) that is
/// neither null, nor a hint, nor at the default City applies anyway.
fn refuse_unsupported(
    other: &serde_json::Map<String, serde_json::Value>,
    known: &[(&str, Unsupported)],
    prefix: &str,
) -> crate::error::Result<()> {
    let mut v = Violations::default();
    for (name, value) in other {
        if value.is_null() {
            continue;
        }
        let ok = match known.iter().find(|(known, _)| known == name) {
            Some((_, Unsupported::Hint)) => true,
            Some((_, Unsupported::OnlyDefault(is_default))) => is_default(value),
            None => false,
        };
        v.check_with(ok, format!("{prefix}{name}"), || {
            "not supported by City (see README, OpenAI-compatible HTTP)".to_string()
        });
    }
    v.finish(())
}

/// Puts OpenAI's field names on violations that name the gRPC fields.
fn rename_fields(error: Error, names: &[(&str, &str)]) -> Error {
    match error {
        Error::InvalidArgument(mut violations) => {
            for violation in &mut violations {
                if let Some((_, openai)) = names.iter().find(|(grpc, _)| *grpc == violation.field) {
                    violation.field = (*openai).to_string();
                }
            }
            Error::InvalidArgument(violations)
        }
        other => other,
    }
}

/// Seconds since the Unix epoch, for `created`.
fn unix_now() -> i64 {
    now_ms() / 1000
}

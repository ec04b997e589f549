//! The auth step of every call: read the metadata, check the credential
//! against the in-memory directory, and put the caller and a request id into
//! the request extensions. Synchronous by design: no await, no database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use tokio_util::sync::CancellationToken;
use tonic::metadata::{Ascii, MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::{Directory, WebOrigins};
use crate::domain::now_ms;
use crate::error::Error;

/// The id of one call: from the client's `x-request-id` when it sent a sane
/// one, otherwise minted here. It appears in responses, usage rows and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

impl RequestId {
    /// Takes the client's id (up to 64 visible ASCII characters) or mints one.
    pub fn from_metadata(metadata: &MetadataMap) -> Self {
        Self::from_client(
            metadata
                .get("x-request-id")
                .and_then(|value| value.to_str().ok()),
        )
    }

    /// Takes the id a client sent, if sane, or mints one.
    pub fn from_client(client_id: Option<&str>) -> Self {
        let client_id = client_id.filter(|id| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
        });
        match client_id {
            Some(id) => RequestId(id.into()),
            None => RequestId::mint(),
        }
    }

    /// A process-unique id: a random per-process prefix and a counter.
    pub fn mint() -> Self {
        static PREFIX: LazyLock<String> = LazyLock::new(|| super::secret::random_id(8));
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        RequestId(format!("{}-{n:x}", *PREFIX).into())
    }
}

/// The one value of a credential header. Two values are refused rather than
/// resolved by picking one: a proxy or client that adds its own must not
/// decide whose call this is.
fn single<'a>(
    metadata: &'a MetadataMap,
    key: &'static str,
) -> Result<Option<&'a MetadataValue<Ascii>>, Error> {
    let mut values = metadata.get_all(key).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::AmbiguousCredentials { header: key });
    }
    Ok(first)
}

fn bearer(metadata: &MetadataMap) -> Result<&str, Error> {
    let value = single(metadata, "authorization")?.ok_or(Error::TokenMissing)?;
    let value = value.to_str().map_err(|_| Error::TokenInvalid)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(Error::TokenInvalid)?;
    Ok(token.trim())
}

/// A City that is shutting down takes no new calls (UNAVAILABLE), so
/// clients and load balancers move on to another replica.
fn refuse_while_draining(draining: &CancellationToken) -> Result<(), Error> {
    if draining.is_cancelled() {
        return Err(Error::ShuttingDown);
    }
    Ok(())
}

/// The `Origin` a browser sent, if any (one at most).
fn origin(metadata: &MetadataMap) -> Result<Option<&str>, Error> {
    match single(metadata, "origin")? {
        None => Ok(None),
        Some(value) => Ok(Some(value.to_str().unwrap_or("null"))),
    }
}

/// Refuses a browser call from an origin `allowed` does not accept.
fn check_origin(metadata: &MetadataMap, allowed: impl Fn(&str) -> bool) -> Result<(), Error> {
    match origin(metadata)? {
        Some(origin) if !allowed(origin) => Err(Error::OriginNotAllowed {
            origin: origin.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Authenticates `AIService` calls: `x-studio-id` plus a user token, from a
/// web origin the studio (or City) allows when the call comes from a browser.
#[derive(Clone)]
pub struct UserAuth {
    pub directory: Arc<Directory>,
    pub origins: Arc<WebOrigins>,
    /// Set once City begins to shut down: new calls are refused.
    pub draining: CancellationToken,
}

impl Interceptor for UserAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let request_id = RequestId::from_metadata(request.metadata());
        let caller = (|| {
            refuse_while_draining(&self.draining)?;
            let metadata = request.metadata();
            let token = bearer(metadata)?;
            let studio_id = single(metadata, "x-studio-id")?
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .ok_or(Error::StudioIdMissing)?;
            let caller = self
                .directory
                .authenticate_user(studio_id, token, now_ms())?;
            check_origin(metadata, |origin| {
                self.origins.allows_call(&caller.studio_id, origin)
            })?;
            Ok::<_, Error>(caller)
        })()
        .map_err(|err| err.to_status(&request_id.0))?;
        request.extensions_mut().insert(caller);
        request.extensions_mut().insert(request_id);
        Ok(request)
    }
}

/// Authenticates `AdminService` calls: the admin key or a studio key. From
/// a browser only when its origin is allowed City-wide: a studio's origins
/// are for its users' pages, which hold user tokens, never admin keys.
#[derive(Clone)]
pub struct AdminAuth {
    pub directory: Arc<Directory>,
    pub origins: Arc<WebOrigins>,
    /// Set once City begins to shut down: new calls are refused.
    pub draining: CancellationToken,
}

impl Interceptor for AdminAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let request_id = RequestId::from_metadata(request.metadata());
        let caller = refuse_while_draining(&self.draining)
            .and_then(|()| bearer(request.metadata()))
            .and_then(|token| self.directory.authenticate_admin(token))
            .and_then(|caller| {
                check_origin(request.metadata(), |o| self.origins.city_allows(o))?;
                Ok(caller)
            })
            .map_err(|err| err.to_status(&request_id.0))?;
        request.extensions_mut().insert(caller);
        request.extensions_mut().insert(request_id);
        Ok(request)
    }
}

//! Thin gRPC handlers: convert the wire request, call the domain, convert back.

pub mod admin;
pub mod ai;
mod caps;
pub(crate) mod codec;
mod convert;
pub mod openai;

use tonic::{Request, Status};

use crate::auth::RequestId;

/// The request id the auth interceptor put into the extensions.
fn request_id<T>(request: &Request<T>) -> RequestId {
    request
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(RequestId::mint)
}

/// Maps a domain error to a status tagged with the call's request id.
fn status(request_id: &RequestId) -> impl Fn(crate::error::Error) -> Status + '_ {
    move |err| err.to_status(&request_id.0)
}

//! The maximum request size, checked from each gRPC message's length prefix
//! before the message is read, so an oversized request costs nothing and is
//! answered RESOURCE_EXHAUSTED with reason REQUEST_TOO_LARGE (tonic's own
//! limit answers a bare OUT_OF_RANGE without an ErrorInfo).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use crate::error::ERROR_DOMAIN;

/// Bytes before each gRPC message: a compression flag and a u32 length.
const PREFIX_LEN: usize = 5;

/// A tower layer over every service of a listener.
#[derive(Clone, Copy)]
pub struct RequestSizeLimit {
    pub max_bytes: usize,
}

impl<S> Layer<S> for RequestSizeLimit {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

#[derive(Clone)]
pub struct Limited<S> {
    inner: S,
    max_bytes: usize,
}

impl<S> Service<http::Request<Body>> for Limited<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // Only gRPC bodies have the framing read here; the HTTP faces
        // limit their own bodies.
        if !is_grpc(&request) {
            return self.inner.call(request);
        }
        let (parts, body) = request.into_parts();
        let body = Body::new(SizeCheckedBody {
            inner: body,
            max_bytes: self.max_bytes,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            message_left: 0,
        });
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

fn is_grpc<B>(request: &http::Request<B>) -> bool {
    request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// A request body that fails with REQUEST_TOO_LARGE at the first message
/// whose length prefix is over the limit.
struct SizeCheckedBody {
    inner: Body,
    max_bytes: usize,
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    message_left: usize,
}

impl SizeCheckedBody {
    /// Walks the message framing through one chunk of the body.
    fn check(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.message_left > 0 {
                let skip = self.message_left.min(data.len());
                self.message_left -= skip;
                data.advance(skip);
                continue;
            }
            self.prefix[self.prefix_len] = data[0];
            self.prefix_len += 1;
            data.advance(1);
            if self.prefix_len == PREFIX_LEN {
                self.prefix_len = 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]) as usize;
                if len > self.max_bytes {
                    return Err(too_large(len, self.max_bytes));
                }
                self.message_left = len;
            }
        }
        Ok(())
    }
}

impl HttpBody for SizeCheckedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(status) = this.check(data)
        {
            return Poll::Ready(Some(Err(status)));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn too_large(len: usize, max: usize) -> Status {
    let metadata = [
        ("size".to_string(), len.to_string()),
        ("limit".to_string(), max.to_string()),
    ];
    Status::with_error_details(
        Code::ResourceExhausted,
        format!("the request message is {len} bytes; the limit is {max} bytes"),
        ErrorDetails::with_error_info("REQUEST_TOO_LARGE", ERROR_DOMAIN, metadata),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(max_bytes: usize) -> SizeCheckedBody {
        SizeCheckedBody {
            inner: Body::empty(),
            max_bytes,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            message_left: 0,
        }
    }

    fn message(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend(len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, len as usize));
        bytes
    }

    #[test]
    fn messages_up_to_the_limit_pass_in_any_chunking() {
        let stream: Vec<u8> = [message(10), message(0), message(10)].concat();
        for chunk in 1..stream.len() {
            let mut checked = body(10);
            for piece in stream.chunks(chunk) {
                checked.check(piece).expect("within the limit");
            }
        }
    }

    #[test]
    fn a_message_over_the_limit_fails_at_its_prefix() {
        let mut checked = body(10);
        checked.check(&message(10)).unwrap();
        let status = checked.check(&message(11)[..PREFIX_LEN]).unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("REQUEST_TOO_LARGE", "downcity")
        );
    }
}

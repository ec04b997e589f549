//! The console page's own calls. A browser request whose `Origin` is the
//! listener's own (the console, served from it) is not cross-origin: its
//! `Origin` is dropped, so neither CORS nor the interceptors' origin check
//! applies (the key it carries is checked as for any caller), and its
//! gRPC-Web is translated here, also on the admin listener, which has no
//! web face of its own.

use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, Either};
use http::header;
use http::{Request, Response};
use tonic::body::Body;
use tonic_web::GrpcWebLayer;
use tower::{Layer, Service};

/// Outermost on each listener; a pass-through where the console is not served.
#[derive(Clone, Copy)]
pub struct SameOriginLayer {
    pub(super) enabled: bool,
}

impl<S> Layer<S> for SameOriginLayer {
    type Service = SameOrigin<S>;

    fn layer(&self, inner: S) -> SameOrigin<S> {
        SameOrigin {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service `SameOriginLayer` makes.
#[derive(Clone)]
pub struct SameOrigin<S> {
    inner: S,
    enabled: bool,
}

impl<S> Service<Request<Body>> for SameOrigin<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        if !self.enabled || !is_same_origin(&request) {
            return Either::Left(self.inner.call(request));
        }
        request.headers_mut().remove(header::ORIGIN);
        if !is_grpc_web(&request) {
            return Either::Left(self.inner.call(request));
        }
        // The service polled ready serves this request; its clone the next.
        let ready = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, ready);
        let mut translated = GrpcWebLayer::new().layer(ready);
        Either::Right(Box::pin(translated.call(request)))
    }
}

/// Whether the request's `Origin` names the host and port it was sent to.
fn is_same_origin<B>(request: &Request<B>) -> bool {
    let origin = request.headers().get(header::ORIGIN);
    let Some((_, origin_authority)) = origin
        .and_then(|value| value.to_str().ok())
        .and_then(|origin| origin.split_once("://"))
    else {
        return false;
    };
    // HTTP/2 carries the authority in the URI, HTTP/1.1 in `Host`.
    let authority = match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request
            .headers()
            .get(header::HOST)
            .and_then(|value| value.to_str().ok()),
    };
    authority.is_some_and(|authority| authority.eq_ignore_ascii_case(origin_authority))
}

/// Whether the request is gRPC-Web (`application/grpc-web[-text][+proto]`).
fn is_grpc_web<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.starts_with("application/grpc-web"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str, uri: &str, host: Option<&str>) -> Request<()> {
        let mut builder = Request::post(uri).header(header::ORIGIN, origin);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn only_the_listeners_own_origin_is_same_origin() {
        let h1 = |origin, host| is_same_origin(&request(origin, "/x", Some(host)));
        assert!(h1("http://127.0.0.1:50051", "127.0.0.1:50051"));
        assert!(h1("https://City.example", "city.example"));
        assert!(!h1("http://127.0.0.1:50052", "127.0.0.1:50051"));
        assert!(!h1("http://evil.example", "127.0.0.1:50051"));
        assert!(!h1("null", "127.0.0.1:50051"));
        let h2 = |origin| is_same_origin(&request(origin, "http://127.0.0.1:50051/x", None));
        assert!(h2("http://127.0.0.1:50051"));
        assert!(!h2("http://localhost:50051"));
    }
}

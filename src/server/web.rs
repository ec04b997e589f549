//! Browsers on the main listener: gRPC-Web (binary and text, over HTTP/1.1
//! and HTTP/2) translated to gRPC for the same services, and CORS for the
//! pages' origins (preflights and actual responses, per the Fetch standard).
//!
//! Only requests a browser or a gRPC-Web client sends are touched: one with
//! an `Origin` header gets CORS, one with a gRPC-Web content type is
//! translated; a native gRPC call (neither) goes straight to the services.
//! Which origin may use which studio is checked on the call itself, by the
//! auth interceptors (`auth::WebOrigins`); a preflight cannot know the
//! studio, so it is answered for any origin City or some studio allows.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, Either};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use tonic::body::Body;
use tonic_web::GrpcWebLayer;
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::WebOrigins;
use crate::config::WebConfig;

/// The request headers City's clients send from a page.
const ALLOWED_HEADERS: [&str; 8] = [
    "authorization",
    "content-type",
    "grpc-timeout",
    "traceparent",
    "x-grpc-web",
    "x-request-id",
    "x-studio-id",
    "x-user-agent",
];

/// The response headers a page may read: the status of a call and its id.
const EXPOSED_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
];

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The web face of a listener; a pass-through when `[web] enabled` is off
/// (and on the admin listener).
#[derive(Clone, Default)]
pub struct WebLayer {
    cors: Option<CorsLayer>,
}

impl WebLayer {
    /// gRPC-Web and CORS, for the origins `origins` allows.
    pub fn enabled(origins: Arc<WebOrigins>) -> WebLayer {
        let allow_origin = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origins.allows_preflight(origin))
        });
        let cors = CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::POST, Method::GET])
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE);
        WebLayer { cors: Some(cors) }
    }

    /// Native gRPC only.
    pub fn disabled() -> WebLayer {
        WebLayer::default()
    }
}

impl<S> Layer<S> for WebLayer {
    type Service = Web<S>;

    fn layer(&self, inner: S) -> Web<S> {
        Web {
            inner,
            cors: self.cors.clone(),
        }
    }
}

/// The service `WebLayer` makes.
#[derive(Clone)]
pub struct Web<S> {
    inner: S,
    cors: Option<CorsLayer>,
}

type WebFuture<E> = BoxFuture<'static, Result<Response<Body>, E>>;

impl<S> Service<Request<Body>> for Web<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, WebFuture<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(cors) = &self.cors else {
            return Either::Left(self.inner.call(request));
        };
        let from_browser = request.headers().contains_key(header::ORIGIN);
        if !from_browser && !is_grpc_web(&request) {
            return Either::Left(self.inner.call(request));
        }
        // The service polled ready serves this request; its clone the next.
        let ready = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, ready);
        let mut web = GrpcWebOnly { inner: ready };
        if from_browser {
            Either::Right(Box::pin(cors.layer(web).call(request)))
        } else {
            Either::Right(web.call(request))
        }
    }
}

/// Translates gRPC-Web requests to gRPC (and their answers back); passes
/// every other request on as it is (tonic-web alone would refuse HTTP/1.1
/// requests that are not gRPC-Web, such as another face's).
#[derive(Clone)]
struct GrpcWebOnly<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for GrpcWebOnly<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = WebFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_grpc_web(&request) {
            let mut translated = GrpcWebLayer::new().layer(&mut self.inner);
            Box::pin(translated.call(request))
        } else {
            Box::pin(self.inner.call(request))
        }
    }
}

/// Whether the request is gRPC-Web (`application/grpc-web[-text][+proto]`).
fn is_grpc_web(request: &Request<Body>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|content_type| content_type.starts_with("application/grpc-web"))
}

/// The main listener's web face as `[web]` configures it.
pub fn layer(config: &WebConfig, origins: Arc<WebOrigins>) -> WebLayer {
    if config.enabled {
        WebLayer::enabled(origins)
    } else {
        WebLayer::disabled()
    }
}

/// Refuses a malformed `[web] allowed_origins` before anything starts.
pub fn check(config: &WebConfig) -> anyhow::Result<()> {
    WebOrigins::check(&config.allowed_origins)
}

//! `downcity_grpc_requests_total{method, code}`: a tower layer on every gRPC
//! listener. The code is read where gRPC puts it: the response headers of a
//! trailers-only answer (errors), else the trailers at the end of the body.
//! A body dropped before its trailers (the client went away) counts as
//! CANCELLED.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::HeaderMap;
use http_body::{Body as HttpBody, Frame};
use pin_project_lite::pin_project;
use prost::Message;
use tonic::body::Body;
use tower::{Layer, Service};

use super::Metrics;
use super::labels::{OTHER, code_name};

/// Counts gRPC requests by method (the known methods of City's services;
/// any other path is `other`) and code.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    metrics: Arc<Metrics>,
    methods: Arc<HashMap<String, Arc<str>>>,
    other: Arc<str>,
}

impl GrpcMetricsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        GrpcMetricsLayer {
            metrics,
            methods: Arc::new(known_methods()),
            other: Arc::from(OTHER),
        }
    }

    fn method(&self, path: &str) -> Arc<str> {
        self.methods
            .get(path)
            .cloned()
            .unwrap_or_else(|| self.other.clone())
    }
}

/// Every method path of Downcity's services, health and reflection.
fn known_methods() -> HashMap<String, Arc<str>> {
    let mut paths = vec![
        "/grpc.health.v1.Health/Check".to_string(),
        "/grpc.health.v1.Health/Watch".to_string(),
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo".to_string(),
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo".to_string(),
    ];
    if let Ok(set) = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET) {
        for file in &set.file {
            let package = file.package();
            for service in &file.service {
                for method in &service.method {
                    paths.push(format!("/{package}.{}/{}", service.name(), method.name()));
                }
            }
        }
    }
    paths
        .into_iter()
        .map(|path| {
            let label = Arc::from(path.as_str());
            (path, label)
        })
        .collect()
}

impl<S> Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    layer: GrpcMetricsLayer,
}

impl<S, B> Service<http::Request<B>> for GrpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let pending = self.layer.metrics.is_enabled().then(|| Pending {
            metrics: self.layer.metrics.clone(),
            method: self.layer.method(request.uri().path()),
            code: "CANCELLED",
        });
        Counted {
            inner: self.inner.call(request),
            pending,
        }
    }
}

/// One request not yet counted; counted with `code` when dropped.
struct Pending {
    metrics: Arc<Metrics>,
    method: Arc<str>,
    code: &'static str,
}

impl Pending {
    fn finish(mut self, code: &'static str) {
        self.code = code;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.metrics.grpc_request(self.method.clone(), self.code);
    }
}

fn status_in(headers: &HeaderMap) -> Option<&'static str> {
    let value = headers.get("grpc-status")?;
    Some(code_name(tonic::Code::from_bytes(value.as_bytes())))
}

pin_project! {
    pub struct Counted<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, E> Future for Counted<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(Ok(response));
        };
        if let Some(code) = status_in(response.headers()) {
            pending.finish(code);
            return Poll::Ready(Ok(response));
        }
        let response = response.map(|inner| {
            Body::new(CountedBody {
                inner,
                pending: Some(pending),
            })
        });
        Poll::Ready(Ok(response))
    }
}

pin_project! {
    struct CountedBody {
        #[pin]
        inner: Body,
        pending: Option<Pending>,
    }
}

impl HttpBody for CountedBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let code = match &frame {
            Some(Ok(frame)) => frame
                .trailers_ref()
                .map(|t| status_in(t).unwrap_or("UNKNOWN")),
            Some(Err(_)) => Some("UNKNOWN"),
            None => Some("UNKNOWN"),
        };
        if let Some(code) = code
            && let Some(pending) = this.pending.take()
        {
            pending.finish(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

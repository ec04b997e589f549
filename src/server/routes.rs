//! Which services each listener serves, and the transport settings every
//! listener shares (timeouts, keepalive, stream caps, the request-size limit).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tonic::service::Routes;
use tonic::transport::Server;
use tower::layer::util::{Identity, Stack};

use super::console::SameOriginLayer;
use super::offer::Offer;
use super::transport::RequestSizeLimit;
use super::web::WebLayer;
use crate::config::ServerConfig;
use crate::metrics::{GrpcMetricsLayer, Metrics};

/// Refuses transport settings that would refuse every call or hang hyper.
pub fn check(config: &ServerConfig) -> anyhow::Result<()> {
    let zero = [
        ("max_request_bytes", config.max_request_bytes == 0),
        ("max_messages_per_call", config.max_messages_per_call == 0),
        (
            "max_prompt_bytes_per_call",
            config.max_prompt_bytes_per_call == 0,
        ),
        (
            "http2_keepalive_interval_secs",
            config.http2_keepalive_interval_secs == 0,
        ),
        (
            "http2_keepalive_timeout_secs",
            config.http2_keepalive_timeout_secs == 0,
        ),
        (
            "header_read_timeout_secs",
            config.header_read_timeout_secs == 0,
        ),
        (
            "max_concurrent_streams_per_connection",
            config.max_concurrent_streams_per_connection == 0,
        ),
        ("max_connections", config.max_connections == 0),
    ];
    match zero.iter().find(|(_, is_zero)| *is_zero) {
        Some((name, _)) => Err(anyhow::anyhow!("[server] {name} must be above 0")),
        None => Ok(()),
    }
}

/// The layers of every listener: the console's own calls (outermost), the
/// web face, the request-size limit, request counts by method and code
/// (innermost, so gRPC-Web calls count as what they are once translated).
pub type Layers = Stack<
    GrpcMetricsLayer,
    Stack<RequestSizeLimit, Stack<WebLayer, Stack<SameOriginLayer, Identity>>>,
>;

/// A server with City's transport settings, the web face `web` (HTTP/1.1
/// is accepted for it and other non-gRPC faces; gRPC itself stays HTTP/2),
/// counting requests by method and code.
pub fn server(
    config: &ServerConfig,
    web: WebLayer,
    console: SameOriginLayer,
    metrics: &Arc<Metrics>,
) -> Server<Layers> {
    Server::builder()
        .accept_http1(true)
        .timeout(Duration::from_secs(config.request_timeout_secs))
        .concurrency_limit_per_connection(config.max_concurrent_calls_per_connection)
        .load_shed(true)
        .max_concurrent_streams(config.max_concurrent_streams_per_connection)
        .http2_keepalive_interval(Some(Duration::from_secs(
            config.http2_keepalive_interval_secs,
        )))
        .http2_keepalive_timeout(Some(Duration::from_secs(
            config.http2_keepalive_timeout_secs,
        )))
        .trace_fn(|request| tracing::info_span!("grpc", path = %request.uri().path()))
        // The console's own calls first: they skip CORS and the origin check.
        .layer(console)
        // Outside the size limit, which reads gRPC framing: gRPC-Web text
        // bodies are base64 until this layer decodes them.
        .layer(web)
        .layer(RequestSizeLimit {
            max_bytes: config.max_request_bytes,
        })
        .layer(GrpcMetricsLayer::new(metrics.clone()))
}

/// Reflection (v1 and v1alpha) of the services `offer` serves, and health;
/// with `google/rpc/error_details.proto`, so grpcurl and `buf curl` decode
/// the ErrorInfo of every error.
pub fn reflection(offer: Offer) -> anyhow::Result<Routes> {
    let descriptors = descriptors(offer)?;
    let error_details = google_rpc()?;
    let v1 = tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(descriptors.clone())
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_file_descriptor_set(error_details.clone())
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(descriptors)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_file_descriptor_set(error_details)
        .build_v1alpha()?;
    Ok(Routes::new(v1).add_service(v1alpha))
}

/// `google/rpc/error_details.proto` and `status.proto` as tonic-types ships
/// them, under their canonical paths (tonic-types names them without
/// `google/rpc/`, which tools importing them by path would not find).
fn google_rpc() -> anyhow::Result<prost_types::FileDescriptorSet> {
    let mut set = prost_types::FileDescriptorSet::decode(tonic_types::pb::FILE_DESCRIPTOR_SET)?;
    let bare: Vec<String> = set.file.iter().filter_map(|f| f.name.clone()).collect();
    let canonical = |name: &mut String| {
        if bare.contains(name) && !name.contains('/') {
            *name = format!("google/rpc/{name}");
        }
    };
    for file in &mut set.file {
        if let Some(name) = &mut file.name {
            canonical(name);
        }
        file.dependency.iter_mut().for_each(canonical);
    }
    Ok(set)
}

/// Downcity's proto files without those defining a service `offer` leaves
/// out, so reflection cannot describe a service this listener does not serve.
fn descriptors(offer: Offer) -> anyhow::Result<prost_types::FileDescriptorSet> {
    let mut set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)?;
    let hidden = match offer {
        Offer::Everything => None,
        Offer::Ai => Some("AdminService"),
        Offer::Admin => Some("AIService"),
    };
    set.file
        .retain(|file| !file.service.iter().any(|s| s.name.as_deref() == hidden));
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn services(offer: Offer) -> Vec<String> {
        descriptors(offer)
            .unwrap()
            .file
            .iter()
            .flat_map(|f| f.service.iter().filter_map(|s| s.name.clone()))
            .collect()
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        assert!(check(&ServerConfig::default()).is_ok());
        let config = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        let err = check(&config).unwrap_err().to_string();
        assert!(err.contains("max_connections"), "{err}");
    }

    #[test]
    fn each_listener_describes_only_its_services() {
        assert_eq!(services(Offer::Ai), ["AIService"]);
        assert_eq!(services(Offer::Admin), ["AdminService"]);
        let mut all = services(Offer::Everything);
        all.sort();
        assert_eq!(all, ["AIService", "AdminService"]);
    }
}

//! The admin CLI's connection: the address, the bearer key on every call,
//! and each call's failure as one readable line.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use downcity::proto::admin_service_client::AdminServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::status::status_line;

/// How long establishing the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// An `AdminService` client whose every call carries the bearer key.
pub(crate) type Client = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone)]
pub(crate) struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// The header for `key`; `None` or blank is an error naming the env var.
    pub(crate) fn new(key: Option<&str>) -> Result<Self> {
        let key = key
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                anyhow!(
                    "no admin key: set DOWNCITY_ADMIN_KEY or pass --admin-key \
                 (a studio key `dck_...` works for the studio-scoped calls)"
                )
            })?;
        let mut value = MetadataValue::try_from(format!("Bearer {key}"))
            .map_err(|_| anyhow!("the admin key holds characters not allowed in a gRPC header"))?;
        value.set_sensitive(true);
        Ok(Self(value))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// `addr` as a URI: `host:port` gets `http://`; a given scheme is kept.
pub(crate) fn endpoint_uri(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// Connects to the City at `addr` (TLS for `https://…`, with `tls` or the
/// bundled roots).
pub(crate) async fn connect(
    addr: &str,
    bearer: Bearer,
    tls: Option<&downcity::client::ClientTls>,
) -> Result<Client> {
    let uri = endpoint_uri(addr);
    let mut endpoint =
        Endpoint::from_shared(uri.clone()).with_context(|| format!("invalid address `{addr}`"))?;
    if uri.starts_with("https://") {
        let config = tls.cloned().unwrap_or_default().config();
        endpoint = endpoint.tls_config(config).context("TLS settings")?;
    } else if tls.is_some() {
        return Err(anyhow!(
            "TLS options need an https:// address, not `{addr}`"
        ));
    }
    let endpoint = endpoint
        .tcp_nodelay(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {uri}"))?;
    Ok(AdminServiceClient::with_interceptor(channel, bearer))
}

/// Awaits one call; a failed status becomes [`status_error`].
pub(crate) async fn unary<T>(call: impl Future<Output = Result<Response<T>, Status>>) -> Result<T> {
    call.await
        .map(Response::into_inner)
        .map_err(|status| anyhow!(status_line(&status)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_http_unless_they_have_a_scheme() {
        assert_eq!(endpoint_uri("127.0.0.1:50051"), "http://127.0.0.1:50051");
        assert_eq!(endpoint_uri(" city:1 "), "http://city:1");
        assert_eq!(endpoint_uri("http://city:1"), "http://city:1");
        assert_eq!(endpoint_uri("https://city:1"), "https://city:1");
    }

    #[test]
    fn a_missing_key_names_the_env_var() {
        for key in [None, Some(""), Some("  ")] {
            let err = Bearer::new(key)
                .err()
                .expect("no key must fail")
                .to_string();
            assert!(err.contains("DOWNCITY_ADMIN_KEY"), "{err}");
        }
        let bearer = Bearer::new(Some("dck_abc_secret")).expect("valid key");
        assert_eq!(bearer.0.to_str().unwrap(), "Bearer dck_abc_secret");
        assert!(Bearer::new(Some("bad\nkey")).is_err());
    }

    #[test]
    fn the_interceptor_adds_the_bearer_header() {
        let mut bearer = Bearer::new(Some("k")).unwrap();
        let request = bearer.call(Request::new(())).unwrap();
        assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer k");
    }
}

//! City's outbound HTTP client settings, shared by provider calls and hook
//! deliveries: rustls on ring (the provider City's listeners use; no aws-lc
//! build) trusting the Mozilla roots bundled in `webpki-roots`, so a City
//! behaves the same on every machine whatever certificates the host has.

use std::sync::Arc;

/// A client builder with City's TLS and socket settings; callers add theirs.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .tcp_nodelay(true)
        .user_agent(concat!("downcity/", env!("CARGO_PKG_VERSION")))
}

fn tls_config() -> rustls::ClientConfig {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/2 first (providers multiplex calls on one connection), else HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builder_makes_a_client_without_a_process_wide_provider() {
        super::client_builder().build().unwrap();
    }
}

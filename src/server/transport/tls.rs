//! rustls for City's listeners, with the certificate and key reloaded from
//! their files while City runs.
//!
//! The files are polled (read and compared every `reload_interval_ms`)
//! rather than watched with inotify: cert-manager and kubelet replace a
//! mounted secret by swapping a `..data` symlink, which a watch on the file
//! itself never sees, and polling also works on bind mounts and network file
//! systems, with no extra dependency, for the cost of reading two small files
//! every few seconds. A changed pair that does not load (a half-written file,
//! a key that does not match) is logged and the previous pair kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// The TLS files City serves, and the configuration made of them.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<TlsAcceptor>,
    /// The file contents `current` (or the last failed attempt) was made of,
    /// so an unchanged or already-refused pair is not loaded or logged again.
    seen: Mutex<Contents>,
}

/// The bytes of the TLS files at one moment.
#[derive(PartialEq, Eq)]
struct Contents {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

#[derive(Clone)]
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

impl Tls {
    /// `None` when the config asks for plaintext; an error when it names
    /// only one of the pair or a file that does not load.
    pub fn from_config(config: &TlsConfig) -> anyhow::Result<Option<Arc<Tls>>> {
        let files = match (&config.cert_file, &config.key_file) {
            (None, None) if config.client_ca_file.is_some() => {
                return Err(anyhow!(
                    "[tls] client_ca_file needs cert_file and key_file (mTLS is TLS first)"
                ));
            }
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: config.client_ca_file.clone(),
            },
            _ => return Err(anyhow!("[tls] needs both cert_file and key_file")),
        };
        let contents = files.read()?;
        let acceptor = files.acceptor(&contents)?;
        Ok(Some(Arc::new(Tls {
            files,
            current: RwLock::new(acceptor),
            seen: Mutex::new(contents),
        })))
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().expect("TLS lock").clone()
    }

    /// Checks the files every `every` until the returned task is aborted.
    pub fn watch(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let tls = self.clone();
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
            }
        })
    }

    /// Installs the files' pair if it changed and loads; else keeps the old.
    fn reload_if_changed(&self) {
        let contents = match self.files.read() {
            Ok(contents) => contents,
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "TLS files unreadable; keeping the previous certificate");
                return;
            }
        };
        let mut seen = self.seen.lock().expect("TLS lock");
        if *seen == contents {
            return;
        }
        *seen = contents;
        match self.files.acceptor(&seen) {
            Ok(acceptor) => {
                *self.current.write().expect("TLS lock") = acceptor;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(err) => tracing::error!(
                error = %format!("{err:#}"),
                "the new TLS certificate or key does not load; keeping the previous one"
            ),
        }
    }
}

impl TlsFiles {
    fn read(&self) -> anyhow::Result<Contents> {
        Ok(Contents {
            cert: read(&self.cert)?,
            key: read(&self.key)?,
            client_ca: self.client_ca.as_deref().map(read).transpose()?,
        })
    }

    fn acceptor(&self, contents: &Contents) -> anyhow::Result<TlsAcceptor> {
        let certs = CertificateDer::pem_slice_iter(&contents.cert)
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading certificates from {}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(anyhow!("no certificate in {}", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_slice(&contents.key)
            .with_context(|| format!("reading the private key from {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match (&self.client_ca, &contents.client_ca) {
            (Some(path), Some(ca)) => {
                builder.with_client_cert_verifier(client_verifier(path, ca, provider)?)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).with_context(|| {
            format!(
                "the key in {} does not fit the certificate in {}",
                self.key.display(),
                self.cert.display()
            )
        })?;
        // gRPC is HTTP/2 only (clients such as grpc-go insist on ALPN h2);
        // HTTP/1.1 is for browsers' gRPC-Web and other HTTP clients.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

/// Accepts only client certificates issued by the CA in `path`.
fn client_verifier(
    path: &Path,
    pem: &[u8],
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.with_context(|| format!("reading the CA in {}", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("the CA in {}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(anyhow!("no CA certificate in {}", path.display()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .with_context(|| format!("the client CA in {}", path.display()))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn pair(name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The leaf certificate a handshake with `tls` presents.
    async fn presented(tls: &Tls) -> Vec<u8> {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let acceptor = tls.acceptor();
        let serve = tokio::spawn(async move { acceptor.accept(server).await.map(|_| ()) });
        let verifier = Arc::new(AnyServer(rustls::crypto::ring::default_provider()));
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from("city.test").unwrap();
        let stream = connector.connect(name, client).await.unwrap();
        serve.await.unwrap().unwrap();
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn a_new_pair_is_taken_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let config = TlsConfig {
            cert_file: Some(dir.path().join("tls.crt")),
            key_file: Some(dir.path().join("tls.key")),
            ..TlsConfig::default()
        };
        let write = |(cert, key): &(String, String)| {
            std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
            std::fs::write(dir.path().join("tls.key"), key).unwrap();
        };
        let first = pair("one.test");
        write(&first);
        let tls = Tls::from_config(&config).unwrap().unwrap();
        assert_eq!(presented(&tls).await, der(&first.0));

        let second = pair("two.test");
        write(&second);
        tls.reload_if_changed();
        assert_eq!(presented(&tls).await, der(&second.0));

        // A certificate with another pair's key, then garbage: both refused.
        let third = pair("three.test");
        write(&(third.0.clone(), second.1.clone()));
        tls.reload_if_changed();
        assert_eq!(presented(&tls).await, der(&second.0));
        write(&("not PEM".into(), "not PEM".into()));
        tls.reload_if_changed();
        assert_eq!(presented(&tls).await, der(&second.0));
        write(&third);
        tls.reload_if_changed();
        assert_eq!(presented(&tls).await, der(&third.0));
    }

    #[test]
    fn half_a_pair_or_a_ca_without_a_pair_is_a_config_error() {
        let only_cert = TlsConfig {
            cert_file: Some("tls.crt".into()),
            ..TlsConfig::default()
        };
        assert!(Tls::from_config(&only_cert).is_err());
        let only_ca = TlsConfig {
            client_ca_file: Some("ca.pem".into()),
            ..TlsConfig::default()
        };
        assert!(Tls::from_config(&only_ca).is_err());
        assert!(Tls::from_config(&TlsConfig::default()).unwrap().is_none());
    }

    /// Accepts any server certificate: these tests look at which one is sent.
    #[derive(Debug)]
    struct AnyServer(CryptoProvider);

    impl rustls::client::danger::ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

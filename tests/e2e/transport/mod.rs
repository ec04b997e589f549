//! City's listeners: TLS and mTLS with real rustls handshakes, certificate
//! rotation, the separate admin listener, and the limits against abuse.
//! Certificates are made by each test (rcgen), never read from the repo.

mod admin_listener;
mod dev_binary;
mod limits;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use downcity::client::ClientTls;
use downcity::config::Config;
use downcity::proto::admin_service_client::AdminServiceClient;
use downcity::proto::ai_service_client::AiServiceClient;
use downcity::server::City;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::common::{ADMIN_KEY, Admin, Ai, Credentials};

/// A throwaway certificate authority.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for 127.0.0.1 and `localhost`.
    pub fn server(&self, serial: u64) -> Leaf {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        self.leaf(names, serial, ExtendedKeyUsagePurpose::ServerAuth)
    }

    pub fn client(&self) -> Leaf {
        self.leaf(vec![], 1, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, names: Vec<String>, serial: u64, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("downcity test {serial}"));
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// Writes `contents` to `path` by a rename, as cert-manager swaps files.
pub fn write_atomically(path: &Path, contents: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, contents).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

/// A City serving TLS with a server certificate of `ca`.
pub struct TlsCity {
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    _dir: tempfile::TempDir,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TlsCity {
    /// Starts City with TLS from `server` (unless `adjust` clears it) and,
    /// when `adjust` sets `admin_listen`, an admin listener on a free port.
    pub async fn start(server: &Leaf, adjust: impl FnOnce(&mut Config, &Path)) -> TlsCity {
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("tls.crt");
        let key_file = dir.path().join("tls.key");
        std::fs::write(&cert_file, &server.cert_pem).unwrap();
        std::fs::write(&key_file, &server.key_pem).unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            admin_key: Some(ADMIN_KEY.to_string()),
            ..Config::default()
        };
        config.server.shutdown_grace_secs = 5;
        config.tls.cert_file = Some(cert_file.clone());
        config.tls.key_file = Some(key_file.clone());
        adjust(&mut config, dir.path());
        let admin_listener = match &config.server.admin_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.unwrap()),
            None => None,
        };
        let city = City::start(config).await.expect("City starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin_addr = admin_listener.as_ref().map(|l| l.local_addr().unwrap());
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(city.serve_on(listener, admin_listener, async move {
            let _ = signal.await;
        }));
        TlsCity {
            addr,
            admin_addr,
            _dir: dir,
            cert_file,
            key_file,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn https(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        let task = self.task.take().unwrap();
        task.await.unwrap().expect("City stops cleanly");
    }
}

/// Client TLS options trusting `ca`, with an optional client identity.
pub fn trusting(ca: &Ca, identity: Option<&Leaf>) -> ClientTls {
    ClientTls {
        ca_pem: Some(ca.pem().into_bytes()),
        identity: identity.map(|l| {
            (
                l.cert_pem.clone().into_bytes(),
                l.key_pem.clone().into_bytes(),
            )
        }),
        server_name: None,
    }
}

/// A channel to `target` with `tls`; the connection error if it fails.
pub async fn channel(
    target: &str,
    tls: Option<&ClientTls>,
) -> Result<Channel, tonic::transport::Error> {
    downcity::client::endpoint(target, tls)
        .unwrap()
        .connect()
        .await
}

pub fn ai(channel: Channel, studio_id: &str, token: &str) -> Ai {
    AiServiceClient::with_interceptor(
        channel,
        Credentials {
            studio_id: Some(studio_id.into()),
            bearer: Some(token.into()),
        },
    )
}

pub fn admin(channel: Channel) -> Admin {
    AdminServiceClient::with_interceptor(
        channel,
        Credentials {
            studio_id: None,
            bearer: Some(ADMIN_KEY.into()),
        },
    )
}

/// Creates a studio over `channel` and returns a user token in it.
pub async fn studio_with_user(channel: Channel, studio_id: &str) -> String {
    use downcity::proto;
    let mut admin = admin(channel);
    admin
        .create_studio(proto::CreateStudioRequest {
            studio_id: studio_id.into(),
            display_name: studio_id.into(),
        })
        .await
        .expect("create studio");
    admin
        .issue_user_token(proto::IssueUserTokenRequest {
            studio_id: studio_id.into(),
            user_id: "u".into(),
            ttl: None,
        })
        .await
        .expect("issue token")
        .into_inner()
        .secret
}

/// The certificate City presents to a new TLS connection trusting `ca`.
pub async fn presented_certificate(addr: SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let (_, session) = tls.get_ref();
    assert_eq!(
        session.alpn_protocol(),
        Some(&b"h2"[..]),
        "City offers h2 by ALPN"
    );
    session.peer_certificates().unwrap()[0].clone()
}

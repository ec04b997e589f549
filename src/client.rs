//! A thin Rust client for studios: `UserClient` over the generated stubs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = downcity::client::UserClient::connect("http://127.0.0.1:50051", "demo", "dcu_…").await?;
//! let answer = client.ai().text("Hello, City").await?;
//! println!("{} ({} tokens)", answer.text, answer.usage.unwrap_or_default().output_tokens);
//! # Ok(()) }
//! ```
//!
//! Over TLS: an `https://` target (bundled Mozilla roots), or [`ClientTls`]
//! for a private CA, a client certificate (mTLS) or a server name.

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status, Streaming};

use crate::proto::{self, ai_service_client::AiServiceClient};

/// How long a call may take unless the caller sets its own deadline.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Adds `x-studio-id` and the bearer token to every call.
#[derive(Clone)]
pub struct UserCredentials {
    studio_id: AsciiMetadataValue,
    authorization: AsciiMetadataValue,
}

impl Interceptor for UserCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let metadata = request.metadata_mut();
        metadata.insert("x-studio-id", self.studio_id.clone());
        metadata.insert("authorization", self.authorization.clone());
        Ok(request)
    }
}

type AiClient = AiServiceClient<InterceptedService<Channel, UserCredentials>>;

/// A studio's connection to City on behalf of one end user.
#[derive(Clone)]
pub struct UserClient {
    ai: AiClient,
}

/// The AI calls: `client.ai().text(..)`, `.stream(..)`, `.image(..)`, `.models()`.
pub struct Ai {
    client: AiClient,
}

/// Errors of `UserClient`: a bad address or credential, or a call's status
/// (read its ErrorInfo reason with `tonic_types::StatusExt`).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid metadata value: {0}")]
    InvalidMetadata(#[from] tonic::metadata::errors::InvalidMetadataValue),
    #[error("cannot connect: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Status(#[from] Status),
    #[error("TLS options need an https:// target, not `{0}`")]
    TlsWithoutHttps(String),
}

/// TLS options for a connection to City, as PEM contents.
#[derive(Clone, Default, Debug)]
pub struct ClientTls {
    /// Trust only this CA (instead of the bundled roots).
    pub ca_pem: Option<Vec<u8>>,
    /// A client certificate chain and its key, for City with mTLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the server certificate must hold (default: the target's host).
    pub server_name: Option<String>,
}

impl ClientTls {
    /// Reads the PEM files given (a CA; a client certificate and key).
    pub fn from_files(
        ca: Option<&std::path::Path>,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> std::io::Result<ClientTls> {
        Ok(ClientTls {
            ca_pem: ca.map(std::fs::read).transpose()?,
            identity: match identity {
                Some((cert, key)) => Some((std::fs::read(cert)?, std::fs::read(key)?)),
                None => None,
            },
            server_name: None,
        })
    }

    /// The tonic TLS settings of these options.
    pub fn config(&self) -> ClientTlsConfig {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca_pem {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_enabled_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name);
        }
        config
    }
}

/// An endpoint for `target` with the client's defaults: TLS for an
/// `https://` target (with `tls`, or the bundled roots), plaintext otherwise.
pub fn endpoint(target: &str, tls: Option<&ClientTls>) -> Result<Endpoint, ClientError> {
    let https = target.starts_with("https://");
    let mut endpoint = Endpoint::from_shared(target.to_string())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(DEFAULT_TIMEOUT)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    match (https, tls) {
        (true, tls) => endpoint = endpoint.tls_config(tls.cloned().unwrap_or_default().config())?,
        (false, Some(_)) => return Err(ClientError::TlsWithoutHttps(target.to_string())),
        (false, None) => {}
    }
    Ok(endpoint)
}

impl UserClient {
    /// Connects to City at `target` (e.g. `http://127.0.0.1:50051`, or
    /// `https://city.example:443` over TLS with the bundled roots).
    pub async fn connect(
        target: &str,
        studio_id: &str,
        user_token: &str,
    ) -> Result<Self, ClientError> {
        let channel = endpoint(target, None)?.connect().await?;
        Self::with_channel(channel, studio_id, user_token)
    }

    /// Connects over TLS with a private CA, a client certificate (mTLS) or
    /// a server name; `target` must be `https://…`.
    pub async fn connect_tls(
        target: &str,
        tls: &ClientTls,
        studio_id: &str,
        user_token: &str,
    ) -> Result<Self, ClientError> {
        let channel = endpoint(target, Some(tls))?.connect().await?;
        Self::with_channel(channel, studio_id, user_token)
    }

    /// Wraps an existing channel (to share one connection among users).
    pub fn with_channel(
        channel: Channel,
        studio_id: &str,
        user_token: &str,
    ) -> Result<Self, ClientError> {
        let credentials = UserCredentials {
            studio_id: studio_id.parse()?,
            authorization: format!("Bearer {user_token}").parse()?,
        };
        Ok(UserClient {
            ai: AiServiceClient::with_interceptor(channel, credentials),
        })
    }

    pub fn ai(&self) -> Ai {
        Ai {
            client: self.ai.clone(),
        }
    }
}

impl Ai {
    /// One answer from the default text model.
    pub async fn text(mut self, prompt: &str) -> Result<proto::TextResponse, ClientError> {
        let request = proto::TextRequest {
            messages: vec![user(prompt)],
            ..Default::default()
        };
        Ok(self.client.text(request).await?.into_inner())
    }

    /// One answer to a full request (model, conversation, limits).
    pub async fn text_with(
        mut self,
        request: proto::TextRequest,
    ) -> Result<proto::TextResponse, ClientError> {
        Ok(self.client.text(request).await?.into_inner())
    }

    /// A streamed answer; dropping the stream cancels the call.
    pub async fn stream(
        mut self,
        request: proto::StreamTextRequest,
    ) -> Result<Streaming<proto::StreamTextResponse>, ClientError> {
        Ok(self.client.stream_text(request).await?.into_inner())
    }

    /// Images from the default image model.
    pub async fn image(
        mut self,
        prompt: &str,
        count: i32,
    ) -> Result<proto::ImageResponse, ClientError> {
        let request = proto::ImageRequest {
            prompt: prompt.to_string(),
            count: Some(count),
            ..Default::default()
        };
        Ok(self.client.image(request).await?.into_inner())
    }

    /// The models this studio may use.
    pub async fn models(mut self) -> Result<Vec<proto::ModelInfo>, ClientError> {
        let response = self
            .client
            .list_models(proto::ListModelsRequest::default())
            .await?;
        Ok(response.into_inner().models)
    }
}

/// A user message.
pub fn user(content: &str) -> proto::Message {
    proto::Message {
        role: proto::Role::User as i32,
        content: content.to_string(),
    }
}

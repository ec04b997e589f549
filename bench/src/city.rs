//! City as a load target: the studios and users of the setup, and the gRPC
//! calls (Text, StreamText, open streams) spread over their credentials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use downcity::proto::admin_service_client::AdminServiceClient;
use downcity::proto::ai_service_client::AiServiceClient;
use downcity::proto::{
    CreateStudioRequest, Hook, HookEvent, HookFailurePolicy, IssueUserTokenRequest, Message, Role,
    StreamTextRequest, StreamTextResponse, TextRequest, UpsertHookRequest,
};
use futures_util::{StreamExt, TryStreamExt};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::load::{Call, CallResult};

/// The prompt of every call: City's mock answers `Echo: <prompt>`.
pub const PROMPT: &str = "Hello City, how are you today?";

/// Admin calls in flight at once during the setup.
const SETUP_CONCURRENCY: usize = 32;

/// One end user's credentials, ready to put in metadata.
#[derive(Clone)]
pub struct Credential {
    studio_id: AsciiMetadataValue,
    authorization: AsciiMetadataValue,
}

impl Credential {
    /// The `authorization` value (`Bearer <user token>`), for City's
    /// OpenAI-compatible HTTP face, where the token alone names the studio.
    pub fn authorization(&self) -> http::HeaderValue {
        http::HeaderValue::from_bytes(self.authorization.as_bytes())
            .expect("a metadata value is a header value")
    }
}

/// `count` HTTP/2 connections to City at `addr`, with TCP_NODELAY.
pub async fn connect(addr: &str, count: usize) -> anyhow::Result<Vec<Channel>> {
    let endpoint = Channel::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10));
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(endpoint.connect().await?);
    }
    Ok(channels)
}

/// Creates `studios` studios with `users` users each (one live token per
/// user) through AdminService; returns every user's credentials.
pub async fn populate(
    channel: Channel,
    admin_key: &str,
    studios: usize,
    users: usize,
) -> anyhow::Result<Vec<Credential>> {
    let admin = Admin::new(channel, admin_key)?;
    let ids: Vec<String> = (0..studios).map(studio_id).collect();
    admin.studios_with_users(&ids, users).await
}

/// The studio whose calls go through a before_call hook.
pub const HOOKED_STUDIO: &str = "bench-hooked";

/// Creates the studio `HOOKED_STUDIO` with `users` users, like `populate`,
/// and gives it an allowing before_call hook at `hook_url` that fails
/// closed (so a broken hook shows as errors, not as a fast call).
pub async fn populate_hooked(
    channel: Channel,
    admin_key: &str,
    users: usize,
    hook_url: &str,
) -> anyhow::Result<Vec<Credential>> {
    let admin = Admin::new(channel, admin_key)?;
    let credentials = admin
        .studios_with_users(&[HOOKED_STUDIO.to_string()], users)
        .await?;
    let hook = Hook {
        studio_id: HOOKED_STUDIO.into(),
        url: hook_url.into(),
        events: vec![HookEvent::BeforeCall as i32],
        failure_policy: HookFailurePolicy::FailClosed as i32,
        ..Default::default()
    };
    admin
        .client
        .clone()
        .upsert_hook(admin.request(UpsertHookRequest { hook: Some(hook) }))
        .await?;
    Ok(credentials)
}

/// AdminService as the operator.
struct Admin {
    client: AdminServiceClient<Channel>,
    authorization: AsciiMetadataValue,
}

impl Admin {
    fn new(channel: Channel, admin_key: &str) -> anyhow::Result<Admin> {
        Ok(Admin {
            client: AdminServiceClient::new(channel),
            authorization: format!("Bearer {admin_key}").parse()?,
        })
    }

    fn request<T>(&self, message: T) -> Request<T> {
        as_admin(message, &self.authorization)
    }

    /// Creates the studios `ids` with `users` users each, one live token per
    /// user; returns every user's credentials.
    async fn studios_with_users(
        &self,
        ids: &[String],
        users: usize,
    ) -> anyhow::Result<Vec<Credential>> {
        for id in ids {
            self.client
                .clone()
                .create_studio(self.request(CreateStudioRequest {
                    studio_id: id.clone(),
                    display_name: format!("Bench studio {id}"),
                }))
                .await?;
        }
        let pairs = ids.iter().flat_map(|s| (0..users).map(move |u| (s, u)));
        futures_util::stream::iter(pairs)
            .map(|(studio, user)| {
                let mut client = self.client.clone();
                let request = self.request(IssueUserTokenRequest {
                    studio_id: studio.clone(),
                    user_id: format!("user-{user:03}"),
                    ttl: None,
                });
                async move {
                    let secret = client.issue_user_token(request).await?.into_inner().secret;
                    Ok::<_, anyhow::Error>(Credential {
                        studio_id: studio.parse()?,
                        authorization: format!("Bearer {secret}").parse()?,
                    })
                }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .try_collect()
            .await
    }
}

fn as_admin<T>(message: T, authorization: &AsciiMetadataValue) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", authorization.clone());
    request
}

fn studio_id(index: usize) -> String {
    format!("bench-{index:03}")
}

/// What every load call shares: the connections and the credentials.
#[derive(Clone)]
pub struct Callers {
    channels: Arc<Vec<Channel>>,
    credentials: Arc<Vec<Credential>>,
    model: String,
}

impl Callers {
    pub fn new(channels: Vec<Channel>, credentials: Vec<Credential>, model: &str) -> Callers {
        assert!(!channels.is_empty() && !credentials.is_empty());
        Callers {
            channels: Arc::new(channels),
            credentials: Arc::new(credentials),
            model: model.to_string(),
        }
    }

    /// The same callers, calling another model.
    pub fn with_model(&self, model: &str) -> Callers {
        Callers {
            model: model.to_string(),
            ..self.clone()
        }
    }

    /// The same connections and model, for other users.
    pub fn with_credentials(&self, credentials: Vec<Credential>) -> Callers {
        assert!(!credentials.is_empty());
        Callers {
            credentials: Arc::new(credentials),
            ..self.clone()
        }
    }

    pub fn connections(&self) -> usize {
        self.channels.len()
    }

    fn channel(&self, caller: usize) -> Channel {
        self.channels[caller % self.channels.len()].clone()
    }

    fn client(&self, caller: usize) -> AiServiceClient<Channel> {
        AiServiceClient::new(self.channel(caller))
    }

    /// `message` with the metadata of the credential for call `seq`.
    fn request<T>(&self, seq: u64, message: T) -> Request<T> {
        let credential = &self.credentials[seq as usize % self.credentials.len()];
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        metadata.insert("x-studio-id", credential.studio_id.clone());
        metadata.insert("authorization", credential.authorization.clone());
        request
    }

    fn stream_request(&self, seq: u64) -> Request<StreamTextRequest> {
        self.request(
            seq,
            StreamTextRequest {
                model: self.model.clone(),
                messages: vec![user_message()],
                ..Default::default()
            },
        )
    }

    /// Opens `count` streams (at most `in_flight` opening at once) and
    /// returns them once City has answered each with its headers.
    pub async fn open_streams(
        &self,
        count: usize,
        in_flight: usize,
    ) -> anyhow::Result<Vec<Streaming<StreamTextResponse>>> {
        futures_util::stream::iter(0..count)
            .map(|i| {
                let mut client = self.client(i);
                let request = self.stream_request(i as u64);
                async move { Ok(client.stream_text(request).await?.into_inner()) }
            })
            .buffer_unordered(in_flight)
            .try_collect()
            .await
    }
}

fn user_message() -> Message {
    Message {
        role: Role::User as i32,
        content: PROMPT.into(),
    }
}

/// A unary `Text` call.
#[derive(Clone)]
pub struct TextCall(pub Callers);

impl Call for TextCall {
    async fn call(&self, caller: usize, seq: u64) -> CallResult {
        let request = self.0.request(
            seq,
            TextRequest {
                model: self.0.model.clone(),
                messages: vec![user_message()],
                ..Default::default()
            },
        );
        let answer = self.0.client(caller).text(request).await;
        answer.map(|_| None).map_err(|status| status.to_string())
    }
}

/// `grpc.health.v1.Health/Check`: City's gRPC stack (HTTP/2, tower layers)
/// with no auth and no gateway work — the floor under a `Text` call.
#[derive(Clone)]
pub struct HealthCall(pub Callers);

impl Call for HealthCall {
    async fn call(&self, caller: usize, _seq: u64) -> CallResult {
        let mut client = HealthClient::new(self.0.channel(caller));
        let answer = client.check(HealthCheckRequest::default()).await;
        answer.map(|_| None).map_err(|status| status.to_string())
    }
}

/// A whole `StreamText` call, recording its time to the first token.
#[derive(Clone)]
pub struct StreamCall(pub Callers);

impl Call for StreamCall {
    async fn call(&self, caller: usize, seq: u64) -> CallResult {
        let sent = Instant::now();
        let request = self.0.stream_request(seq);
        let status = |s: tonic::Status| s.to_string();
        let mut stream = self
            .0
            .client(caller)
            .stream_text(request)
            .await
            .map_err(status)?
            .into_inner();
        let mut first_token = None;
        while let Some(message) = stream.message().await.map_err(status)? {
            if first_token.is_none() && !message.delta.is_empty() {
                first_token = Some(sent.elapsed());
            }
        }
        first_token
            .map(Some)
            .ok_or_else(|| "a stream without tokens".to_string())
    }
}

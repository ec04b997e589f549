//! The end-to-end harness: a real City on 127.0.0.1:0 with a real SQLite
//! file in a temporary directory, and real gRPC clients.

pub mod pg;
pub mod process;
pub mod receiver;
pub mod req;

use std::net::SocketAddr;
use std::time::Duration;

use downcity::config::Config;
use downcity::proto::admin_service_client::AdminServiceClient;
use downcity::proto::ai_service_client::AiServiceClient;
use downcity::proto::{self, IssueUserTokenRequest};
use downcity::server::City;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// Adds the credentials City expects to every request.
#[derive(Clone)]
pub struct Credentials {
    pub studio_id: Option<String>,
    pub bearer: Option<String>,
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(studio) = &self.studio_id {
            request
                .metadata_mut()
                .insert("x-studio-id", studio.parse().unwrap());
        }
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
        }
        Ok(request)
    }
}

pub type Ai = AiServiceClient<InterceptedService<Channel, Credentials>>;
pub type Admin = AdminServiceClient<InterceptedService<Channel, Credentials>>;

pub struct TestCity {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestCity {
    pub async fn start() -> TestCity {
        Self::start_with(|_| {}).await
    }

    /// Starts City with a config adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestCity {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, adjust).await
    }

    /// Starts City on an existing data directory (to test restarts).
    pub async fn start_in(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestCity {
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            admin_key: Some(ADMIN_KEY.to_string()),
            ..Config::default()
        };
        config.server.shutdown_grace_secs = 10;
        adjust(&mut config);
        let city = City::start(config).await.expect("City starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(city.serve(listener, async move {
            let _ = signal.await;
        }));
        // The listener is bound before serving starts, so connecting cannot race.
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connects");
        TestCity {
            addr,
            dir,
            channel,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn admin(&self) -> Admin {
        self.admin_with(Some(ADMIN_KEY))
    }

    pub fn admin_with(&self, bearer: Option<&str>) -> Admin {
        AdminServiceClient::with_interceptor(
            self.channel(),
            Credentials {
                studio_id: None,
                bearer: bearer.map(str::to_string),
            },
        )
    }

    pub fn ai(&self, studio_id: &str, token: &str) -> Ai {
        self.ai_with(Some(studio_id), Some(token))
    }

    pub fn ai_with(&self, studio_id: Option<&str>, token: Option<&str>) -> Ai {
        AiServiceClient::with_interceptor(
            self.channel(),
            Credentials {
                studio_id: studio_id.map(str::to_string),
                bearer: token.map(str::to_string),
            },
        )
    }

    /// Creates a studio and returns a user token for `user_id` in it.
    pub async fn studio_with_user(&self, studio_id: &str, user_id: &str) -> String {
        let mut admin = self.admin();
        admin
            .create_studio(proto::CreateStudioRequest {
                studio_id: studio_id.into(),
                display_name: format!("Studio {studio_id}"),
            })
            .await
            .expect("create studio");
        self.token_for(studio_id, user_id).await
    }

    /// Issues a user token in an existing studio.
    pub async fn token_for(&self, studio_id: &str, user_id: &str) -> String {
        self.admin()
            .issue_user_token(IssueUserTokenRequest {
                studio_id: studio_id.into(),
                user_id: user_id.into(),
                ttl: None,
            })
            .await
            .expect("issue token")
            .into_inner()
            .secret
    }

    /// All usage rows, newest first (follows every page).
    pub async fn usage_rows(&self, filter: proto::UsageFilter) -> Vec<proto::UsageRecord> {
        self.usage_pages(filter, 1000)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Every page of the usage rows matching `filter`, at `page_size`.
    pub async fn usage_pages(
        &self,
        filter: proto::UsageFilter,
        page_size: i32,
    ) -> Vec<Vec<proto::UsageRecord>> {
        let mut admin = self.admin();
        let mut pages = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = admin
                .list_usage_records(proto::ListUsageRecordsRequest {
                    filter: Some(filter.clone()),
                    page_size,
                    page_token,
                })
                .await
                .expect("list usage")
                .into_inner();
            pages.push(page.records);
            if page.next_page_token.is_empty() {
                return pages;
            }
            page_token = page.next_page_token;
        }
    }

    /// Polls until `count` usage rows match `filter` (rows of streams are
    /// written by a background relay), for at most five seconds.
    pub async fn wait_for_rows(
        &self,
        filter: proto::UsageFilter,
        count: usize,
    ) -> Vec<proto::UsageRecord> {
        for _ in 0..500 {
            let rows = self.usage_rows(filter.clone()).await;
            if rows.len() >= count {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {count} usage rows after 5 s");
    }

    /// Graceful shutdown; returns the data directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.signal_stop();
        self.stopped().await
    }

    /// Starts the shutdown (as SIGTERM does) without waiting for it.
    pub fn signal_stop(&mut self) {
        let _ = self.shutdown.take().expect("not stopped yet").send(());
    }

    /// Waits for a shutdown begun with `signal_stop`; returns the data directory.
    pub async fn stopped(mut self) -> tempfile::TempDir {
        self.task
            .take()
            .unwrap()
            .await
            .unwrap()
            .expect("City stops cleanly");
        self.dir
    }
}

pub fn user_message(content: &str) -> proto::Message {
    proto::Message {
        role: proto::Role::User as i32,
        content: content.into(),
    }
}

pub fn text_request(content: &str) -> proto::TextRequest {
    proto::TextRequest {
        messages: vec![user_message(content)],
        ..Default::default()
    }
}

/// Asserts a status's code and ErrorInfo reason (and its domain).
#[track_caller]
pub fn assert_error(status: &Status, code: Code, expected_reason: &str) {
    use tonic_types::StatusExt;
    assert_eq!(status.code(), code, "{status:?}");
    let info = status.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.reason, expected_reason, "{status:?}");
    assert_eq!(info.domain, "downcity");
}

/// Asserts that a call failed with `code` and ErrorInfo `expected_reason`
/// (see `assert_error`) and returns its status for further checks.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: Code,
    expected_reason: &str,
) -> Status {
    let status = result.unwrap_err();
    assert_error(&status, code, expected_reason);
    status
}

/// `assert_refused` with PERMISSION_DENIED.
#[track_caller]
pub fn assert_denied<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> Status {
    assert_refused(result, Code::PermissionDenied, "PERMISSION_DENIED")
}

/// `assert_refused` with NOT_FOUND.
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<tonic::Response<T>, Status>) -> Status {
    assert_refused(result, Code::NotFound, "NOT_FOUND")
}

/// `assert_refused` with INVALID_ARGUMENT.
#[track_caller]
pub fn assert_invalid_argument<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
) -> Status {
    assert_refused(result, Code::InvalidArgument, "INVALID_ARGUMENT")
}

/// The field names of a status's BadRequest violations.
pub fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// The UTC calendar day (YYYY-MM-DD) of a Unix time in milliseconds, by the
/// days-to-civil algorithm.
pub fn utc_day(unix_ms: i64) -> String {
    let z = unix_ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// A usage filter that matches one studio's rows.
pub fn studio_filter(studio_id: &str) -> proto::UsageFilter {
    proto::UsageFilter {
        studio_id: studio_id.into(),
        ..Default::default()
    }
}

/// An enabled model on the built-in `mock` provider with these mock options;
/// set anything else with struct update syntax.
pub fn mock_model(id: &str, pathway: proto::Pathway, options: &[(&str, &str)]) -> proto::Model {
    proto::Model {
        id: id.into(),
        display_name: format!("Model {id}"),
        provider_id: "mock".into(),
        upstream_model: id.into(),
        pathway: pathway as i32,
        enabled: Some(true),
        options: options
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// A text model on the built-in `mock` provider (see `mock_model`).
pub fn text_model(id: &str, options: &[(&str, &str)]) -> proto::Model {
    mock_model(id, proto::Pathway::Text, options)
}

impl TestCity {
    /// Starts a fresh City with one studio and returns a user token in it.
    pub async fn start_with_user(studio_id: &str, user_id: &str) -> (TestCity, String) {
        let city = TestCity::start().await;
        let token = city.studio_with_user(studio_id, user_id).await;
        (city, token)
    }

    /// Starts a fresh City with one studio and `model` in the catalog;
    /// returns a user token in the studio.
    pub async fn start_with_model(
        studio_id: &str,
        user_id: &str,
        model: proto::Model,
    ) -> (TestCity, String) {
        let (city, token) = TestCity::start_with_user(studio_id, user_id).await;
        city.upsert_model(model).await;
        (city, token)
    }

    /// Creates or replaces a catalog model through AdminService.
    pub async fn upsert_model(&self, model: proto::Model) -> proto::Model {
        self.admin()
            .upsert_model(proto::UpsertModelRequest { model: Some(model) })
            .await
            .expect("upsert model")
            .into_inner()
            .model
            .expect("the stored model")
    }
}

/// A reqwest builder for the tests' own HTTP calls. reqwest is built without
/// a TLS provider of its own (City hands it one: src/outbound.rs), and a
/// builder panics without one, so the tests install ring process-wide first.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

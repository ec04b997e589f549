//! The admin CLI's gRPC plumbing: connecting, authenticating, turning a
//! `Status` into one readable line, and following `next_page_token`.

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tonic_types::StatusExt;

use super::render::code_name;
use crate::proto;
use crate::proto::admin_service_client::AdminServiceClient;

/// How long establishing the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest page the server accepts.
const MAX_PAGE_SIZE: u32 = 1000;

/// An `AdminService` client whose every call carries the bearer key.
pub(super) type Client = AdminServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <key>` to every request.
#[derive(Clone)]
pub(super) struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// The header for `key`; `None` or blank is an error naming the env var.
    pub(super) fn new(key: Option<&str>) -> Result<Self> {
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
pub(super) fn endpoint_uri(addr: &str) -> String {
    let addr = addr.trim();
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

/// Connects to the City at `addr`.
pub(super) async fn connect(addr: &str, bearer: Bearer) -> Result<Client> {
    let uri = endpoint_uri(addr);
    let endpoint = Endpoint::from_shared(uri.clone())
        .with_context(|| format!("invalid address `{addr}`"))?
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
pub(super) async fn unary<T>(call: impl Future<Output = Result<Response<T>, Status>>) -> Result<T> {
    call.await
        .map(Response::into_inner)
        .map_err(|status| anyhow!(status_line(&status)))
}

/// `<CODE>: <message> (reason: <ErrorInfo reason>)`, without the reason when
/// the status carries no ErrorInfo.
pub(super) fn status_line(status: &Status) -> String {
    let code = code_name(status.code());
    let message = status.message();
    match status.get_error_details().error_info() {
        Some(info) => format!("{code}: {message} (reason: {})", info.reason),
        None => format!("{code}: {message}"),
    }
}

/// How many items a list command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub(super) struct PageArgs {
    /// Most items to print, fetched in pages of at most this many.
    #[arg(
        long,
        visible_alias = "limit",
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(super) page_size: u32,
    /// Print every item, following next_page_token to the last page.
    #[arg(long)]
    pub(super) all: bool,
}

/// A request message with `page_size` and `page_token`.
pub(super) trait PagedRequest: Clone {
    fn set_page(&mut self, page_size: i32, page_token: String);
}

/// A response message with one repeated field and `next_page_token`.
pub(super) trait PagedResponse {
    type Item;
    /// The name of the repeated field, as in the proto.
    const FIELD: &'static str;
    fn into_page(self) -> (Vec<Self::Item>, String);
}

macro_rules! paged {
    ($($request:ident => $response:ident { $field:ident: $item:ident })*) => {$(
        impl PagedRequest for proto::$request {
            fn set_page(&mut self, page_size: i32, page_token: String) {
                self.page_size = page_size;
                self.page_token = page_token;
            }
        }

        impl PagedResponse for proto::$response {
            type Item = proto::$item;
            const FIELD: &'static str = stringify!($field);
            fn into_page(self) -> (Vec<proto::$item>, String) {
                (self.$field, self.next_page_token)
            }
        }
    )*};
}

paged! {
    ListStudiosRequest => ListStudiosResponse { studios: Studio }
    ListStudioKeysRequest => ListStudioKeysResponse { keys: StudioKey }
    ListUserTokensRequest => ListUserTokensResponse { tokens: UserToken }
    ListProvidersRequest => ListProvidersResponse { providers: Provider }
    ListCatalogModelsRequest => ListCatalogModelsResponse { models: Model }
    ListUsageRecordsRequest => ListUsageRecordsResponse { records: UsageRecord }
    AggregateUsageRequest => AggregateUsageResponse { rows: UsageAggregate }
    ListHooksRequest => ListHooksResponse { hooks: Hook }
    ListHookDeliveriesRequest => ListHookDeliveriesResponse { deliveries: HookDelivery }
}

/// The items of one or more pages, and the token of the page after them.
#[derive(Debug)]
pub(super) struct Listing<T> {
    /// The name of the repeated field, as in the proto.
    pub(super) field: &'static str,
    pub(super) items: Vec<T>,
    /// Empty when the last page was reached.
    pub(super) next_page_token: String,
}

/// Calls `rpc` with `request` page after page: up to `page.page_size` items,
/// or every item with `page.all`.
pub(super) async fn collect<Req, Resp>(
    page: PageArgs,
    mut request: Req,
    mut rpc: impl AsyncFnMut(Req) -> Result<Response<Resp>, Status>,
) -> Result<Listing<Resp::Item>>
where
    Req: PagedRequest,
    Resp: PagedResponse,
{
    let limit = (!page.all).then_some(page.page_size as usize);
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let wanted = limit.map_or(page.page_size as usize, |l| l - items.len());
        let size = wanted.min(page.page_size.min(MAX_PAGE_SIZE) as usize);
        request.set_page(size as i32, token.clone());
        let (mut got, next) = unary(rpc(request.clone())).await?.into_page();
        items.append(&mut got);
        if !next.is_empty() && next == token {
            bail!("the server returned page token `{next}` twice");
        }
        token = next;
        if token.is_empty() || limit.is_some_and(|l| items.len() >= l) {
            break;
        }
    }
    Ok(Listing {
        field: Resp::FIELD,
        items,
        next_page_token: token,
    })
}

/// Calls `rpc` with `request` for every page, in pages of the largest size
/// the server accepts, and hands each page to `each` as it arrives.
pub(super) async fn for_each_page<Req, Resp>(
    mut request: Req,
    mut rpc: impl AsyncFnMut(Req) -> Result<Response<Resp>, Status>,
    mut each: impl FnMut(Vec<Resp::Item>) -> Result<()>,
) -> Result<()>
where
    Req: PagedRequest,
    Resp: PagedResponse,
{
    let mut token = String::new();
    loop {
        request.set_page(MAX_PAGE_SIZE as i32, token.clone());
        let (items, next) = unary(rpc(request.clone())).await?.into_page();
        each(items)?;
        if !next.is_empty() && next == token {
            bail!("the server returned page token `{next}` twice");
        }
        if next.is_empty() {
            return Ok(());
        }
        token = next;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic::Code;
    use tonic_types::ErrorDetails;

    use super::*;
    use crate::proto::{ListStudiosRequest, ListStudiosResponse, Studio};

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

    #[test]
    fn status_lines_carry_code_message_and_reason() {
        let details = ErrorDetails::with_error_info("STUDIO_NOT_FOUND", "downcity", HashMap::new());
        let status =
            Status::with_error_details(Code::NotFound, "studio `x` does not exist", details);
        assert_eq!(
            status_line(&status),
            "NOT_FOUND: studio `x` does not exist (reason: STUDIO_NOT_FOUND)"
        );
        let plain = Status::unavailable("down");
        assert_eq!(status_line(&plain), "UNAVAILABLE: down");
    }

    /// A fake ListStudios over `total` studios that serves at most `cap` per page.
    fn fake_list(
        total: usize,
        cap: usize,
        calls: &mut Vec<(i32, String)>,
    ) -> impl AsyncFnMut(ListStudiosRequest) -> Result<Response<ListStudiosResponse>, Status> {
        async move |request: ListStudiosRequest| {
            calls.push((request.page_size, request.page_token.clone()));
            let start: usize = request.page_token.parse().unwrap_or(0);
            let end = (start + (request.page_size as usize).min(cap)).min(total);
            let studios = (start..end)
                .map(|i| Studio {
                    id: format!("s{i}"),
                    ..Default::default()
                })
                .collect();
            let next_page_token = if end < total {
                end.to_string()
            } else {
                String::new()
            };
            Ok(Response::new(ListStudiosResponse {
                studios,
                next_page_token,
            }))
        }
    }

    fn page(page_size: u32, all: bool) -> PageArgs {
        PageArgs { page_size, all }
    }

    #[tokio::test]
    async fn collect_stops_at_the_page_size() {
        let mut calls = Vec::new();
        let listing = collect(
            page(3, false),
            ListStudiosRequest::default(),
            fake_list(10, 2, &mut calls),
        )
        .await
        .unwrap();
        assert_eq!(listing.field, "studios");
        assert_eq!(listing.items.len(), 3);
        assert_eq!(listing.next_page_token, "3");
        assert_eq!(calls, [(3, String::new()), (1, "2".to_owned())]);
    }

    #[tokio::test]
    async fn collect_follows_every_page_with_all() {
        let mut calls = Vec::new();
        let listing = collect(
            page(4, true),
            ListStudiosRequest::default(),
            fake_list(10, 100, &mut calls),
        )
        .await
        .unwrap();
        let ids: Vec<_> = listing.items.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]
        );
        assert!(listing.next_page_token.is_empty());
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|(size, _)| *size == 4));
    }

    #[tokio::test]
    async fn collect_clamps_requests_to_the_server_maximum() {
        let mut calls = Vec::new();
        let listing = collect(
            page(2500, false),
            ListStudiosRequest::default(),
            fake_list(5, 1000, &mut calls),
        )
        .await
        .unwrap();
        assert_eq!(listing.items.len(), 5);
        assert_eq!(calls, [(1000, String::new())]);
    }

    #[tokio::test]
    async fn collect_reports_a_refused_page() {
        let refused =
            async |_: ListStudiosRequest| -> Result<Response<ListStudiosResponse>, Status> {
                Err(Status::permission_denied("no"))
            };
        let err = collect(page(5, false), ListStudiosRequest::default(), refused)
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "PERMISSION_DENIED: no");
    }

    #[tokio::test]
    async fn collect_refuses_a_repeated_token() {
        let stuck = async |_: ListStudiosRequest| {
            Ok(Response::new(ListStudiosResponse {
                studios: Vec::new(),
                next_page_token: "again".to_owned(),
            }))
        };
        let err = collect(page(5, true), ListStudiosRequest::default(), stuck)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[tokio::test]
    async fn for_each_page_follows_every_page_in_order() {
        let mut calls = Vec::new();
        let mut pages = Vec::new();
        for_each_page(
            ListStudiosRequest::default(),
            fake_list(2500, 1000, &mut calls),
            |studios| {
                pages.push(studios.len());
                Ok(())
            },
        )
        .await
        .unwrap();
        assert_eq!(pages, [1000, 1000, 500]);
        let tokens: Vec<_> = calls.iter().map(|(_, token)| token.as_str()).collect();
        assert_eq!(tokens, ["", "1000", "2000"]);
        assert!(calls.iter().all(|(size, _)| *size == 1000));
    }

    #[tokio::test]
    async fn for_each_page_stops_at_the_first_failure() {
        let mut calls = Vec::new();
        let mut seen = 0;
        let err = for_each_page(
            ListStudiosRequest::default(),
            fake_list(2500, 1000, &mut calls),
            |_| {
                seen += 1;
                Err(anyhow!("disk full"))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!((seen, calls.len()), (1, 1));
    }
}

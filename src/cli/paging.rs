//! Following `next_page_token`: a list command's pages, up to `--page-size`
//! items or every item with `--all`.

use anyhow::{Result, bail};
use downcity::proto;
use tonic::{Response, Status};

use super::connection::unary;

/// The largest page the server accepts.
const MAX_PAGE_SIZE: u32 = 1000;

/// How many items a list command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub(crate) struct PageArgs {
    /// Most items to print, fetched in pages of at most this many.
    #[arg(
        long,
        visible_alias = "limit",
        value_name = "N",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub(crate) page_size: u32,
    /// Print every item, following next_page_token to the last page.
    #[arg(long)]
    pub(crate) all: bool,
}

/// A request message with `page_size` and `page_token`.
pub(crate) trait PagedRequest: Clone {
    fn set_page(&mut self, page_size: i32, page_token: String);
}

/// A response message with one repeated field and `next_page_token`.
pub(crate) trait PagedResponse {
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
pub(crate) struct Listing<T> {
    /// The name of the repeated field, as in the proto.
    pub(crate) field: &'static str,
    pub(crate) items: Vec<T>,
    /// Empty when the last page was reached.
    pub(crate) next_page_token: String,
}

/// Calls `rpc` with `request` page after page: up to `page.page_size` items,
/// or every item with `page.all`.
pub(crate) async fn collect<Req, Resp>(
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
pub(crate) async fn for_each_page<Req, Resp>(
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
    use anyhow::anyhow;
    use downcity::proto::{ListStudiosRequest, ListStudiosResponse, Studio};

    use super::*;

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

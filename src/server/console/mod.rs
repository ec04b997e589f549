//! The City console at `/console/`: the files `console/` builds into
//! `console/dist/` (committed; see the README's "Console"), embedded in the
//! binary and served with a strict Content-Security-Policy. The page calls
//! AdminService over gRPC-Web on the same origin, so it is mounted on the
//! listener that serves AdminService: the admin listener when there is one.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use tonic::service::Routes;

use super::offer::Offer;

mod calls;
pub use calls::SameOriginLayer;

/// Only City itself: no inline script or style, no other origin, no frames.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file of the console.
struct Asset {
    /// The path under `/console/` ("" is the page itself).
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    Asset {
        path: "",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../../console/dist/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../console/dist/app.js"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../../console/dist/app.css"),
    },
];

/// The console page's calls on a listener that serves `offer`.
pub fn same_origin(offer: Offer) -> SameOriginLayer {
    SameOriginLayer {
        enabled: offer != Offer::Ai,
    }
}

/// `routes` with the console beside them when the listener serves
/// AdminService (`offer`), else `routes` as they are.
pub fn beside_admin(offer: Offer, routes: Routes) -> Routes {
    match offer {
        Offer::Ai => routes,
        Offer::Everything | Offer::Admin => Routes::from(routes.into_axum_router().merge(router())),
    }
}

fn router() -> Router {
    let mut router = Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/{*rest}", get(not_found));
    for (index, asset) in ASSETS.iter().enumerate() {
        let path = format!("/console/{}", asset.path);
        router = router.route(&path, get(move |headers: HeaderMap| serve(index, headers)));
    }
    router
}

async fn serve(index: usize, request: HeaderMap) -> Response {
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    // No fingerprint in the names: browsers revalidate each time, and an
    // unchanged file costs a 304.
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|value| value.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Response::new(Body::from(asset.body))
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    guard(headers);
    response
}

async fn not_found() -> Response {
    let mut response = (StatusCode::NOT_FOUND, "not found\n").into_response();
    guard(response.headers_mut());
    response
}

/// The headers every console response carries.
fn guard(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

/// A strong ETag per asset: a hash of its bytes, computed once.
fn etags() -> &'static [HeaderValue; 3] {
    static ETAGS: OnceLock<[HeaderValue; 3]> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS.each_ref().map(|asset| {
            let digest = Sha256::digest(asset.body);
            HeaderValue::try_from(format!("\"{}\"", hex::encode(&digest[..12])))
                .expect("hex is a valid header value")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_the_embedded_files() {
        let page = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(page.contains(r#"src="app.js""#), "{page}");
        assert!(page.contains(r#"href="app.css""#), "{page}");
        // Nothing inline for the CSP to refuse, nothing from elsewhere.
        assert!(!page.contains("<style"), "{page}");
        assert!(!page.contains("http"), "{page}");
    }
}

//! The console at `/console/`: its files with the Content-Security-Policy,
//! content types and cache headers, the redirect from `/console`; its own
//! gRPC-Web calls (same origin) skip CORS and the origin check; served on
//! the admin listener alone when there is one.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use downcity::proto;
use prost::Message;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};

use crate::common::{ADMIN_KEY, TestCity};
use crate::transport::{Ca, TlsCity};

const CSP: &str = "default-src 'self'; connect-src 'self'; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// HTTP/1.1, as a browser on a plain port; redirects are not followed.
fn browser() -> reqwest::Client {
    crate::common::http_client()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(addr: SocketAddr, path: &str, headers: HeaderMap) -> reqwest::Response {
    browser()
        .get(format!("http://{addr}{path}"))
        .headers(headers)
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()))
}

/// Checks that `path` is served as `content_type` with the console's headers.
async fn assert_served(addr: SocketAddr, path: &str, content_type: &str) -> Bytes {
    let response = get(addr, path, HeaderMap::new()).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    assert_eq!(
        header(&response, header::CONTENT_TYPE),
        content_type,
        "{path}"
    );
    assert_eq!(header(&response, header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(header(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(&response, header::CACHE_CONTROL), "no-cache");
    let etag = header(&response, header::ETAG).to_string();
    let body = response.bytes().await.unwrap();
    assert!(!body.is_empty(), "{path}");
    // Unchanged: a 304 without the body.
    let mut conditional = HeaderMap::new();
    conditional.insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    let again = get(addr, path, conditional).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    assert_eq!(header(&again, header::ETAG), etag);
    assert!(again.bytes().await.unwrap().is_empty());
    body
}

/// Checks the whole console on `addr`.
async fn assert_console(addr: SocketAddr) {
    let redirect = get(addr, "/console", HeaderMap::new()).await;
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&redirect, header::LOCATION), "/console/");

    let page = assert_served(addr, "/console/", "text/html; charset=utf-8").await;
    let page = String::from_utf8(page.to_vec()).unwrap();
    assert!(
        page.contains(r#"<script type="module" src="app.js">"#),
        "{page}"
    );
    assert_served(addr, "/console/app.js", "text/javascript; charset=utf-8").await;
    assert_served(addr, "/console/app.css", "text/css; charset=utf-8").await;

    let missing = get(addr, "/console/nothing-here.js", HeaderMap::new()).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&missing, header::CONTENT_SECURITY_POLICY), CSP);
}

/// A ListStudios over gRPC-Web (binary) from a page at `origin`.
async fn list_studios_from(
    addr: SocketAddr,
    origin: &str,
) -> (HeaderMap, Result<proto::ListStudiosResponse, String>) {
    let request = proto::ListStudiosRequest::default().encode_to_vec();
    let mut body = BytesMut::new();
    body.put_u8(0);
    body.put_u32(request.len() as u32);
    body.put_slice(&request);
    let response = browser()
        .post(format!(
            "http://{addr}/downcity.v1.AdminService/ListStudios"
        ))
        .header(header::CONTENT_TYPE, "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header(header::ORIGIN, origin)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .body(body.freeze())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let mut body = response.bytes().await.unwrap();
    let mut message = None;
    let mut status = headers
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    // Frames: a flag byte (0x80 = trailers), a length, the bytes.
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let frame = body.split_to(len);
        if flag & 0x80 == 0 {
            message = Some(proto::ListStudiosResponse::decode(frame).unwrap());
        } else {
            let trailers = String::from_utf8(frame.to_vec()).unwrap();
            status = trailers
                .lines()
                .find_map(|l| l.strip_prefix("grpc-status:"))
                .map(|s| s.trim().to_string());
        }
    }
    // An error is its gRPC status code.
    let answer = match (status.as_deref(), message) {
        (Some("0"), Some(message)) => Ok(message),
        _ => Err(status.unwrap_or_default()),
    };
    (headers, answer)
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_csp_on_the_one_port() {
    let city = TestCity::start().await;
    assert_console(city.addr).await;
    city.stop().await;
}

#[tokio::test]
async fn the_consoles_own_calls_skip_cors_and_the_origin_check() {
    let city = TestCity::start().await;
    let own = format!("http://{}", city.addr);
    let (headers, answer) = list_studios_from(city.addr, &own).await;
    let studios = answer.expect("a same-origin call succeeds");
    assert!(studios.studios.is_empty());
    assert!(
        !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
        "{headers:?}"
    );
    // Another page with the same key is still refused: only the console's
    // own origin is exempt.
    let (_, answer) = list_studios_from(city.addr, "http://127.0.0.1:1").await;
    assert_eq!(answer.unwrap_err(), "7", "PERMISSION_DENIED");
    city.stop().await;
}

#[tokio::test]
async fn with_an_admin_listener_the_console_is_there_only() {
    let ca = Ca::new("console ca");
    let city = TlsCity::start(&ca.server(1), |config, _| {
        config.tls.cert_file = None;
        config.tls.key_file = None;
        config.server.admin_listen = Some("127.0.0.1:0".into());
    })
    .await;
    let admin_addr = city.admin_addr.unwrap();
    assert_console(admin_addr).await;
    let (_, answer) = list_studios_from(admin_addr, &format!("http://{admin_addr}")).await;
    answer.expect("the console's calls work on the admin listener");

    // The main port has no console: gRPC's own answer for an unknown path.
    let main = get(city.addr, "/console/", HeaderMap::new()).await;
    assert!(
        main.headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .is_none()
    );
    assert_eq!(
        main.headers().get("grpc-status").unwrap(),
        "12",
        "UNIMPLEMENTED"
    );
    city.stop().await;
}

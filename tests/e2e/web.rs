//! Browsers on the main port, at the HTTP level: CORS preflights and actual
//! responses, gRPC-Web (binary and text, unary and streaming, HTTP/1.1 and
//! HTTP/2) through a real socket with reqwest, per-studio and City-wide
//! origins (ORIGIN_NOT_ALLOWED leaves no usage row), native gRPC untouched,
//! `[web] enabled = false`, and reflection of `google/rpc/error_details.proto`.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, Bytes};
use downcity::proto;
use futures_util::StreamExt;
use prost::Message;
use reqwest::header::HeaderMap;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::{TestCity, assert_error, studio_filter, text_request};

const STUDIO_ORIGIN: &str = "http://studio-page.example:8080";
const CITY_ORIGIN: &str = "https://city-wide.example";
const STRANGER: &str = "https://stranger.example";
const TEXT: &str = "/downcity.v1.AIService/Text";
const STREAM_TEXT: &str = "/downcity.v1.AIService/StreamText";

/// A City allowing CITY_ORIGIN for all, studio `web` allowing
/// STUDIO_ORIGIN, and studio `plain` allowing none of its own.
struct WebCity {
    city: TestCity,
    web_token: String,
    plain_token: String,
}

async fn web_city(enabled: bool) -> WebCity {
    let city = TestCity::start_with(|config| {
        config.web.enabled = enabled;
        config.web.allowed_origins = vec![CITY_ORIGIN.to_string()];
    })
    .await;
    let web_token = city.studio_with_user("web", "alice").await;
    let plain_token = city.studio_with_user("plain", "bob").await;
    let studio = city
        .admin()
        .update_studio(proto::UpdateStudioRequest {
            studio_id: "web".into(),
            // Made canonical: lowercase host, no trailing slash.
            allowed_origins: Some(proto::OriginList {
                origins: vec!["http://Studio-Page.example:8080/".into()],
            }),
            ..Default::default()
        })
        .await
        .expect("set origins")
        .into_inner()
        .studio
        .unwrap();
    assert_eq!(studio.allowed_origins, [STUDIO_ORIGIN]);
    WebCity {
        city,
        web_token,
        plain_token,
    }
}

/// What a gRPC-Web call answered: HTTP status and headers, the messages,
/// and the gRPC status (from the trailer frame, or the headers when the
/// answer was trailers-only).
struct WebReply {
    http_status: u16,
    headers: HeaderMap,
    messages: Vec<Bytes>,
    /// How many chunks the body arrived in.
    chunks: usize,
    status: tonic::Status,
}

struct WebCall<'a> {
    path: &'a str,
    studio: &'a str,
    token: &'a str,
    origin: Option<&'a str>,
    text: bool,
    http2: bool,
}

impl<'a> WebCall<'a> {
    fn new(path: &'a str, studio: &'a str, token: &'a str) -> Self {
        WebCall {
            path,
            studio,
            token,
            origin: None,
            text: false,
            http2: false,
        }
    }

    fn from(mut self, origin: &'a str) -> Self {
        self.origin = Some(origin);
        self
    }

    async fn send(&self, city: &TestCity, message: &impl Message) -> WebReply {
        let mut framed = vec![0u8];
        let encoded = message.encode_to_vec();
        framed.extend((encoded.len() as u32).to_be_bytes());
        framed.extend(encoded);
        let (content_type, body) = if self.text {
            (
                "application/grpc-web-text",
                STANDARD.encode(framed).into_bytes(),
            )
        } else {
            ("application/grpc-web+proto", framed)
        };
        let client = if self.http2 {
            crate::common::http_client().http2_prior_knowledge()
        } else {
            crate::common::http_client().http1_only()
        }
        .build()
        .unwrap();
        let mut request = client
            .post(format!("http://{}{}", city.addr, self.path))
            .header("content-type", content_type)
            // As grpc-web's text mode asks for a text answer.
            .header("accept", content_type)
            .header("x-grpc-web", "1")
            .header("x-studio-id", self.studio)
            .header("authorization", format!("Bearer {}", self.token))
            .body(body);
        if let Some(origin) = self.origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.expect("HTTP answer");
        let expected_version = if self.http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(response.version(), expected_version);
        let http_status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut chunks = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.expect("body chunk"));
            chunks += 1;
        }
        if self.text {
            body = decode_text_body(&body);
        }
        let (messages, trailers) = frames(Bytes::from(body));
        let status = tonic::Status::from_header_map(&trailers)
            .or_else(|| tonic::Status::from_header_map(&headers))
            .expect("a grpc-status");
        WebReply {
            http_status,
            headers,
            messages,
            chunks,
            status,
        }
    }
}

/// gRPC-Web text bodies are base64 pieces, each padded on its own; every
/// 4-character quantum decodes on its own.
fn decode_text_body(body: &[u8]) -> Vec<u8> {
    assert_eq!(body.len() % 4, 0, "base64 quanta");
    body.chunks(4)
        .flat_map(|quantum| STANDARD.decode(quantum).expect("base64"))
        .collect()
}

/// Splits a gRPC-Web body into its messages and its trailers.
fn frames(mut body: Bytes) -> (Vec<Bytes>, HeaderMap) {
    let mut messages = Vec::new();
    let mut trailers = HeaderMap::new();
    while body.has_remaining() {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let payload = body.split_to(len);
        if flag & 0x80 == 0 {
            messages.push(payload);
            continue;
        }
        for line in std::str::from_utf8(&payload).unwrap().split("\r\n") {
            if let Some((name, value)) = line.split_once(':') {
                let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes());
                trailers.insert(name.unwrap(), value.trim().parse().unwrap());
            }
        }
    }
    (messages, trailers)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// The comma-separated items of a header, lowercase.
fn items(headers: &HeaderMap, name: &str) -> Vec<String> {
    header(headers, name)
        .unwrap_or_default()
        .split(',')
        .map(|item| item.trim().to_ascii_lowercase())
        .filter(|item| !item.is_empty())
        .collect()
}

async fn preflight(city: &TestCity, origin: &str) -> reqwest::Response {
    crate::common::http_client()
        .http1_only()
        .build()
        .unwrap()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}{TEXT}", city.addr),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,x-studio-id,x-user-agent",
        )
        .send()
        .await
        .expect("preflight answer")
}

#[tokio::test]
async fn preflights_answer_origins_city_or_some_studio_allows() {
    let web = web_city(true).await;
    for origin in [STUDIO_ORIGIN, CITY_ORIGIN] {
        let response = preflight(&web.city, origin).await;
        assert!(response.status().is_success(), "{}", response.status());
        let headers = response.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), Some(origin));
        assert!(items(headers, "access-control-allow-methods").contains(&"post".into()));
        let allowed = items(headers, "access-control-allow-headers");
        for needed in [
            "authorization",
            "content-type",
            "grpc-timeout",
            "traceparent",
            "x-grpc-web",
            "x-studio-id",
            "x-user-agent",
        ] {
            assert!(
                allowed.contains(&needed.to_string()),
                "{needed}: {allowed:?}"
            );
        }
        assert!(header(headers, "access-control-max-age").is_some());
        assert!(items(headers, "vary").contains(&"origin".into()));
    }
    let refused = preflight(&web.city, STRANGER).await;
    assert_eq!(
        header(refused.headers(), "access-control-allow-origin"),
        None
    );
    web.city.stop().await;
}

#[tokio::test]
async fn grpc_web_unary_over_http1_with_cors_headers() {
    let web = web_city(true).await;
    for text in [false, true] {
        let call = WebCall {
            text,
            ..WebCall::new(TEXT, "web", &web.web_token).from(STUDIO_ORIGIN)
        };
        let reply = call.send(&web.city, &text_request("hello")).await;
        assert_eq!(reply.http_status, 200);
        assert_eq!(reply.status.code(), Code::Ok, "{:?}", reply.status);
        let expected_type = if text {
            "application/grpc-web-text+proto"
        } else {
            "application/grpc-web+proto"
        };
        assert_eq!(header(&reply.headers, "content-type"), Some(expected_type));
        assert_eq!(
            header(&reply.headers, "access-control-allow-origin"),
            Some(STUDIO_ORIGIN)
        );
        let exposed = items(&reply.headers, "access-control-expose-headers");
        for needed in [
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "x-request-id",
        ] {
            assert!(
                exposed.contains(&needed.to_string()),
                "{needed}: {exposed:?}"
            );
        }
        assert_eq!(reply.messages.len(), 1);
        let answer = proto::TextResponse::decode(reply.messages[0].clone()).unwrap();
        assert!(!answer.text.is_empty());
    }
    let rows = web.city.wait_for_rows(studio_filter("web"), 2).await;
    assert_eq!(rows.len(), 2);
    web.city.stop().await;
}

#[tokio::test]
async fn grpc_web_streams_piece_by_piece_over_http1_and_http2() {
    let web = web_city(true).await;
    // A pause before each piece, so pieces cannot arrive as one chunk.
    let slow = crate::common::text_model("slow", &[("chunk_delay_ms", "20")]);
    web.city.upsert_model(slow).await;
    let request = proto::StreamTextRequest {
        model: "slow".into(),
        messages: text_request("one two three four five").messages,
        ..Default::default()
    };
    for http2 in [false, true] {
        let call = WebCall {
            http2,
            ..WebCall::new(STREAM_TEXT, "web", &web.web_token).from(STUDIO_ORIGIN)
        };
        let reply = call.send(&web.city, &request).await;
        assert_eq!(reply.status.code(), Code::Ok, "{:?}", reply.status);
        assert!(
            reply.messages.len() > 2,
            "{} messages",
            reply.messages.len()
        );
        assert!(reply.chunks > 1, "one body chunk: not streamed");
        let text: String = reply
            .messages
            .iter()
            .map(|m| proto::StreamTextResponse::decode(m.clone()).unwrap().delta)
            .collect();
        assert!(!text.is_empty());
    }
    web.city.stop().await;
}

#[tokio::test]
async fn an_origin_its_studio_does_not_allow_is_refused_without_a_row() {
    let web = web_city(true).await;
    // STUDIO_ORIGIN is studio `web`'s, not `plain`'s: refused, but the
    // page may read why (some studio allows it, so CORS lets it through).
    let call = WebCall::new(TEXT, "plain", &web.plain_token).from(STUDIO_ORIGIN);
    let reply = call.send(&web.city, &text_request("hi")).await;
    assert_error(&reply.status, Code::PermissionDenied, "ORIGIN_NOT_ALLOWED");
    let info = reply.status.get_details_error_info().unwrap();
    assert_eq!(
        info.metadata.get("origin").map(String::as_str),
        Some(STUDIO_ORIGIN)
    );
    assert_eq!(
        header(&reply.headers, "access-control-allow-origin"),
        Some(STUDIO_ORIGIN)
    );
    // An origin nobody allows: refused too, and no CORS header at all.
    let call = WebCall::new(TEXT, "web", &web.web_token).from(STRANGER);
    let reply = call.send(&web.city, &text_request("hi")).await;
    assert_error(&reply.status, Code::PermissionDenied, "ORIGIN_NOT_ALLOWED");
    assert_eq!(header(&reply.headers, "access-control-allow-origin"), None);

    // The City-wide origin serves every studio; no Origin at all is a server.
    let call = WebCall::new(TEXT, "plain", &web.plain_token).from(CITY_ORIGIN);
    let reply = call.send(&web.city, &text_request("hi")).await;
    assert_eq!(reply.status.code(), Code::Ok, "{:?}", reply.status);
    let call = WebCall::new(TEXT, "plain", &web.plain_token);
    let reply = call.send(&web.city, &text_request("hi")).await;
    assert_eq!(reply.status.code(), Code::Ok, "{:?}", reply.status);
    let rows = web.city.wait_for_rows(studio_filter("plain"), 2).await;
    assert_eq!(rows.len(), 2, "the refused calls left rows");
    assert!(web.city.usage_rows(studio_filter("web")).await.is_empty());
    web.city.stop().await;
}

#[tokio::test]
async fn admin_calls_from_a_page_need_a_city_wide_origin() {
    let web = web_city(true).await;
    let request = || {
        let mut request = tonic::Request::new(proto::ListStudiosRequest::default());
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", crate::common::ADMIN_KEY)
                .parse()
                .unwrap(),
        );
        request
    };
    let mut admin = proto::admin_service_client::AdminServiceClient::new(web.city.channel());
    let mut from_studio_page = request();
    from_studio_page
        .metadata_mut()
        .insert("origin", STUDIO_ORIGIN.parse().unwrap());
    let err = admin.list_studios(from_studio_page).await.unwrap_err();
    assert_error(&err, Code::PermissionDenied, "ORIGIN_NOT_ALLOWED");
    let mut from_city_page = request();
    from_city_page
        .metadata_mut()
        .insert("origin", CITY_ORIGIN.parse().unwrap());
    admin.list_studios(from_city_page).await.expect("allowed");
    web.city.stop().await;
}

#[tokio::test]
async fn native_grpc_gets_no_web_headers() {
    let web = web_city(true).await;
    let response = web
        .city
        .ai("web", &web.web_token)
        .text(text_request("hi"))
        .await
        .expect("native call");
    let metadata = response.metadata();
    for name in [
        "vary",
        "access-control-expose-headers",
        "access-control-allow-origin",
    ] {
        assert!(metadata.get(name).is_none(), "{name} on a native answer");
    }
    web.city.stop().await;
}

#[tokio::test]
async fn bad_origins_are_invalid_arguments_naming_the_entry() {
    let web = web_city(true).await;
    let err = web
        .city
        .admin()
        .update_studio(proto::UpdateStudioRequest {
            studio_id: "web".into(),
            allowed_origins: Some(proto::OriginList {
                origins: vec![CITY_ORIGIN.into(), "https://x.example/path".into()],
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        crate::common::violated_fields(&err),
        ["allowed_origins.origins[1]"]
    );
    web.city.stop().await;
}

#[tokio::test]
async fn with_web_disabled_browsers_get_nothing() {
    let web = web_city(false).await;
    let response = preflight(&web.city, CITY_ORIGIN).await;
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        None
    );
    let response = crate::common::http_client()
        .http1_only()
        .build()
        .unwrap()
        .post(format!("http://{}{TEXT}", web.city.addr))
        .header("content-type", "application/grpc-web+proto")
        .header("origin", CITY_ORIGIN)
        .body(vec![0, 0, 0, 0, 0])
        .send()
        .await
        .expect("HTTP answer");
    let content_type = header(response.headers(), "content-type").unwrap_or_default();
    assert!(
        !content_type.starts_with("application/grpc-web"),
        "{content_type}"
    );
    assert_eq!(
        header(response.headers(), "access-control-allow-origin"),
        None
    );
    // Native gRPC is served as ever.
    web.city
        .ai("web", &web.web_token)
        .text(text_request("hi"))
        .await
        .expect("native call");
    web.city.stop().await;
}

#[tokio::test]
async fn reflection_serves_error_details_for_grpcurl() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let city = TestCity::start().await;
    let mut client = ServerReflectionClient::new(city.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "google.rpc.ErrorInfo".into(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().expect("one response");
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("google.rpc.ErrorInfo not served: {response:?}");
    };
    let names: BTreeSet<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            file.name.unwrap_or_default()
        })
        .collect();
    assert!(
        names.contains("google/rpc/error_details.proto"),
        "{names:?}"
    );
    city.stop().await;
}

/// Runs the admin CLI (a process of its own) off the runtime that serves City.
async fn cli(addr: &str, args: &[&str], succeeds: bool) -> String {
    use crate::common::process::{admin_cli, admin_cli_fails};
    let (addr, args) = (
        addr.to_string(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if succeeds {
            admin_cli(&addr, crate::common::ADMIN_KEY, &args)
        } else {
            admin_cli_fails(&addr, crate::common::ADMIN_KEY, &args)
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_cli_sets_and_clears_a_studios_origins() {
    use crate::common::process::json;
    let web = web_city(true).await;
    let addr = web.city.addr.to_string();
    let args = [
        "--json",
        "studios",
        "allow-origins",
        "plain",
        "https://Play.example/",
    ];
    let set = json(&cli(&addr, &args, true).await);
    assert_eq!(
        set["studio"]["allowed_origins"],
        serde_json::json!(["https://play.example"])
    );
    // The studio's page may call now.
    let call = WebCall::new(TEXT, "plain", &web.plain_token).from("https://play.example");
    let reply = call.send(&web.city, &text_request("hi")).await;
    assert_eq!(reply.status.code(), Code::Ok, "{:?}", reply.status);

    let stderr = cli(
        &addr,
        &["studios", "allow-origins", "plain", "play.example"],
        false,
    )
    .await;
    assert!(stderr.contains("allowed_origins.origins[0]"), "{stderr}");
    let args = ["--json", "studios", "allow-origins", "plain", "--none"];
    let cleared = json(&cli(&addr, &args, true).await);
    assert_eq!(cleared["studio"]["allowed_origins"], serde_json::json!([]));
    let reply = call.send(&web.city, &text_request("hi")).await;
    assert_error(&reply.status, Code::PermissionDenied, "ORIGIN_NOT_ALLOWED");
    web.city.stop().await;
}

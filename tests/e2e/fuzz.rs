//! Property tests over real gRPC against one real City: arbitrary bytes as
//! the message of every AIService and AdminService method (listed from the
//! descriptor set, so a new method is fuzzed too), under arbitrary
//! `x-studio-id` and `authorization` metadata. City must answer every one
//! with a deliberate code and an ErrorInfo reason (never UNKNOWN or
//! INTERNAL), and a refused call must change nothing.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use downcity::proto;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::common::{ADMIN_KEY, TestCity, req, studio_filter, text_model};

const CASES: u32 = 256;
/// No single call may take longer (a hang is a failure too).
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// Sends and receives message bodies as they are: no protobuf on our side.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// One gRPC method: its path and whether the server streams.
#[derive(Clone, Debug)]
struct Method {
    path: String,
    server_streaming: bool,
}

/// Every method of Downcity's services, from the descriptor set.
fn methods() -> Vec<Method> {
    let set = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                assert!(!method.client_streaming(), "client streams are not fuzzed");
                methods.push(Method {
                    path: format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    server_streaming: method.server_streaming(),
                });
            }
        }
    }
    assert!(methods.len() > 25, "{methods:?}");
    methods
}

/// Sends `body` to `method` with exactly `headers` as metadata; the status
/// the call ended with (OK when it succeeded).
async fn call_raw(channel: Channel, method: &Method, headers: HeaderMap, body: Bytes) -> Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("the channel is ready");
    let path = http::uri::PathAndQuery::try_from(method.path.as_str()).unwrap();
    let request =
        tonic::Request::from_parts(MetadataMap::from_headers(headers), Default::default(), body);
    if !method.server_streaming {
        return match grpc.unary(request, path, RawCodec).await {
            Ok(_) => Status::ok(""),
            Err(status) => status,
        };
    }
    let mut stream = match grpc.server_streaming(request, path, RawCodec).await {
        Ok(response) => response.into_inner(),
        Err(status) => return status,
    };
    loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => return Status::ok(""),
            Err(status) => return status,
        }
    }
}

/// What a credential header may hold: a real credential, text, or any
/// bytes a header value may carry (non-ASCII included).
fn header_value(valid: Vec<String>) -> impl Strategy<Value = HeaderValue> {
    let bytes = prop_oneof![
        proptest::sample::select(valid).prop_map(String::into_bytes),
        "(Bearer |bearer |Basic )?[ -~]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..48),
    ];
    bytes.prop_filter_map("not a header value", |b| HeaderValue::from_bytes(&b).ok())
}

/// A protobuf-shaped body: fields with small numbers and every wire type,
/// strings drawn partly from names City knows, so decoding often succeeds
/// and the validators behind it are reached.
fn protobuf_like() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        proptest::sample::select(vec!["s1", "u1", "m", "mock", "other", ""])
            .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..24),
    ];
    let field = (1u32..12, 0u8..6, any::<u64>(), text);
    proptest::collection::vec(field, 0..8).prop_map(|fields| {
        let mut out = Vec::new();
        for (number, wire, number_value, text) in fields {
            encode_varint(&mut out, u64::from(number << 3 | u32::from(wire)));
            match wire {
                0 => encode_varint(&mut out, number_value),
                1 => out.extend_from_slice(&number_value.to_le_bytes()),
                2 => {
                    encode_varint(&mut out, text.len() as u64);
                    out.extend_from_slice(&text);
                }
                5 => out.extend_from_slice(&(number_value as u32).to_le_bytes()),
                // Groups (3, 4) are not proto3; sent to see them refused.
                _ => {}
            }
        }
        out
    })
}

fn encode_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        protobuf_like()
    ]
}

/// Mostly one real credential and studio (so the message checks behind
/// authentication are reached), else zero to two arbitrary values of each.
fn metadata(credentials: Vec<String>, studios: Vec<String>) -> impl Strategy<Value = HeaderMap> {
    let valid = |values: Vec<String>| {
        proptest::sample::select(values)
            .prop_map(|value| vec![HeaderValue::from_str(&value).unwrap()])
    };
    let arbitrary = |valid: Vec<String>| proptest::collection::vec(header_value(valid), 0..3);
    let authorization = prop_oneof![
        3 => valid(credentials.clone()),
        1 => arbitrary(credentials),
    ];
    let studio = prop_oneof![3 => valid(studios.clone()), 1 => arbitrary(studios)];
    (authorization, studio).prop_map(|(authorization, studio)| {
        let mut headers = HeaderMap::new();
        for value in authorization {
            headers.append("authorization", value);
        }
        for value in studio {
            headers.append("x-studio-id", value);
        }
        headers
    })
}

/// Everything a refused call must leave as it was, as seen by the operator.
async fn state(city: &TestCity) -> String {
    let mut admin = city.admin();
    let studios = admin.list_studios(req::list_studios(1000, "")).await;
    let keys = admin.list_studio_keys(req::list_studio_keys("s1")).await;
    let tokens = admin.list_user_tokens(req::list_user_tokens("s1")).await;
    let providers = admin
        .list_providers(proto::ListProvidersRequest::default())
        .await;
    let models = admin
        .list_catalog_models(proto::ListCatalogModelsRequest::default())
        .await;
    let hooks = admin.list_hooks(proto::ListHooksRequest::default()).await;
    let limits = admin
        .get_limits(proto::GetLimitsRequest {
            studio_id: "s1".into(),
            target: proto::LimitTarget::Studio as i32,
            ..Default::default()
        })
        .await;
    let usage = city.usage_rows(studio_filter("")).await.len();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\nusage rows: {usage}",
        studios.map(|r| r.into_inner()),
        keys.map(|r| r.into_inner()),
        tokens.map(|r| r.into_inner()),
        providers.map(|r| r.into_inner()),
        models.map(|r| r.into_inner()),
        hooks.map(|r| r.into_inner()),
        limits.map(|r| r.into_inner()),
    )
}

/// A refusal must be deliberate: a code City chose and its ErrorInfo.
fn check_answer(status: &Status) -> Result<(), TestCaseError> {
    use tonic_types::StatusExt;
    if status.code() == Code::Ok {
        return Ok(());
    }
    prop_assert!(
        !matches!(status.code(), Code::Unknown | Code::Internal),
        "an accidental code: {status:?}"
    );
    let info = status.get_details_error_info();
    prop_assert!(info.is_some(), "no ErrorInfo: {status:?}");
    prop_assert_eq!(info.unwrap().domain, "downcity");
    Ok(())
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_invalid_argument() {
    let city = TestCity::start().await;
    let method = Method {
        path: "/downcity.v1.AdminService/CreateStudio".into(),
        server_streaming: false,
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {ADMIN_KEY}").parse().unwrap(),
    );
    // Field number 0 exists in no message.
    let status = call_raw(city.channel(), &method, headers, Bytes::from_static(&[0])).await;
    crate::common::assert_error(&status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert!(status.message().contains("decode"), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_messages_and_metadata_get_a_deliberate_answer_and_change_nothing() {
    let started = std::time::Instant::now();
    let city = TestCity::start().await;
    let user_token = city.studio_with_user("s1", "u1").await;
    city.upsert_model(text_model("m", &[])).await;
    let studio_key = city
        .admin()
        .create_studio_key(proto::CreateStudioKeyRequest {
            studio_id: "s1".into(),
            ..Default::default()
        })
        .await
        .expect("a studio key")
        .into_inner()
        .secret;
    let credentials: Vec<String> = [ADMIN_KEY, &user_token, &studio_key]
        .iter()
        .map(|secret| format!("Bearer {secret}"))
        .collect();
    let studios = vec!["s1".to_string(), "other".to_string()];

    let strategy = (
        proptest::sample::select(methods()),
        metadata(credentials, studios),
        body(),
    );
    let mut runner = TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let handle = tokio::runtime::Handle::current();
    let before = std::cell::RefCell::new(state(&city).await);
    let codes = std::cell::RefCell::new(std::collections::BTreeMap::<String, u32>::new());
    let outcome = tokio::task::block_in_place(|| {
        runner
            .run(&strategy, |(method, headers, body)| {
                handle.block_on(async {
                    let call = call_raw(city.channel(), &method, headers, body.into());
                    let status = tokio::time::timeout(CALL_LIMIT, call)
                        .await
                        .map_err(|_| TestCaseError::fail(format!("{} hung", method.path)))?;
                    check_answer(&status)?;
                    *codes
                        .borrow_mut()
                        .entry(format!("{:?}", status.code()))
                        .or_default() += 1;
                    let after = state(&city).await;
                    let before = before.replace(after.clone());
                    if status.code() != Code::Ok {
                        prop_assert_eq!(before, after, "{} refused but changed state", method.path);
                    }
                    Ok(())
                })
            })
            // Only the failure's text is kept, not proptest's large error.
            .map_err(|failure| failure.to_string())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let codes = codes.into_inner();
    eprintln!("{CASES} fuzzed calls in {:?}: {codes:?}", started.elapsed());
    // Both the credential checks and the message checks behind them were
    // reached (an OK is too rare to require: a few in 256).
    for reached in ["Unauthenticated", "InvalidArgument"] {
        assert!(codes.contains_key(reached), "no {reached}: {codes:?}");
    }
}

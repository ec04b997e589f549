//! Every error an AI call can meet, over real gRPC against a real City: the
//! canonical code, the ErrorInfo reason, and what the call left in the usage
//! table (nothing for a rejected call, exactly one row for a failed provider).

use std::fmt::Debug;
use std::time::Duration;

use crate::common::*;
use downcity::proto;
use tonic::{Code, Response, Status};
use tonic_types::StatusExt;

const STUDIO: &str = "acme";
const USER: &str = "user-1";

/// The error of a call that must fail.
#[track_caller]
fn expect_err<T: Debug>(result: Result<Response<T>, Status>) -> Status {
    match result {
        Ok(response) => panic!("expected an error, got {:?}", response.into_inner()),
        Err(status) => status,
    }
}

/// Asserts the call failed with `code` and `reason` and that the usage table
/// still holds `rows` rows: a rejected call writes none.
async fn assert_rejected_with_rows<T: Debug>(
    city: &TestCity,
    result: Result<Response<T>, Status>,
    code: Code,
    expected_reason: &str,
    rows: usize,
) -> Status {
    let status = expect_err(result);
    assert_error(&status, code, expected_reason);
    let recorded = city.usage_rows(Default::default()).await;
    assert_eq!(
        recorded.len(),
        rows,
        "a rejected call wrote usage: {recorded:?}"
    );
    status
}

/// Asserts the call failed with `code` and `reason` and wrote no usage row.
async fn assert_rejected<T: Debug>(
    city: &TestCity,
    result: Result<Response<T>, Status>,
    code: Code,
    expected_reason: &str,
) -> Status {
    assert_rejected_with_rows(city, result, code, expected_reason, 0).await
}

/// Asserts an INVALID_ARGUMENT naming `field`, with no usage row.
async fn assert_invalid<T: Debug>(
    city: &TestCity,
    result: Result<Response<T>, Status>,
    field: &str,
) {
    let status = assert_rejected(city, result, Code::InvalidArgument, "INVALID_ARGUMENT").await;
    let fields = violated_fields(&status);
    assert!(
        fields.iter().any(|f| f == field),
        "no violation on `{field}`: {fields:?}"
    );
}

/// A Text call with this `x-studio-id` and bearer (each may be missing).
async fn text_as(
    city: &TestCity,
    studio: Option<&str>,
    bearer: Option<&str>,
) -> Result<Response<proto::TextResponse>, Status> {
    city.ai_with(studio, bearer)
        .text(text_request("hello"))
        .await
}

/// A Text call with `bearer` (or none) on the studio.
async fn text_with_bearer(
    city: &TestCity,
    bearer: Option<&str>,
) -> Result<Response<proto::TextResponse>, Status> {
    text_as(city, Some(STUDIO), bearer).await
}

/// A one-message Text request on `model` (empty: the default).
fn text_on(model: &str, prompt: &str) -> proto::TextRequest {
    proto::TextRequest {
        model: model.into(),
        ..text_request(prompt)
    }
}

async fn text_on_model(
    city: &TestCity,
    token: &str,
    model: &str,
) -> Result<Response<proto::TextResponse>, Status> {
    city.ai(STUDIO, token)
        .text(text_on(model, "hello there"))
        .await
}

async fn image(
    city: &TestCity,
    token: &str,
    request: proto::ImageRequest,
) -> Result<Response<proto::ImageResponse>, Status> {
    city.ai(STUDIO, token).image(request).await
}

fn image_request(prompt: &str, count: i32) -> proto::ImageRequest {
    proto::ImageRequest {
        prompt: prompt.into(),
        count: Some(count),
        ..Default::default()
    }
}

/// Issues a token for USER in STUDIO with an optional ttl; returns its id and secret.
async fn issue_token(city: &TestCity, ttl: Option<pbjson_types::Duration>) -> (String, String) {
    let issued = city
        .admin()
        .issue_user_token(proto::IssueUserTokenRequest {
            studio_id: STUDIO.into(),
            user_id: USER.into(),
            ttl,
        })
        .await
        .expect("issue token")
        .into_inner();
    (issued.token.expect("token").id, issued.secret)
}

async fn set_studio_status(city: &TestCity, studio_id: &str, status: proto::StudioStatus) {
    city.admin()
        .update_studio(proto::UpdateStudioRequest {
            studio_id: studio_id.into(),
            display_name: None,
            status: status as i32,
            allowed_models: None,
            allowed_origins: None,
        })
        .await
        .expect("update studio");
}

// ---- authentication -------------------------------------------------------

#[tokio::test]
async fn no_authorization_is_token_missing() {
    let (city, _token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = text_with_bearer(&city, None).await;
    assert_rejected(&city, result, Code::Unauthenticated, "TOKEN_MISSING").await;
}

/// A Text request carrying each (key, value) as metadata, appended: a key
/// given twice travels twice.
fn text_with_metadata(pairs: &[(&'static str, &str)]) -> tonic::Request<proto::TextRequest> {
    let mut request = tonic::Request::new(text_request("hello"));
    for (key, value) in pairs {
        request.metadata_mut().append(*key, value.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn two_studio_ids_are_refused_not_resolved() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    city.studio_with_user("other", USER).await;
    let bearer = format!("Bearer {token}");
    for studios in [[STUDIO, "other"], ["other", STUDIO], [STUDIO, STUDIO]] {
        let request = text_with_metadata(&[
            ("authorization", &bearer),
            ("x-studio-id", studios[0]),
            ("x-studio-id", studios[1]),
        ]);
        let result = city.ai_with(None, None).text(request).await;
        let status = assert_rejected(
            &city,
            result,
            Code::Unauthenticated,
            "AMBIGUOUS_CREDENTIALS",
        )
        .await;
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata["header"], "x-studio-id");
    }
}

#[tokio::test]
async fn two_bearers_are_refused_on_both_services() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let bearer = format!("Bearer {token}");
    let request = text_with_metadata(&[
        ("x-studio-id", STUDIO),
        ("authorization", &bearer),
        ("authorization", &bearer),
    ]);
    let result = city.ai_with(None, None).text(request).await;
    assert_rejected(
        &city,
        result,
        Code::Unauthenticated,
        "AMBIGUOUS_CREDENTIALS",
    )
    .await;

    let admin_bearer = format!("Bearer {ADMIN_KEY}");
    let mut request = tonic::Request::new(proto::ListStudiosRequest::default());
    for _ in 0..2 {
        let value = admin_bearer.parse().unwrap();
        request.metadata_mut().append("authorization", value);
    }
    let status = city
        .admin_with(None)
        .list_studios(request)
        .await
        .unwrap_err();
    assert_error(&status, Code::Unauthenticated, "AMBIGUOUS_CREDENTIALS");
}

#[tokio::test]
async fn malformed_bearer_is_token_invalid() {
    let (city, _token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = text_with_bearer(&city, Some("nonsense")).await;
    assert_rejected(&city, result, Code::Unauthenticated, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn unknown_token_is_token_invalid() {
    let (city, _token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = text_with_bearer(&city, Some("dcu_abcdefabcdef_xxxxxxxx")).await;
    assert_rejected(&city, result, Code::Unauthenticated, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn right_id_with_wrong_secret_is_token_invalid() {
    let (city, _token) = TestCity::start_with_user(STUDIO, USER).await;
    let (id, secret) = issue_token(&city, None).await;
    let forged = format!("dcu_{id}_wrongsecret");
    assert!(secret.starts_with(&format!("dcu_{id}_")) && forged != secret);
    let result = text_with_bearer(&city, Some(&forged)).await;
    assert_rejected(&city, result, Code::Unauthenticated, "TOKEN_INVALID").await;
}

#[tokio::test]
async fn missing_studio_id_is_studio_id_missing() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = text_as(&city, None, Some(&token)).await;
    assert_rejected(&city, result, Code::Unauthenticated, "STUDIO_ID_MISSING").await;
}

#[tokio::test]
async fn expired_token_is_token_expired() {
    let (city, _token) = TestCity::start_with_user(STUDIO, USER).await;
    let one_ms = pbjson_types::Duration {
        seconds: 0,
        nanos: 1_000_000,
    };
    let (_id, secret) = issue_token(&city, Some(one_ms)).await;
    // Expiry is a point in time, not an event to wait for.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let result = text_with_bearer(&city, Some(&secret)).await;
    assert_rejected(&city, result, Code::Unauthenticated, "TOKEN_EXPIRED").await;
}

#[tokio::test]
async fn revoked_token_fails_on_the_very_next_call() {
    let (city, _token) = TestCity::start_with_user(STUDIO, USER).await;
    let (id, secret) = issue_token(&city, None).await;
    text_with_bearer(&city, Some(&secret))
        .await
        .expect("the token works before revocation");

    city.admin()
        .revoke_user_token(proto::RevokeUserTokenRequest {
            studio_id: STUDIO.into(),
            token_id: id,
        })
        .await
        .expect("revoke");

    let result = text_with_bearer(&city, Some(&secret)).await;
    assert_rejected_with_rows(&city, result, Code::Unauthenticated, "TOKEN_REVOKED", 1).await;
}

// ---- studio boundary -------------------------------------------------------

#[tokio::test]
async fn token_of_another_studio_is_studio_mismatch() {
    let (city, token_a) = TestCity::start_with_user("studio-a", USER).await;
    city.studio_with_user("studio-b", USER).await;
    let result = text_as(&city, Some("studio-b"), Some(&token_a)).await;
    assert_rejected(&city, result, Code::PermissionDenied, "STUDIO_MISMATCH").await;
}

#[tokio::test]
async fn suspended_studio_is_refused_at_once_and_reactivation_restores_it() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;

    set_studio_status(&city, STUDIO, proto::StudioStatus::Suspended).await;
    let result = text_with_bearer(&city, Some(&token)).await;
    assert_rejected(&city, result, Code::PermissionDenied, "STUDIO_SUSPENDED").await;

    set_studio_status(&city, STUDIO, proto::StudioStatus::Active).await;
    text_with_bearer(&city, Some(&token))
        .await
        .expect("served again once active");
}

#[tokio::test]
async fn user_token_on_admin_service_is_permission_denied() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = city
        .admin_with(Some(&token))
        .list_studios(proto::ListStudiosRequest::default())
        .await;
    assert_rejected(&city, result, Code::PermissionDenied, "PERMISSION_DENIED").await;
}

// ---- models -------------------------------------------------------------

#[tokio::test]
async fn unknown_model_is_model_not_found() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = text_on_model(&city, &token, "no-such-model").await;
    assert_rejected(&city, result, Code::NotFound, "MODEL_NOT_FOUND").await;
}

#[tokio::test]
async fn disabled_model_is_model_not_found() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let stored = city
        .upsert_model(proto::Model {
            enabled: Some(false),
            ..text_model("off-text", &[])
        })
        .await;
    assert_eq!(stored.enabled, Some(false));
    let result = text_on_model(&city, &token, "off-text").await;
    let status = assert_rejected(&city, result, Code::NotFound, "MODEL_NOT_FOUND").await;
    assert!(status.message().contains("disabled"), "{status:?}");
}

#[tokio::test]
async fn a_model_upserted_without_enabled_is_enabled() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let stored = city
        .upsert_model(proto::Model {
            enabled: None,
            ..text_model("first-text", &[])
        })
        .await;
    assert_eq!(stored.enabled, Some(true));
    let answer = text_on_model(&city, &token, "first-text").await.unwrap();
    assert_eq!(answer.into_inner().model, "first-text");
}

// ---- invalid requests -----------------------------------------------------

#[tokio::test]
async fn text_with_an_image_model_is_invalid_model() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = text_on_model(&city, &token, "mock-image").await;
    assert_invalid(&city, result, "model").await;
}

#[tokio::test]
async fn image_with_a_text_model_is_invalid_model() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let request = proto::ImageRequest {
        model: "mock-text".into(),
        ..image_request("a cat", 1)
    };
    let result = image(&city, &token, request).await;
    assert_invalid(&city, result, "model").await;
}

#[tokio::test]
async fn empty_messages_are_invalid() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = city
        .ai(STUDIO, &token)
        .text(proto::TextRequest::default())
        .await;
    assert_invalid(&city, result, "messages").await;
}

/// Starts City with the mock text model `id`, adjusted by `adjust`, in the catalog.
async fn start_with_text_model(
    id: &str,
    adjust: impl FnOnce(&mut proto::Model),
) -> (TestCity, String) {
    let mut model = text_model(id, &[]);
    adjust(&mut model);
    TestCity::start_with_model(STUDIO, USER, model).await
}

async fn assert_max_tokens_invalid(city: &TestCity, token: &str, max_tokens: i32, model: &str) {
    let request = proto::TextRequest {
        max_tokens: Some(max_tokens),
        ..text_on(model, "hello")
    };
    let result = city.ai(STUDIO, token).text(request).await;
    assert_invalid(city, result, "max_tokens").await;
}

#[tokio::test]
async fn max_tokens_zero_is_invalid() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    assert_max_tokens_invalid(&city, &token, 0, "").await;
}

#[tokio::test]
async fn max_tokens_two_million_is_invalid() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    assert_max_tokens_invalid(&city, &token, 2_000_000, "").await;
}

#[tokio::test]
async fn max_tokens_above_the_models_maximum_is_invalid() {
    let (city, token) = start_with_text_model("short-text", |m| m.max_output_tokens = 16).await;
    assert_max_tokens_invalid(&city, &token, 17, "short-text").await;
}

#[tokio::test]
async fn unspecified_role_is_invalid() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let request = proto::TextRequest {
        messages: vec![proto::Message {
            role: proto::Role::Unspecified as i32,
            content: "hello".into(),
        }],
        ..Default::default()
    };
    let result = city.ai(STUDIO, &token).text(request).await;
    assert_invalid(&city, result, "messages[0].role").await;
}

#[tokio::test]
async fn prompt_longer_than_the_models_input_limit_is_invalid() {
    let (city, token) = start_with_text_model("tiny-context", |m| m.max_input_tokens = 10).await;
    let result = city
        .ai(STUDIO, &token)
        .text(text_on("tiny-context", &"word ".repeat(200)))
        .await;
    assert_invalid(&city, result, "messages").await;
}

/// Starts a fresh City and asserts that Image refuses `request` for `field`.
async fn assert_image_invalid(request: proto::ImageRequest, field: &str) {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = image(&city, &token, request).await;
    assert_invalid(&city, result, field).await;
}

#[tokio::test]
async fn image_count_zero_is_invalid() {
    assert_image_invalid(image_request("a cat", 0), "count").await;
}

#[tokio::test]
async fn image_count_eleven_is_invalid() {
    assert_image_invalid(image_request("a cat", 11), "count").await;
}

#[tokio::test]
async fn empty_image_prompt_is_invalid() {
    assert_image_invalid(image_request("", 1), "prompt").await;
}

// ---- StreamText: errors before the stream starts are the call's status -----

fn stream_request(model: &str) -> proto::StreamTextRequest {
    proto::StreamTextRequest {
        model: model.into(),
        messages: vec![user_message("hello")],
        ..Default::default()
    }
}

#[tokio::test]
async fn stream_without_authorization_is_token_missing() {
    let (city, _token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = city
        .ai_with(Some(STUDIO), None)
        .stream_text(stream_request(""))
        .await;
    assert_rejected(&city, result, Code::Unauthenticated, "TOKEN_MISSING").await;
}

#[tokio::test]
async fn stream_with_unknown_model_is_model_not_found() {
    let (city, token) = TestCity::start_with_user(STUDIO, USER).await;
    let result = city
        .ai(STUDIO, &token)
        .stream_text(stream_request("no-such-model"))
        .await;
    assert_rejected(&city, result, Code::NotFound, "MODEL_NOT_FOUND").await;
}

// ---- provider failures: the call failed, but it was made, so it has a row ---

/// Calls a model that fails with `fail`; asserts the status and the one row.
async fn assert_provider_failure(fail: &str, code: Code, expected_reason: &str) -> Status {
    let (city, token) =
        TestCity::start_with_model(STUDIO, USER, text_model("failing-text", &[("fail", fail)]))
            .await;

    let status = expect_err(text_on_model(&city, &token, "failing-text").await);
    assert_error(&status, code, expected_reason);
    assert!(
        !status.message().contains("mock told to fail"),
        "the provider's own message reached the client: {}",
        status.message()
    );

    let rows = city.usage_rows(studio_filter(STUDIO)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].status_code, code as i32);
    assert_eq!(rows[0].error_reason, expected_reason);
    assert_eq!(rows[0].model_id, "failing-text");
    status
}

#[tokio::test]
async fn unavailable_provider_is_provider_unavailable_with_one_row() {
    assert_provider_failure("unavailable", Code::Unavailable, "PROVIDER_UNAVAILABLE").await;
}

#[tokio::test]
async fn rate_limited_provider_is_resource_exhausted_with_retry_info() {
    let status = assert_provider_failure(
        "rate_limited",
        Code::ResourceExhausted,
        "PROVIDER_RATE_LIMITED",
    )
    .await;
    let retry = status.get_details_retry_info().expect("RetryInfo");
    let delay = retry.retry_delay.expect("a retry delay");
    assert!(delay > Duration::ZERO, "{delay:?}");
}

#[tokio::test]
async fn unavailable_model_falls_back_to_the_next() {
    let (city, token) = TestCity::start_with_model(
        STUDIO,
        USER,
        proto::Model {
            fallback_model_ids: vec!["mock-text".into()],
            ..text_model("flaky-text", &[("fail", "unavailable")])
        },
    )
    .await;

    let response = text_on_model(&city, &token, "flaky-text")
        .await
        .expect("the fallback serves the call")
        .into_inner();
    assert_eq!(response.model, "mock-text");
    assert_eq!(response.text, "Echo: hello there");

    let rows = city.usage_rows(studio_filter(STUDIO)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].model_id, "mock-text");
    assert_eq!(rows[0].status_code, 0);
    assert_eq!(rows[0].request_id, response.request_id);
}

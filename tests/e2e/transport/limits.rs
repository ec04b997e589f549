//! `[server]` limits against abuse: request size, messages and prompt bytes
//! per call, the header-read timeout and the connection cap.

use std::time::Duration;

use downcity::proto;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn an_oversized_request_is_resource_exhausted_with_no_row() {
    let city = TestCity::start_with(|config| config.server.max_request_bytes = 1024).await;
    let token = city.studio_with_user("big", "u").await;
    let mut ai = city.ai("big", &token);
    ai.text(text_request(&"a".repeat(900)))
        .await
        .expect("under the limit");

    let status = ai.text(text_request(&"a".repeat(2000))).await.unwrap_err();
    assert_error(&status, Code::ResourceExhausted, "REQUEST_TOO_LARGE");
    let stream = ai
        .stream_text(proto::StreamTextRequest {
            messages: vec![user_message(&"a".repeat(2000))],
            ..Default::default()
        })
        .await;
    assert_error(
        &stream.unwrap_err(),
        Code::ResourceExhausted,
        "REQUEST_TOO_LARGE",
    );
    // Only the call under the limit left a row.
    assert_eq!(city.usage_rows(studio_filter("big")).await.len(), 1);
    city.stop().await;
}

#[tokio::test]
async fn too_many_messages_or_prompt_bytes_are_invalid_with_no_row() {
    let city = TestCity::start_with(|config| {
        config.server.max_messages_per_call = 2;
        config.server.max_prompt_bytes_per_call = 10;
    })
    .await;
    let token = city.studio_with_user("caps", "u").await;
    let mut ai = city.ai("caps", &token);
    let three = proto::TextRequest {
        messages: vec![user_message("a"), user_message("b"), user_message("c")],
        ..Default::default()
    };
    let status = assert_invalid_argument(ai.text(three).await);
    assert_eq!(violated_fields(&status), ["messages"]);
    let status = assert_invalid_argument(ai.text(text_request("eleven byte")).await);
    assert_eq!(violated_fields(&status), ["messages"]);
    let stream = ai
        .stream_text(proto::StreamTextRequest {
            messages: vec![user_message("eleven byte")],
            ..Default::default()
        })
        .await;
    assert_invalid_argument(stream);
    let image = ai
        .image(proto::ImageRequest {
            prompt: "eleven byte".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(violated_fields(&assert_invalid_argument(image)), ["prompt"]);
    ai.text(text_request("ten bytes!"))
        .await
        .expect("at the caps");
    assert_eq!(city.usage_rows(studio_filter("caps")).await.len(), 1);
    city.stop().await;
}

#[tokio::test]
async fn a_client_silent_past_the_header_read_timeout_is_disconnected() {
    let city = TestCity::start_with(|config| config.server.header_read_timeout_secs = 1).await;
    let silent = TcpStream::connect(city.addr).await.unwrap();
    // City sends its SETTINGS, then closes; a live connection outlasts 10 s.
    let closed = tokio::time::timeout(Duration::from_secs(10), read_to_close(silent)).await;
    assert!(closed.is_ok(), "the silent connection is still open");
    // A real client is unaffected.
    let token = city.studio_with_user("slow", "u").await;
    city.ai("slow", &token)
        .text(text_request("hi"))
        .await
        .unwrap();
    city.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_at_once() {
    // TestCity's own channel holds the one slot.
    let city = TestCity::start_with(|config| config.server.max_connections = 1).await;
    let token = city.studio_with_user("cap", "u").await;
    let mut second = TcpStream::connect(city.addr).await.unwrap();
    let mut byte = [0u8; 1];
    // Closed before City says anything (a served one gets SETTINGS at once).
    let read = tokio::time::timeout(Duration::from_secs(10), second.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the second connection was kept: {read:?}"
    );
    city.ai("cap", &token)
        .text(text_request("still served"))
        .await
        .unwrap();
    city.stop().await;
}

/// Reads until the peer closes the connection (EOF or a reset).
async fn read_to_close(mut tcp: TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = tcp.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

//! The Rust `UserClient` against a real City.

use crate::common::*;
use downcity::client::{ClientError, UserClient, user};
use downcity::proto;
use tonic::Code;

#[tokio::test]
async fn user_client_reads_naturally() {
    let (city, token) = TestCity::start_with_user("rusty", "u").await;
    let target = format!("http://{}", city.addr);
    let client = UserClient::connect(&target, "rusty", &token).await.unwrap();

    let answer = client.ai().text("Hello, City").await.unwrap();
    assert_eq!(
        (answer.text.as_str(), answer.model.as_str()),
        ("Echo: Hello, City", "mock-text")
    );

    let request = proto::StreamTextRequest {
        messages: vec![user("one two")],
        ..Default::default()
    };
    let mut stream = client.ai().stream(request).await.unwrap();
    let mut text = String::new();
    let mut last = None;
    while let Some(message) = stream.message().await.unwrap() {
        text.push_str(&message.delta);
        last = Some(message);
    }
    assert_eq!(text, "Echo: one two");
    assert_eq!(last.unwrap().usage.unwrap().output_tokens, 3);

    let images = client.ai().image("a cat", 2).await.unwrap();
    assert_eq!(images.images.len(), 2);
    let models = client.ai().models().await.unwrap();
    assert!(models.iter().any(|m| m.id == "mock-image" && m.is_default));

    let stranger = UserClient::connect(&target, "rusty", "dcu_nobody_secret")
        .await
        .unwrap();
    match stranger.ai().text("hi").await {
        Err(ClientError::Status(status)) => {
            assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID")
        }
        other => panic!("expected TOKEN_INVALID, got {other:?}"),
    }
}

//! `[server] admin_listen`: AdminService only there, AIService only on the
//! main listener, each with reflection of its own services only.

use downcity::config::Config;
use downcity::proto;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use super::*;
use crate::common::{TestCity, text_request};

fn with_admin_listener(config: &mut Config) {
    config.server.admin_listen = Some("127.0.0.1:0".into());
}

#[tokio::test]
async fn admin_service_is_served_only_on_the_admin_listener() {
    let ca = Ca::new("city ca");
    let city = TlsCity::start(&ca.server(1), |config, _| with_admin_listener(config)).await;
    let tls = trusting(&ca, None);
    let main = channel(&city.https(), Some(&tls)).await.unwrap();
    let admin_target = format!("https://{}", city.admin_addr.unwrap());
    let admin_channel = channel(&admin_target, Some(&tls)).await.unwrap();

    let token = studio_with_user(admin_channel.clone(), "split").await;
    let answer = ai(main.clone(), "split", &token)
        .text(text_request("hi"))
        .await;
    assert_eq!(answer.unwrap().into_inner().text, "Echo: hi");

    let status = admin(main.clone())
        .list_studios(proto::ListStudiosRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    let status = ai(admin_channel.clone(), "split", &token)
        .text(text_request("hi"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    assert_eq!(listed_services(main).await, ["downcity.v1.AIService"]);
    assert_eq!(
        listed_services(admin_channel).await,
        ["downcity.v1.AdminService"]
    );
    city.stop().await;
}

#[tokio::test]
async fn without_an_admin_listener_one_port_serves_both() {
    let city = TestCity::start().await;
    assert_eq!(
        listed_services(city.channel()).await,
        ["downcity.v1.AIService", "downcity.v1.AdminService"]
    );
    city.stop().await;
}

/// The Downcity services reflection lists on `channel`, sorted.
async fn listed_services(channel: tonic::transport::Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("not a service list: {response:?}");
    };
    let mut names: Vec<String> = list
        .service
        .into_iter()
        .map(|s| s.name)
        .filter(|name| name.starts_with("downcity."))
        .collect();
    names.sort();
    names
}

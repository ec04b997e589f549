//! TLS and mTLS on City's listener, with real handshakes.

use std::time::Duration;

use downcity::proto;
use tonic::Code;

use super::*;
use crate::common::{text_request, user_message};

#[tokio::test]
async fn calls_work_over_tls_and_plaintext_is_refused() {
    let ca = Ca::new("city ca");
    let city = TlsCity::start(&ca.server(1), |_, _| {}).await;
    let tls = trusting(&ca, None);
    let secure = channel(&city.https(), Some(&tls))
        .await
        .expect("TLS connects");
    let token = studio_with_user(secure.clone(), "tls").await;
    let mut ai = super::ai(secure, "tls", &token);
    let answer = ai
        .text(text_request("over TLS"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.text, "Echo: over TLS");
    let mut stream = ai
        .stream_text(proto::StreamTextRequest {
            messages: vec![user_message("one two")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    while let Some(message) = stream.message().await.unwrap() {
        text.push_str(&message.delta);
    }
    assert_eq!(text, "Echo: one two");

    // Plaintext HTTP/2 to the TLS port: the handshake fails, no call is served.
    let plain = channel(&format!("http://{}", city.addr), None).await;
    if let Ok(plain) = plain {
        let status = super::ai(plain, "tls", &token)
            .text(text_request("in clear"))
            .await
            .unwrap_err();
        assert!(refused_by_transport(&status), "{status:?}");
    }
    // A client trusting another CA refuses City's certificate.
    let other = Ca::new("other ca");
    assert!(
        channel(&city.https(), Some(&trusting(&other, None)))
            .await
            .is_err()
    );
    city.stop().await;
}

#[tokio::test]
async fn mtls_admits_only_clients_with_a_certificate_from_the_client_ca() {
    let ca = Ca::new("city ca");
    let client_ca = Ca::new("client ca");
    let client_ca_pem = client_ca.pem();
    let city = TlsCity::start(&ca.server(1), |config, dir| {
        let path = dir.join("client-ca.pem");
        std::fs::write(&path, &client_ca_pem).unwrap();
        config.tls.client_ca_file = Some(path);
    })
    .await;

    let good = client_ca.client();
    let channel_ok = channel(&city.https(), Some(&trusting(&ca, Some(&good))))
        .await
        .expect("a client certificate from the client CA connects");
    let token = studio_with_user(channel_ok.clone(), "mesh").await;
    let answer = ai(channel_ok, "mesh", &token)
        .text(text_request("mutual"))
        .await
        .unwrap();
    assert_eq!(answer.into_inner().text, "Echo: mutual");

    let wrong = Ca::new("stranger ca").client();
    for identity in [None, Some(&wrong)] {
        let refused = match channel(&city.https(), Some(&trusting(&ca, identity))).await {
            Err(_) => true,
            Ok(channel) => {
                let status = ai(channel, "mesh", &token)
                    .text(text_request("let me in"))
                    .await
                    .unwrap_err();
                refused_by_transport(&status)
            }
        };
        assert!(
            refused,
            "client identity {:?} was let in",
            identity.map(|_| "wrong CA")
        );
    }
    city.stop().await;
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_without_a_restart() {
    let ca = Ca::new("city ca");
    let first = ca.server(1);
    let city = TlsCity::start(&first, |config, _| config.tls.reload_interval_ms = 50).await;
    assert_eq!(presented_certificate(city.addr, &ca).await, first.der);
    let tls = trusting(&ca, None);
    let before = channel(&city.https(), Some(&tls)).await.unwrap();
    let token = studio_with_user(before.clone(), "rot").await;

    let second = ca.server(2);
    write_atomically(&city.key_file, &second.key_pem);
    write_atomically(&city.cert_file, &second.cert_pem);
    wait_for_certificate(&city, &ca, &second).await;
    // Calls keep working, on the old connection and on new ones.
    ai(before, "rot", &token)
        .text(text_request("old conn"))
        .await
        .unwrap();
    let after = channel(&city.https(), Some(&tls)).await.unwrap();
    ai(after, "rot", &token)
        .text(text_request("new conn"))
        .await
        .unwrap();

    // The certificate first, its key later (a key that does not fit in
    // between is refused, the unit tests show): the pair is taken once whole.
    let third = ca.server(3);
    write_atomically(&city.cert_file, &third.cert_pem);
    write_atomically(&city.key_file, &third.key_pem);
    wait_for_certificate(&city, &ca, &third).await;
    city.stop().await;
}

/// A call that never reached City: the connection failed (tonic reports a
/// handshake cut under TLS 1.3 as UNKNOWN "transport error").
fn refused_by_transport(status: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    matches!(status.code(), Code::Unavailable | Code::Unknown)
        && status.get_details_error_info().is_none()
}

/// Polls new connections until City presents `leaf`, for at most 10 s.
async fn wait_for_certificate(city: &TlsCity, ca: &Ca, leaf: &Leaf) {
    for _ in 0..500 {
        if presented_certificate(city.addr, ca).await == leaf.der {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("City still presents the previous certificate after 10 s");
}

#[tokio::test]
async fn the_rust_client_connects_over_tls() {
    let ca = Ca::new("city ca");
    let city = TlsCity::start(&ca.server(1), |_, _| {}).await;
    let tls = trusting(&ca, None);
    let token = studio_with_user(channel(&city.https(), Some(&tls)).await.unwrap(), "r").await;
    let client = downcity::client::UserClient::connect_tls(&city.https(), &tls, "r", &token)
        .await
        .unwrap();
    assert_eq!(client.ai().text("hi").await.unwrap().text, "Echo: hi");
    // https:// with the bundled roots does not trust a private CA.
    assert!(
        downcity::client::UserClient::connect(&city.https(), "r", &token)
            .await
            .is_err()
    );
    // TLS options with a plaintext target are a mistake, not a silent downgrade.
    let target = format!("http://{}", city.addr);
    let err = downcity::client::UserClient::connect_tls(&target, &tls, "r", &token).await;
    assert!(matches!(
        err,
        Err(downcity::client::ClientError::TlsWithoutHttps(_))
    ));
    city.stop().await;
}

#[tokio::test]
async fn a_missing_or_mismatched_pair_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("city ca");
    let (one, two) = (ca.server(1), ca.server(2));
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let mut config = downcity::config::Config {
        data_dir: dir.path().join("data"),
        ..Default::default()
    };
    config.tls.cert_file = Some(cert.clone());
    config.tls.key_file = Some(key.clone());
    let err = City::start(config.clone())
        .await
        .err()
        .expect("no files: no start");
    assert!(format!("{err:#}").contains("tls.crt"), "{err:#}");
    std::fs::write(&cert, &one.cert_pem).unwrap();
    std::fs::write(&key, &two.key_pem).unwrap();
    let err = City::start(config)
        .await
        .err()
        .expect("a key of another pair: no start");
    assert!(format!("{err:#}").contains("does not fit"), "{err:#}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing written before the check"
    );
}

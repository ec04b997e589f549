//! A real HTTP receiver of business hooks on 127.0.0.1: it records every
//! request and answers before_call as told (allow with metadata, deny, or
//! slowly) and after_call with 204, or 500 for the first few; and a Standard
//! Webhooks signature check written from scratch.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// How the receiver answers before_call requests.
#[derive(Clone)]
pub enum Before {
    Allow(serde_json::Value),
    Deny(&'static str),
    Slow(Duration),
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

struct Inner {
    before: Before,
    /// after_call requests answered 500 before the first 200.
    after_failures: usize,
    received: Vec<Received>,
    /// Told after each request is recorded.
    arrived: Arc<Notify>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let received = Received {
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
            .collect(),
        body,
    };
    let kind = received.json()["type"].as_str().unwrap().to_string();
    let (before, fail, arrived) = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(received);
        let fail = kind == "after_call" && inner.after_failures > 0;
        if fail {
            inner.after_failures -= 1;
        }
        (inner.before.clone(), fail, inner.arrived.clone())
    };
    arrived.notify_waiters();
    if kind == "after_call" {
        return if fail {
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        } else {
            StatusCode::NO_CONTENT.into_response()
        };
    }
    match before {
        Before::Allow(metadata) => {
            axum::Json(serde_json::json!({"allow": true, "metadata": metadata})).into_response()
        }
        Before::Deny(reason) => {
            axum::Json(serde_json::json!({"allow": false, "reason": reason})).into_response()
        }
        Before::Slow(wait) => {
            tokio::time::sleep(wait).await;
            axum::Json(serde_json::json!({"allow": true})).into_response()
        }
    }
}

impl Receiver {
    pub async fn start(before: Before, after_failures: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, before, after_failures)
    }

    pub fn serve(listener: TcpListener, before: Before, after_failures: usize) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            before,
            after_failures,
            received: Vec::new(),
            arrived: Arc::new(Notify::new()),
        }));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { addr, inner }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self, kind: &str) -> Vec<Received> {
        let inner = self.inner.lock().unwrap();
        inner
            .received
            .iter()
            .filter(|r| r.json()["type"] == kind)
            .cloned()
            .collect()
    }

    /// Waits (at most 10 s) until `count` requests of this kind have come.
    pub async fn wait_for(&self, kind: &str, count: usize) -> Vec<Received> {
        let arrived = self.inner.lock().unwrap().arrived.clone();
        let enough = async {
            loop {
                // Made before the check, so no request slips in between.
                let next = arrived.notified();
                let found = self.received(kind);
                if found.len() >= count {
                    return found;
                }
                next.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), enough)
            .await
            .unwrap_or_else(|_| panic!("{count} {kind} requests never came"))
    }
}

/// Verifies a Standard Webhooks signature from scratch: HMAC-SHA256 over
/// `id.timestamp.body`, keyed with the base64 after `whsec_`.
#[track_caller]
pub fn assert_signed(received: &Received, secret: &str) {
    let id = &received.headers["webhook-id"];
    let timestamp = &received.headers["webhook-timestamp"];
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{}", received.body).as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    let signatures = &received.headers["webhook-signature"];
    assert!(
        signatures.split(' ').any(|s| s == expected),
        "signature {signatures} is not {expected}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 300);
}

//! The ops listener: plain HTTP serving `/metrics`, apart from the gRPC
//! listeners so scrapes never compete with calls for their limits.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::Metrics;

/// OpenMetrics text, which Prometheus negotiates for.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The bound ops listener, not yet serving.
pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub async fn bind(addr: &str) -> anyhow::Result<MetricsListener> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics listener {addr}"))?;
        Ok(MetricsListener { listener })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `/metrics` until the returned task is aborted.
    pub fn serve(self, metrics: Arc<Metrics>) -> JoinHandle<()> {
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(metrics);
        tokio::spawn(async move {
            if let Err(err) = axum::serve(self.listener, app).await {
                tracing::error!(%err, "the metrics listener failed");
            }
        })
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.render())
}

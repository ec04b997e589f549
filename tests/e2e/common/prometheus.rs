//! A real Prometheus server (Debian's `prometheus`) scraping one target every
//! second, with its storage in a temporary directory; killed when dropped.
//!
//! scripts/test installs it and sets `DOWNCITY_TEST_PROMETHEUS` to its path,
//! so under scripts/test a missing Prometheus fails the test. Run on its own
//! without that variable, a test finds `prometheus` on the PATH or skips.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const ENV: &str = "DOWNCITY_TEST_PROMETHEUS";
const WAIT_LIMIT: Duration = Duration::from_secs(60);
const POLL_STEP: Duration = Duration::from_millis(100);

pub struct Prometheus {
    child: Child,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The Prometheus binary to run, or `None` (with a note) when the test should skip.
fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{ENV}={} is not a file: install Debian's `prometheus` package (scripts/test does)",
            path.display()
        );
        return Some(path);
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        eprintln!(
            "note: skipped: no `prometheus` on PATH and {ENV} unset (scripts/test installs it)"
        );
    }
    found
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

impl Prometheus {
    /// Starts Prometheus scraping `target`'s `/metrics` every second and
    /// waits until it is ready; `None` when no Prometheus is installed (see above).
    pub async fn start(target: SocketAddr) -> Option<Prometheus> {
        let binary = binary()?;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: city\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starts prometheus");
        let prometheus = Prometheus {
            child,
            base: format!("http://{listen}"),
            http: super::http_client().build().unwrap(),
            _dir: dir,
        };
        prometheus.wait_ready().await;
        Some(prometheus)
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let ready = self.http.get(format!("{}/-/ready", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                started.elapsed() < WAIT_LIMIT,
                "prometheus never became ready"
            );
            tokio::time::sleep(POLL_STEP).await;
        }
    }

    /// Runs an instant PromQL query; returns each series' labels and value.
    pub async fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, Value>, f64)> {
        let text = self
            .http
            .get(
                reqwest::Url::parse_with_params(
                    &format!("{}/api/v1/query", self.base),
                    [("query", promql)],
                )
                .expect("a query URL"),
            )
            .send()
            .await
            .expect("queries prometheus")
            .text()
            .await
            .expect("an answer");
        let body: Value = serde_json::from_str(&text).expect("a JSON answer");
        assert_eq!(body["status"], "success", "{body}");
        body["data"]["result"]
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|series| {
                let labels = series["metric"].as_object().cloned().unwrap_or_default();
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// Polls `promql` (a single-value query) until it returns `expected`.
    pub async fn wait_for(&self, promql: &str, expected: f64) {
        let started = Instant::now();
        loop {
            let result = self.query(promql).await;
            if result.first().map(|(_, v)| *v) == Some(expected) {
                return;
            }
            assert!(
                started.elapsed() < WAIT_LIMIT,
                "`{promql}` never reached {expected}: {result:?}"
            );
            tokio::time::sleep(POLL_STEP).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

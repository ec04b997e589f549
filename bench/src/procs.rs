//! The processes under test: spawned in their own process group with their
//! output in a log file, found ready by a line they print, measured through
//! /proc, and stopped (SIGTERM, then SIGKILL) when done or dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running child process.
pub struct Service {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
    lines: mpsc::UnboundedReceiver<String>,
    stopped: bool,
}

impl Service {
    /// Spawns `command`, copying its stdout and stderr to `<log_dir>/<name>.log`.
    pub async fn spawn(
        name: &str,
        mut command: Command,
        log_dir: &Path,
    ) -> anyhow::Result<Service> {
        let log = log_dir.join(format!("{name}.log"));
        let file = tokio::fs::File::create(&log).await?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("the child has a pid")?;
        let (sender, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let writer = std::sync::Arc::new(tokio::sync::Mutex::new(file));
        tokio::spawn(copy_lines(stdout, writer.clone(), sender.clone()));
        tokio::spawn(copy_lines(stderr, writer, sender));
        Ok(Service {
            name: name.to_string(),
            child,
            pid,
            log,
            lines,
            stopped: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for an output line `find` recognises, for at most `limit`.
    pub async fn wait_line<T>(
        &mut self,
        limit: Duration,
        find: impl Fn(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if let Some(found) = find(&line) {
                    return Some(found);
                }
            }
            None
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(Some(found)) => Ok(found),
            Ok(None) => anyhow::bail!("{} exited; see {}", self.name, self.log.display()),
            Err(_) => anyhow::bail!(
                "{} not ready after {limit:?}; see {}",
                self.name,
                self.log.display()
            ),
        }
    }

    /// Resident memory in KiB (VmRSS), if the process is still there.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid)
    }

    /// SIGTERM to the process group, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        signal_group(self.pid, "-TERM");
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            signal_group(self.pid, "-KILL");
            let _ = self.child.wait().await;
        }
        self.stopped = true;
    }
}

impl Drop for Service {
    /// A run that fails half-way leaves no process (nor its children) behind.
    fn drop(&mut self) {
        if !self.stopped {
            signal_group(self.pid, "-KILL");
        }
    }
}

/// Sends `signal` to the process group led by `pid` (a child we spawned).
fn signal_group(pid: u32, signal: &str) {
    let group = format!("-{pid}");
    let _ = std::process::Command::new("kill")
        .args([signal, "--", &group])
        .stderr(Stdio::null())
        .status();
}

/// Copies `from` line by line into the log and to `lines` (while anyone
/// listens).
async fn copy_lines(
    from: impl AsyncRead + Unpin,
    log: std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>,
    lines: mpsc::UnboundedSender<String>,
) {
    let mut reader = BufReader::new(from).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        let mut file = log.lock().await;
        let _ = file.write_all(format!("{line}\n").as_bytes()).await;
        drop(file);
        let _ = lines.send(line);
    }
}

/// VmRSS of `pid` in KiB, from /proc/<pid>/status.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Samples a process's RSS every 50 ms until stopped; yields the peak.
pub struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            loop {
                peak = peak.max(rss_kib(pid).unwrap_or(0));
                tokio::select! {
                    _ = &mut stopped => return peak,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        });
        RssSampler { stop, task }
    }

    /// The peak RSS in KiB.
    pub async fn peak_kib(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or(0)
    }
}

//! The real `downcity` binary as a child process: spawned with a clean
//! environment, stdout and stderr captured to files, killed when dropped so a
//! failing test never leaks a process.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use downcity::proto::admin_service_client::AdminServiceClient;
use downcity::proto::ai_service_client::AiServiceClient;
use tonic::transport::Channel;

use downcity::proto::TextResponse;

use super::{Admin, Ai, Credentials, text_request};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_downcity");

/// The longest any readiness or exit wait may take.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);
const POLL_STEP: Duration = Duration::from_millis(20);

/// A command for the binary with no inherited `DOWNCITY_*` variable and no
/// colours in its logs.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DOWNCITY_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs the binary to completion (used for `downcity admin ...`).
pub fn run(args: &[&str]) -> Output {
    command(args)
        .stdin(Stdio::null())
        .output()
        .expect("runs the downcity binary")
}

/// A running `downcity` child process; killed on drop unless it has exited.
pub struct CityProcess {
    child: Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl CityProcess {
    /// Spawns `downcity <args>` with `extra_env`, capturing stdout and stderr
    /// into `<log_dir>/<name>.stdout` and `<log_dir>/<name>.stderr`.
    pub fn spawn(
        args: &[&str],
        extra_env: &[(&str, &str)],
        log_dir: &Path,
        name: &str,
    ) -> CityProcess {
        let stdout_path = log_dir.join(format!("{name}.stdout"));
        let stderr_path = log_dir.join(format!("{name}.stderr"));
        let mut command = command(args);
        command
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("stdout file"))
            .stderr(File::create(&stderr_path).expect("stderr file"));
        let child = command.spawn().expect("spawns the downcity binary");
        CityProcess {
            child,
            stdout_path,
            stderr_path,
        }
    }

    /// Spawns `downcity serve --dev` on 127.0.0.1:0 over `data_dir` (see
    /// `spawn`) and waits for the dev.env it writes.
    pub async fn serve_dev(
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        log_dir: &Path,
        name: &str,
    ) -> (CityProcess, DevEnv) {
        let data = data_dir.to_str().expect("a UTF-8 data dir");
        let args = [
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
        ];
        let mut city = CityProcess::spawn(&args, extra_env, log_dir, name);
        let env = city.wait_dev_env(data_dir).await;
        (city, env)
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Polls `probe` every 20 ms until it yields a value, for at most
    /// [`WAIT_LIMIT`]; panics (showing the output) if the process exits first
    /// or the time runs out.
    pub async fn wait_for<T>(
        &mut self,
        what: &str,
        mut probe: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(value) = probe(self) {
                return value;
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // One last look: the output may have landed just before exit.
                if let Some(value) = probe(self) {
                    return value;
                }
                panic!(
                    "downcity exited ({status}) before {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} after {WAIT_LIMIT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(POLL_STEP).await;
        }
    }

    /// Waits until `serve --dev` has written a complete `DATA_DIR/dev.env`
    /// (it prints "Dev credentials written" right after writing the file, so
    /// a dev.env left by an earlier run is never mistaken for this one's).
    pub async fn wait_dev_env(&mut self, data_dir: &Path) -> DevEnv {
        let path = data_dir.join("dev.env");
        self.wait_for("dev.env", |p| {
            if !p.stdout().contains("Dev credentials written to") {
                return None;
            }
            DevEnv::read(&path)
        })
        .await
    }

    /// Waits for the "City listening" log line and returns its address.
    pub async fn wait_listening(&mut self) -> String {
        self.wait_for("the \"City listening\" log line", |p| {
            listening_addr(&p.stderr())
        })
        .await
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.id().to_string())
            .status()
            .expect("runs kill");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.id()
        );
        self.exit_status().await
    }

    /// Sends SIGKILL (no shutdown, no flush: a crash) and waits for the exit.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("waits for the killed process");
    }

    /// Sends SIGTERM and asserts that City exits with 0.
    pub async fn terminate_cleanly(&mut self) {
        let status = self.terminate().await;
        assert!(
            status.success(),
            "SIGTERM → exit 0, got {status}\n{}",
            self.stderr()
        );
    }

    /// Waits (bounded) for the exit status.
    pub async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "downcity did not exit within {WAIT_LIMIT:?}\n--- stderr ---\n{}",
                self.stderr()
            );
            tokio::time::sleep(POLL_STEP).await;
        }
    }
}

impl Drop for CityProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `downcity admin --addr <addr> --admin-key <key> <args>` and returns
/// its stdout, asserting exit 0.
pub fn admin_cli(addr: &str, key: &str, args: &[&str]) -> String {
    let (output, full) = run_admin(addr, key, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "downcity {full:?} failed: {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// As [`admin_cli`], but asserts that the command fails, with nothing on
/// stdout; returns its stderr.
pub fn admin_cli_fails(addr: &str, key: &str, args: &[&str]) -> String {
    let (output, full) = run_admin(addr, key, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success() && output.stdout.is_empty(),
        "downcity {full:?} did not fail cleanly: {}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

fn run_admin<'a>(addr: &'a str, key: &'a str, args: &[&'a str]) -> (Output, Vec<&'a str>) {
    let mut full = vec!["admin", "--addr", addr, "--admin-key", key];
    full.extend_from_slice(args);
    (run(&full), full)
}

/// Parses a command's JSON output.
pub fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

/// The four lines of `DATA_DIR/dev.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevEnv {
    pub addr: String,
    pub admin_key: String,
    pub studio_id: String,
    pub user_token: String,
    /// Every `KEY=VALUE` line of the file.
    pub lines: BTreeMap<String, String>,
}

impl DevEnv {
    /// `downcity admin <args>` against this City with its admin key; its
    /// stdout, asserting exit 0.
    pub fn admin(&self, args: &[&str]) -> String {
        admin_cli(&self.addr, &self.admin_key, args)
    }

    /// As [`DevEnv::admin`], asserting that the command fails; its stderr.
    pub fn admin_fails(&self, args: &[&str]) -> String {
        admin_cli_fails(&self.addr, &self.admin_key, args)
    }

    /// Parses a complete dev.env; `None` while it is missing or partial.
    pub fn read(path: &Path) -> Option<DevEnv> {
        let text = std::fs::read_to_string(path).ok()?;
        if !text.ends_with('\n') {
            return None;
        }
        let lines: BTreeMap<String, String> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |key: &str| lines.get(key).filter(|v| !v.is_empty()).cloned();
        Some(DevEnv {
            addr: get("DOWNCITY_ADDR")?,
            admin_key: get("DOWNCITY_ADMIN_KEY")?,
            studio_id: get("DOWNCITY_STUDIO_ID")?,
            user_token: get("DOWNCITY_USER_TOKEN")?,
            lines,
        })
    }
}

/// Removes ANSI escape sequences (in case a log line is coloured anyway).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (0x40..=0x7e).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `addr=` of the "City listening" log line, if it has been written.
pub fn listening_addr(stderr: &str) -> Option<String> {
    let stderr = strip_ansi(stderr);
    let line = stderr
        .lines()
        .find(|line| line.contains("City listening"))?;
    let start = line.find("addr=")? + "addr=".len();
    let addr: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    (!addr.is_empty()).then_some(addr)
}

/// A channel to a City at `host:port`.
pub async fn connect(addr: &str) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connects to {addr}: {e}"))
}

/// Sends "Hello, City" with the dev studio and user token, asserts the mock
/// provider's echo and returns the answer.
pub async fn hello_with_dev_token(channel: Channel, env: &DevEnv) -> TextResponse {
    let answer = ai_client(channel, &env.studio_id, &env.user_token)
        .text(text_request("Hello, City"))
        .await
        .expect("the dev token works")
        .into_inner();
    assert_eq!(answer.text, "Echo: Hello, City");
    answer
}

pub fn admin_client(channel: Channel, bearer: Option<&str>) -> Admin {
    AdminServiceClient::with_interceptor(
        channel,
        Credentials {
            studio_id: None,
            bearer: bearer.map(str::to_string),
        },
    )
}

pub fn ai_client(channel: Channel, studio_id: &str, token: &str) -> Ai {
    AiServiceClient::with_interceptor(
        channel,
        Credentials {
            studio_id: Some(studio_id.to_string()),
            bearer: Some(token.to_string()),
        },
    )
}

//! The conditions of a run: the machine and how busy it was.

use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_mib: u64,
    pub cpu_model: String,
    pub kernel: String,
    /// 1-minute load average when the run started.
    pub load_average_start: f64,
}

impl Machine {
    pub fn describe() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let meminfo = read("/proc/meminfo");
        let memory_kib: u64 = field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib: memory_kib / 1024,
            cpu_model: field(&read("/proc/cpuinfo"), "model name").unwrap_or_default(),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            load_average_start: load_average(),
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Busy share of all cores below which the machine counts as quiet.
const QUIET_BUSY: f64 = 0.25;
/// Longest wait for quiet; a machine busy with others' work is recorded in
/// the load averages instead.
const QUIET_LIMIT: Duration = Duration::from_secs(10);
const QUIET_SAMPLE: Duration = Duration::from_millis(200);

/// Waits until the machine's CPUs were mostly idle over a short sample (at
/// most `QUIET_LIMIT`).
pub async fn wait_until_quiet() {
    let started = Instant::now();
    let mut before = cpu_times();
    while started.elapsed() < QUIET_LIMIT {
        tokio::time::sleep(QUIET_SAMPLE).await;
        let now = cpu_times();
        let (Some((busy0, total0)), Some((busy1, total1))) = (before, now) else {
            return;
        };
        let total = total1.saturating_sub(total0);
        if total == 0 || (busy1.saturating_sub(busy0) as f64) < QUIET_BUSY * total as f64 {
            return;
        }
        before = now;
    }
    eprintln!("  (machine still busy after {QUIET_LIMIT:?}; measuring anyway)");
}

/// (busy, total) jiffies of all CPUs, from /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let values: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    let total: u64 = values.iter().take(8).sum();
    Some((total - idle, total))
}

/// The value of the first `key: value` line of a /proc file.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

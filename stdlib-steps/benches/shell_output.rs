//! How fast the `shell` kind reads a command's output: lines/s and MB/s
//! through `Shell::run` with a host that only counts what it is given, so
//! the number is the kind's own cost (the engine's side of output, events,
//! masking and the console, is not in it).
//!
//! Each workload's output is made once into a file under the temporary
//! folder and read back with `cat`; the same `cat` with its output sent to
//! `/dev/null` shows how fast the command itself goes: the kind cannot beat
//! that.
//!
//! ```text
//! cargo bench -p stdlib-steps --bench shell_output
//! SHELL_BENCH_MB=100 cargo bench -p stdlib-steps --bench shell_output   # smaller
//! ```
//!
//! Not a criterion bench: one workload moves half a gigabyte, and criterion
//! would want ten samples or more of each; the best of three runs is enough
//! to tell 0.5 M lines/s from 5 M.

use runbook_engine::step::{Host, OutputStream, StepContext, StepError, StepFuture, StepKind};
use serde_json::{Value as Json, json};
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Counts the lines and bytes it is given, and nothing more.
#[derive(Default)]
struct CountingHost {
    lines: AtomicU64,
    pieces: AtomicU64,
    bytes: AtomicU64,
}

impl Host for CountingHost {
    fn run_nested(&self, _: &str, _: Json, _: CancellationToken) -> StepFuture<'_> {
        Box::pin(async { Err(StepError::new("no nested steps in the bench")) })
    }

    fn eval(&self, _: &str, _: &Json) -> Result<Json, String> {
        Err("no expressions in the bench".into())
    }

    fn confirm<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async { Err("nobody to ask".to_string()) })
    }

    fn output(&self, _: &str, _: OutputStream, text: &str, line_end: bool) {
        let counter = if line_end { &self.lines } else { &self.pieces };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
    }

    fn log(&self, _: &str, _: &str, _: &str) {}
}

struct Workload {
    name: &'static str,
    command: String,
}

/// The workloads: each output is made once into a file in `dir` (untimed),
/// and the command timed is `cat` of that file, so that the producer is
/// not what is measured (`fold` alone manages about 100 MB/s).
fn workloads(megabytes: u64, dir: &Path) -> Vec<Workload> {
    let lines = megabytes * 5_000_000 / 500;
    let made = |name: &str, maker: String| {
        let path = dir.join(name);
        if !path.exists() {
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{maker} > '{}'", path.display()))
                .status()
                .expect("sh runs");
            assert!(status.success(), "`{maker}` failed");
        }
        format!("cat '{}'", path.display())
    };
    vec![
        Workload {
            name: "short lines (seq)",
            command: made("seq", format!("seq 1 {lines}")),
        },
        Workload {
            name: "100-byte lines",
            command: made(
                "fold",
                format!("head -c {megabytes}M /dev/zero | tr '\\0' 'x' | fold -w 100"),
            ),
        },
        Workload {
            name: "no newline at all",
            command: made("one-line", format!("head -c {megabytes}M /dev/zero | tr '\\0' 'x'")),
        },
    ]
}

/// How long the command takes with its output thrown away.
fn alone(command: &str) -> Duration {
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} > /dev/null"))
        .status()
        .expect("sh runs");
    assert!(status.success(), "`{command}` failed");
    started.elapsed()
}

/// One run of the command through the `shell` kind: the time, the lines
/// and the bytes the host was given.
fn through_shell(runtime: &tokio::runtime::Runtime, command: &str) -> (Duration, u64, u64) {
    let host = Arc::new(CountingHost::default());
    let cx = StepContext {
        run_id: "bench".into(),
        step_id: "output".into(),
        attempt: 1,
        idempotency_key: "bench.output".into(),
        params: json!({ "run": command }),
        cancel: CancellationToken::new(),
        kill_grace: Duration::from_secs(1),
        host: host.clone(),
    };
    let started = Instant::now();
    let result = runtime.block_on(stdlib_steps::Shell.run(cx));
    let took = started.elapsed();
    if let Err(e) = result {
        panic!("`{command}` failed in the shell kind: {e}");
    }
    let lines = host.lines.load(Ordering::Relaxed) + host.pieces.load(Ordering::Relaxed);
    (took, lines, host.bytes.load(Ordering::Relaxed))
}

fn main() {
    // `cargo bench` passes `--bench`; a filter, if any, picks workloads.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let megabytes: u64 = std::env::var("SHELL_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = std::env::temp_dir().join(format!("runbook-shell-bench-{megabytes}"));
    std::fs::create_dir_all(&dir).expect("a folder for the workloads");
    for workload in workloads(megabytes, &dir) {
        if !filter.is_empty() && !filter.iter().any(|f| workload.name.contains(f.as_str())) {
            continue;
        }
        let floor = (0..3).map(|_| alone(&workload.command)).min().unwrap_or_default();
        let runs: Vec<_> = (0..3).map(|_| through_shell(&runtime, &workload.command)).collect();
        let Some(&(took, lines, bytes)) = runs.iter().min_by_key(|run| run.0) else {
            continue;
        };
        let seconds = took.as_secs_f64();
        println!(
            "{:<20} {:>7.2} M lines/s {:>8.1} MB/s   ({} lines, {:.0} MB in {:.2} s; the command alone: {:.2} s)",
            workload.name,
            lines as f64 / seconds / 1e6,
            bytes as f64 / seconds / 1e6,
            lines,
            bytes as f64 / 1e6,
            seconds,
            floor.as_secs_f64(),
        );
    }
}

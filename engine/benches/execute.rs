//! The executor's cost per step, measured in the same run against spawning
//! the same `/bin/true` processes directly:
//!
//! - `spawn_true_directly/1000`: 1,000 sequential `/bin/true` processes, no engine;
//! - `shell_true/1000`: a runbook of 1,000 sequential `shell` steps running `/bin/true`;
//! - `noop_log/1000` and `noop_assert/1000`: 1,000 steps that start no process.
//!
//! Per-step overhead = (shell_true − spawn_true_directly) / 1,000; the target
//! is under 0.5 ms. A no-op step should cost under 50 µs. The `_journaled`
//! variants add the write-ahead journal with fsync (a state directory in a
//! temporary folder): the journal's cost per step is their difference.

use criterion::{Criterion, criterion_group, criterion_main};
use runbook_engine::execute::{Event, Reporter, RunRequest, RunStatus, Unattended, execute};
use runbook_engine::{Registry, SourceFile};
use std::sync::Arc;
use std::time::Duration;

const STEPS: usize = 1000;

struct Quiet;

impl Reporter for Quiet {
    fn event(&self, _: &Event) {}
}

fn runbook(step: &str) -> String {
    let mut text = String::from("runbook: 1\nname: bench\nsteps:\n");
    for i in 0..STEPS {
        text.push_str(&format!("  - id: s{i}\n{step}"));
    }
    text
}

fn compile(text: &str, registry: &Registry) -> Arc<runbook_engine::Compiled> {
    let loaded =
        runbook_engine::load(&SourceFile::new("bench.yaml", text), registry).expect("the bench runbook is valid");
    Arc::new(loaded.compiled)
}

fn run(runtime: &tokio::runtime::Runtime, compiled: &Arc<runbook_engine::Compiled>, registry: &Arc<Registry>) {
    run_with(runtime, compiled, registry, None);
}

/// With a state directory: every state change is journaled and fsynced.
fn run_journaled(
    runtime: &tokio::runtime::Runtime,
    compiled: &Arc<runbook_engine::Compiled>,
    registry: &Arc<Registry>,
    dir: &std::path::Path,
) {
    let state = runbook_engine::execute::StateRequest {
        state_dir: dir.to_path_buf(),
        runbook_path: dir.join("bench.yaml"),
        runbook_text: Arc::from(&b"bench"[..]),
    };
    run_with(runtime, compiled, registry, Some(state));
}

fn run_with(
    runtime: &tokio::runtime::Runtime,
    compiled: &Arc<runbook_engine::Compiled>,
    registry: &Arc<Registry>,
    state: Option<runbook_engine::execute::StateRequest>,
) {
    let request = RunRequest {
        inputs: Vec::new(),
        env: std::sync::Arc::new(|_: &str| None::<String>),
        base_dir: std::env::temp_dir(),
        step_mode: false,
        yes: true,
        no_rollback: false,
        timeout: None,
        kill_grace: Duration::from_secs(1),
        run_id: Some(runbook_engine::execute::new_run_id()),
        state,
        mode: runbook_engine::execute::Mode::Run,
        secrets: None,
        operator: "test".into(),
    };
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let summary = runtime
        .block_on(execute(
            compiled.clone(),
            registry.clone(),
            request,
            Arc::new(Unattended { yes: true }),
            Arc::new(Quiet),
            rx,
        ))
        .expect("the run starts");
    assert_eq!(summary.status, RunStatus::Succeeded);
}

fn per_step(c: &mut Criterion) {
    let mut registry = Registry::new();
    stdlib_steps::register(&mut registry);
    let registry = Arc::new(registry);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let shell = compile(
        &runbook("    uses: shell\n    with: { argv: [/bin/true] }\n"),
        &registry,
    );
    let log = compile(
        &runbook("    uses: log\n    with: { message: \"step {{ run.id }}\" }\n"),
        &registry,
    );
    let assert = compile(
        &runbook("    uses: assert\n    with: { that: \"run.id != ''\" }\n"),
        &registry,
    );
    let state = tempfile::tempdir().unwrap();

    let mut group = c.benchmark_group("per_step");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("spawn_true_directly/1000", |b| {
        b.iter(|| {
            for _ in 0..STEPS {
                let status = std::process::Command::new("/bin/true").status().unwrap();
                assert!(status.success());
            }
        });
    });
    group.bench_function("shell_true/1000", |b| b.iter(|| run(&runtime, &shell, &registry)));
    group.bench_function("noop_log/1000", |b| b.iter(|| run(&runtime, &log, &registry)));
    group.bench_function("noop_assert/1000", |b| b.iter(|| run(&runtime, &assert, &registry)));
    group.bench_function("shell_true_journaled/1000", |b| {
        b.iter(|| run_journaled(&runtime, &shell, &registry, state.path()))
    });
    group.bench_function("noop_log_journaled/1000", |b| {
        b.iter(|| run_journaled(&runtime, &log, &registry, state.path()))
    });
    group.finish();
}

criterion_group!(benches, per_step);
criterion_main!(benches);

//! How long the pipeline takes on large runbooks: `parse_compile/{n}` loads a
//! runbook of n steps (parse, validate, compile), `parse_compile_plan/{n}`
//! also plans it and renders the plan as text.
//!
//! The runbooks are generated in memory and look like real ones: inputs, a
//! secret, defaults, mostly sequential `shell`/`http`/`log` steps, a fresh
//! start or a join every tenth step, templates reading inputs and the outputs
//! of an ancestor, guards, `verify`, `outputs` and some rollbacks.
//!
//! Run with `cargo bench -p runbook-engine --bench pipeline`.

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use runbook_engine::diagnostic::{self, RenderOptions};
use runbook_engine::plan::{self, PlanRequest};
use runbook_engine::{Registry, SourceFile};
use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 3] = [100, 1_000, 10_000];

/// Whether step `j` is guaranteed to finish before step `i` (`j < i`).
fn is_ancestor(j: usize, i: usize) -> bool {
    let mut step = i;
    while step > j {
        step = match needs(step) {
            Needs::Previous => step - 1,
            Needs::Nothing => return false,
            Needs::Join(a, b) => {
                if a == j || b == j {
                    return true;
                }
                a
            }
        };
    }
    step == j
}

enum Needs {
    /// No `needs`: the step above.
    Previous,
    /// `needs: []`.
    Nothing,
    /// `needs: [sA, sB]`.
    Join(usize, usize),
}

fn needs(i: usize) -> Needs {
    if i == 0 || !i.is_multiple_of(10) {
        Needs::Previous
    } else if i.is_multiple_of(20) {
        Needs::Nothing
    } else {
        Needs::Join(i - 1, i - 7)
    }
}

/// A runbook of `steps` steps.
fn runbook(steps: usize) -> String {
    let mut out = format!(
        r#"runbook: 1
name: bench-{steps}
description: >
  A generated runbook of {steps} steps, for measuring the pipeline.

inputs:
  region:
    type: string
    default: eu-west-1
    description: Region to work in
  api_url:
    type: url
    default: http://127.0.0.1:8080
  replicas:
    type: integer
    default: 3
  dry:
    type: boolean
    default: false

secrets:
  token:
    env: BENCH_TOKEN
    description: API token

defaults:
  timeout: 30s
  retry: {{ attempts: 2, backoff: exponential, delay: 1s, max_delay: 10s }}

steps:
"#
    );
    for i in 0..steps {
        step(&mut out, i);
    }
    out.push_str(
        r#"
finally:
  - id: report
    uses: log
    with:
      message: "finished in {{ inputs.region }}: {{ run.status }}"
"#,
    );
    out
}

fn step(out: &mut String, i: usize) {
    let _ = writeln!(out, "  - id: s{i}");
    let _ = writeln!(out, "    name: Step number {i}");
    match needs(i) {
        Needs::Previous => {}
        Needs::Nothing => out.push_str("    needs: []\n"),
        Needs::Join(a, b) => {
            let _ = writeln!(out, "    needs: [s{a}, s{b}]");
        }
    }
    // The nearest step this one may read: the one above, or a joined one.
    let upstream = match needs(i) {
        Needs::Previous if i > 0 => Some(i - 1),
        Needs::Join(_, b) => Some(b),
        _ => None,
    };
    // Sometimes a step further up, when it is an ancestor.
    let far = upstream.and_then(|u| u.checked_sub(3)).filter(|&f| is_ancestor(f, i));
    match (i % 7, upstream) {
        (3, _) => out.push_str("    when: not inputs.dry\n"),
        (5, Some(u)) => {
            let _ = writeln!(
                out,
                "    when: steps.s{u}.outputs.out != 'skip' and inputs.replicas > 1"
            );
        }
        _ => {}
    }
    let read = |u: Option<usize>| {
        u.map_or_else(
            || "{{ inputs.region }}".to_string(),
            |u| format!("{{{{ steps.s{u}.outputs.out }}}}"),
        )
    };
    match i % 3 {
        0 => {
            out.push_str("    uses: shell\n    with:\n");
            let _ = writeln!(
                out,
                "      run: \"deploy --region {{{{ inputs.region }}}} --after {} --n {{{{ inputs.replicas }}}}\"",
                read(upstream)
            );
            if let Some(f) = far {
                let _ = writeln!(out, "      env: {{ EARLIER: \"{}\" }}", read(Some(f)));
            }
            out.push_str("    verify:\n      - result.exit_code == 0\n");
            out.push_str("    outputs:\n      out: result.stdout | trim\n");
            if i % 5 == 2 {
                out.push_str(
                    "    rollback:\n      uses: shell\n      with:\n        run: \"undeploy --region {{ inputs.region }}\"\n      verify: result.exit_code == 0\n",
                );
            }
        }
        1 => {
            out.push_str("    uses: http\n    with:\n      method: POST\n");
            let _ = writeln!(out, "      url: \"{{{{ inputs.api_url }}}}/items/{i}\"");
            out.push_str("      headers: { authorization: \"Bearer {{ secrets.token }}\" }\n");
            let _ = writeln!(
                out,
                "      json: {{ previous: \"{}\", region: \"{{{{ inputs.region }}}}\" }}",
                read(upstream)
            );
            out.push_str("    verify:\n      - result.status == 200\n      - result.json.id is defined\n");
            out.push_str("    outputs:\n      out: result.json.id\n");
            if i % 5 == 1 {
                out.push_str("    on_failure: continue\n");
            }
        }
        _ => {
            out.push_str("    uses: log\n    with:\n");
            let _ = writeln!(out, "      message: \"step {i} after {}\"", read(upstream));
            out.push_str("    outputs:\n      out: \"'logged'\"\n");
        }
    }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    stdlib_steps::register(&mut registry);
    registry
}

fn request() -> PlanRequest<'static> {
    PlanRequest {
        inputs: vec![("region".to_string(), "us-east-1".to_string())],
        ..PlanRequest::default()
    }
}

/// Loads and plans a generated runbook once, failing loudly if it is not valid.
fn check(source: &SourceFile, registry: &Registry) {
    let loaded = match runbook_engine::load(source, registry) {
        Ok(loaded) => loaded,
        Err(diagnostics) => panic!(
            "the generated runbook does not load:\n{}",
            diagnostic::render(source, &diagnostics, RenderOptions::default())
        ),
    };
    if !loaded.warnings.is_empty() {
        panic!(
            "the generated runbook has warnings:\n{}",
            diagnostic::render(source, &loaded.warnings, RenderOptions::default())
        );
    }
    if let Err(diagnostics) = plan::plan(&loaded.compiled, registry, &request()) {
        panic!(
            "the generated runbook does not plan:\n{}",
            diagnostic::render(source, &diagnostics, RenderOptions::default())
        );
    }
}

fn pipeline(c: &mut Criterion) {
    let registry = registry();
    let sources: Vec<(usize, SourceFile)> = SIZES
        .iter()
        .map(|&n| (n, SourceFile::new(format!("bench-{n}.yaml"), runbook(n))))
        .collect();
    for (_, source) in &sources {
        check(source, &registry);
    }

    let mut group = c.benchmark_group("parse_compile");
    for (n, source) in &sources {
        configure(&mut group, *n);
        group.bench_with_input(BenchmarkId::from_parameter(n), source, |b, source| {
            b.iter(|| runbook_engine::load(black_box(source), &registry).is_ok());
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parse_compile_plan");
    for (n, source) in &sources {
        configure(&mut group, *n);
        group.bench_with_input(BenchmarkId::from_parameter(n), source, |b, source| {
            let request = request();
            b.iter(|| {
                let loaded = runbook_engine::load(black_box(source), &registry).ok()?;
                let (plan, _) = plan::plan(&loaded.compiled, &registry, &request).ok()?;
                Some(plan::render_text(&plan, false).len())
            });
        });
    }
    group.finish();
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, n: usize) {
    if n >= 10_000 {
        group
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .measurement_time(Duration::from_secs(10));
    } else {
        group
            .sample_size(20)
            .sampling_mode(SamplingMode::Auto)
            .measurement_time(Duration::from_secs(3));
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);

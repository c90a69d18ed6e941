//! Regression tests for hostile inputs an adversarial review tried (issue
//! 8, items 19 to 22): runaway templates, durations that overflow, unknown
//! filters and tests, a FIFO given as a runbook, a huge cycle, and a step
//! that prints a lot.

#[path = "support/mod.rs"]
mod support;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::Sandbox;

/// Waits for a command to end; kills it (and fails) if it runs past `limit`,
/// so a hang is a failure, not a stuck suite.
fn finishes_within(mut command: std::process::Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const RUNAWAY: &str = r#"
runbook: 1
name: runaway
inputs:
  s: { default: "x" }
steps:
  - id: loops
    uses: log
    with:
      message: "{% for a in inputs.s %}{% for b in inputs.s %}{% for c in inputs.s %}.{% endfor %}{% endfor %}{% endfor %}"
"#;

#[test]
fn a_runaway_template_ends_with_a_clear_error_in_plan_and_run() {
    let sandbox = Sandbox::new(RUNAWAY);
    let long = format!("s={}", "y".repeat(3000));
    let (code, stderr) = finishes_within(
        support::command(sandbox.path(), &["plan", "runbook.yaml", "-i", &long]),
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("the template did too much work"), "{stderr}");
    let (code, stderr) = finishes_within(
        support::command(sandbox.path(), &["run", "runbook.yaml", "-i", &long]),
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("the template did too much work"), "{stderr}");
}

#[test]
fn durations_that_overflow_the_clock_are_refused_not_a_panic() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: durations
steps:
  - id: wait_long
    uses: wait
    with:
      probe: { uses: shell, with: { run: "true" } }
      until: "result.exit_code == 0"
      timeout: 9300000000000000000s
  - id: zero
    uses: shell
    with: { run: "true" }
    timeout: 0s
  - id: huge
    uses: shell
    with: { run: "true" }
    timeout: 18446744073709551615s
"#,
    );
    let check = sandbox.runbook(&["check", "runbook.yaml"], &[]);
    assert_eq!(check.code, Some(2), "{}", check.transcript());
    assert!(!check.stderr.contains("panicked"), "{}", check.transcript());
    assert_eq!(
        check.stderr.matches("longer than a year").count(),
        2,
        "{}",
        check.transcript()
    );
    assert!(
        check.stderr.contains("would stop everything at once"),
        "{}",
        check.transcript()
    );

    let fine = Sandbox::new("runbook: 1\nname: ok\nsteps:\n  - id: a\n    uses: shell\n    with: { run: \"true\" }\n");
    for args in [
        ["run", "runbook.yaml", "--timeout", "18446744073709551615s"],
        ["run", "runbook.yaml", "--grace", "18446744073709551615s"],
        ["run", "runbook.yaml", "--timeout", "0s"],
    ] {
        let outcome = fine.runbook(&args, &[]);
        assert_eq!(outcome.code, Some(2), "{args:?}: {}", outcome.transcript());
        assert!(!outcome.stderr.contains("panicked"), "{}", outcome.transcript());
    }
}

#[test]
fn unknown_filters_and_tests_are_found_by_check_with_a_suggestion() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: typos
steps:
  - id: first
    uses: shell
    with: { run: "touch $SANDBOX/changed" }
  - id: second
    uses: log
    when: "run.id is strng"
    with: { message: "{{ run.id | uppper }}" }
"#,
    );
    let check = sandbox.runbook(&["check", "runbook.yaml"], &[]);
    assert_eq!(check.code, Some(2), "{}", check.transcript());
    assert!(
        check.stderr.contains("unknown filter `uppper`") && check.stderr.contains("did you mean `upper`?"),
        "{}",
        check.transcript()
    );
    assert!(
        check.stderr.contains("unknown test `strng`") && check.stderr.contains("did you mean `string`?"),
        "{}",
        check.transcript()
    );
    let run = sandbox.run(&[]);
    assert_eq!(run.code, Some(2), "{}", run.transcript());
    assert!(!sandbox.file("changed").exists(), "nothing ran before the typo");
}

#[test]
fn check_of_a_fifo_says_so_at_once() {
    let sandbox = Sandbox::new("");
    let fifo = sandbox.file("pipe.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for args in [["check", "pipe.yaml"], ["plan", "pipe.yaml"], ["run", "pipe.yaml"]] {
        let (code, stderr) = finishes_within(support::command(sandbox.path(), &args), Duration::from_secs(30));
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("it is a FIFO, not a regular file"), "{stderr}");
    }
    let (code, stderr) = finishes_within(
        support::command(sandbox.path(), &["check", "/dev/zero"]),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("a device"), "{stderr}");
}

#[test]
fn a_ten_thousand_step_cycle_is_reported_briefly() {
    let steps: String = (0..10_000)
        .map(|i| {
            format!(
                "  - id: s{i}\n    uses: log\n    with: {{ message: x }}\n    needs: [s{}]\n",
                (i + 1) % 10_000
            )
        })
        .collect();
    let sandbox = Sandbox::new(&format!("runbook: 1\nname: cycle\nsteps:\n{steps}"));
    let (code, stderr) = finishes_within(
        support::command(sandbox.path(), &["check", "runbook.yaml"]),
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(2), "{}", &stderr[..stderr.len().min(2000)]);
    assert!(
        stderr.contains("steps form a cycle"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    assert!(
        stderr.contains("(9977 more steps)"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    // It used to name and underline all 10,000 edges: 2.2 MB of text.
    assert!(stderr.len() < 20_000, "{} bytes", stderr.len());
}

#[test]
fn a_step_that_prints_a_lot_is_shown_whole_and_in_order() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: loud
steps:
  - id: loud
    uses: shell
    with: { run: "seq 1 200000" }
"#,
    );
    let run = sandbox.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let numbers: Vec<u64> = run
        .stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("│ "))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(numbers, (1..=200_000).collect::<Vec<_>>());
    let json = sandbox.run(&["--output", "json"]);
    assert_eq!(
        json.stdout.lines().filter(|l| l.contains("\"step_output\"")).count(),
        200_000
    );
}

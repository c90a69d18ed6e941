//! Regression tests for hostile inputs an adversarial review tried (issue
//! 8, items 19 to 22): runaway templates, durations that overflow, unknown
//! filters and tests, a FIFO given as a runbook, a huge cycle, and a step
//! that prints a lot. Then the input types that keep a bad value from
//! starting a run: `datetime` and the `pattern` of a string (issue 11, item 14).

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

const TIMES: &str = r#"
runbook: 1
name: times
inputs:
  since: { type: datetime, default: -24h }
  until: { type: datetime, default: now }
  at: { type: datetime, default: "2026-12-03T09:30:00+01:00" }
steps:
  - id: first
    uses: shell
    with: { run: "echo {{ inputs.since }} {{ inputs.until }} {{ inputs.at }} {{ run.started_at }} > $SANDBOX/first" }
  - id: second
    uses: shell
    with: { run: "echo {{ inputs.since }} {{ run.started_at }} > $SANDBOX/second" }
"#;

/// The words a step wrote to a file of the sandbox.
fn words(sandbox: &Sandbox, name: &str) -> Vec<String> {
    sandbox.read(name).split_whitespace().map(str::to_string).collect()
}

/// `2026-12-03T08:00:00Z`: RFC 3339 in UTC, to the second.
fn is_utc_to_the_second(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 20
        && text.ends_with('Z')
        && bytes[10] == b'T'
        && text
            .char_indices()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19) || c.is_ascii_digit())
}

#[test]
fn datetime_inputs_are_resolved_when_the_run_starts_and_a_resume_keeps_them() {
    let sandbox = Sandbox::new(TIMES);
    let plan = sandbox.runbook(&["plan", "runbook.yaml"], &[]);
    assert_eq!(plan.code, Some(0), "{}", plan.transcript());
    assert!(plan.stdout.contains("(-24h, default)"), "{}", plan.stdout);
    assert!(plan.stdout.contains("(now, default)"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("at = 2026-12-03T08:30:00Z  (default)"),
        "{}",
        plan.stdout
    );

    // The run dies after its first step; it is resumed more than a second later.
    // Records: run started, step started, its checkpoint, step succeeded.
    let crashed = sandbox.runbook(&["run", "runbook.yaml"], &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", "4")]);
    assert_eq!(crashed.code, None, "{}", crashed.transcript());
    assert!(!sandbox.file("second").exists(), "the run died before its second step");
    let first = words(&sandbox, "first");
    let [since, until, at, started] = first.as_slice() else {
        panic!("{first:?}");
    };
    assert!(is_utc_to_the_second(since) && is_utc_to_the_second(until), "{first:?}");
    assert_eq!(until, started, "`now` is the start of the run");
    assert_eq!(since[11..], until[11..], "a day before, to the second: {first:?}");
    assert_ne!(since[..10], until[..10], "a day before: {first:?}");
    assert_eq!(at, "2026-12-03T08:30:00Z", "an offset is applied");

    let run = sandbox.run_ids().pop().unwrap();
    let journal = std::fs::read_to_string(sandbox.state().join("runs").join(&run).join("journal.jsonl")).unwrap();
    let header: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(
        header["inputs"]["since"],
        since.as_str(),
        "the journal keeps the time, not `-24h`"
    );
    assert_eq!(header["inputs"]["until"], until.as_str());

    std::thread::sleep(Duration::from_millis(1100));
    let resumed = sandbox.runbook(&["resume", &run, "--yes"], &[]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.transcript());
    let second = words(&sandbox, "second");
    assert_eq!(second[0], *since, "the resumed run reads the time the run started with");
    assert_ne!(second[1], *started, "while its own clock has moved on");
}

#[test]
fn a_datetime_that_does_not_read_stops_plan_and_run_with_what_to_write() {
    let sandbox = Sandbox::new(TIMES);
    for (value, says) in [
        ("yesterday", "`yesterday` is not a datetime"),
        ("2026-12-03T08:00:00", "has no offset"),
        ("24h", "write `-24h`"),
    ] {
        let input = format!("since={value}");
        for command in ["plan", "run"] {
            let outcome = sandbox.runbook(&[command, "runbook.yaml", "-i", &input], &[]);
            assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
            assert!(
                outcome.stderr.contains("bad value for input `since` (argument)") && outcome.stderr.contains(says),
                "{}",
                outcome.transcript()
            );
        }
    }
    assert!(!sandbox.file("first").exists(), "nothing ran");
}

const TENANT: &str = r#"
runbook: 1
name: tenant
inputs:
  tenant:
    pattern: "[a-z][a-z0-9-]*"
    env: TENANT
    description: the tenant's slug
  replicas: { type: integer, default: 1 }
secrets:
  token: { env: TOKEN }
steps:
  - id: touch
    uses: shell
    with: { run: "echo {{ inputs.tenant }} > $SANDBOX/ran" }
"#;

#[test]
fn a_value_that_does_not_match_its_pattern_stops_plan_and_run_before_anything_runs() {
    let sandbox = Sandbox::new(TENANT);
    let token = ("TOKEN", "tok-93f1c0d2");
    let wide = ("COLUMNS", "200");
    for command in ["plan", "run"] {
        let outcome = sandbox.runbook(&[command, "runbook.yaml", "-i", "tenant=Acme Corp"], &[token, wide]);
        assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
        assert!(
            outcome.stderr.contains(
                "bad value for input `tenant` (argument): `Acme Corp` does not match the pattern `[a-z][a-z0-9-]*`"
            ),
            "{}",
            outcome.transcript()
        );
        assert!(outcome.stderr.contains("the tenant's slug"), "{}", outcome.transcript());
        let env = sandbox.runbook(&[command, "runbook.yaml"], &[token, wide, ("TENANT", "acme/../x")]);
        assert_eq!(env.code, Some(2), "{}", env.transcript());
        assert!(
            env.stderr
                .contains("input `tenant` (env TENANT): `acme/../x` does not match"),
            "{}",
            env.transcript()
        );
    }
    assert!(!sandbox.file("ran").exists(), "nothing ran");

    let ran = sandbox.runbook(&["run", "runbook.yaml", "-i", "tenant=acme-2"], &[token]);
    assert_eq!(ran.code, Some(0), "{}", ran.transcript());
    assert_eq!(sandbox.read("ran"), "acme-2\n");
}

#[test]
fn a_value_that_holds_a_secret_is_not_shown_when_it_does_not_match() {
    let sandbox = Sandbox::new(TENANT);
    let outcome = sandbox.runbook(
        &["run", "runbook.yaml", "-i", "tenant=Tok-93F1C0D2"],
        &[("TOKEN", "Tok-93F1C0D2"), ("COLUMNS", "200")],
    );
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(
        outcome
            .stderr
            .contains("the value holds a secret, so it is not shown; it does not match the pattern `[a-z][a-z0-9-]*`"),
        "{}",
        outcome.transcript()
    );
    assert!(!outcome.stderr.contains("Tok-93F1C0D2"), "{}", outcome.transcript());
    assert!(!outcome.stdout.contains("Tok-93F1C0D2"), "{}", outcome.transcript());
    // So with a value that is not of the input's type.
    let typed = sandbox.runbook(
        &[
            "run",
            "runbook.yaml",
            "-i",
            "tenant=acme",
            "-i",
            "replicas=Tok-93F1C0D2",
        ],
        &[("TOKEN", "Tok-93F1C0D2"), ("COLUMNS", "200")],
    );
    assert_eq!(typed.code, Some(2), "{}", typed.transcript());
    assert!(
        typed.stderr.contains(
            "input `replicas` (argument): the value holds a secret, so it is not shown; it is not a valid integer"
        ),
        "{}",
        typed.transcript()
    );
    assert!(!typed.stderr.contains("Tok-93F1C0D2"), "{}", typed.transcript());
    assert!(!sandbox.file("ran").exists(), "nothing ran");
}

#[test]
fn check_underlines_a_pattern_that_does_not_compile_and_a_default_that_does_not_match() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: patterns
inputs:
  broken:
    pattern: "[a-z]+("
  slug:
    pattern: "[a-z]+"
    default: "Not A Slug"
  count:
    type: integer
    pattern: "[0-9]+"
steps:
  - id: a
    uses: log
    with: { message: hi }
"#,
    );
    let check = sandbox.runbook(&["check", "runbook.yaml"], &[("COLUMNS", "200")]);
    assert_eq!(check.code, Some(2), "{}", check.transcript());
    assert!(
        check
            .stderr
            .contains("the pattern of input `broken` does not compile: unclosed group"),
        "{}",
        check.transcript()
    );
    // The caret is under the `(` that is never closed.
    let lines: Vec<&str> = check.stderr.lines().collect();
    let at = lines.iter().position(|l| l.ends_with(r#"pattern: "[a-z]+(""#)).unwrap();
    let column = |line: &str, c: char| line.chars().position(|x| x == c);
    let paren = lines[at].chars().count() - 2;
    assert_eq!(column(lines[at + 1], '┬'), Some(paren), "{}", check.transcript());
    assert!(
        check
            .stderr
            .contains("the default of input `slug`, `Not A Slug`, does not match its pattern `[a-z]+`"),
        "{}",
        check.transcript()
    );
    assert!(
        check
            .stderr
            .contains("input `count` has a `pattern` but is of type `integer`"),
        "{}",
        check.transcript()
    );
}

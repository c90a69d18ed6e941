//! End-to-end tests of durable runs: the journal, resume after a crash at
//! every point, later rollback, locks, secrets masking, runs/show, reports.

#[path = "support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Sandbox;

trait Journals {
    fn journal_events(&self, run: &str) -> usize;
    /// The sequence numbers of the checkpoints a step journaled as its
    /// command started.
    fn checkpoints(&self, run: &str) -> Vec<usize>;
}

impl Journals for Sandbox {
    fn journal_events(&self, run: &str) -> usize {
        std::fs::read_to_string(self.state().join("runs").join(run).join("journal.jsonl"))
            .unwrap()
            .lines()
            .count()
            - 1
    }

    fn checkpoints(&self, run: &str) -> Vec<usize> {
        std::fs::read_to_string(self.state().join("runs").join(run).join("journal.jsonl"))
            .unwrap()
            .lines()
            .skip(1)
            .enumerate()
            .filter(|(_, line)| line.contains(r#""event":"step_checkpoint""#))
            .map(|(i, _)| i + 1)
            .collect()
    }
}

const SIDE_EFFECTS: &str = r#"
runbook: 1
name: side-effects
inputs:
  fail: { type: boolean, default: false }
steps:
  - id: one
    uses: shell
    with: { run: "echo one >> $SANDBOX/effects" }
    rollback: { uses: shell, with: { run: "echo undo-one >> $SANDBOX/effects" } }
  - id: two
    uses: shell
    with: { run: "echo two >> $SANDBOX/effects" }
    outputs: { marker: result.exit_code }
    rollback: { uses: shell, with: { run: "echo undo-two >> $SANDBOX/effects" } }
  - id: three
    uses: shell
    with: { run: "echo three-{{ steps.two.outputs.marker }} >> $SANDBOX/effects" }
    rollback: { uses: shell, with: { run: "echo undo-three >> $SANDBOX/effects" } }
  - id: four
    uses: shell
    with: { run: "test {{ inputs.fail }} = false && echo four >> $SANDBOX/effects" }
finally:
  - id: record
    uses: shell
    with: { run: "echo finally-{{ run.status }} >> $SANDBOX/effects" }
"#;

/// Kills the run after each journal event in turn, resumes, and checks that
/// every side effect happened exactly once and the run ended as it should.
fn crash_everywhere(fail: bool, expected_effects: &str, expected_code: i32) {
    let input = format!("fail={fail}");
    let baseline = Sandbox::new(SIDE_EFFECTS);
    let outcome = baseline.runbook(&["run", "runbook.yaml", "-i", &input], &[]);
    assert_eq!(outcome.code, Some(expected_code), "{}", outcome.transcript());
    assert_eq!(baseline.read("effects"), expected_effects);
    let events = baseline.journal_events(&baseline.run_ids()[0]);
    assert!(events > 10, "{events}");
    // A crash right after a checkpoint is in the middle of a command:
    // whether its effect happened races with its death (it gets SIGKILL
    // with `runbook`), and `resume --yes` runs it again, so "exactly once"
    // cannot hold there; `hardening_processes` covers those crashes.
    let mid_command = baseline.checkpoints(&baseline.run_ids()[0]);
    assert!(!mid_command.is_empty());

    for crash_after in (1..=events).filter(|seq| !mid_command.contains(seq)) {
        let sandbox = Sandbox::new(SIDE_EFFECTS);
        let crash = crash_after.to_string();
        let crashed = sandbox.runbook(
            &["run", "runbook.yaml", "-i", &input],
            &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", &crash)],
        );
        assert_eq!(
            crashed.code,
            None,
            "the run was killed after event {crash_after}: {}",
            crashed.transcript()
        );
        let run = sandbox.run_ids().pop().expect("the run has a journal");
        let resumed = sandbox.runbook(&["resume", &run, "--yes"], &[]);
        let code = resumed.code.unwrap();
        if crash_after == events {
            // Killed after its last event: the run had finished.
            assert_eq!(code, 2, "{}", resumed.transcript());
            assert!(resumed.stderr.contains("already finished"), "{}", resumed.transcript());
        } else {
            assert_eq!(
                code,
                expected_code,
                "crash after event {crash_after}: {}",
                resumed.transcript()
            );
        }
        assert_eq!(
            sandbox.read("effects"),
            expected_effects,
            "crash after event {crash_after}: {}",
            resumed.transcript()
        );
    }
}

#[test]
fn a_run_killed_at_any_point_resumes_and_every_step_runs_exactly_once() {
    crash_everywhere(false, "one\ntwo\nthree-0\nfour\nfinally-succeeded\n", 0);
}

#[test]
fn a_rollback_killed_at_any_point_resumes_and_every_undo_runs_exactly_once() {
    crash_everywhere(
        true,
        "one\ntwo\nthree-0\nundo-three\nundo-two\nundo-one\nfinally-failed\n",
        1,
    );
}

#[test]
fn a_finished_run_can_be_rolled_back_later() {
    let sandbox = Sandbox::new(SIDE_EFFECTS);
    let outcome = sandbox.runbook(&["run", "runbook.yaml"], &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let run = sandbox.run_ids().pop().unwrap();
    let rollback = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
    assert_eq!(rollback.code, Some(0), "{}", rollback.transcript());
    assert_eq!(
        sandbox.read("effects"),
        "one\ntwo\nthree-0\nfour\nfinally-succeeded\nundo-three\nundo-two\nundo-one\nfinally-rolled_back\n"
    );
    // Rolling back again does nothing more.
    let again = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert_eq!(sandbox.read("effects").matches("undo-one").count(), 1);
    let shown = sandbox.runbook(&["show", &run, "--format", "json"], &[]);
    assert_eq!(shown.code, Some(0), "{}", shown.transcript());
    // `show` tells the run in the words of the Markdown report's timeline.
    let text = sandbox.runbook(&["show", &run, "--report", "report.md"], &[]);
    assert_eq!(text.code, Some(0), "{}", text.transcript());
    let report = sandbox.read("report.md");
    let timeline = report
        .split_once("## Timeline\n\n```text\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(lines, _)| lines)
        .unwrap_or_else(|| panic!("no timeline in the report:\n{report}"));
    assert!(timeline.contains("rollback requested: "), "{report}");
    assert!(
        text.stdout.ends_with(timeline),
        "{}\nreport:\n{report}",
        text.transcript()
    );
    let runs = sandbox.runbook(&["runs", "--format", "json"], &[]);
    let listing: serde_json::Value = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(listing[0]["status"], "rolled_back", "{}", runs.stdout);
}

#[test]
fn resume_refuses_a_changed_runbook_unless_forced() {
    let sandbox = Sandbox::new(SIDE_EFFECTS);
    let crashed = sandbox.runbook(&["run", "runbook.yaml"], &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", "3")]);
    assert_eq!(crashed.code, None);
    let run = sandbox.run_ids().pop().unwrap();
    std::fs::write(
        sandbox.file("runbook.yaml"),
        SIDE_EFFECTS.replace("echo one", "echo ONE"),
    )
    .unwrap();
    let refused = sandbox.runbook(&["resume", &run, "--yes"], &[]);
    assert_eq!(refused.code, Some(2), "{}", refused.transcript());
    assert!(refused.stderr.contains("changed since run"), "{}", refused.transcript());
    let forced = sandbox.runbook(&["resume", &run, "--yes", "--force"], &[]);
    assert_eq!(forced.code, Some(0), "{}", forced.transcript());
}

#[test]
fn damaged_or_missing_journals_are_clear_errors_that_touch_nothing() {
    let sandbox = Sandbox::new(SIDE_EFFECTS);
    assert_eq!(sandbox.runbook(&["run", "runbook.yaml"], &[]).code, Some(0));
    let run = sandbox.run_ids().pop().unwrap();
    let journal = sandbox.state().join("runs").join(&run).join("journal.jsonl");
    let original = std::fs::read_to_string(&journal).unwrap();

    let missing = sandbox.runbook(&["show", "no-such-run"], &[]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("no run `no-such-run`"),
        "{}",
        missing.transcript()
    );

    // A torn last line (a crash mid-write) is ignored.
    std::fs::write(&journal, format!("{original}{{\"record\":\"event\",\"seq\":99,\"at")).unwrap();
    let torn = sandbox.runbook(&["show", &run], &[]);
    assert_eq!(torn.code, Some(0), "{}", torn.transcript());
    assert!(torn.stdout.contains("cut short"), "{}", torn.transcript());

    // Damage in the middle is an error; the file is left as it is.
    let mut lines: Vec<&str> = original.lines().collect();
    lines[2] = "{ not json";
    let damaged = format!("{}\n", lines.join("\n"));
    std::fs::write(&journal, &damaged).unwrap();
    for command in [
        vec!["show", run.as_str()],
        vec!["resume", run.as_str(), "--yes"],
        vec!["rollback", run.as_str(), "--yes"],
    ] {
        let outcome = sandbox.runbook(&command, &[]);
        assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
        assert!(outcome.stderr.contains("damaged at line 3"), "{}", outcome.transcript());
    }
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), damaged);

    // A journal from a newer runbook.
    let newer = original.replacen("\"format\":2", "\"format\":7", 1);
    std::fs::write(&journal, newer).unwrap();
    let outcome = sandbox.runbook(&["resume", &run], &[]);
    assert_eq!(outcome.code, Some(2));
    assert!(
        outcome.stderr.contains("newer runbook (format 7"),
        "{}",
        outcome.transcript()
    );
}

#[test]
fn an_unwritable_state_dir_stops_the_run_before_it_starts() {
    let sandbox = Sandbox::new(SIDE_EFFECTS);
    std::fs::write(sandbox.file("not-a-dir"), "").unwrap();
    let outcome = sandbox.runbook(&["run", "runbook.yaml", "--state-dir", "not-a-dir/state"], &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(!sandbox.file("effects").exists(), "nothing ran");
}

#[test]
fn a_second_run_with_the_same_lock_key_fails_at_once() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: locked
inputs:
  domain: { default: api.example.com }
lock: "failover-{{ inputs.domain }}"
steps:
  - id: hold
    uses: shell
    with: { run: "touch $SANDBOX/holding; sleep 3" }
"#,
    );
    let mut first = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(["run", "runbook.yaml"])
        .current_dir(sandbox.path())
        .env("SANDBOX", sandbox.path())
        .env("RUNBOOK_LOCK_DIR", sandbox.path().join(".locks"))
        .env("XDG_STATE_HOME", support::state_home(sandbox.path()))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !sandbox.file("holding").exists() {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = sandbox.runbook(&["run", "runbook.yaml"], &[]);
    assert_eq!(second.code, Some(2), "{}", second.transcript());
    assert!(
        second.stderr.contains("failover-api.example.com"),
        "{}",
        second.transcript()
    );
    assert!(
        second.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        second.transcript()
    );
    let other_domain = sandbox.runbook(&["run", "runbook.yaml", "-i", "domain=other.example.com"], &[]);
    assert_eq!(
        other_domain.code,
        Some(0),
        "another key does not wait: {}",
        other_domain.transcript()
    );
    assert!(first.wait().unwrap().success());
    // A lock held by a process that died is released by the OS.
    let crashed = sandbox.runbook(&["run", "runbook.yaml"], &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", "2")]);
    assert_eq!(crashed.code, None);
    assert_eq!(sandbox.runbook(&["run", "runbook.yaml"], &[]).code, Some(0));
}

#[test]
fn secrets_appear_nowhere() {
    let secret = "hunter2-Zq9xK";
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: secretive
secrets:
  token: { env: TEST_TOKEN }
  file_token: { file: token.txt }
steps:
  - id: use_it
    uses: shell
    with:
      run: "echo token is $T and {{ secrets.token }}; echo err $T >&2; echo '{\"t\": \"'$T'\"}' > $SANDBOX/out.json"
      env: { T: "{{ secrets.token }}" }
    outputs:
      echoed: result.stdout
  - id: log_it
    uses: log
    with: { message: "derived: prefix-{{ secrets.token }}-suffix and {{ secrets.file_token }}" }
  - id: fail_with_it
    uses: shell
    with: { run: "echo {{ secrets.token }} >&2; exit 1" }
    on_failure: continue
finally:
  - id: report
    uses: log
    with: { message: "{{ steps.use_it.outputs.echoed }}" }
"#,
    );
    std::fs::write(sandbox.file("token.txt"), "file-secret-77\n").unwrap();
    let env = [("TEST_TOKEN", secret)];
    let mut outputs = Vec::new();
    for args in [
        vec![
            "run",
            "runbook.yaml",
            "--report",
            "report.md",
            "--history",
            "history.jsonl",
        ],
        vec![
            "run",
            "runbook.yaml",
            "--output",
            "json",
            "--report",
            "report.json",
            "--report-format",
            "json",
        ],
        vec![
            "run",
            "runbook.yaml",
            "-vv",
            "--report",
            "report.xml",
            "--report-format",
            "junit",
        ],
        vec!["plan", "runbook.yaml"],
        vec!["plan", "runbook.yaml", "--format", "json"],
    ] {
        let outcome = sandbox.runbook(&args, &env);
        assert!(outcome.code.is_some(), "{}", outcome.transcript());
        outputs.push(outcome.transcript());
    }
    assert!(
        sandbox.read("out.json").contains(secret),
        "the step itself received the real value"
    );
    let runs = sandbox.run_ids();
    assert_eq!(runs.len(), 3);
    for run in &runs {
        outputs.push(sandbox.runbook(&["show", run], &env).transcript());
        outputs.push(sandbox.runbook(&["show", run, "--format", "json"], &env).transcript());
        outputs.push(std::fs::read_to_string(sandbox.state().join("runs").join(run).join("journal.jsonl")).unwrap());
    }
    for file in ["report.md", "report.json", "report.xml", "history.jsonl"] {
        let text = sandbox.read(file);
        assert!(!text.is_empty(), "{file} was written");
        outputs.push(text);
    }
    for (i, text) in outputs.iter().enumerate() {
        for value in [secret, "file-secret-77"] {
            assert!(!text.contains(value), "output {i} shows a secret:\n{text}");
        }
    }
    assert!(outputs[0].contains("***"), "{}", outputs[0]);
}

const STATE_KINDS: &str = r#"
runbook: 1
name: state-kinds
inputs:
  fail: { type: boolean, default: false }
steps:
  - id: snap
    uses: file.snapshot
    with: { paths: [data], into: snaps }
  - id: write
    uses: file.write
    with: { path: data/state, content: "v2\n", backup: true }
  - id: maybe_fail
    uses: shell
    with: { run: "test {{ inputs.fail }} = false" }
"#;

fn state_sandbox() -> Sandbox {
    let sandbox = Sandbox::new(STATE_KINDS);
    std::fs::create_dir_all(sandbox.file("data")).unwrap();
    std::fs::create_dir_all(sandbox.file("snaps")).unwrap();
    std::fs::write(sandbox.file("data/state"), "v1\n").unwrap();
    sandbox
}

#[test]
fn state_kinds_undo_themselves_when_the_run_rolls_back() {
    let sandbox = state_sandbox();
    let outcome = sandbox.run(&["-i", "fail=true"]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert_eq!(sandbox.read("data/state"), "v1\n", "the previous file is back");
    assert_eq!(
        std::fs::read_dir(sandbox.file("snaps")).unwrap().count(),
        0,
        "the snapshot was deleted"
    );
    let plan = sandbox.runbook(&["plan", "runbook.yaml"], &[]);
    assert!(
        plan.stdout
            .contains("rollback: delete the snapshot it made (automatic)"),
        "{}",
        plan.stdout
    );
}

#[test]
fn a_later_rollback_uses_the_undo_kept_in_the_journal() {
    let sandbox = state_sandbox();
    assert_eq!(sandbox.run(&[]).code, Some(0));
    assert_eq!(sandbox.read("data/state"), "v2\n");
    assert_eq!(std::fs::read_dir(sandbox.file("snaps")).unwrap().count(), 1);
    let run = sandbox.run_ids().pop().unwrap();
    let rollback = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
    assert_eq!(rollback.code, Some(0), "{}", rollback.transcript());
    assert_eq!(sandbox.read("data/state"), "v1\n");
    assert_eq!(std::fs::read_dir(sandbox.file("snaps")).unwrap().count(), 0);
}

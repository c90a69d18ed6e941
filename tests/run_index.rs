//! End-to-end tests of the index of runs (issue 11, item 11): a run started
//! in one folder is listed, shown, resumed and rolled back by its id from
//! any other, whatever state directory it used; a damaged or unwritable
//! index costs the convenience, never a run.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use support::{Outcome, Sandbox, runbook_in, state_home};

/// Three steps with an undo each, writing to `effects` in `dir` (not to
/// `$SANDBOX`, which is the folder `runbook` is run from).
fn side_effects(dir: &Path) -> String {
    let effects = dir.join("effects");
    let effects = effects.display();
    format!(
        r#"
runbook: 1
name: side-effects
steps:
  - id: one
    uses: shell
    with: {{ run: "echo one >> {effects}" }}
    rollback: {{ uses: shell, with: {{ run: "echo undo-one >> {effects}" }} }}
  - id: two
    uses: shell
    with: {{ run: "echo two >> {effects}" }}
    rollback: {{ uses: shell, with: {{ run: "echo undo-two >> {effects}" }} }}
"#
    )
}

const QUICK: &str = "runbook: 1\nname: quick\nsteps:\n  - id: a\n    uses: log\n    with: { message: hi }\n";

/// `runbook ARGS` in `dir`, with the index of runs of `home`'s folder.
fn from(dir: &Path, home: &Sandbox, args: &[&str]) -> Outcome {
    let home = state_home(home.path());
    runbook_in(dir, args, &[("XDG_STATE_HOME", home.to_str().unwrap())])
}

fn index_file(sandbox: &Sandbox) -> PathBuf {
    state_home(sandbox.path()).join("runbook").join("runs.jsonl")
}

/// The id of the run a `runbook run` started, from its output.
fn run_id(outcome: &Outcome) -> String {
    let line = outcome
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|rest| rest.split(' ').next()))
        .unwrap_or_else(|| panic!("no run id in:\n{}", outcome.transcript()));
    line.to_string()
}

#[test]
fn a_run_is_shown_resumed_and_rolled_back_by_id_from_another_folder() {
    let started_in = Sandbox::new("");
    std::fs::write(started_in.file("runbook.yaml"), side_effects(started_in.path())).unwrap();
    // Its own state directory, neither the default nor the folder's.
    let custom = started_in.file("kept-here");
    let custom = custom.to_str().unwrap();
    // Records: run started, step started, its checkpoint, step succeeded.
    let crashed = started_in.runbook(
        &["run", "runbook.yaml", "--state-dir", custom],
        &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", "4")],
    );
    assert_eq!(crashed.code, None, "{}", crashed.transcript());
    assert_eq!(started_in.read("effects"), "one\n");
    let run = std::fs::read_dir(started_in.file("kept-here/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let elsewhere = elsewhere.path();
    let listed = from(elsewhere, &started_in, &["runs"]);
    assert_eq!(listed.code, Some(0), "{}", listed.transcript());
    let row = listed.stdout.lines().find(|l| l.starts_with(&run)).unwrap_or_default();
    assert!(
        row.contains("interrupted") && row.ends_with(custom),
        "{}",
        listed.stdout
    );
    let json = from(elsewhere, &started_in, &["runs", "--format", "json"]);
    let listing: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(listing[0]["run_id"], run.as_str(), "{}", json.stdout);
    assert_eq!(listing[0]["state_dir"], custom, "{}", json.stdout);

    let shown = from(elsewhere, &started_in, &["show", &run]);
    assert_eq!(shown.code, Some(0), "{}", shown.transcript());
    assert!(
        shown.stdout.starts_with(&format!("run {run} of side-effects")),
        "{}",
        shown.stdout
    );

    let resumed = from(elsewhere, &started_in, &["resume", &run, "--yes"]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.transcript());
    assert_eq!(started_in.read("effects"), "one\ntwo\n");

    let rolled_back = from(elsewhere, &started_in, &["rollback", &run, "--yes"]);
    assert_eq!(rolled_back.code, Some(0), "{}", rolled_back.transcript());
    assert_eq!(started_in.read("effects"), "one\ntwo\nundo-two\nundo-one\n");
    assert!(
        !elsewhere.join(".runbook").exists(),
        "nothing was kept in the folder it was run from"
    );
    let index = std::fs::read_to_string(index_file(&started_in)).unwrap();
    assert_eq!(index.lines().count(), 1, "a resume and a rollback add nothing: {index}");

    // `--state-dir` wins: a run id is looked for there only.
    let other = from(elsewhere, &started_in, &["show", &run, "--state-dir", "nowhere"]);
    assert_eq!(other.code, Some(2), "{}", other.transcript());
    assert!(
        other.stderr.contains(&format!("no run `{run}` in nowhere/runs")),
        "{}",
        other.transcript()
    );
}

#[test]
fn a_line_of_the_index_that_does_not_read_is_skipped() {
    let sandbox = Sandbox::new(QUICK);
    let first = sandbox.run(&[]);
    assert_eq!(first.code, Some(0), "{}", first.transcript());
    let index = index_file(&sandbox);
    let mut text = std::fs::read_to_string(&index).unwrap();
    text.push_str("this is not an entry\n{\"run_id\": 3}\n\n{\"run_id\":\"torn");
    std::fs::write(&index, text).unwrap();
    let second = sandbox.run(&[]);
    assert_eq!(second.code, Some(0), "{}", second.transcript());

    let elsewhere = tempfile::tempdir().unwrap();
    for run in [run_id(&first), run_id(&second)] {
        let shown = from(elsewhere.path(), &sandbox, &["show", &run]);
        assert_eq!(shown.code, Some(0), "{run}: {}", shown.transcript());
    }
    let listed = from(elsewhere.path(), &sandbox, &["runs"]);
    assert_eq!(listed.code, Some(0), "{}", listed.transcript());
    assert_eq!(
        listed.stdout.lines().count(),
        3,
        "a heading and two runs:\n{}",
        listed.stdout
    );
}

#[test]
fn an_entry_whose_run_is_gone_is_ignored() {
    let sandbox = Sandbox::new(QUICK);
    let kept = run_id(&sandbox.run(&[]));
    let gone = run_id(&sandbox.run(&["--state-dir", "later-removed"]));
    std::fs::remove_dir_all(sandbox.file("later-removed")).unwrap();

    let elsewhere = tempfile::tempdir().unwrap();
    let listed = from(elsewhere.path(), &sandbox, &["runs"]);
    assert_eq!(listed.code, Some(0), "{}", listed.transcript());
    assert!(
        listed.stdout.contains(&kept) && !listed.stdout.contains(&gone),
        "{}",
        listed.stdout
    );
    assert!(listed.stderr.is_empty(), "{}", listed.transcript());
    let shown = from(elsewhere.path(), &sandbox, &["show", &gone]);
    assert_eq!(shown.code, Some(2), "{}", shown.transcript());
    assert!(
        shown.stderr.contains(&format!("no run `{gone}`")),
        "{}",
        shown.transcript()
    );
    assert!(!shown.stderr.contains("panicked"), "{}", shown.transcript());
}

#[test]
fn an_index_that_cannot_be_written_does_not_fail_the_run() {
    let sandbox = Sandbox::new(QUICK);
    // The state home is a file: no folder can be made in it.
    std::fs::write(sandbox.file("not-a-folder"), "").unwrap();
    let home = sandbox.file("not-a-folder");
    let home = home.to_str().unwrap();
    let outcome = sandbox.runbook(&["run", "runbook.yaml"], &[("XDG_STATE_HOME", home)]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(
        outcome
            .stderr
            .contains("warning: cannot record the run in the index of runs"),
        "{}",
        outcome.transcript()
    );
    assert!(outcome.stderr.contains("the run goes on"), "{}", outcome.transcript());
    assert!(outcome.stderr.contains("run succeeded"), "{}", outcome.transcript());
    // Where it is kept, it is found as ever.
    let run = run_id(&outcome);
    let shown = sandbox.runbook(&["show", &run], &[("XDG_STATE_HOME", home)]);
    assert_eq!(shown.code, Some(0), "{}", shown.transcript());
    let listed = sandbox.runbook(&["runs"], &[("XDG_STATE_HOME", home)]);
    assert!(listed.stdout.contains(&run), "{}", listed.transcript());
}

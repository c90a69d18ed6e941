//! End-to-end tests of the `runbook` step kind: a runbook that runs another.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;

fn runbook(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let outcome = support::runbook_in(dir, args, &[]);
    (outcome.code, outcome.stdout, outcome.stderr)
}

const CHILD: &str = r#"
runbook: 1
name: backup
inputs:
  label: { description: What the backup is for }
steps:
  - id: copy
    uses: shell
    with: { run: "echo backup-{{ inputs.label }} >> $SANDBOX/effects; echo bk-42" }
    outputs: { id: result.stdout }
    rollback: { uses: shell, with: { run: "echo undo-backup >> $SANDBOX/effects" } }
"#;

const PARENT: &str = r#"
runbook: 1
name: change
inputs:
  fail: { type: boolean, default: false }
steps:
  - id: backup
    uses: runbook
    with: { file: parts/backup.yaml, inputs: { label: nightly } }
    outputs: { id: result.outputs.copy.id }
  - id: use_it
    uses: shell
    with: { run: "echo using-{{ steps.backup.outputs.id }} >> $SANDBOX/effects" }
  - id: maybe_fail
    uses: shell
    with: { run: "test {{ inputs.fail }} = false" }
"#;

fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("parts")).unwrap();
    std::fs::write(dir.path().join("parts/backup.yaml"), CHILD).unwrap();
    std::fs::write(dir.path().join("parent.yaml"), PARENT).unwrap();
    dir
}

#[test]
fn a_runbook_step_runs_the_child_and_its_outputs_flow_on() {
    let dir = sandbox();
    let (code, _, stderr) = runbook(dir.path(), &["run", "parent.yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    let effects = std::fs::read_to_string(dir.path().join("effects")).unwrap();
    assert_eq!(effects, "backup-nightly\nusing-bk-42\n", "{stderr}");
    assert!(
        stderr.contains("backup/copy"),
        "the child's steps are shown under the parent step: {stderr}"
    );
}

#[test]
fn the_childs_rollback_joins_the_parents() {
    let dir = sandbox();
    let (code, _, stderr) = runbook(dir.path(), &["run", "parent.yaml", "-i", "fail=true"]);
    assert_eq!(code, Some(1), "{stderr}");
    let effects = std::fs::read_to_string(dir.path().join("effects")).unwrap();
    assert_eq!(effects, "backup-nightly\nusing-bk-42\nundo-backup\n", "{stderr}");
}

#[test]
fn plan_shows_the_child_expanded() {
    let dir = sandbox();
    let (code, stdout, stderr) = runbook(dir.path(), &["plan", "parent.yaml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("runs: backup (1 steps in 1 waves"), "{stdout}");
    assert!(stdout.contains("· copy [shell]: run `echo backup-nightly"), "{stdout}");
}

#[test]
fn cycles_between_runbook_files_are_caught_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let a = "runbook: 1\nname: a\nsteps:\n  - id: to_b\n    uses: runbook\n    with: { file: b.yaml }\n";
    let b = "runbook: 1\nname: b\nsteps:\n  - id: to_a\n    uses: runbook\n    with: { file: a.yaml }\n";
    std::fs::write(dir.path().join("a.yaml"), a).unwrap();
    std::fs::write(dir.path().join("b.yaml"), b).unwrap();
    let (code, _, stderr) = runbook(dir.path(), &["check", "a.yaml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`a.yaml` → `b.yaml` → `a.yaml`"), "{stderr}");
}

#[test]
fn a_child_that_does_not_exist_or_takes_other_inputs_is_an_error() {
    let dir = sandbox();
    let broken = PARENT.replace("label: nightly", "lable: nightly");
    std::fs::write(dir.path().join("broken.yaml"), broken).unwrap();
    let (code, _, stderr) = runbook(dir.path(), &["check", "broken.yaml"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("an input `lable` it does not take"), "{stderr}");
    assert!(stderr.contains("did you mean `label`?"), "{stderr}");
    assert!(stderr.contains("without its required input `label`"), "{stderr}");
    std::fs::write(
        dir.path().join("missing.yaml"),
        PARENT.replace("parts/backup.yaml", "parts/nope.yaml"),
    )
    .unwrap();
    let (code, _, stderr) = runbook(dir.path(), &["check", "missing.yaml"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("runs `parts/nope.yaml`, which cannot be read"),
        "{stderr}"
    );
}

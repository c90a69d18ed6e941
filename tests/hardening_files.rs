//! End-to-end regression tests for the `file.*` defects of issue #8 (items
//! 10, 12 and 13), each named after its defect and run through the real
//! binary in a sandbox: `file.remove` deleting a parent folder, snapshots
//! reading through symbolic links, `file.restore` killed between its two
//! renames, and `file.write` writing through a symbolic link.

#[path = "support/mod.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Outcome, Sandbox};

/// Every point between two filesystem operations of `file.restore`, in order.
const RESTORE_CRASH_POINTS: [&str; 6] = [
    "file.restore:copying",
    "file.restore:copied",
    "file.restore:planned",
    "file.restore:moved-aside",
    "file.restore:swapped",
    "file.restore:synced",
];

fn is_link(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink())
}

/// The names in `dir` that a restore leaves only while it works.
fn restore_leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".restore-"))
        .collect()
}

/// The bytes of every regular file at or under `dir`, links not followed;
/// a `.tar.gz` is also read decompressed.
fn every_byte(dir: &Path) -> String {
    let mut bytes = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = path.symlink_metadata().unwrap();
        if meta.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() {
            bytes.extend(fs::read(&path).unwrap());
            if path.to_string_lossy().ends_with(".tar.gz") {
                let output = Command::new("gzip").arg("-dc").arg(&path).output().unwrap();
                assert!(output.status.success(), "gzip reads {}", path.display());
                bytes.extend(output.stdout);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn all_output(outcome: &Outcome) -> String {
    format!("{}{}", outcome.stdout, outcome.stderr)
}

// 1. `file.remove` deleted the folder above when its path was built from an
// input of `..`, `.` or an empty string.

const CLEANUP: &str = r#"
runbook: 1
name: cleanup
inputs:
  job: { type: string }
steps:
  - id: clean
    uses: file.remove
    with: { path: "work/{{ inputs.job }}" }
"#;

#[test]
fn file_remove_refuses_a_path_that_names_a_parent_folder() {
    let sandbox = Sandbox::new(CLEANUP);
    fs::create_dir_all(sandbox.file("work/job-1")).unwrap();
    fs::write(sandbox.file("work/keep"), "keep").unwrap();
    for (job, why) in [
        ("..", "its last part is `..`, so it names a parent folder"),
        (".", "its last part is `.`, so it names the folder that holds it"),
        ("", "it ends in `/`, so its last part is empty"),
    ] {
        let input = format!("job={job}");
        let outcome = sandbox.run(&["-i", &input]);
        assert_eq!(outcome.code, Some(1), "job={job:?}: {}", outcome.transcript());
        let text = all_output(&outcome);
        assert!(
            text.contains(&format!("refusing to delete `work/{job}`: {why}")),
            "job={job:?}: {}",
            outcome.transcript()
        );
        assert!(text.contains("Nothing was changed"), "{}", outcome.transcript());
        assert_eq!(sandbox.read("work/keep"), "keep", "job={job:?}");
        assert!(sandbox.file("runbook.yaml").exists(), "job={job:?}");
    }
    // A real name is deleted as before.
    let outcome = sandbox.run(&["-i", "job=job-1"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.file("work/job-1").exists());
    assert_eq!(sandbox.read("work/keep"), "keep");
}

#[test]
fn file_remove_refuses_a_literal_path_that_names_a_parent_folder_at_check() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: cleanup
steps:
  - id: clean
    uses: file.remove
    with: { path: work/.. }
  - id: scoped
    uses: file.remove
    with: { path: /srv/app/../etc, root: /srv/app }
"#,
    );
    let outcome = sandbox.runbook(&["check", "runbook.yaml"], &[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    let text = all_output(&outcome);
    assert!(
        text.contains("refusing to delete `work/..`: its last part is `..`, so it names a parent folder"),
        "{}",
        outcome.transcript()
    );
    assert!(
        text.contains("refusing to delete `/srv/app/../etc`: it is outside `root` `/srv/app`"),
        "{}",
        outcome.transcript()
    );
}

#[test]
fn file_remove_with_root_refuses_a_path_that_resolves_outside_it() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: cleanup
inputs:
  job: { type: string }
steps:
  - id: clean
    uses: file.remove
    with: { path: "work/{{ inputs.job }}", root: work }
"#,
    );
    fs::create_dir_all(sandbox.file("work/job-1")).unwrap();
    fs::create_dir_all(sandbox.file("precious")).unwrap();
    fs::write(sandbox.file("precious/keep"), "keep").unwrap();
    // A link inside `work` to a folder outside it.
    std::os::unix::fs::symlink(sandbox.file("precious"), sandbox.file("work/elsewhere")).unwrap();
    for job in ["../precious", "elsewhere/keep", "job-1/../../precious"] {
        let input = format!("job={job}");
        let outcome = sandbox.run(&["-i", &input]);
        assert_eq!(outcome.code, Some(1), "job={job}: {}", outcome.transcript());
        let text = all_output(&outcome);
        assert!(
            text.contains(&format!("refusing to delete `work/{job}`")) && text.contains("it is outside `root` `work`"),
            "job={job}: {}",
            outcome.transcript()
        );
        assert_eq!(sandbox.read("precious/keep"), "keep", "job={job}");
    }
    // The link itself is inside `root`: it is deleted, not what it points to.
    let outcome = sandbox.run(&["-i", "job=elsewhere"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!is_link(&sandbox.file("work/elsewhere")));
    assert_eq!(sandbox.read("precious/keep"), "keep");
    let outcome = sandbox.run(&["-i", "job=job-1"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.file("work/job-1").exists());
}

// 2. `file.snapshot` followed symbolic links out of the tree, and
// `file.restore` put them back as regular files.

const SNAPSHOT: &str = r#"
runbook: 1
name: snapshot
inputs:
  format: { type: string, default: dir }
steps:
  - id: snap
    uses: file.snapshot
    with: { paths: [data], into: snaps, format: "{{ inputs.format }}", keep: true }
    outputs: { path: result.path }
  - id: check
    uses: file.verify
    with: { snapshot: "{{ steps.snap.outputs.path }}" }
"#;

const RESTORE: &str = r#"
runbook: 1
name: restore
inputs:
  snapshot: { type: string }
  fail: { type: boolean, default: false }
steps:
  - id: restore
    uses: file.restore
    with: { snapshot: "{{ inputs.snapshot }}", to: data }
  - id: after
    uses: assert
    with: { that: "not inputs.fail", message: "asked to fail" }
"#;

/// Takes a snapshot of `data` in `format` with `snapshot.yaml`, and returns its path.
fn take_snapshot(sandbox: &Sandbox, format: &str) -> PathBuf {
    fs::write(sandbox.file("snapshot.yaml"), SNAPSHOT).unwrap();
    let input = format!("format={format}");
    // Its run is kept apart, so that the runs of `runbook.yaml` are the only ones beside it.
    let outcome = sandbox.runbook(
        &["run", "snapshot.yaml", "-i", &input, "--state-dir", ".snapshot-runs"],
        &[],
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let mut taken: Vec<PathBuf> = fs::read_dir(sandbox.file("snaps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    taken.pop().unwrap()
}

#[test]
fn file_snapshot_stores_symlinks_as_symlinks_and_file_restore_recreates_them() {
    for format in ["dir", "tar.gz"] {
        let sandbox = Sandbox::new(RESTORE);
        fs::create_dir_all(sandbox.file("data")).unwrap();
        fs::write(sandbox.file("data/ledger.db"), "ledger v1").unwrap();
        // A link out of the tree, to a secret, and one inside it.
        let secret = sandbox.file("secret.key");
        fs::write(&secret, "SECRET-CONTENT").unwrap();
        std::os::unix::fs::symlink(&secret, sandbox.file("data/key")).unwrap();
        std::os::unix::fs::symlink("ledger.db", sandbox.file("data/current")).unwrap();
        let snapshot = take_snapshot(&sandbox, format);
        assert!(
            !every_byte(&sandbox.file("snaps")).contains("SECRET-CONTENT"),
            "{format}: the snapshot holds the secret the link points to"
        );
        // The links are lost: one replaced by a file, one deleted.
        fs::remove_file(sandbox.file("data/key")).unwrap();
        fs::write(sandbox.file("data/key"), "a plain file").unwrap();
        fs::remove_file(sandbox.file("data/current")).unwrap();
        let input = format!("snapshot={}", snapshot.display());
        let outcome = sandbox.run(&["-i", &input]);
        assert_eq!(outcome.code, Some(0), "{format}: {}", outcome.transcript());
        for (link, target) in [("data/key", secret.as_path()), ("data/current", Path::new("ledger.db"))] {
            assert!(is_link(&sandbox.file(link)), "{format}: {link} is not a link");
            assert_eq!(fs::read_link(sandbox.file(link)).unwrap(), target, "{format}");
        }
        assert_eq!(sandbox.read("data/ledger.db"), "ledger v1");
        assert_eq!(sandbox.read("secret.key"), "SECRET-CONTENT");
    }
}

// 3. `file.restore` killed between its two renames left the target missing;
// resume recorded `aside: null`, and a later rollback deleted the target.

/// A sandbox whose `data` holds `ORIGINAL`, with a snapshot of it holding
/// `RESTORED`; returns the snapshot's path.
fn restore_sandbox() -> (Sandbox, String) {
    let sandbox = Sandbox::new(RESTORE);
    fs::create_dir_all(sandbox.file("data")).unwrap();
    fs::write(sandbox.file("data/ledger.db"), "RESTORED").unwrap();
    let snapshot = take_snapshot(&sandbox, "dir");
    fs::write(sandbox.file("data/ledger.db"), "ORIGINAL").unwrap();
    (sandbox, snapshot.display().to_string())
}

/// Runs `runbook.yaml` with the snapshot and `fail`, killed at `point`.
fn crash_at(sandbox: &Sandbox, snapshot: &str, fail: bool, point: &str) -> String {
    let inputs = [format!("snapshot={snapshot}"), format!("fail={fail}")];
    let crashed = sandbox.runbook(
        &["run", "runbook.yaml", "-i", &inputs[0], "-i", &inputs[1]],
        &[("RUNBOOK_TEST_CRASH_AT", point)],
    );
    assert_eq!(crashed.code, None, "not killed at {point}: {}", crashed.transcript());
    sandbox.run_ids().pop().expect("the run has a journal")
}

/// The state `data` is in: what `data/ledger.db` holds, and no restore's
/// copy is left beside it.
fn assert_data(sandbox: &Sandbox, expected: &str, context: &str, outcome: &Outcome) {
    assert!(
        sandbox.file("data").is_dir(),
        "{context}: `data` is missing\n{}",
        outcome.transcript()
    );
    assert_eq!(
        sandbox.read("data/ledger.db"),
        expected,
        "{context}\n{}",
        outcome.transcript()
    );
    assert_eq!(
        restore_leftovers(sandbox.path()),
        Vec::<String>::new(),
        "{context}: a restore's copy is left\n{}",
        outcome.transcript()
    );
}

#[test]
fn file_restore_killed_between_its_renames_resumes_or_rolls_back_to_the_original() {
    for point in RESTORE_CRASH_POINTS {
        // (a) Resumed: the restore is done once, and a later rollback puts
        // the original back (it was deleted when resume recorded no `aside`).
        let (sandbox, snapshot) = restore_sandbox();
        let run = crash_at(&sandbox, &snapshot, false, point);
        let resumed = sandbox.runbook(&["resume", &run, "--yes"], &[]);
        assert_eq!(resumed.code, Some(0), "{point}: {}", resumed.transcript());
        assert_data(&sandbox, "RESTORED", &format!("{point}, resumed"), &resumed);
        let rolled_back = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
        assert_eq!(rolled_back.code, Some(0), "{point}: {}", rolled_back.transcript());
        assert_data(
            &sandbox,
            "ORIGINAL",
            &format!("{point}, resumed then rolled back"),
            &rolled_back,
        );

        // (b) Rolled back straight after the crash: the original is back.
        let (sandbox, snapshot) = restore_sandbox();
        let run = crash_at(&sandbox, &snapshot, false, point);
        let rolled_back = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
        assert_eq!(rolled_back.code, Some(0), "{point}: {}", rolled_back.transcript());
        assert_data(&sandbox, "ORIGINAL", &format!("{point}, rolled back"), &rolled_back);
    }
}

#[test]
fn file_restore_undone_by_a_rollback_killed_between_its_renames_finishes_on_resume() {
    // The rollback of a restore is a restore too (from `aside`); it is the
    // second restore the process does, and it moves rather than copies.
    for point in [
        "file.restore:planned",
        "file.restore:moved-aside",
        "file.restore:swapped",
        "file.restore:synced",
    ] {
        let (sandbox, snapshot) = restore_sandbox();
        let run = crash_at(&sandbox, &snapshot, true, &format!("{point}#2"));
        let resumed = sandbox.runbook(&["resume", &run, "--yes"], &[]);
        assert_eq!(resumed.code, Some(1), "{point}: {}", resumed.transcript());
        assert_data(&sandbox, "ORIGINAL", &format!("{point}#2, resumed"), &resumed);
    }
}

// 4. `file.write` wrote through a symbolic link, and its rollback replaced
// the link with a regular file while the target kept the new contents.

const WRITE: &str = r#"
runbook: 1
name: write
inputs:
  follow: { type: boolean, default: false }
  fail: { type: boolean, default: false }
steps:
  - id: write
    uses: file.write
    with: { path: app.conf, content: "new\n", backup: true, follow_symlinks: "{{ inputs.follow }}" }
  - id: after
    uses: assert
    with: { that: "not inputs.fail", message: "asked to fail" }
"#;

fn write_sandbox(runbook: &str) -> Sandbox {
    let sandbox = Sandbox::new(runbook);
    fs::write(sandbox.file("real.conf"), "old\n").unwrap();
    std::os::unix::fs::symlink("real.conf", sandbox.file("app.conf")).unwrap();
    sandbox
}

fn assert_link_to_old(sandbox: &Sandbox, outcome: &Outcome) {
    assert!(is_link(&sandbox.file("app.conf")), "{}", outcome.transcript());
    assert_eq!(fs::read_link(sandbox.file("app.conf")).unwrap(), Path::new("real.conf"));
    assert_eq!(sandbox.read("real.conf"), "old\n", "{}", outcome.transcript());
}

#[test]
fn file_write_refuses_to_write_through_a_symlink() {
    // Written as before `follow_symlinks` existed.
    let sandbox = write_sandbox(&WRITE.replace(", follow_symlinks: \"{{ inputs.follow }}\"", ""));
    assert!(!sandbox.read("runbook.yaml").contains("follow_symlinks"));
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    let text = all_output(&outcome);
    assert!(
        text.contains("refusing to write `app.conf`: it is a symbolic link to `real.conf`. Nothing was changed; add `follow_symlinks: true`"),
        "{}",
        outcome.transcript()
    );
    assert_link_to_old(&sandbox, &outcome);
}

#[test]
fn file_write_through_a_followed_symlink_rolls_back_the_target_and_keeps_the_link() {
    // Rolled back by the run itself.
    let sandbox = write_sandbox(WRITE);
    let outcome = sandbox.run(&["-i", "follow=true", "-i", "fail=true"]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert_link_to_old(&sandbox, &outcome);

    // Rolled back later, from the journal.
    let sandbox = write_sandbox(WRITE);
    let outcome = sandbox.run(&["-i", "follow=true"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(is_link(&sandbox.file("app.conf")));
    assert_eq!(sandbox.read("real.conf"), "new\n");
    let run = sandbox.run_ids().pop().unwrap();
    let rolled_back = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
    assert_eq!(rolled_back.code, Some(0), "{}", rolled_back.transcript());
    assert_link_to_old(&sandbox, &rolled_back);
}

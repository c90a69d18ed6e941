//! Regression tests for the journal and lock defects an adversarial review
//! found (issue 8, items 10 for `show`, and 11, 14, 15, 16 and 17): never
//! act without journaling, a full disk, a second rollback, a resume with
//! nobody to ask, machine-wide locks, and a journal changed by hand.

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Sandbox;

const STEPS: &str = r#"
runbook: 1
name: journaled
steps:
  - id: one
    uses: shell
    with: { run: "echo one >> $SANDBOX/effects" }
    rollback: { uses: shell, with: { run: "echo undo-one >> $SANDBOX/effects" } }
  - id: two
    uses: shell
    with: { run: "echo two >> $SANDBOX/effects" }
    rollback: { uses: shell, with: { run: "echo undo-two >> $SANDBOX/effects" } }
  - id: three
    uses: log
    with: { message: "{{ 'x' * 2000 }}" }
  - id: four
    uses: shell
    with: { run: "echo four >> $SANDBOX/effects" }
finally:
  - id: record
    uses: shell
    with: { run: "echo finally-{{ run.status }} >> $SANDBOX/effects" }
"#;

fn journal_path(sandbox: &Sandbox, run: &str) -> std::path::PathBuf {
    sandbox.state().join("runs").join(run).join("journal.jsonl")
}

fn count(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

#[test]
fn show_refuses_a_run_id_that_is_a_path() {
    let sandbox = Sandbox::new(STEPS);
    // A journal outside the state directory that `../` would reach.
    let outside = sandbox.file("elsewhere/runs/x");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("journal.jsonl"), "{}\n").unwrap();
    for id in ["../../elsewhere/runs/x", "../x", "/etc", "a/b", ".hidden", ""] {
        for command in [vec!["show", id], vec!["resume", id, "--yes"], vec!["rollback", id]] {
            let outcome = sandbox.runbook(&command, &[]);
            assert_eq!(outcome.code, Some(2), "{command:?}: {}", outcome.transcript());
            assert!(
                outcome.stderr.contains("is not a run id"),
                "{command:?}: {}",
                outcome.transcript()
            );
        }
    }
}

#[test]
fn a_journal_that_cannot_be_written_stops_the_run_without_acting() {
    let baseline = Sandbox::new(STEPS);
    let run = baseline.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let lines: Vec<String> = std::fs::read_to_string(journal_path(&baseline, &baseline.run_ids()[0]))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let records = lines.len();
    // How many records are written once `finally` is journaled as started.
    let finally_started = 1 + lines
        .iter()
        .position(|l| l.contains(r#""event":"step_started","step":"record""#))
        .unwrap();
    // After the header, each record in turn is the first that cannot be written.
    for written in 1..records {
        let sandbox = Sandbox::new(STEPS);
        let limit = written.to_string();
        let failed = sandbox.runbook(&["run", "runbook.yaml"], &[("RUNBOOK_TEST_JOURNAL_FULL_AFTER", &limit)]);
        let effects = sandbox.read("effects");
        let Some(run) = sandbox.run_ids().pop() else {
            panic!("after {written} records: no journal: {}", failed.transcript());
        };
        assert_eq!(failed.code, Some(3), "after {written} records: {}", failed.transcript());
        assert!(!effects.contains("undo-"), "after {written}: no rollback: {effects}");
        if written < finally_started {
            assert!(!effects.contains("finally"), "after {written}: no finally: {effects}");
        }
        assert!(
            failed.stderr.contains("the journal could not be written") && failed.stderr.contains("make room, then"),
            "after {written}: {}",
            failed.transcript()
        );
        assert!(!failed.stderr.contains("nothing was run"), "{}", failed.transcript());
        // The journal holds whole records only, and is read back.
        let show = sandbox.runbook(&["show", &run], &[]);
        assert_eq!(show.code, Some(0), "after {written}: {}", show.transcript());
        // Once there is room again, a resume finishes the run.
        let resumed = sandbox.runbook(&["resume", &run, "--yes"], &[]);
        let effects = sandbox.read("effects");
        assert_eq!(resumed.code, Some(0), "after {written}: {}", resumed.transcript());
        // A step whose end could not be journaled may have run twice (it
        // is named); every other one ran exactly once, `finally` too.
        for (step, line) in [
            ("one", "one"),
            ("two", "two"),
            ("four", "four"),
            ("record", "finally-succeeded"),
        ] {
            let times = count(&effects, line);
            let named = failed.stderr.contains(&format!("`{step}`"));
            assert!(
                times == 1 || (named && times == 2),
                "after {written}: `{step}` ran {times} times: {effects}\n{}",
                failed.transcript()
            );
        }
        assert!(!effects.contains("undo-"), "after {written}: {effects}");
    }
}

/// A tmpfs of `size` mounted on a folder of its own, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk but for about `free` bytes, with a file that can be removed.
    fn fill_but(&self, free: u64) {
        let filler = self.path().join("filler");
        let _ = std::fs::remove_file(&filler);
        let total = nix_free(self.path());
        let size = total.saturating_sub(free);
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![1u8; 4096];
        let mut written = 0;
        while written < size {
            use std::io::Write;
            if file.write_all(&block).is_err() {
                break;
            }
            written += block.len() as u64;
        }
        let _ = file.sync_all();
    }
}

fn nix_free(path: &Path) -> u64 {
    let output = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_stops_the_run_and_a_resume_after_making_room_finishes_it() {
    let Some(disk) = SmallDisk::mount("2m") else {
        eprintln!("skipped: cannot mount a tmpfs here (not root); the fault-injection test covers the engine");
        return;
    };
    let many: String = (0..400)
        .map(|i| {
            format!(
                "  - id: s{i:03}\n    uses: shell\n    with: {{ run: \"echo s{i:03} >> $SANDBOX/effects\" }}\n    name: \"{}\"\n",
                "n".repeat(500)
            )
        })
        .collect();
    let sandbox = Sandbox::new(&format!(
        "runbook: 1\nname: full-disk\nsteps:\n{many}finally:\n  - id: record\n    uses: shell\n    with: {{ run: \"echo finally >> $SANDBOX/effects\" }}\n"
    ));
    let state = disk.path().join("state");
    let state_arg = state.to_str().unwrap();

    // A nearly full disk is refused before anything runs.
    disk.fill_but(100 << 10);
    let refused = sandbox.runbook(&["run", "runbook.yaml", "--state-dir", state_arg], &[]);
    assert_eq!(refused.code, Some(2), "{}", refused.transcript());
    assert!(
        refused.stderr.contains("no room for the journal"),
        "{}",
        refused.transcript()
    );
    assert!(!sandbox.file("effects").exists());

    // Room for the reserve and a part of the run: the disk fills mid-run.
    disk.fill_but(600 << 10);
    let failed = sandbox.runbook(&["run", "runbook.yaml", "--state-dir", state_arg], &[]);
    assert_eq!(failed.code, Some(3), "{}", failed.transcript());
    assert!(
        failed.stderr.contains("the journal could not be written"),
        "{}",
        failed.transcript()
    );
    let effects = sandbox.read("effects");
    assert!(!effects.contains("finally"), "{effects}");
    let done = effects.lines().count();
    assert!(done > 0 && done < 400, "{done} steps ran");

    // Room again: the resume does the rest, each step once, `finally` once.
    std::fs::remove_file(disk.path().join("filler")).unwrap();
    let run = std::fs::read_dir(state.join("runs")).unwrap().flatten().next().unwrap();
    let run = run.file_name().to_string_lossy().into_owned();
    let resumed = sandbox.runbook(&["resume", &run, "--yes", "--state-dir", state_arg], &[]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.transcript());
    let effects = sandbox.read("effects");
    for i in 0..400 {
        assert_eq!(count(&effects, &format!("s{i:03}")), 1, "s{i:03}: {effects}");
    }
    assert_eq!(count(&effects, "finally"), 1, "{effects}");
}

#[test]
fn a_second_rollback_does_nothing_and_says_so() {
    let sandbox = Sandbox::new(STEPS);
    assert_eq!(sandbox.run(&[]).code, Some(0));
    let run = sandbox.run_ids().pop().unwrap();
    let first = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
    assert_eq!(first.code, Some(0), "{}", first.transcript());
    let after_first = sandbox.read("effects");
    assert_eq!(count(&after_first, "finally-rolled_back"), 1, "{after_first}");
    let journal = std::fs::read(journal_path(&sandbox, &run)).unwrap();
    for _ in 0..3 {
        let again = sandbox.runbook(&["rollback", &run, "--yes"], &[]);
        assert_eq!(again.code, Some(0), "{}", again.transcript());
        assert!(
            again.stderr.contains("was already rolled back; nothing was done"),
            "{}",
            again.transcript()
        );
        assert_eq!(sandbox.read("effects"), after_first, "nothing ran again");
        assert_eq!(
            std::fs::read(journal_path(&sandbox, &run)).unwrap(),
            journal,
            "nothing was journaled"
        );
    }
}

#[test]
fn resume_without_a_terminal_refuses_and_leaves_the_run_as_it_was() {
    // Killed right after step `two` was journaled as started.
    let baseline = Sandbox::new(STEPS);
    assert_eq!(baseline.run(&[]).code, Some(0));
    let two_started = std::fs::read_to_string(journal_path(&baseline, &baseline.run_ids()[0]))
        .unwrap()
        .lines()
        .position(|l| l.contains(r#""event":"step_started","step":"two""#))
        .unwrap()
        .to_string();
    let sandbox = Sandbox::new(STEPS);
    let crashed = sandbox.runbook(
        &["run", "runbook.yaml"],
        &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", &two_started)],
    );
    assert_eq!(crashed.code, None, "{}", crashed.transcript());
    let run = sandbox.run_ids().pop().unwrap();
    let journal = std::fs::read(journal_path(&sandbox, &run)).unwrap();
    let effects = sandbox.read("effects");
    for _ in 0..2 {
        let refused = sandbox.runbook(&["resume", &run], &[]);
        assert_eq!(refused.code, Some(2), "{}", refused.transcript());
        assert!(
            refused.stderr.contains("step `two` was running when the run stopped")
                && refused.stderr.contains("pass `--yes`"),
            "{}",
            refused.transcript()
        );
        assert_eq!(
            std::fs::read(journal_path(&sandbox, &run)).unwrap(),
            journal,
            "the journal is unchanged"
        );
        assert_eq!(sandbox.read("effects"), effects, "nothing ran");
    }
    let resumed = sandbox.runbook(&["resume", &run, "--yes"], &[]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.transcript());
    assert_eq!(sandbox.read("effects"), "one\ntwo\nfour\nfinally-succeeded\n");
}

const LOCKED: &str = r#"
runbook: 1
name: locked
lock: "shared-key"
steps:
  - id: hold
    uses: shell
    with: { run: "touch $SANDBOX/holding; sleep 3" }
"#;

#[test]
fn runs_with_one_lock_key_never_overlap_across_state_directories() {
    let runtime = tempfile::tempdir().unwrap();
    let first_box = Sandbox::new(LOCKED);
    let second_box = Sandbox::new(LOCKED);
    let start = |sandbox: &Sandbox| {
        let mut command = support::command(sandbox.path(), &["run", "runbook.yaml"]);
        command
            .env_remove("RUNBOOK_LOCK_DIR")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .stderr(Stdio::piped());
        command
    };
    let mut first = start(&first_box).spawn().unwrap();
    let started = Instant::now();
    while !first_box.file("holding").exists() {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = start(&second_box).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("another run holds the lock `shared-key`"), "{stderr}");
    assert!(!second_box.file("holding").exists(), "the second run did not start");
    assert!(runtime.path().join("runbook/locks").is_dir());
    assert!(first.wait().unwrap().success());
}

#[test]
fn a_lock_that_cannot_be_taken_is_not_reported_as_held() {
    let sandbox = Sandbox::new(LOCKED);
    std::fs::write(sandbox.file("not-a-dir"), "").unwrap();
    let lock_dir = sandbox.file("not-a-dir").join("locks");
    let outcome = sandbox.runbook(
        &["run", "runbook.yaml"],
        &[("RUNBOOK_LOCK_DIR", lock_dir.to_str().unwrap())],
    );
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(
        outcome.stderr.contains("cannot take the lock"),
        "{}",
        outcome.transcript()
    );
    assert!(
        !outcome.stderr.contains("another run holds"),
        "{}",
        outcome.transcript()
    );
    assert!(
        outcome.stderr.contains("this is not another run"),
        "{}",
        outcome.transcript()
    );
}

#[test]
fn a_changed_journal_is_refused_not_replayed() {
    let sandbox = Sandbox::new(STEPS);
    let crashed = sandbox.runbook(&["run", "runbook.yaml"], &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", "6")]);
    assert_eq!(crashed.code, None, "{}", crashed.transcript());
    let run = sandbox.run_ids().pop().unwrap();
    let path = journal_path(&sandbox, &run);
    let original = std::fs::read_to_string(&path).unwrap();
    let effects = sandbox.read("effects");
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 6, "{original}");
    let join = |lines: Vec<&str>| format!("{}\n", lines.join("\n"));
    let deleted = join(
        lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, l)| *l)
            .collect(),
    );
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    let swapped = join(swapped);
    let edited = original.replacen("\"step\":\"one\"", "\"step\":\"two\"", 1);
    assert_ne!(edited, original);
    let cut_middle = join(
        lines[..lines.len() - 2]
            .iter()
            .chain(&lines[lines.len() - 1..])
            .copied()
            .collect(),
    );
    for (what, text) in [
        ("deleted", deleted),
        ("swapped", swapped),
        ("edited", edited),
        ("cut", cut_middle),
    ] {
        std::fs::write(&path, &text).unwrap();
        for command in [
            vec!["show", run.as_str()],
            vec!["resume", run.as_str(), "--yes"],
            vec!["rollback", run.as_str(), "--yes"],
        ] {
            let outcome = sandbox.runbook(&command, &[]);
            assert_eq!(outcome.code, Some(2), "{what} {command:?}: {}", outcome.transcript());
            assert!(
                outcome.stderr.contains("was changed at line"),
                "{what}: {}",
                outcome.transcript()
            );
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "{what}: the journal is left as it is"
        );
    }
    assert_eq!(sandbox.read("effects"), effects, "nothing was replayed");
}

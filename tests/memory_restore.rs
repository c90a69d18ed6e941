//! End-to-end tests of `runbooks/memory-restore.yaml` (seed scenario 4): the
//! real binary runs the real runbook on a demo memory store made by
//! `runbooks/examples/memory-demo-setup.sh` in a temporary folder.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace's root, where `runbooks/` is.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ is inside the workspace")
        .to_path_buf()
}

/// What a run of the binary did.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn transcript(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A demo memory store in a temporary folder, `store/`, with the runs'
/// state directory beside it.
struct Demo {
    dir: tempfile::TempDir,
}

impl Demo {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let setup = workspace().join("runbooks/examples/memory-demo-setup.sh");
        let output = Command::new("sh")
            .arg(&setup)
            .arg(dir.path().join("store"))
            .stdin(Stdio::null())
            .output()
            .expect("sh runs");
        assert!(
            output.status.success(),
            "the setup script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.store().join(relative)
    }

    fn read(&self, relative: &str) -> Vec<u8> {
        fs::read(self.path(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
    }

    fn json(&self, relative: &str) -> Value {
        serde_json::from_slice(&self.read(relative)).unwrap_or_else(|e| panic!("{relative} is not JSON: {e}"))
    }

    /// The snapshot folders, oldest first (their names hold the time).
    fn snapshots(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(self.path("snapshots"))
            .expect("snapshots/ exists")
            .map(|entry| entry.expect("a directory entry").path())
            .collect();
        found.sort();
        found
    }

    /// Every file under the store with its bytes, except `history.jsonl`
    /// and what is under `forensics/` when `evidence` is false.
    fn files(&self, evidence: bool) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        collect(&self.store(), &self.store(), &mut files);
        files.retain(|name, _| evidence || (name != "history.jsonl" && !name.starts_with("forensics/")));
        files
    }

    /// The history file's lines, as JSON.
    fn history(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.path("history.jsonl")).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a history line is JSON"))
            .collect()
    }

    /// `runbook run runbooks/memory-restore.yaml` on the store, with no
    /// terminal, no colours, and the state directory in the temporary folder.
    fn run(&self, extra: &[&str]) -> Outcome {
        let runbook = workspace().join("runbooks/memory-restore.yaml");
        let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .arg("run")
            .arg(&runbook)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--input")
            .arg(format!("state_dir={}", self.store().display()))
            .args(extra)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RUNBOOK_STATE_DIR")
            .env("RUNBOOK_LOCK_DIR", self.dir.path().join("locks"))
            // The index of runs, out of the real home.
            .env("XDG_STATE_HOME", self.dir.path().join("xdg-state"))
            .stdin(Stdio::null())
            .output()
            .expect("the runbook binary runs");
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let name = path.strip_prefix(root).expect("under the root").display().to_string();
            files.insert(name, fs::read(&path).expect("a readable file"));
        }
    }
}

/// SHA-256 in hex, by `sha256sum` (coreutils, which the runbook needs too).
fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum runs");
    child
        .stdin
        .take()
        .expect("a pipe")
        .write_all(bytes)
        .expect("sha256sum reads");
    let output = child.wait_with_output().expect("sha256sum finishes");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// Replaces the `memory.json` of a snapshot and writes a manifest that
/// matches it, so that only the contents are wrong.
fn rewrite_snapshot(snapshot: &Path, contents: &[u8]) {
    fs::write(snapshot.join("memory.json"), contents).expect("the snapshot is writable");
    fs::write(
        snapshot.join("MANIFEST.sha256"),
        format!("{}  memory.json\n", sha256(contents)),
    )
    .expect("the snapshot is writable");
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_newest_snapshot_is_restored_replayed_and_recorded() {
    let demo = Demo::new();
    let snapshots = demo.snapshots();
    let newest = snapshots.last().expect("the demo has snapshots").clone();
    let restored = fs::read(newest.join("memory.json")).expect("the snapshot holds memory.json");
    let old_state = demo.read("memory.json");
    let old_config = demo.read("config.json");

    let outcome = demo.run(&["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(outcome.stderr.contains("run succeeded"), "{}", outcome.transcript());

    // The live state is the snapshot's, and the configuration points at it;
    // its other settings are kept.
    assert_eq!(demo.read("memory.json"), restored);
    let config = demo.json("config.json");
    assert_eq!(config["state_file"], demo.path("memory.json").display().to_string());
    assert_eq!(config["snapshot"], newest.display().to_string());
    assert_eq!(config["snapshot_sha256"], sha256(&restored));
    assert_eq!(config["workers"], 4);

    // The forensic copy holds the state and configuration as they were.
    let runs = names(&demo.path("forensics"));
    assert_eq!(runs.len(), 1, "{runs:?}");
    let evidence_dir = demo.path("forensics").join(&runs[0]);
    let copies: Vec<String> = names(&evidence_dir)
        .into_iter()
        .filter(|n| n.starts_with("before-restore-"))
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let copy = evidence_dir.join(&copies[0]);
    assert_eq!(fs::read(copy.join("memory.json")).unwrap(), old_state);
    assert_eq!(fs::read(copy.join("config.json")).unwrap(), old_config);
    assert_eq!(names(&copy.join("cache")).len(), 4);

    // Cache entries for ids the snapshot does not hold are gone.
    assert_eq!(
        names(&demo.path("cache")),
        ["q-failover-time.json", "q-ledger-restart.json"]
    );

    // The derived data was rebuilt from the whole event log.
    let index = demo.json("derived/index.json");
    assert_eq!(index["events"], 11);
    assert_eq!(index["state_sha256"], sha256(&restored));
    let indexed: Vec<&String> = index["memories"].as_object().expect("a map").keys().collect();
    assert_eq!(indexed, ["m-1", "m-2", "m-3", "m-4"]);
    assert_eq!(index["orphaned"], serde_json::json!([8, 9, 11]));

    // A fresh snapshot of the restored state, with a manifest that matches.
    let after = demo.snapshots();
    assert_eq!(after.len(), snapshots.len() + 1, "{after:?}");
    let fresh = after.last().expect("a fresh snapshot").clone();
    assert!(!snapshots.contains(&fresh), "{fresh:?} is not new");
    assert_eq!(names(&fresh), ["MANIFEST.sha256", "memory.json"]);
    assert_eq!(fs::read(fresh.join("memory.json")).unwrap(), restored);
    assert_eq!(
        fs::read_to_string(fresh.join("MANIFEST.sha256")).unwrap(),
        format!("{}  memory.json\n", sha256(&restored))
    );

    // Autonomous work was resumed, and the outcome recorded once.
    assert!(!demo.path("AUTONOMY_PAUSED").exists());
    let history = demo.history();
    assert_eq!(history.len(), 1, "{history:?}");
    let line = &history[0];
    assert_eq!(line["status"], "succeeded");
    assert_eq!(line["restore_step"], "succeeded");
    assert_eq!(line["snapshot"], newest.display().to_string());
    assert_eq!(line["snapshot_sha256"], sha256(&restored));
    assert_eq!(line["events_replayed"], 11);
    assert_eq!(line["fresh_snapshot"], fresh.display().to_string());
    assert!(line["duration_s"].is_number(), "{line}");
}

#[test]
fn an_explicit_snapshot_is_restored_and_an_earlier_pause_is_kept() {
    let demo = Demo::new();
    let oldest = demo.snapshots()[0].clone();
    fs::write(demo.path("AUTONOMY_PAUSED"), "paused by ops for the audit\n").unwrap();

    let snapshot = format!("snapshot={}", oldest.display());
    let outcome = demo.run(&["--yes", "--input", &snapshot]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());

    assert_eq!(demo.read("memory.json"), fs::read(oldest.join("memory.json")).unwrap());
    assert_eq!(demo.json("config.json")["snapshot"], oldest.display().to_string());
    // The older snapshot holds m-1 to m-3 only: more events are orphaned.
    assert_eq!(
        names(&demo.path("cache")),
        ["q-failover-time.json", "q-ledger-restart.json"]
    );
    assert_eq!(
        demo.json("derived/index.json")["orphaned"],
        serde_json::json!([6, 7, 8, 9, 10, 11])
    );
    // The flag someone else set stays, as it was, and no backup of it is left.
    assert_eq!(demo.read("AUTONOMY_PAUSED"), b"paused by ops for the audit\n");
    assert!(
        !names(&demo.store()).iter().any(|n| n.starts_with("AUTONOMY_PAUSED.")),
        "{:?}",
        names(&demo.store())
    );
}

#[test]
fn a_bad_snapshot_fails_the_run_before_anything_is_touched() {
    fn zero_counters(snapshot: &Path) {
        let mut state: Value = serde_json::from_slice(&fs::read(snapshot.join("memory.json")).unwrap()).unwrap();
        for counter in state["counters"].as_object_mut().unwrap().values_mut() {
            *counter = Value::from(0);
        }
        rewrite_snapshot(snapshot, serde_json::to_string_pretty(&state).unwrap().as_bytes());
    }
    fn not_json(snapshot: &Path) {
        rewrite_snapshot(snapshot, b"{\"version\": 1, \"counters\": {\"memories\": 4");
    }
    fn not_its_manifest(snapshot: &Path) {
        fs::write(snapshot.join("memory.json"), b"{}\n").unwrap();
    }
    // Each corruption, and the step that must catch it.
    type Corrupt = fn(&Path);
    let cases: [(Corrupt, &str); 3] = [
        (zero_counters, "check_counters"),
        (not_json, "validate_snapshot"),
        (not_its_manifest, "verify_snapshot"),
    ];
    for (corrupt, failing_step) in cases {
        let demo = Demo::new();
        corrupt(demo.snapshots().last().unwrap());
        let before = demo.files(true);

        let outcome = demo.run(&["--yes"]);
        assert_eq!(outcome.code, Some(1), "{failing_step}: {}", outcome.transcript());
        assert!(
            outcome
                .stderr
                .contains(&format!("reason: step `{failing_step}` failed")),
            "{failing_step}: {}",
            outcome.transcript()
        );

        // Byte for byte as before: no pause flag, no forensic copy, no
        // cache entry deleted. Only the history has a new line.
        let mut after = demo.files(true);
        after.remove("history.jsonl");
        assert_eq!(
            before.keys().collect::<Vec<_>>(),
            after.keys().collect::<Vec<_>>(),
            "{failing_step}"
        );
        assert!(before == after, "{failing_step}: a file changed");
        let history = demo.history();
        assert_eq!(history.len(), 1, "{failing_step}: {history:?}");
        assert_eq!(history[0]["status"], "failed", "{failing_step}");
        assert_eq!(history[0]["restore_step"], "not_run", "{failing_step}");
    }
}

#[test]
fn a_failure_after_the_restore_puts_the_state_and_configuration_back() {
    let demo = Demo::new();
    let before = demo.files(false);
    let old_state = demo.read("memory.json");
    let old_config = demo.read("config.json");

    // The drill input fails the probe that follows the restore and replay.
    let outcome = demo.run(&["--yes", "--input", "rehearse_rollback=true"]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert!(
        outcome.stderr.contains("reason: step `probe_counters` failed"),
        "{}",
        outcome.transcript()
    );
    assert!(
        outcome
            .stderr
            .contains("rolled back: replay_history, point_config, restore_state, clear_cache, pause_autonomy"),
        "{}",
        outcome.transcript()
    );

    assert_eq!(demo.read("memory.json"), old_state);
    assert_eq!(demo.read("config.json"), old_config);
    // Everything else too: cache, derived data, snapshots, no pause flag,
    // no backup left behind.
    assert!(before == demo.files(false), "a file changed or is left behind");
    // The evidence is kept.
    assert_eq!(names(&demo.path("forensics")).len(), 1);

    let history = demo.history();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[0]["restore_step"], "rolled_back");
    assert_eq!(history[0]["fresh_snapshot"], Value::Null);
}

#[test]
fn without_yes_and_without_a_terminal_the_run_refuses_and_touches_nothing() {
    let demo = Demo::new();
    let before = demo.files(true);

    let outcome = demo.run(&[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    for step in ["confirm_window", "clear_cache", "restore_state"] {
        assert!(outcome.stderr.contains(step), "{step}: {}", outcome.transcript());
    }
    assert!(before == demo.files(true), "a file changed");
    assert!(!demo.path("history.jsonl").exists());
}

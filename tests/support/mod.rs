//! What the end-to-end tests share: running the real `runbook` binary in a
//! folder, and a temporary folder with a runbook in it.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// What a run of the binary did.
pub struct Outcome {
    /// The exit status; `None` when a signal killed the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn from_output(output: &Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn transcript(&self) -> String {
        let code = self
            .code
            .map_or_else(|| "killed by a signal".to_string(), |c| c.to_string());
        format!("exit: {code}\n--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Where the runs started in `dir` are indexed (`XDG_STATE_HOME`): in the
/// folder, so that no test writes in the real home, and each test sees the
/// runs it started only.
pub fn state_home(dir: &Path) -> PathBuf {
    dir.join(".xdg-state")
}

/// `runbook ARGS` in `dir`: no colours, a fixed width, no terminal, the
/// folder as `$SANDBOX`, no state directory from the environment, and the
/// index of runs in the folder (see [`state_home`]).
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_runbook"));
    command
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("SANDBOX", dir)
        .env("XDG_STATE_HOME", state_home(dir))
        .env_remove("RUNBOOK_STATE_DIR")
        // Locks are machine-wide: tests that run at once keep theirs apart.
        .env("RUNBOOK_LOCK_DIR", dir.join(".locks"))
        // Plugins' describe answers are kept out of the user's cache.
        .env("RUNBOOK_CACHE_DIR", std::env::temp_dir().join("runbook-tests-cache"))
        .stdin(Stdio::null());
    command
}

/// Runs `runbook ARGS` in `dir` with extra environment variables.
pub fn runbook_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = command(dir, args);
    for (key, value) in env {
        command.env(key, value);
    }
    Outcome::from_output(&command.output().expect("the runbook binary runs"))
}

/// A temporary folder with a runbook in it, `runbook.yaml`.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(runbook: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runbook.yaml"), runbook).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap_or_default()
    }

    /// The default state directory, beside the runbook.
    pub fn state(&self) -> PathBuf {
        self.file(".runbook")
    }

    /// `runbook ARGS` in the sandbox.
    pub fn runbook(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        runbook_in(self.path(), args, env)
    }

    /// `runbook run runbook.yaml ARGS`, not started yet.
    pub fn run_command(&self, args: &[&str]) -> Command {
        let mut all = vec!["run", "runbook.yaml"];
        all.extend_from_slice(args);
        command(self.path(), &all)
    }

    /// `runbook run runbook.yaml ARGS`.
    pub fn run(&self, args: &[&str]) -> Outcome {
        Outcome::from_output(&self.run_command(args).output().expect("the runbook binary runs"))
    }

    /// The runs journaled here, oldest first: by when each started (its
    /// journal's header, to the millisecond), since two runs started in one
    /// second have ids that sort by their random part.
    pub fn run_ids(&self) -> Vec<String> {
        let runs = self.state().join("runs");
        let mut ids: Vec<(String, String)> = std::fs::read_dir(&runs)
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        let id = e.file_name().to_string_lossy().into_owned();
                        let started = std::fs::read_to_string(runs.join(&id).join("journal.jsonl"))
                            .ok()
                            .and_then(|text| {
                                let header: serde_json::Value = serde_json::from_str(text.lines().next()?).ok()?;
                                Some(header["started_at"].as_str()?.to_string())
                            })
                            .unwrap_or_default();
                        (started, id)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }
}

/// Every process but zombies.
pub fn processes() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| running(pid))
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat.rsplit(')').next().unwrap_or("").split_whitespace().next();
        !matches!(state, Some("Z" | "X") | None)
    })
}

/// Waits for `child` to end, failing the test if it takes longer than
/// `within`; its exit code (`None` when killed by a signal).
pub fn wait_at_most(child: &mut std::process::Child, within: std::time::Duration) -> Option<i32> {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(started.elapsed() < within, "`runbook` did not end within {within:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `(method, path)` pairs, to compare with the requests a stand-in received.
pub fn calls(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

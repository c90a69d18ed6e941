//! The index of runs: which state directory each run is journaled in, so
//! that a run is found by its id from any folder, whatever state directory
//! it used. One file per user, `$XDG_STATE_HOME/runbook/runs.jsonl` (else
//! `~/.local/state/runbook/runs.jsonl`): one JSON line per run, appended
//! when the run starts.
//!
//! The index only points at journals; it is never the record of a run. A
//! line is appended with one `write` to a file opened `O_APPEND`, and is
//! shorter than `PIPE_BUF`, so lines written by runs that start at once
//! never mix. A line that does not read (a crash in the middle of one, an
//! edit by hand) is skipped, and an entry whose run directory is gone is
//! ignored: losing the index loses nothing but the convenience.

use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The index's file name, in its directory.
pub const FILE: &str = "runs.jsonl";

/// The longest line the index takes: writes up to this size to a file
/// opened for appending are not split (Linux's `PIPE_BUF`).
pub const MAX_LINE: usize = 4096;

/// One run, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub run_id: String,
    /// The state directory the run is journaled in, absolute.
    pub state_dir: PathBuf,
    /// The runbook file, absolute.
    pub runbook_path: PathBuf,
    pub started_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot record the run in the index of runs ({}): {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot record the run in the index of runs ({}): {why}", path.display())]
    Unfit { path: PathBuf, why: String },
}

/// The index of one user's runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIndex {
    path: PathBuf,
}

impl RunIndex {
    /// The user's index: in `$XDG_STATE_HOME/runbook` (when it is an
    /// absolute path, as the XDG specification asks), else in
    /// `$HOME/.local/state/runbook`; `None` when neither is known.
    pub fn for_user(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let base = env("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
            .or_else(|| {
                env("HOME")
                    .map(PathBuf::from)
                    .filter(|home| home.is_absolute())
                    .map(|home| home.join(".local").join("state"))
            })?;
        Some(Self::in_dir(&base.join("runbook")))
    }

    /// The index kept in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self { path: dir.join(FILE) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a run. The folder and the file are made private to the user
    /// (they name every runbook the user ran, and where).
    pub fn record(&self, entry: &IndexEntry) -> Result<(), IndexError> {
        let io_error = |source| IndexError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_string(entry).map_err(|e| IndexError::Unfit {
            path: self.path.clone(),
            why: e.to_string(),
        })?;
        line.push('\n');
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_error)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(io_error)?;
        // A line cut short by a crash is ended first, so that this one
        // starts a line of its own (an empty line is skipped when read).
        let length = file.metadata().map_err(io_error)?.len();
        let mut last = [b'\n'];
        if length > 0 {
            file.read_exact_at(&mut last, length - 1).map_err(io_error)?;
        }
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
        if line.len() > MAX_LINE {
            return Err(IndexError::Unfit {
                path: self.path.clone(),
                why: format!(
                    "its line would be {} bytes, longer than the {MAX_LINE} that can be appended safely",
                    line.len()
                ),
            });
        }
        file.write_all(line.as_bytes()).map_err(io_error)?;
        file.sync_data().map_err(io_error)
    }

    /// Every entry that reads, oldest first. A missing index has none; a
    /// line that does not read is skipped.
    pub fn entries(&self) -> io::Result<Vec<IndexEntry>> {
        let text = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .split(|b| *b == b'\n')
            .filter_map(|line| serde_json::from_slice::<IndexEntry>(line).ok())
            .collect())
    }

    /// The state directory that holds the journal of `run_id`, if the index
    /// knows one that still does. A child run (`PARENT.STEP`) is journaled
    /// beside its parent, which is the one the index knows.
    pub fn state_dir_of(&self, run_id: &str) -> Option<PathBuf> {
        if super::check_run_id(run_id).is_err() {
            return None;
        }
        let entries = self.entries().ok()?;
        let mut known = run_id;
        loop {
            let found = entries
                .iter()
                .rev()
                .filter(|e| e.run_id == known)
                .find(|e| has_journal(&e.state_dir, run_id));
            if let Some(entry) = found {
                return Some(entry.state_dir.clone());
            }
            known = &known[..known.rfind('.')?];
        }
    }

    /// The state directories the index knows that still exist, each once,
    /// the most recently used first.
    pub fn state_dirs(&self) -> io::Result<Vec<PathBuf>> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for entry in self.entries()?.into_iter().rev() {
            if !dirs.contains(&entry.state_dir) && entry.state_dir.join("runs").is_dir() {
                dirs.push(entry.state_dir);
            }
        }
        Ok(dirs)
    }
}

/// Whether `state_dir` holds the journal of `run_id`.
pub fn has_journal(state_dir: &Path, run_id: &str) -> bool {
    super::run_dir(state_dir, run_id).join("journal.jsonl").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run_id: &str, state_dir: &Path) -> IndexEntry {
        IndexEntry {
            run_id: run_id.into(),
            state_dir: state_dir.to_path_buf(),
            runbook_path: state_dir.join("runbook.yaml"),
            started_at: "2026-12-03T08:00:00.000Z".into(),
        }
    }

    /// A state directory holding the journal of each run named.
    fn state_with(dir: &Path, runs: &[&str]) -> PathBuf {
        for run in runs {
            let run_dir = dir.join("runs").join(run);
            std::fs::create_dir_all(&run_dir).unwrap();
            std::fs::write(run_dir.join("journal.jsonl"), "{}\n").unwrap();
        }
        dir.to_path_buf()
    }

    #[test]
    fn a_run_is_found_where_it_was_recorded_and_not_where_it_is_gone() {
        let home = tempfile::tempdir().unwrap();
        let index = RunIndex::in_dir(&home.path().join("state"));
        assert_eq!(index.state_dir_of("r1"), None, "no index yet");
        let a = state_with(&home.path().join("a"), &["r1", "r1.child"]);
        let b = home.path().join("b");
        index.record(&entry("r1", &a)).unwrap();
        index.record(&entry("r2", &b)).unwrap();
        assert_eq!(index.state_dir_of("r1"), Some(a.clone()));
        assert_eq!(index.state_dir_of("r1.child"), Some(a.clone()), "beside its parent");
        assert_eq!(index.state_dir_of("r1.other"), None);
        assert_eq!(index.state_dir_of("r2"), None, "its run directory is gone");
        assert_eq!(index.state_dir_of("../r1"), None);
        assert_eq!(index.state_dirs().unwrap(), vec![a]);
        let mode = std::fs::metadata(index.path()).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o077, 0, "private");
    }

    #[test]
    fn a_line_that_does_not_read_is_skipped_and_a_torn_one_does_not_swallow_the_next() {
        let home = tempfile::tempdir().unwrap();
        let index = RunIndex::in_dir(home.path());
        let a = state_with(&home.path().join("a"), &["r1", "r2", "r3"]);
        index.record(&entry("r1", &a)).unwrap();
        let mut file = OpenOptions::new().append(true).open(index.path()).unwrap();
        file.write_all(b"not json\n{\"run_id\":\"r2\",\"state_d").unwrap();
        index.record(&entry("r3", &a)).unwrap();
        let ids: Vec<String> = index.entries().unwrap().into_iter().map(|e| e.run_id).collect();
        assert_eq!(ids, ["r1", "r3"]);
        assert_eq!(index.state_dir_of("r3"), Some(a));
        assert_eq!(index.state_dir_of("r2"), None);
    }

    #[test]
    fn runs_that_start_at_once_each_get_a_whole_line() {
        let home = tempfile::tempdir().unwrap();
        let index = RunIndex::in_dir(home.path());
        let long = home.path().join("x".repeat(200));
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let (index, long) = (&index, &long);
                scope.spawn(move || {
                    for n in 0..50 {
                        index.record(&entry(&format!("t{thread}-{n}"), long)).unwrap();
                    }
                });
            }
        });
        // A line may be preceded by an empty one (a writer that looked at
        // the end while another's line was landing), never mixed with one.
        let text = std::fs::read_to_string(index.path()).unwrap();
        for line in text.lines().filter(|l| !l.is_empty()) {
            assert!(serde_json::from_str::<IndexEntry>(line).is_ok(), "{line}");
        }
        assert_eq!(index.entries().unwrap().len(), 400);
    }

    #[test]
    fn a_line_too_long_to_append_safely_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let index = RunIndex::in_dir(home.path());
        let error = index
            .record(&entry("r1", &home.path().join("y".repeat(5000))))
            .unwrap_err();
        assert!(error.to_string().contains("longer than the 4096"), "{error}");
        assert!(index.entries().unwrap().is_empty());
    }

    #[test]
    fn the_index_lives_in_the_xdg_state_home() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        let path = |index: Option<RunIndex>| index.map(|i| i.path().to_path_buf());
        assert_eq!(
            path(RunIndex::for_user(&env(&[("XDG_STATE_HOME", "/s"), ("HOME", "/h")]))),
            Some(PathBuf::from("/s/runbook/runs.jsonl"))
        );
        assert_eq!(
            path(RunIndex::for_user(&env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")]))),
            Some(PathBuf::from("/h/.local/state/runbook/runs.jsonl")),
            "a relative XDG_STATE_HOME is ignored"
        );
        assert_eq!(path(RunIndex::for_user(&env(&[]))), None);
    }
}

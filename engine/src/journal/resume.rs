//! Stage "journal", the resume policy: which runbook a run picked up from
//! its journal (resumed, or rolled back later) runs with. It lives in the
//! engine so that an embedder gets the same rules as `runbook resume`:
//!
//! - a rollback undoes what ran, so it always uses the copy of the runbook
//!   kept with the run;
//! - a resume uses the runbook file when it is unchanged since the run
//!   started (its SHA-256 is the one journaled);
//! - a changed file is refused, unless forced: steps could differ from the
//!   ones journaled;
//! - a file that is gone is replaced by the copy kept with the run.
//!
//! What is worth telling the operator on the way comes back as notes.

use super::{Journal, sha256};
use crate::files::read_regular;
use std::fmt;
use std::path::PathBuf;

/// The runbook a run picked up from its journal runs with.
#[derive(Debug, Clone)]
pub struct ResumeSource {
    /// The runbook file as journaled (also when its copy is what was read):
    /// it names the runbook, and relative paths are read from its folder.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub notes: Vec<ResumeNote>,
}

/// Something worth telling the operator about a run picked up again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeNote {
    /// The last line of the journal was cut short by a crash and is ignored.
    TornTail,
    /// The runbook file changed since the run started, and `--force` said
    /// to resume with it all the same. A warning.
    RunbookChanged { run_id: String, path: PathBuf },
    /// The runbook file cannot be read: the copy kept with the run is used.
    RunbookGone { path: PathBuf },
}

impl ResumeNote {
    /// Whether it warns of a risk taken, rather than only informs.
    pub fn is_warning(&self) -> bool {
        matches!(self, ResumeNote::RunbookChanged { .. })
    }
}

impl fmt::Display for ResumeNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumeNote::TornTail => f.write_str("the last line of the journal was cut short by a crash and is ignored"),
            ResumeNote::RunbookChanged { run_id, path } => write!(
                f,
                "{} changed since run {run_id} started; resuming with the new version (--force)",
                path.display()
            ),
            ResumeNote::RunbookGone { path } => {
                write!(f, "{} is gone; using the copy kept with the run", path.display())
            }
        }
    }
}

/// Why a run cannot be picked up again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CannotResume {
    #[error(
        "{} changed since run {run_id} started; resuming it could run steps that differ from the ones journaled",
        path.display()
    )]
    RunbookChanged { run_id: String, path: PathBuf },
    #[error("cannot read the runbook of run {run_id} ({} or {})", path.display(), copy.display())]
    Unreadable {
        run_id: String,
        path: PathBuf,
        copy: PathBuf,
    },
}

impl CannotResume {
    /// What to do about it, when that is known.
    pub fn help(&self) -> Option<&'static str> {
        match self {
            CannotResume::RunbookChanged { .. } => {
                Some("review the change, then pass `--force` to resume with the new version")
            }
            CannotResume::Unreadable { .. } => None,
        }
    }
}

/// A run that cannot be picked up again, and the notes found before that
/// was known (they are still worth telling).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{cause}")]
pub struct ResumeError {
    pub notes: Vec<ResumeNote>,
    pub cause: CannotResume,
}

/// The runbook to pick a journaled run up with: for a rollback
/// (`rollback`), or a resume, forced or not (`force`) to go on with a
/// runbook that changed since the run started.
pub fn resume_source(journal: &Journal, force: bool, rollback: bool) -> Result<ResumeSource, ResumeError> {
    let mut notes = Vec::new();
    if journal.torn_tail {
        notes.push(ResumeNote::TornTail);
    }
    // As the run was asked for: the name of its folder.
    let run_id = journal
        .dir
        .file_name()
        .map_or_else(|| journal.header.run_id.clone(), |n| n.to_string_lossy().into_owned());
    let path = journal.header.runbook_path.clone();
    let copy = journal.dir.join("runbook.yaml");
    let bytes = if rollback {
        // A rollback undoes what ran: always with the runbook as it was.
        read_regular(&copy).ok()
    } else {
        match read_regular(&path) {
            Ok(bytes) if sha256(&bytes) == journal.header.runbook_sha256 => Some(bytes),
            Ok(bytes) if force => {
                notes.push(ResumeNote::RunbookChanged {
                    run_id: run_id.clone(),
                    path: path.clone(),
                });
                Some(bytes)
            }
            Ok(_) => {
                let cause = CannotResume::RunbookChanged { run_id, path };
                return Err(ResumeError { notes, cause });
            }
            Err(_) => {
                notes.push(ResumeNote::RunbookGone { path: path.clone() });
                read_regular(&copy).ok()
            }
        }
    };
    match bytes {
        Some(bytes) => Ok(ResumeSource { path, bytes, notes }),
        None => Err(ResumeError {
            notes,
            cause: CannotResume::Unreadable { run_id, path, copy },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Header;

    const ORIGINAL: &str = "runbook: 1\nname: kept\n";

    /// A run's folder with the copy of its runbook, the runbook file beside
    /// it (when `file` is given), and the journal as read back.
    struct Kept {
        _dir: tempfile::TempDir,
        journal: Journal,
    }

    fn kept(file: Option<&str>, copy: bool, torn: bool) -> Kept {
        let dir = tempfile::tempdir().unwrap();
        let run_dir = dir.path().join("runs").join("r1");
        std::fs::create_dir_all(&run_dir).unwrap();
        if copy {
            std::fs::write(run_dir.join("runbook.yaml"), ORIGINAL).unwrap();
        }
        let path = dir.path().join("book.yaml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        let journal = Journal {
            dir: run_dir,
            header: Header {
                format: crate::journal::FORMAT,
                run_id: "r1".into(),
                runbook: "kept".into(),
                runbook_path: path,
                runbook_sha256: sha256(ORIGINAL.as_bytes()),
                inputs: serde_json::Map::new(),
                masked_inputs: Vec::new(),
                started_at: "2026-11-22T01:02:03.000Z".into(),
                pid: 1,
                host: "here".into(),
            },
            events: Vec::new(),
            torn_tail: torn,
            last_hash: String::new(),
        };
        Kept { _dir: dir, journal }
    }

    const CHANGED: &str = "runbook: 1\nname: kept\n# changed\n";

    #[test]
    fn an_unchanged_runbook_is_used_as_it_is() {
        let run = kept(Some(ORIGINAL), true, false);
        let source = resume_source(&run.journal, false, false).unwrap();
        assert_eq!(source.bytes, ORIGINAL.as_bytes());
        assert_eq!(source.path, run.journal.header.runbook_path);
        assert_eq!(source.notes, []);
    }

    #[test]
    fn a_changed_runbook_is_refused_unless_forced() {
        let run = kept(Some(CHANGED), true, false);
        let path = run.journal.header.runbook_path.clone();
        let error = resume_source(&run.journal, false, false).unwrap_err();
        assert_eq!(
            error.cause,
            CannotResume::RunbookChanged {
                run_id: "r1".into(),
                path: path.clone()
            }
        );
        assert_eq!(
            error.to_string(),
            format!(
                "{} changed since run r1 started; resuming it could run steps that differ from the ones journaled",
                path.display()
            )
        );
        assert_eq!(
            error.cause.help(),
            Some("review the change, then pass `--force` to resume with the new version")
        );

        let source = resume_source(&run.journal, true, false).unwrap();
        assert_eq!(source.bytes, CHANGED.as_bytes(), "the new version");
        assert_eq!(
            source.notes,
            [ResumeNote::RunbookChanged {
                run_id: "r1".into(),
                path: path.clone()
            }]
        );
        assert!(source.notes[0].is_warning());
        assert_eq!(
            source.notes[0].to_string(),
            format!(
                "{} changed since run r1 started; resuming with the new version (--force)",
                path.display()
            )
        );
    }

    #[test]
    fn a_rollback_always_uses_the_copy_kept_with_the_run() {
        for file in [Some(ORIGINAL), Some(CHANGED), None] {
            let run = kept(file, true, false);
            for force in [false, true] {
                let source = resume_source(&run.journal, force, true).unwrap();
                assert_eq!(source.bytes, ORIGINAL.as_bytes(), "{file:?}");
                assert_eq!(source.path, run.journal.header.runbook_path, "named as journaled");
                assert_eq!(source.notes, [], "{file:?}");
            }
        }
    }

    #[test]
    fn a_runbook_gone_is_replaced_by_the_copy() {
        let run = kept(None, true, false);
        let path = run.journal.header.runbook_path.clone();
        let source = resume_source(&run.journal, false, false).unwrap();
        assert_eq!(source.bytes, ORIGINAL.as_bytes());
        assert_eq!(source.notes, [ResumeNote::RunbookGone { path: path.clone() }]);
        assert!(!source.notes[0].is_warning());
        assert_eq!(
            source.notes[0].to_string(),
            format!("{} is gone; using the copy kept with the run", path.display())
        );
    }

    #[test]
    fn with_neither_the_runbook_nor_its_copy_nothing_runs() {
        let run = kept(None, false, false);
        let path = run.journal.header.runbook_path.clone();
        let copy = run.journal.dir.join("runbook.yaml");
        let error = resume_source(&run.journal, false, false).unwrap_err();
        assert_eq!(error.notes, [ResumeNote::RunbookGone { path: path.clone() }]);
        assert_eq!(error.cause.help(), None);
        assert_eq!(
            error.to_string(),
            format!(
                "cannot read the runbook of run r1 ({} or {})",
                path.display(),
                copy.display()
            )
        );
        let error = resume_source(&kept(Some(ORIGINAL), false, false).journal, false, true).unwrap_err();
        assert!(matches!(error.cause, CannotResume::Unreadable { .. }), "{error}");
        assert_eq!(error.notes, []);
    }

    #[test]
    fn a_torn_journal_is_noted_first_whatever_follows() {
        let run = kept(Some(ORIGINAL), true, true);
        let source = resume_source(&run.journal, false, false).unwrap();
        assert_eq!(source.notes, [ResumeNote::TornTail]);
        assert_eq!(
            source.notes[0].to_string(),
            "the last line of the journal was cut short by a crash and is ignored"
        );
        let run = kept(Some(CHANGED), true, true);
        let error = resume_source(&run.journal, false, false).unwrap_err();
        assert_eq!(error.notes, [ResumeNote::TornTail]);
        let source = resume_source(&run.journal, true, false).unwrap();
        assert_eq!(source.notes.len(), 2);
        assert_eq!(source.notes[0], ResumeNote::TornTail);
    }
}

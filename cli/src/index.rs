//! The index of runs, as the command line keeps and reads it: a run is
//! recorded in it when it starts (a warning, never a failure, when it
//! cannot be), and a run id given to `show`, `resume` or `rollback` is
//! looked up in it when the run is not in the default state directory.
//! The index itself is the engine's (`journal::index`).

use crate::args::StateArgs;
use runbook_engine::execute::{Event, Reporter};
use runbook_engine::journal::index::{IndexEntry, RunIndex, has_journal};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// This user's index, from the environment (`XDG_STATE_HOME`, `HOME`).
pub fn user_index() -> Option<RunIndex> {
    RunIndex::for_user(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// Records in the index each run that starts, then passes every event on.
pub struct Recording {
    inner: Arc<dyn Reporter>,
    index: Option<RunIndex>,
    state_dir: PathBuf,
}

impl Recording {
    /// `inner`, with the runs it sees start in `state_dir` recorded in the
    /// user's index.
    pub fn around(inner: Arc<dyn Reporter>, state_dir: &Path) -> Arc<dyn Reporter> {
        Arc::new(Self {
            inner,
            index: user_index(),
            state_dir: std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_path_buf()),
        })
    }

    /// The run's entry, from the header of the journal it has just begun.
    fn record(&self, index: &RunIndex, run_id: &str) -> Result<(), String> {
        let journal = runbook_engine::journal::read(&self.state_dir, run_id).map_err(|e| e.to_string())?;
        let entry = IndexEntry {
            run_id: run_id.to_string(),
            state_dir: self.state_dir.clone(),
            runbook_path: journal.header.runbook_path,
            started_at: journal.header.started_at,
        };
        index.record(&entry).map_err(|e| e.to_string())
    }
}

impl Reporter for Recording {
    fn event(&self, event: &Event) {
        // A new run only: a resumed run, or a rollback, is in the index already.
        if let (Event::RunStarted { run_id, .. }, Some(index)) = (event, &self.index)
            && let Err(e) = self.record(index, run_id)
        {
            eprintln!(
                "warning: {e}; the run goes on, and is found from another folder with `--state-dir {}`",
                self.state_dir.display()
            );
        }
        self.inner.event(event);
    }
}

/// Where the run `run_id` is journaled: in the `--state-dir` given; else
/// in the default state directory, if it is there; else where the index
/// says. When nobody knows, the default, where reading it will say so.
pub fn state_dir_of(state: &StateArgs, run_id: &str) -> PathBuf {
    let default = state.resolve(None);
    if state.state_dir.is_some() || has_journal(&default, run_id) {
        return default;
    }
    user_index()
        .and_then(|index| index.state_dir_of(run_id))
        .unwrap_or(default)
}

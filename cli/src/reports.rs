//! `--report` and `--history`: a run's report written to a file, and its
//! line appended to the drill history, after `run`, `resume`, `rollback` or
//! `show`. The words come from the engine's report stage.

use crate::Terminal;
use crate::args::ReportArgs;
use std::io::Write;
use std::path::Path;

/// Writes a file whole or not at all: beside it, then renamed over it.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The report and the history line asked for, from the run's journal.
/// An error has been shown when this fails.
pub fn write_reports(terminal: &Terminal, state_dir: &Path, run_id: &str, args: &ReportArgs) -> Result<(), ()> {
    if args.report.is_none() && args.history.is_none() {
        return Ok(());
    }
    let journal = runbook_engine::journal::read(state_dir, run_id).map_err(|e| terminal.error(&e.to_string()))?;
    let record = runbook_engine::report::RunRecord::from_journal(&journal);
    let mut result = Ok(());
    if let Some(path) = &args.report {
        let format = args
            .report_format
            .parse()
            .unwrap_or(runbook_engine::report::ReportFormat::Markdown);
        let text = runbook_engine::report::render(&record, format);
        if let Err(e) = write_atomically(path, &text) {
            terminal.error(&format!("cannot write the report {}: {e}", path.display()));
            result = Err(());
        }
    }
    if let Some(path) = &args.history {
        let line = format!("{}\n", runbook_engine::report::history_line(&record));
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_data()));
        if let Err(e) = appended {
            terminal.error(&format!("cannot append to the history {}: {e}", path.display()));
            result = Err(());
        }
    }
    result
}

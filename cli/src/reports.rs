//! `--report` and `--history`: a run's report written to a file, and its
//! line appended to the drill history, after `run`, `resume`, `rollback` or
//! `show`. The words come from the engine's report stage.

use crate::Terminal;
use crate::args::ReportArgs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
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
        let line = runbook_engine::report::history_line(&record);
        if let Err(e) = record_history(path, run_id, &line) {
            terminal.error(&format!("cannot write to the history {}: {e}", path.display()));
            result = Err(());
        }
    }
    result
}

/// Puts the run's line in the drill history: appended for a run it does
/// not hold yet, or in place of that run's line (a rollback after a failed
/// run updates its outcome, so the history keeps one outcome per run).
/// Writers take turns with a lock on the file; a line replaced is written
/// whole, beside the file, then renamed over it.
fn record_history(path: &Path, run_id: &str, line: &str) -> std::io::Result<()> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::Read;
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)?;
        let file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| std::io::Error::from(errno))?;
        // Another writer may have put a new file in its place meanwhile.
        let (held, now) = (file.metadata()?, std::fs::metadata(path)?);
        if (held.dev(), held.ino()) != (now.dev(), now.ino()) {
            continue;
        }
        let mut text = String::new();
        (&*file).read_to_string(&mut text)?;
        match with_line(&text, run_id, line) {
            Some(updated) => write_atomically(path, &updated)?,
            None => {
                let torn = !text.is_empty() && !text.ends_with('\n');
                let appended = format!("{}{line}\n", if torn { "\n" } else { "" });
                (&*file).write_all(appended.as_bytes())?;
                file.sync_data()?;
            }
        }
        return Ok(());
    }
}

/// The history with `run_id`'s line replaced by `line`, if it has one.
fn with_line(history: &str, run_id: &str, line: &str) -> Option<String> {
    let of_run =
        |l: &str| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["run_id"].as_str() == Some(run_id));
    if !history.lines().any(of_run) {
        return None;
    }
    let mut updated = String::with_capacity(history.len() + line.len());
    for old in history.lines() {
        updated.push_str(if of_run(old) { line } else { old });
        updated.push('\n');
    }
    Some(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_outcome_of_a_run_replaces_its_line_and_others_stay() {
        let history =
            "{\"run_id\":\"a\",\"status\":\"failed\"}\nnot json\n{\"run_id\":\"b\",\"status\":\"succeeded\"}\n";
        let updated = with_line(history, "a", "{\"run_id\":\"a\",\"status\":\"rolled_back\"}").unwrap();
        assert_eq!(
            updated,
            "{\"run_id\":\"a\",\"status\":\"rolled_back\"}\nnot json\n{\"run_id\":\"b\",\"status\":\"succeeded\"}\n"
        );
        assert_eq!(with_line(history, "c", "{}"), None);
    }

    #[test]
    fn writers_at_once_each_keep_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::thread::scope(|scope| {
            for i in 0..8 {
                let path = &path;
                scope.spawn(move || {
                    let id = format!("run{i}");
                    record_history(path, &id, &format!("{{\"run_id\":\"{id}\",\"n\":1}}")).unwrap();
                    record_history(path, &id, &format!("{{\"run_id\":\"{id}\",\"n\":2}}")).unwrap();
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        let want: Vec<String> = (0..8).map(|i| format!("{{\"run_id\":\"run{i}\",\"n\":2}}")).collect();
        assert_eq!(lines, want);
    }
}

//! `runbook runs` and `runbook show`: the runs kept in a state directory
//! (or in every one the index of runs knows), and one run's timeline, read
//! back from its journal.

use crate::args::{OutputFormat, ReportArgs};
use crate::index::user_index;
use crate::reports::write_reports;
use crate::{Terminal, print_stdout};
use runbook_engine::journal::RunListing;
use runbook_engine::report::{ReportFormat, RunRecord, render, timeline, timeline_lines};
use runbook_engine::{exit, printable};
use std::path::Path;

/// A run's length in the listing: `350ms`, `12.5s`.
fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// Lists the runs journaled in `state_dir`, as a table or as JSON.
pub fn runs(terminal: &Terminal, state_dir: &Path, format: OutputFormat) -> i32 {
    let listing = match runbook_engine::journal::list(state_dir) {
        Ok(listing) => listing,
        Err(e) => {
            terminal.error(&format!("{e}\n  help: {}", e.help()));
            return exit::INVALID;
        }
    };
    let text = match format {
        OutputFormat::Json => json(&listing),
        OutputFormat::Text if listing.is_empty() => format!("no runs in {}\n", state_dir.display()),
        OutputFormat::Text => table(&listing, false),
    };
    print_stdout(&text)
}

/// Lists every run the index of runs knows, wherever it is kept, with the
/// runs of the default state directory (`here`): newest first, each with
/// its state directory. A state directory that cannot be read is a warning.
pub fn every_run(here: &Path, format: OutputFormat) -> i32 {
    let index = user_index();
    let mut dirs = Vec::new();
    if let Some(index) = &index {
        match index.state_dirs() {
            Ok(known) => dirs = known,
            Err(e) => eprintln!("warning: cannot read the index of runs {}: {e}", index.path().display()),
        }
    }
    let here = std::path::absolute(here).unwrap_or_else(|_| here.to_path_buf());
    if !dirs.contains(&here) {
        dirs.push(here.clone());
    }
    let mut listing = Vec::new();
    for dir in &dirs {
        match runbook_engine::journal::list(dir) {
            Ok(runs) => listing.extend(runs),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    listing.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run_id.cmp(&a.run_id)));
    let text = match format {
        OutputFormat::Json => json(&listing),
        OutputFormat::Text if listing.is_empty() => match &index {
            Some(index) => format!(
                "no runs: none in the index of runs ({}), none in {}\n",
                index.path().display(),
                here.display()
            ),
            None => format!("no runs in {}\n", here.display()),
        },
        OutputFormat::Text => table(&listing, true),
    };
    print_stdout(&text)
}

fn json(listing: &[RunListing]) -> String {
    format!("{}\n", serde_json::to_string_pretty(listing).unwrap_or_default())
}

/// The runs as a table; with `dirs`, the state directory of each.
fn table(listing: &[RunListing], dirs: bool) -> String {
    let row = |run: &str, runbook: &str, started: &str, duration: &str, status: &str, dir: &str| {
        let line = format!("{run:<26} {runbook:<24} {started:<25} {duration:>9}  ");
        if dirs {
            format!("{line}{status:<16} {dir}\n")
        } else {
            format!("{line}{status}\n")
        }
    };
    let mut out = row("RUN", "RUNBOOK", "STARTED", "DURATION", "STATUS", "STATE DIR");
    for run in listing {
        out.push_str(&row(
            &run.run_id,
            &run.runbook,
            &run.started_at,
            &run.duration_ms.map(seconds).unwrap_or_else(|| "-".into()),
            &run.status,
            &run.state_dir.display().to_string(),
        ));
    }
    out
}

/// One run from its journal: its timeline, or the JSON report; and the
/// reports asked for with `--report` and `--history`.
pub fn show(terminal: &Terminal, state_dir: &Path, run_id: &str, format: OutputFormat, report: &ReportArgs) -> i32 {
    let journal = match runbook_engine::journal::read(state_dir, run_id) {
        Ok(journal) => journal,
        Err(e) => {
            terminal.error(&format!("{e}\n  help: {}", e.help()));
            return exit::INVALID;
        }
    };
    if write_reports(terminal, state_dir, run_id, report).is_err() {
        return exit::INVALID;
    }
    let record = RunRecord::from_journal(&journal);
    let text = match format {
        OutputFormat::Json => render(&record, ReportFormat::Json),
        OutputFormat::Text => {
            let h = &journal.header;
            let mut out = format!(
                "run {} of {} ({})\nstarted {} on {} (pid {})\nstatus: {}\n\n",
                h.run_id,
                h.runbook,
                h.runbook_path.display(),
                h.started_at,
                h.host,
                h.pid,
                journal.status()
            );
            // The Markdown report's timeline, with what steps printed escaped
            // for the terminal rather than flattened for a document.
            for line in timeline_lines(&timeline(&journal.events), printable::line) {
                out.push_str(&line);
                out.push('\n');
            }
            if journal.torn_tail {
                out.push_str("(the last line of the journal was cut short by a crash)\n");
            }
            out
        }
    };
    print_stdout(&text)
}

//! Stage "report": what a run did, for the incident ticket (Markdown), for
//! tools (JSON), for CI systems that run drills (JUnit XML) and for the
//! drill history (one JSON line per run).
//!
//! Like the terminal view and the journal, a report is a consumer of the
//! run's one event stream, here as the journal recorded it. It never looks at
//! the runbook or the machine, so a report of an old run reads the same
//! anywhere. A run that never finished (a crash, or still running) has no
//! summary, and one whose journal goes on after its summary (a rollback
//! asked for later, killed or still running) has a stale one; its steps are
//! then read off their last events, and every format says that the run did
//! not finish.
//!
//! Secrets were masked before the events were recorded; nothing here
//! unmasks or adds anything.

use crate::clock::epoch_millis;
use crate::execute::{Event, RunStatus, RunSummary, StepStatus, StepSummary};
use crate::journal::{Header, Journal, TimedEvent};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Value as Json, json};
use std::fmt::{self, Write};
use std::str::FromStr;

/// The formats [`render`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// For the incident ticket.
    Markdown,
    /// One pretty-printed object, timeline included.
    Json,
    /// JUnit XML, one test case per step, for CI systems that run drills.
    Junit,
}

impl ReportFormat {
    pub const ALL: [ReportFormat; 3] = [ReportFormat::Markdown, ReportFormat::Json, ReportFormat::Junit];
    /// The names users write (`--format md`), in the order of [`ReportFormat::ALL`].
    pub const NAMES: &'static [&'static str] = &["md", "json", "junit"];

    pub fn name(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Json => "json",
            ReportFormat::Junit => "junit",
        }
    }

    /// The usual file extension of a report in this format.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Markdown => "md",
            ReportFormat::Json => "json",
            ReportFormat::Junit => "xml",
        }
    }
}

impl fmt::Display for ReportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A report format name that is not one of [`ReportFormat::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown report format `{name}`; the formats are `md`, `json` and `junit`{}", .help.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
pub struct UnknownReportFormat {
    pub name: String,
    /// `did you mean `junit`?`, when the name looks like a typo.
    pub help: Option<String>,
}

impl FromStr for ReportFormat {
    type Err = UnknownReportFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| UnknownReportFormat {
                name: name.to_string(),
                help: crate::diagnostic::suggestion(name, Self::NAMES.iter().copied()),
            })
    }
}

/// A run as its journal recorded it: what a report is made from.
#[derive(Debug, Clone, Copy)]
pub struct RunRecord<'a> {
    pub header: &'a Header,
    pub events: &'a [TimedEvent],
    /// The final summary (the last `run_finished`); `None` for a run that
    /// never finished. It is set aside when state events follow it.
    pub summary: Option<&'a RunSummary>,
}

impl<'a> RunRecord<'a> {
    /// The record of a journal read back.
    pub fn from_journal(journal: &'a Journal) -> Self {
        Self {
            header: &journal.header,
            events: &journal.events,
            summary: journal.finished(),
        }
    }
}

/// The report of a run in `format`, ending with a newline.
pub fn render(record: &RunRecord, format: ReportFormat) -> String {
    let outcome = Outcome::of(record);
    match format {
        ReportFormat::Markdown => markdown(&outcome),
        ReportFormat::Json => json(&outcome),
        ReportFormat::Junit => junit(&outcome),
    }
}

/// One compact JSON line (no newline) for the drill history: when the run
/// ran, how it ended, which steps failed or were rolled back, and what the
/// steps output. A run that did not finish has status `unfinished` and null
/// `finished_at` and `duration_ms`.
pub fn history_line(record: &RunRecord) -> String {
    let outcome = Outcome::of(record);
    let ids = |status: StepStatus| -> Vec<&str> {
        outcome
            .steps
            .iter()
            .filter(|s| s.status == status)
            .map(|s| s.id.as_str())
            .collect()
    };
    let outputs: serde_json::Map<String, Json> = outcome
        .steps
        .iter()
        .filter(|s| has_outputs(&s.outputs))
        .map(|s| (s.id.clone(), s.outputs.clone()))
        .collect();
    let line = json!({
        "run_id": outcome.header.run_id,
        "runbook": outcome.header.runbook,
        "started_at": outcome.header.started_at,
        "finished_at": outcome.finished_at(),
        "status": outcome.status_name(),
        "duration_ms": outcome.duration_ms(),
        "steps": outcome.steps.len(),
        "failed": ids(StepStatus::Failed),
        "rollback_failed": ids(StepStatus::RollbackFailed),
        "rolled_back": outcome.rolled_back,
        "outputs": outputs,
    });
    line.to_string()
}

/// A step's row, made when the step is first heard of.
fn row<'r>(rows: &'r mut IndexMap<String, StepRow>, step: &str, in_finally: bool) -> &'r mut StepRow {
    rows.entry(step.to_string())
        .or_insert_with(|| StepRow::new(step, in_finally))
}

/// Whether the journal goes on after its last `run_finished` (a rollback
/// asked for later, still running or killed): then the summary is stale and
/// the run, as a whole, has not finished.
fn goes_on_after_finishing(events: &[TimedEvent]) -> bool {
    events
        .iter()
        .rposition(|e| matches!(e.event, Event::RunFinished { .. }))
        .is_some_and(|last| {
            events[last + 1..]
                .iter()
                .any(|e| !matches!(e.event, Event::StepOutput { .. } | Event::Log { .. }))
        })
}

/// How a run ended, as far as its record tells.
enum Ending<'a> {
    Finished {
        status: RunStatus,
        duration_ms: u64,
        at: Option<&'a str>,
    },
    Unfinished {
        /// When the last event was recorded; `None` if there is none.
        last_at: Option<&'a str>,
        /// From the start to the last event, when the times can be read.
        elapsed_ms: Option<u64>,
        /// Main steps the runbook has, from `run_started`.
        planned: Option<usize>,
        /// The signal of the last `interrupted` event.
        interrupted: Option<&'a str>,
    },
}

/// One step's row in every format.
#[derive(Debug, Clone, Serialize)]
struct StepRow {
    id: String,
    name: Option<String>,
    status: StepStatus,
    is_finally: bool,
    attempts: u32,
    duration_ms: u64,
    outputs: Json,
    /// The step's error, or why it was skipped, cancelled or not run.
    error: Option<String>,
    /// Why its rollback failed.
    rollback_error: Option<String>,
    /// Its rollback had started at the last event, with no result (a run
    /// that did not finish).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    rolling_back: bool,
}

impl StepRow {
    fn new(id: &str, is_finally: bool) -> Self {
        Self {
            id: id.to_string(),
            name: None,
            status: StepStatus::Pending,
            is_finally,
            attempts: 0,
            duration_ms: 0,
            outputs: Json::Null,
            error: None,
            rollback_error: None,
            rolling_back: false,
        }
    }

    fn from_summary(step: &StepSummary) -> Self {
        Self {
            id: step.id.clone(),
            name: step.name.clone(),
            status: step.status,
            is_finally: step.is_finally,
            attempts: step.attempts,
            duration_ms: step.duration_ms,
            outputs: step.outputs.clone(),
            error: step.error.clone(),
            rollback_error: None,
            rolling_back: false,
        }
    }

    fn ran(&self) -> bool {
        self.attempts > 0
    }
}

/// A run read for reporting: the summary when there is one, else what the
/// events say.
struct Outcome<'a> {
    header: &'a Header,
    events: &'a [TimedEvent],
    ending: Ending<'a>,
    steps: Vec<StepRow>,
    rolled_back: Vec<String>,
    reason: Option<String>,
}

impl<'a> Outcome<'a> {
    fn of(record: &RunRecord<'a>) -> Self {
        match record.summary {
            Some(summary) if !goes_on_after_finishing(record.events) => Self::finished(record, summary),
            _ => Self::unfinished(record),
        }
    }

    fn finished(record: &RunRecord<'a>, summary: &RunSummary) -> Self {
        // The summary does not keep a rollback's error; its event does.
        let rollback_errors: IndexMap<&str, &str> = record
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::RollbackFailed { step, error, .. } => Some((step.as_str(), error.as_str())),
                _ => None,
            })
            .collect();
        let steps = summary
            .steps
            .iter()
            .map(|s| StepRow {
                rollback_error: (s.status == StepStatus::RollbackFailed)
                    .then(|| rollback_errors.get(s.id.as_str()).map_or("failed", |e| e).to_string()),
                ..StepRow::from_summary(s)
            })
            .collect();
        let at = record.events.iter().rev().find_map(|e| match e.event {
            Event::RunFinished { .. } => Some(e.at.as_str()),
            _ => None,
        });
        Self {
            header: record.header,
            events: record.events,
            ending: Ending::Finished {
                status: summary.status,
                duration_ms: summary.duration_ms,
                at,
            },
            steps,
            rolled_back: summary.rolled_back.clone(),
            reason: summary.reason.clone(),
        }
    }

    /// Each step as its last event left it.
    fn unfinished(record: &RunRecord<'a>) -> Self {
        let mut rows: IndexMap<String, StepRow> = IndexMap::new();
        let mut in_finally = false;
        let mut planned = None;
        let mut interrupted = None;
        let mut rolled_back = Vec::new();
        for timed in record.events {
            match &timed.event {
                Event::RunStarted { steps, .. } => planned = Some(*steps),
                Event::StepStarted {
                    step, name, attempt, ..
                } => {
                    let row = row(&mut rows, step, in_finally);
                    if *attempt == 1 {
                        // Started afresh (a resumed run): what it did before is moot.
                        *row = StepRow {
                            attempts: row.attempts,
                            ..StepRow::new(step, row.is_finally)
                        };
                    }
                    row.status = StepStatus::Running;
                    row.attempts = row.attempts.max(*attempt);
                    row.name = name.clone().or(row.name.take());
                }
                Event::StepOutput { .. } | Event::Log { .. } | Event::StepCheckpoint { .. } => {}
                Event::StepRecovered { step, action } => {
                    row(&mut rows, step, in_finally).error = Some(format!("put right after the run died: {action}"));
                }
                // A later segment (a rollback asked for after the run
                // finished) starts from what that run's summary says.
                Event::RunFinished { summary, .. } => {
                    let before = std::mem::take(&mut rows);
                    for step in &summary.steps {
                        let mut row = StepRow::from_summary(step);
                        row.rollback_error = before.get(&step.id).and_then(|r| r.rollback_error.clone());
                        rows.insert(step.id.clone(), row);
                    }
                    rolled_back = summary.rolled_back.clone();
                    in_finally = false;
                }
                Event::RunResumed { .. } | Event::RollbackRequested { .. } => in_finally = false,
                Event::StepRetrying {
                    step, attempt, error, ..
                } => {
                    row(&mut rows, step, in_finally).error = Some(format!("attempt {attempt} failed: {error}"));
                }
                Event::StepSucceeded {
                    step,
                    duration_ms,
                    outputs,
                    ..
                } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::Succeeded;
                    row.duration_ms = *duration_ms;
                    row.outputs = outputs.clone();
                    row.error = None;
                }
                Event::StepFailed {
                    step,
                    duration_ms,
                    error,
                    ..
                } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::Failed;
                    row.duration_ms = *duration_ms;
                    row.error = Some(error.clone());
                }
                Event::StepSkipped { step, reason } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::Skipped;
                    row.error = Some(reason.clone());
                }
                Event::StepCancelled { step, reason } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::Cancelled;
                    row.error = Some(reason.clone());
                }
                Event::Interrupted { signal } => interrupted = Some(signal.as_str()),
                Event::RollbackStarted { step, .. } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::Running;
                    row.rolling_back = true;
                    row.rollback_error = None;
                }
                Event::RollbackSucceeded { step, .. } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::RolledBack;
                    row.rolling_back = false;
                    rolled_back.push(step.clone());
                }
                Event::RollbackFailed { step, error, .. } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::RollbackFailed;
                    row.rolling_back = false;
                    row.rollback_error = Some(error.clone());
                }
                Event::FinallyStarted { .. } => in_finally = true,
            }
        }
        let last_at = record.events.last().map(|e| e.at.as_str());
        let elapsed_ms = last_at
            .and_then(epoch_millis)
            .zip(epoch_millis(&record.header.started_at))
            .map(|(last, start)| last.saturating_sub(start));
        let mut reason = format!(
            "the run did not finish (last event at {})",
            last_at.unwrap_or("none: nothing was recorded after the header")
        );
        if let Some(signal) = interrupted {
            let _ = write!(reason, "; it was interrupted by {signal}");
        }
        Self {
            header: record.header,
            events: record.events,
            ending: Ending::Unfinished {
                last_at,
                elapsed_ms,
                planned,
                interrupted,
            },
            steps: rows.into_values().collect(),
            rolled_back,
            reason: Some(reason),
        }
    }

    fn succeeded(&self) -> bool {
        matches!(
            self.ending,
            Ending::Finished {
                status: RunStatus::Succeeded,
                ..
            }
        )
    }

    /// Whether the run ended as it should have: done, or undone on request.
    fn ended_well(&self) -> bool {
        matches!(
            self.ending,
            Ending::Finished {
                status: RunStatus::Succeeded | RunStatus::RolledBack,
                ..
            }
        )
    }

    /// The status as tools read it: a [`RunStatus`] name, or `unfinished`.
    fn status_name(&self) -> &'static str {
        match self.ending {
            Ending::Finished { status, .. } => status.as_str(),
            Ending::Unfinished { .. } => "unfinished",
        }
    }

    fn status_words(&self) -> &'static str {
        match self.ending {
            Ending::Finished { status, .. } => match status {
                RunStatus::Running => "▶ running",
                RunStatus::Succeeded => "✓ succeeded",
                RunStatus::Failed => "✗ failed, rolled back",
                RunStatus::FailedWithoutRollback => "✗ failed, not rolled back",
                RunStatus::RollbackFailed => "✗ rollback failed: a person must look at this",
                RunStatus::Aborted => "✗ aborted, not rolled back: a person must take over",
                RunStatus::Cancelled => "■ cancelled",
                RunStatus::RolledBack => "↶ rolled back on request",
                RunStatus::JournalFailed => "✗ the journal could not be written: a person must look at this",
            },
            Ending::Unfinished { .. } => "⚠ did not finish",
        }
    }

    fn finished_at(&self) -> Option<&'a str> {
        match self.ending {
            Ending::Finished { at, .. } => at.or(self.events.last().map(|e| e.at.as_str())),
            Ending::Unfinished { .. } => None,
        }
    }

    fn duration_ms(&self) -> Option<u64> {
        match self.ending {
            Ending::Finished { duration_ms, .. } => Some(duration_ms),
            Ending::Unfinished { .. } => None,
        }
    }

    /// The run's length for JUnit, which needs a number: as far as the record goes.
    fn elapsed_ms(&self) -> u64 {
        match self.ending {
            Ending::Finished { duration_ms, .. } => duration_ms,
            Ending::Unfinished { elapsed_ms, .. } => {
                elapsed_ms.unwrap_or_else(|| self.steps.iter().fold(0, |sum, s| sum.saturating_add(s.duration_ms)))
            }
        }
    }
}

fn has_outputs(outputs: &Json) -> bool {
    match outputs {
        Json::Null => false,
        Json::Object(map) => !map.is_empty(),
        _ => true,
    }
}

fn step_words(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "· pending",
        StepStatus::Running => "▶ running",
        StepStatus::Succeeded => "✓ succeeded",
        StepStatus::Failed => "✗ failed",
        StepStatus::Skipped => "○ skipped",
        StepStatus::Cancelled => "■ cancelled",
        StepStatus::NotRun => "· not run",
        StepStatus::RolledBack => "↶ rolled back",
        StepStatus::RollbackFailed => "✗ rollback failed",
    }
}

/// A duration as people read it: `350ms`, `1.2s`, `2m 05s`, `1h 02m`.
fn human_duration(ms: u64) -> String {
    let tenths = ms.saturating_add(50) / 100;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if tenths < 600 {
        return format!("{}.{}s", tenths / 10, tenths % 10);
    }
    let secs = ms.saturating_add(500) / 1000;
    if secs < 3600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        let mins = secs.saturating_add(30) / 60;
        format!("{}h {:02}m", mins / 60, mins % 60)
    }
}

/// The time of day of a journal time, `01:02:03.456`; other text as it is.
fn clock(at: &str) -> String {
    crate::clock::time_of_day(at)
}

/// The time attribute JUnit wants: seconds with three decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn compact(value: &Json) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Text without terminal escape sequences (colours, cursor moves, titles),
/// which commands often put in their errors: dropping only the escape
/// character would leave `[31m` behind.
fn without_escapes(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // Only CSI and OSC are taken out whole; any other escape loses
        // just its escape character.
        if chars.next_if_eq(&'[').is_some() {
            // Parameters and intermediates, then one final byte.
            chars.by_ref().find(|c| ('\u{40}'..='\u{7e}').contains(c));
        } else if chars.next_if_eq(&']').is_some() {
            // Up to BEL or ESC \ (string terminator).
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next_if_eq(&'\\');
                    break;
                }
            }
        }
    }
    out.into()
}

/// Drops control characters (terminal escapes, bells) that no reader wants,
/// keeping line breaks and tabs.
fn printable(c: char) -> bool {
    !c.is_control() || matches!(c, '\n' | '\r' | '\t')
}

/// Text as one line: line breaks become ` ⏎ `, tabs spaces.
fn one_line(text: &str) -> String {
    let text = without_escapes(text).replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end_matches('\n').chars().filter(|c| printable(*c)) {
        match c {
            '\n' => out.push_str(" ⏎ "),
            '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------- Markdown

/// Plain text in Markdown, in a table cell or a paragraph: pipes would end
/// the cell, `<` and `&` would be read as HTML, and a cell cannot hold a
/// line break other than `<br>`.
fn md_text(text: &str) -> String {
    let text = without_escapes(text).replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end_matches('\n').chars().filter(|c| printable(*c)) {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("<br>"),
            '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text in a Markdown code span, fenced with more backticks than it holds.
/// Pipes are escaped even there: GFM splits table cells before code spans.
fn md_code(text: &str) -> String {
    let text = one_line(text).replace('|', "\\|");
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

fn markdown(run: &Outcome) -> String {
    let header = run.header;
    let mut out = String::new();
    let _ = writeln!(out, "# Run {}: {}\n", md_text(&header.run_id), md_text(&header.runbook));

    if let Ending::Unfinished {
        last_at,
        planned,
        interrupted,
        ..
    } = run.ending
    {
        let _ = write!(
            out,
            "> **⚠ This run did not finish** (last event at {}).",
            last_at.map_or_else(|| "none after the header".to_string(), md_text)
        );
        if let Some(signal) = interrupted {
            let _ = write!(out, " It was interrupted by {}.", md_text(signal));
        }
        out.push_str(" Each step's status is as its last event left it");
        let reached = run.steps.iter().filter(|s| !s.is_finally).count();
        match planned {
            Some(planned) if planned > reached => {
                let _ = writeln!(out, "; {} of the {planned} steps have no event.\n", planned - reached);
            }
            _ => out.push_str(".\n\n"),
        }
    }

    let (finished, duration) = match run.ending {
        Ending::Finished { duration_ms, .. } => (
            run.finished_at().map_or_else(|| "—".to_string(), md_text),
            human_duration(duration_ms),
        ),
        Ending::Unfinished { elapsed_ms, .. } => (
            "— (did not finish)".to_string(),
            elapsed_ms.map_or_else(
                || "unknown".to_string(),
                |ms| format!("at least {}", human_duration(ms)),
            ),
        ),
    };
    let path = header.runbook_path.to_string_lossy();
    let mut runbook = md_code(&path);
    if !header.runbook_sha256.is_empty() {
        let short: String = header.runbook_sha256.chars().take(12).collect();
        let _ = write!(runbook, " (sha256 {})", md_code(&short));
    }
    out.push_str("| | |\n|---|---|\n");
    for (fact, value) in [
        ("Status", run.status_words().to_string()),
        ("Started", md_text(&header.started_at)),
        ("Finished", finished),
        ("Duration", duration),
        ("Host", md_text(&header.host)),
        ("Runbook", runbook),
        ("Run id", md_code(&header.run_id)),
    ] {
        let _ = writeln!(out, "| {fact} | {value} |");
    }
    if matches!(run.ending, Ending::Finished { .. })
        && !run.succeeded()
        && let Some(reason) = &run.reason
    {
        let _ = writeln!(out, "\n**Reason:** {}", md_text(reason));
    }

    out.push_str("\n## Inputs\n\n");
    if header.inputs.is_empty() {
        out.push_str("No inputs.\n");
    } else {
        out.push_str("| Input | Value |\n|---|---|\n");
        for (name, value) in &header.inputs {
            let _ = writeln!(out, "| {} | {} |", md_code(name), md_code(&compact(value)));
        }
    }

    out.push_str("\n## Steps\n\n");
    if run.steps.is_empty() {
        out.push_str("No step was recorded.\n");
    } else {
        out.push_str("| Step | Status | Duration | Attempts | Outputs | Error or reason |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for step in &run.steps {
            let mut title = md_code(&step.id);
            if let Some(name) = &step.name {
                let _ = write!(title, " — {}", md_text(name));
            }
            if step.is_finally {
                title.push_str(" (finally)");
            }
            let (duration, attempts) = if step.status == StepStatus::Running {
                ("—".to_string(), step.attempts.to_string())
            } else if step.ran() {
                (human_duration(step.duration_ms), step.attempts.to_string())
            } else {
                ("—".to_string(), "—".to_string())
            };
            let outputs = if has_outputs(&step.outputs) {
                md_code(&compact(&step.outputs))
            } else {
                "—".to_string()
            };
            let error = [
                step.error.clone(),
                step.rollback_error.as_ref().map(|e| format!("rollback: {e}")),
            ]
            .into_iter()
            .flatten()
            .map(|e| md_text(&e))
            .collect::<Vec<_>>()
            .join("<br>");
            let _ = writeln!(
                out,
                "| {title} | {} | {duration} | {attempts} | {outputs} | {error} |",
                if step.rolling_back {
                    "↶ rolling back"
                } else {
                    step_words(step.status)
                }
            );
        }
    }

    out.push_str("\n## Rolled back\n\n");
    if run.rolled_back.is_empty() {
        out.push_str("Nothing was rolled back.\n");
    } else {
        for (i, id) in run.rolled_back.iter().enumerate() {
            let _ = writeln!(out, "{}. {}", i + 1, md_code(id));
        }
    }
    let failed_rollbacks: Vec<&StepRow> = run
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::RollbackFailed)
        .collect();
    if !failed_rollbacks.is_empty() {
        out.push_str("\n**Rollback failed** (a person must look at these):\n\n");
        for step in failed_rollbacks {
            let error = step.rollback_error.as_deref().unwrap_or("failed");
            let _ = writeln!(out, "- {}: {}", md_code(&step.id), md_text(error));
        }
    }

    out.push_str("\n## Timeline\n\n");
    let lines = timeline(run.events);
    if lines.is_empty() {
        out.push_str("Nothing was recorded after the header.\n");
    } else {
        // A code block keeps the columns; every line starts with a time, so
        // no text can close the fence.
        let width = lines.iter().map(|l| l.1.chars().count()).max().unwrap_or(0);
        out.push_str("```text\n");
        for (at, step, what) in lines {
            let _ = writeln!(out, "{}  {step:<width$}  {}", clock(at), one_line(&what));
        }
        out.push_str("```\n");
    }
    out
}

/// Each event but live output as `(time, step or "(run)", what happened)`.
fn timeline(events: &[TimedEvent]) -> Vec<(&str, &str, String)> {
    const RUN: &str = "(run)";
    events
        .iter()
        .filter_map(|timed| {
            let (step, what) = match &timed.event {
                Event::StepOutput { .. } | Event::StepCheckpoint { .. } => return None,
                Event::StepRecovered { step, action } => {
                    (step.as_str(), format!("put right after the run died: {action}"))
                }
                Event::RunStarted { steps, dry_run, .. } => (
                    RUN,
                    format!("run started: {steps} steps{}", if *dry_run { " (dry run)" } else { "" }),
                ),
                Event::StepStarted {
                    step, attempt, action, ..
                } => (
                    step.as_str(),
                    if *attempt > 1 {
                        format!("started (attempt {attempt}): {action}")
                    } else {
                        format!("started: {action}")
                    },
                ),
                Event::Log { step, level, message } => (step.as_str(), format!("{level}: {message}")),
                Event::StepRetrying {
                    step,
                    attempt,
                    error,
                    delay_ms,
                } => (
                    step.as_str(),
                    format!(
                        "attempt {attempt} failed: {error}; retrying in {}",
                        human_duration(*delay_ms)
                    ),
                ),
                Event::StepSucceeded { step, duration_ms, .. } => {
                    (step.as_str(), format!("succeeded in {}", human_duration(*duration_ms)))
                }
                Event::StepFailed {
                    step,
                    duration_ms,
                    error,
                    on_failure,
                } => (
                    step.as_str(),
                    format!(
                        "failed after {}: {error} (on failure: {on_failure})",
                        human_duration(*duration_ms)
                    ),
                ),
                Event::StepSkipped { step, reason } => (step.as_str(), format!("skipped: {reason}")),
                Event::StepCancelled { step, reason } => (step.as_str(), format!("cancelled: {reason}")),
                Event::Interrupted { signal } => (RUN, format!("interrupted by {signal}")),
                Event::RollbackStarted { step, action } => (step.as_str(), format!("rolling back: {action}")),
                Event::RollbackSucceeded { step, duration_ms } => (
                    step.as_str(),
                    format!("rolled back in {}", human_duration(*duration_ms)),
                ),
                Event::RollbackFailed {
                    step,
                    duration_ms,
                    error,
                } => (
                    step.as_str(),
                    format!("rollback FAILED after {}: {error}", human_duration(*duration_ms)),
                ),
                Event::FinallyStarted { steps } => (RUN, format!("finally: {steps} step(s)")),
                Event::RunResumed { rerun, .. } if rerun.is_empty() => (RUN, "run resumed".to_string()),
                Event::RunResumed { rerun, .. } => (
                    RUN,
                    format!("run resumed; running again what was in flight: {}", rerun.join(", ")),
                ),
                Event::RollbackRequested { reason } => (RUN, format!("rollback requested: {reason}")),
                Event::RunFinished {
                    status, duration_ms, ..
                } => (
                    RUN,
                    format!(
                        "run finished: {} in {}",
                        status.as_str().replace('_', " "),
                        human_duration(*duration_ms)
                    ),
                ),
            };
            Some((timed.at.as_str(), step, what))
        })
        .collect()
}

// ---------------------------------------------------------------- JSON

fn json(run: &Outcome) -> String {
    let header = run.header;
    let timeline: Vec<Json> = run
        .events
        .iter()
        .filter(|e| !matches!(e.event, Event::StepOutput { .. }))
        .map(|e| {
            let mut event = serde_json::to_value(&e.event).unwrap_or(Json::Null);
            // The summary is the report itself; once is enough.
            if let Json::Object(map) = &mut event {
                map.remove("summary");
            }
            json!({ "at": e.at, "seq": e.seq, "event": event })
        })
        .collect();
    let report = json!({
        "run_id": header.run_id,
        "runbook": header.runbook,
        "runbook_path": header.runbook_path.to_string_lossy(),
        "runbook_sha256": header.runbook_sha256,
        "started_at": header.started_at,
        "finished_at": run.finished_at(),
        "host": header.host,
        "inputs": header.inputs,
        "status": run.status_name(),
        "duration_ms": run.duration_ms(),
        "steps": run.steps,
        "rolled_back": run.rolled_back,
        "reason": run.reason,
        "timeline": timeline,
    });
    let mut out = serde_json::to_string_pretty(&report).unwrap_or_default();
    out.push('\n');
    out
}

// ---------------------------------------------------------------- JUnit

/// Text for XML 1.0, in an attribute (`attribute`) or an element. Characters
/// XML 1.0 forbids are dropped; in attributes, line breaks and tabs are
/// written as references, since parsers turn raw ones into spaces.
fn xml_escape(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in without_escapes(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' | '\t' => out.push(c),
            c if c < '\u{20}' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn attr(text: &str) -> String {
    xml_escape(text, true)
}

fn text(text: &str) -> String {
    xml_escape(text, false)
}

/// What a test case holds besides its timing.
enum Verdict {
    Passed { note: Option<&'static str> },
    Failure { message: String, text: String },
    Error { message: String, text: String },
    Skipped { message: String },
}

impl Verdict {
    fn of(step: &StepRow) -> Self {
        let error = step.error.clone();
        match step.status {
            StepStatus::Succeeded => Verdict::Passed { note: None },
            StepStatus::RolledBack => Verdict::Passed {
                note: Some("rolled back"),
            },
            StepStatus::Failed => {
                let error = error.unwrap_or_else(|| "failed".into());
                Verdict::Failure {
                    message: error.clone(),
                    text: error,
                }
            }
            StepStatus::RollbackFailed => {
                let error = step.rollback_error.clone().unwrap_or_else(|| "failed".into());
                Verdict::Error {
                    message: format!("rollback failed: {error}"),
                    text: error,
                }
            }
            StepStatus::Running => {
                let doing = if step.rolling_back {
                    "being rolled back"
                } else {
                    "running"
                };
                let message = format!("the run did not finish while this step was {doing}");
                let text = [step.error.as_deref(), step.rollback_error.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("\n");
                Verdict::Error { message, text }
            }
            StepStatus::Skipped | StepStatus::NotRun | StepStatus::Cancelled | StepStatus::Pending => {
                Verdict::Skipped {
                    message: error.unwrap_or_else(|| step.status.as_str().replace('_', " ")),
                }
            }
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Verdict::Passed { note: None } => {}
            Verdict::Passed { note: Some(note) } => {
                let _ = writeln!(out, "      <system-out>{}</system-out>", text(note));
            }
            Verdict::Failure { message, text: body } => {
                let _ = writeln!(
                    out,
                    "      <failure message=\"{}\">{}</failure>",
                    attr(message),
                    text(body)
                );
            }
            Verdict::Error { message, text: body } => {
                let _ = writeln!(out, "      <error message=\"{}\">{}</error>", attr(message), text(body));
            }
            Verdict::Skipped { message } => {
                let _ = writeln!(out, "      <skipped message=\"{}\"/>", attr(message));
            }
        }
    }
}

fn junit(run: &Outcome) -> String {
    let header = run.header;
    let mut cases: Vec<(String, u64, Verdict)> = run
        .steps
        .iter()
        .map(|step| {
            let name = if step.is_finally {
                format!("{} (finally)", step.id)
            } else {
                step.id.clone()
            };
            (name, step.duration_ms, Verdict::of(step))
        })
        .collect();
    // A run stopped by a timeout, a cancellation or a crash may leave no step
    // failed; one more case keeps such a drill from passing in CI.
    let accounted = cases
        .iter()
        .any(|(_, _, v)| matches!(v, Verdict::Failure { .. } | Verdict::Error { .. }));
    if !run.ended_well() && !accounted {
        let reason = run
            .reason
            .clone()
            .unwrap_or_else(|| run.status_name().replace('_', " "));
        let verdict = match run.ending {
            Ending::Finished {
                status: RunStatus::RollbackFailed,
                ..
            }
            | Ending::Unfinished { .. } => Verdict::Error {
                message: reason.clone(),
                text: reason,
            },
            Ending::Finished { status, .. } => Verdict::Failure {
                message: format!("the run {}: {reason}", status.as_str().replace('_', " ")),
                text: reason,
            },
        };
        cases.push(("(run)".to_string(), 0, verdict));
    }

    let count = |f: fn(&Verdict) -> bool| cases.iter().filter(|(_, _, v)| f(v)).count();
    let counts = format!(
        "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{}\"",
        cases.len(),
        count(|v| matches!(v, Verdict::Failure { .. })),
        count(|v| matches!(v, Verdict::Error { .. })),
        count(|v| matches!(v, Verdict::Skipped { .. })),
        seconds(run.elapsed_ms()),
    );
    // JUnit's schema wants a local date-time without zone or fraction; the
    // journal's clock is UTC, so the property `started_at` keeps the zone.
    let timestamp = header
        .started_at
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches('Z');

    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"runbook\" {counts}>");
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" {counts} timestamp=\"{}\" hostname=\"{}\">",
        attr(&format!("runbook: {}", header.runbook)),
        attr(timestamp),
        attr(&header.host),
    );
    out.push_str("    <properties>\n");
    let mut properties = vec![
        ("run_id".to_string(), header.run_id.clone()),
        ("status".to_string(), run.status_name().to_string()),
        ("started_at".to_string(), header.started_at.clone()),
        (
            "runbook_path".to_string(),
            header.runbook_path.to_string_lossy().into_owned(),
        ),
        ("runbook_sha256".to_string(), header.runbook_sha256.clone()),
    ];
    if let Some(reason) = &run.reason {
        properties.push(("reason".to_string(), reason.clone()));
    }
    for (name, value) in &header.inputs {
        let value = match value {
            Json::String(s) => s.clone(),
            other => compact(other),
        };
        properties.push((format!("input.{name}"), value));
    }
    for (name, value) in properties {
        let _ = writeln!(
            out,
            "      <property name=\"{}\" value=\"{}\"/>",
            attr(&name),
            attr(&value)
        );
    }
    out.push_str("    </properties>\n");
    for (name, duration_ms, verdict) in &cases {
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            attr(&header.runbook),
            attr(name),
            seconds(*duration_ms)
        );
        if matches!(verdict, Verdict::Passed { note: None }) {
            let _ = writeln!(out, "{open}/>");
        } else {
            let _ = writeln!(out, "{open}>");
            verdict.write(&mut out);
            out.push_str("    </testcase>\n");
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::OutputStream;
    use std::path::PathBuf;

    /// 2026-11-22T01:02:03.456Z
    const START_MS: u64 = 1_795_309_323_456;

    fn at(offset_ms: u64) -> String {
        let ms = START_MS + offset_ms;
        let base = crate::execute::format_timestamp(ms / 1000);
        format!("{}.{:03}Z", base.trim_end_matches('Z'), ms % 1000)
    }

    fn header(run_id: &str, runbook: &str, inputs: Json) -> Header {
        let Json::Object(inputs) = inputs else {
            panic!("inputs must be an object")
        };
        Header {
            format: crate::journal::FORMAT,
            run_id: run_id.into(),
            runbook: runbook.into(),
            runbook_path: PathBuf::from(format!("/srv/runbooks/{runbook}.yaml")),
            runbook_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            inputs,
            masked_inputs: Vec::new(),
            started_at: at(0),
            pid: 4242,
            host: "ops-bastion-1".into(),
        }
    }

    /// Events stamped with times relative to the start, numbered in order.
    fn events(list: Vec<(u64, Event)>) -> Vec<TimedEvent> {
        list.into_iter()
            .enumerate()
            .map(|(i, (offset, event))| TimedEvent {
                seq: i as u64 + 1,
                at: at(offset),
                event,
            })
            .collect()
    }

    fn started(step: &str, attempt: u32, action: &str) -> Event {
        Event::StepStarted {
            step: step.into(),
            name: None,
            attempt,
            action: action.into(),
        }
    }

    fn output(step: &str, line: &str) -> Event {
        Event::StepOutput {
            step: step.into(),
            stream: OutputStream::Stdout,
            line: line.into(),
        }
    }

    fn succeeded(step: &str, duration_ms: u64, outputs: Json) -> Event {
        Event::StepSucceeded {
            step: step.into(),
            duration_ms,
            outputs,
            undo: None,
        }
    }

    #[expect(clippy::too_many_arguments, reason = "a table row of the fixture")]
    fn summary_step(
        id: &str,
        name: Option<&str>,
        status: StepStatus,
        duration_ms: u64,
        attempts: u32,
        error: Option<&str>,
        outputs: Json,
        is_finally: bool,
    ) -> StepSummary {
        StepSummary {
            id: id.into(),
            name: name.map(Into::into),
            status,
            duration_ms,
            attempts,
            error: error.map(Into::into),
            outputs,
            is_finally,
        }
    }

    fn finish(list: Vec<(u64, Event)>, summary: &RunSummary) -> Vec<TimedEvent> {
        finish_at(list, summary.duration_ms, summary)
    }

    fn finish_at(mut list: Vec<(u64, Event)>, offset: u64, summary: &RunSummary) -> Vec<TimedEvent> {
        list.push((
            offset,
            Event::RunFinished {
                status: summary.status,
                duration_ms: summary.duration_ms,
                summary: summary.clone(),
            },
        ));
        events(list)
    }

    /// A deploy that went well: outputs, a retry, a skipped step, a finally step.
    fn succeeded_run() -> (Header, Vec<TimedEvent>, RunSummary) {
        let header = header(
            "20261122T010203Z-a1b2",
            "deploy-api",
            json!({ "env": "prod", "replicas": 4, "token": "***" }),
        );
        let summary = RunSummary {
            run_id: header.run_id.clone(),
            runbook: header.runbook.clone(),
            status: RunStatus::Succeeded,
            duration_ms: 63_600,
            steps: vec![
                summary_step(
                    "check-health",
                    Some("Check the service is healthy"),
                    StepStatus::Succeeded,
                    350,
                    1,
                    None,
                    json!({ "healthy": true, "latency_ms": 12 }),
                    false,
                ),
                summary_step(
                    "scale",
                    None,
                    StepStatus::Succeeded,
                    62_000,
                    2,
                    None,
                    json!({ "replicas": 4, "previous": 2 }),
                    false,
                ),
                summary_step(
                    "page-oncall",
                    None,
                    StepStatus::Skipped,
                    0,
                    0,
                    Some("`inputs.env == 'staging'` is false (inputs.env = \"prod\")"),
                    Json::Null,
                    false,
                ),
                summary_step("cleanup", None, StepStatus::Succeeded, 1_200, 1, None, json!({}), true),
            ],
            rolled_back: vec![],
            reason: None,
        };
        let events = finish(
            vec![
                (
                    0,
                    Event::RunStarted {
                        run_id: header.run_id.clone(),
                        runbook: header.runbook.clone(),
                        steps: 3,
                        dry_run: false,
                    },
                ),
                (
                    5,
                    Event::StepStarted {
                        step: "check-health".into(),
                        name: Some("Check the service is healthy".into()),
                        attempt: 1,
                        action: "GET https://api.internal/healthz".into(),
                    },
                ),
                (200, output("check-health", "HTTP/1.1 200 OK")),
                (
                    355,
                    succeeded("check-health", 350, json!({ "healthy": true, "latency_ms": 12 })),
                ),
                (
                    360,
                    started("scale", 1, "kubectl scale deploy/api --replicas=4 --token=***"),
                ),
                (
                    30_360,
                    Event::StepRetrying {
                        step: "scale".into(),
                        attempt: 1,
                        error: "timed out after 30s".into(),
                        delay_ms: 2_000,
                    },
                ),
                (
                    32_360,
                    started("scale", 2, "kubectl scale deploy/api --replicas=4 --token=***"),
                ),
                (
                    33_000,
                    Event::Log {
                        step: "scale".into(),
                        level: "info".into(),
                        message: "waiting for 4 ready replicas".into(),
                    },
                ),
                (
                    62_360,
                    succeeded("scale", 62_000, json!({ "replicas": 4, "previous": 2 })),
                ),
                (
                    62_361,
                    Event::StepSkipped {
                        step: "page-oncall".into(),
                        reason: "`inputs.env == 'staging'` is false (inputs.env = \"prod\")".into(),
                    },
                ),
                (62_362, Event::FinallyStarted { steps: 1 }),
                (62_363, started("cleanup", 1, "rm -rf /tmp/deploy-api")),
                (63_563, succeeded("cleanup", 1_200, json!({}))),
            ],
            &summary,
        );
        (header, events, summary)
    }

    const NASTY: &str =
        "psql: ERROR: column \"a|b\" <unknown> & 'x' missing\n  at line 3\u{1b}[31m\u{7}\r\nhint: check `schema`";

    /// A migration that failed: one rollback ran, one rollback failed, and
    /// the error is full of characters every format must escape.
    fn failed_run() -> (Header, Vec<TimedEvent>, RunSummary) {
        let header = header(
            "20261122T010203Z-c3d4",
            "migrate-db",
            json!({ "database": "orders", "filter": "a|b <c> & \"d\"", "password": "***" }),
        );
        let summary = RunSummary {
            run_id: header.run_id.clone(),
            runbook: header.runbook.clone(),
            status: RunStatus::RollbackFailed,
            duration_ms: 9_870,
            steps: vec![
                summary_step(
                    "snapshot",
                    None,
                    StepStatus::RolledBack,
                    2_100,
                    1,
                    None,
                    json!({ "snapshot_id": "snap-0042" }),
                    false,
                ),
                summary_step(
                    "drain",
                    Some("Drain <writers> & readers"),
                    StepStatus::RollbackFailed,
                    1_500,
                    1,
                    None,
                    json!({ "drained": 12 }),
                    false,
                ),
                summary_step(
                    "migrate",
                    None,
                    StepStatus::Failed,
                    4_000,
                    1,
                    Some(NASTY),
                    Json::Null,
                    false,
                ),
                summary_step(
                    "switch-traffic",
                    None,
                    StepStatus::NotRun,
                    0,
                    0,
                    Some("`migrate` did not succeed"),
                    Json::Null,
                    false,
                ),
                summary_step("notify", None, StepStatus::Succeeded, 300, 1, None, Json::Null, true),
            ],
            rolled_back: vec!["snapshot".into()],
            reason: Some(format!("step `migrate` failed: {NASTY}")),
        };
        let events = finish(
            vec![
                (
                    0,
                    Event::RunStarted {
                        run_id: header.run_id.clone(),
                        runbook: header.runbook.clone(),
                        steps: 4,
                        dry_run: false,
                    },
                ),
                (10, started("snapshot", 1, "snapshot database `orders`")),
                (
                    2_110,
                    succeeded("snapshot", 2_100, json!({ "snapshot_id": "snap-0042" })),
                ),
                (2_120, started("drain", 1, "drain writers of `orders`")),
                (3_620, succeeded("drain", 1_500, json!({ "drained": 12 }))),
                (3_630, started("migrate", 1, "psql -f migrations/0042.sql")),
                (4_000, output("migrate", "BEGIN")),
                (
                    7_630,
                    Event::StepFailed {
                        step: "migrate".into(),
                        duration_ms: 4_000,
                        error: NASTY.into(),
                        on_failure: "roll back".into(),
                    },
                ),
                (
                    7_631,
                    Event::StepSkipped {
                        step: "switch-traffic".into(),
                        reason: "`migrate` did not succeed".into(),
                    },
                ),
                (
                    7_640,
                    Event::RollbackStarted {
                        step: "drain".into(),
                        action: "undrain writers of `orders`".into(),
                    },
                ),
                (
                    8_640,
                    Event::RollbackFailed {
                        step: "drain".into(),
                        duration_ms: 1_000,
                        error: "connection refused: <pgbouncer> said \"no\" & closed".into(),
                    },
                ),
                (
                    8_650,
                    Event::RollbackStarted {
                        step: "snapshot".into(),
                        action: "delete snapshot snap-0042".into(),
                    },
                ),
                (
                    9_450,
                    Event::RollbackSucceeded {
                        step: "snapshot".into(),
                        duration_ms: 800,
                    },
                ),
                (9_460, Event::FinallyStarted { steps: 1 }),
                (9_470, started("notify", 1, "post to #incidents")),
                (9_770, succeeded("notify", 300, Json::Null)),
            ],
            &summary,
        );
        (header, events, summary)
    }

    /// A run killed while its second step was retrying: no summary.
    fn unfinished_run() -> (Header, Vec<TimedEvent>) {
        let header = header("20261122T010203Z-e5f6", "rotate-certs", json!({}));
        let events = events(vec![
            (
                0,
                Event::RunStarted {
                    run_id: header.run_id.clone(),
                    runbook: header.runbook.clone(),
                    steps: 4,
                    dry_run: false,
                },
            ),
            (15, started("issue", 1, "request a certificate for api.example.com")),
            (1_215, succeeded("issue", 1_200, json!({ "serial": "0a:1b:2c" }))),
            (1_220, started("install", 1, "copy the certificate to 3 hosts")),
            (
                4_220,
                Event::StepRetrying {
                    step: "install".into(),
                    attempt: 1,
                    error: "host web-2: permission denied | exit 1".into(),
                    delay_ms: 500,
                },
            ),
            (4_720, started("install", 2, "copy the certificate to 3 hosts")),
            (
                5_000,
                Event::Log {
                    step: "install".into(),
                    level: "warn".into(),
                    message: "web-2 is slow to answer".into(),
                },
            ),
        ]);
        (header, events)
    }

    fn all_formats(record: &RunRecord) -> [String; 3] {
        ReportFormat::ALL.map(|format| render(record, format))
    }

    #[test]
    fn succeeded_run_reports() {
        let (header, events, summary) = succeeded_run();
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: Some(&summary),
        };
        let [md, json, junit] = all_formats(&record);
        insta::assert_snapshot!("succeeded_md", md);
        insta::assert_snapshot!("succeeded_json", json);
        insta::assert_snapshot!("succeeded_junit", junit);
        check_xml(&junit).unwrap();
    }

    #[test]
    fn failed_run_reports() {
        let (header, events, summary) = failed_run();
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: Some(&summary),
        };
        let [md, json, junit] = all_formats(&record);
        insta::assert_snapshot!("failed_md", md);
        insta::assert_snapshot!("failed_json", json);
        insta::assert_snapshot!("failed_junit", junit);
        check_xml(&junit).unwrap();
    }

    #[test]
    fn unfinished_run_reports() {
        let (header, events) = unfinished_run();
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: None,
        };
        let [md, json, junit] = all_formats(&record);
        assert!(md.contains("This run did not finish** (last event at 2026-11-22T01:02:08.456Z)"));
        insta::assert_snapshot!("unfinished_md", md);
        insta::assert_snapshot!("unfinished_json", json);
        insta::assert_snapshot!("unfinished_junit", junit);
        check_xml(&junit).unwrap();
    }

    /// A run that failed without rollback, then `runbook rollback RUN`.
    fn rolled_back_later(crash_during_rollback: bool) -> (Header, Vec<TimedEvent>, RunSummary) {
        let header = header("20261122T010203Z-7777", "restart-cache", json!({ "cluster": "eu-1" }));
        let steps = |flush: StepStatus| {
            vec![
                summary_step("flush", None, flush, 800, 1, None, json!({ "keys": 1042 }), false),
                summary_step(
                    "restart",
                    None,
                    StepStatus::Failed,
                    2_000,
                    1,
                    Some("exit status 1"),
                    Json::Null,
                    false,
                ),
            ]
        };
        let first = RunSummary {
            run_id: header.run_id.clone(),
            runbook: header.runbook.clone(),
            status: RunStatus::FailedWithoutRollback,
            duration_ms: 2_900,
            steps: steps(StepStatus::Succeeded),
            rolled_back: vec![],
            reason: Some("step `restart` failed: exit status 1".into()),
        };
        let mut list = vec![
            (
                0,
                Event::RunStarted {
                    run_id: header.run_id.clone(),
                    runbook: header.runbook.clone(),
                    steps: 2,
                    dry_run: false,
                },
            ),
            (10, started("flush", 1, "flush the cache of eu-1")),
            (810, succeeded("flush", 800, json!({ "keys": 1042 }))),
            (820, started("restart", 1, "systemctl restart cache")),
            (
                2_820,
                Event::StepFailed {
                    step: "restart".into(),
                    duration_ms: 2_000,
                    error: "exit status 1".into(),
                    on_failure: "abort".into(),
                },
            ),
            (
                2_900,
                Event::RunFinished {
                    status: first.status,
                    duration_ms: first.duration_ms,
                    summary: first.clone(),
                },
            ),
            (
                600_000,
                Event::RollbackRequested {
                    reason: "requested by the operator".into(),
                },
            ),
            (
                600_010,
                Event::RollbackStarted {
                    step: "flush".into(),
                    action: "warm the cache of eu-1".into(),
                },
            ),
        ];
        if crash_during_rollback {
            return (header, events(list), first);
        }
        let second = RunSummary {
            status: RunStatus::RolledBack,
            duration_ms: 1_500,
            steps: steps(StepStatus::RolledBack),
            rolled_back: vec!["flush".into()],
            reason: None,
            ..first
        };
        list.push((
            601_400,
            Event::RollbackSucceeded {
                step: "flush".into(),
                duration_ms: 1_390,
            },
        ));
        (header, finish_at(list, 601_500, &second), second)
    }

    #[test]
    fn a_rollback_killed_after_the_run_finished_is_unfinished() {
        // As `Journal::finished` would give it: the first run's summary.
        let (header, events, stale) = rolled_back_later(true);
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: Some(&stale),
        };
        let [md, json, junit] = all_formats(&record);
        insta::assert_snapshot!("rollback_killed_md", md);
        let json: Json = serde_json::from_str(&json).unwrap();
        assert_eq!(json["status"], "unfinished");
        assert_eq!(json["steps"][0]["status"], "running");
        assert_eq!(json["steps"][1]["status"], "failed");
        check_xml(&junit).unwrap();
        assert!(junit.contains("errors=\"1\""), "{junit}");
        assert!(junit.contains("while this step was being rolled back"), "{junit}");

        let (header, events, summary) = rolled_back_later(false);
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: Some(&summary),
        };
        let [md, _, junit] = all_formats(&record);
        assert!(md.contains("| Status | ↶ rolled back on request |"), "{md}");
        assert!(md.contains("rollback requested: requested by the operator"), "{md}");
        assert!(!junit.contains("(run)"), "{junit}");
        assert!(junit.contains("<system-out>rolled back</system-out>"), "{junit}");
    }

    #[test]
    fn history_lines() {
        let (h1, e1, s1) = succeeded_run();
        let (h2, e2, s2) = failed_run();
        let (h3, e3) = unfinished_run();
        let lines = [
            history_line(&RunRecord {
                header: &h1,
                events: &e1,
                summary: Some(&s1),
            }),
            history_line(&RunRecord {
                header: &h2,
                events: &e2,
                summary: Some(&s2),
            }),
            history_line(&RunRecord {
                header: &h3,
                events: &e3,
                summary: None,
            }),
        ];
        for line in &lines {
            assert!(!line.contains('\n'), "one line: {line}");
            serde_json::from_str::<Json>(line).unwrap();
        }
        insta::assert_snapshot!("history_lines", lines.join("\n"));
    }

    #[test]
    fn a_run_with_nothing_after_the_header_still_reports() {
        let header = header("20261122T010203Z-0000", "empty", json!({}));
        let record = RunRecord {
            header: &header,
            events: &[],
            summary: None,
        };
        let [md, json, junit] = all_formats(&record);
        assert!(md.contains("This run did not finish** (last event at none after the header)"));
        assert!(md.contains("No step was recorded."));
        let json: Json = serde_json::from_str(&json).unwrap();
        assert_eq!(json["status"], "unfinished");
        check_xml(&junit).unwrap();
        assert!(
            junit.contains("name=\"(run)\""),
            "a crashed drill must not pass: {junit}"
        );
    }

    #[test]
    fn an_interrupted_run_that_died_says_so() {
        let (header, mut events) = unfinished_run();
        events.push(TimedEvent {
            seq: 99,
            at: at(6_000),
            event: Event::Interrupted {
                signal: "SIGTERM".into(),
            },
        });
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: None,
        };
        let md = render(&record, ReportFormat::Markdown);
        assert!(
            md.contains("(last event at 2026-11-22T01:02:09.456Z). It was interrupted by SIGTERM."),
            "{md}"
        );
        assert!(md.contains("01:02:09.456  (run)    interrupted by SIGTERM"), "{md}");
        let line: Json = serde_json::from_str(&history_line(&record)).unwrap();
        assert_eq!(line["status"], "unfinished");
        let json: Json = serde_json::from_str(&render(&record, ReportFormat::Json)).unwrap();
        assert_eq!(
            json["reason"],
            "the run did not finish (last event at 2026-11-22T01:02:09.456Z); it was interrupted by SIGTERM"
        );
    }

    #[test]
    fn a_cancelled_run_without_a_failed_step_fails_in_junit() {
        let header = header("20261122T010203Z-1111", "drill", json!({}));
        let summary = RunSummary {
            run_id: header.run_id.clone(),
            runbook: header.runbook.clone(),
            status: RunStatus::Cancelled,
            duration_ms: 3_000,
            steps: vec![summary_step(
                "wait",
                None,
                StepStatus::Cancelled,
                2_900,
                1,
                Some("interrupted by SIGINT"),
                Json::Null,
                false,
            )],
            rolled_back: vec![],
            reason: Some("interrupted by SIGINT".into()),
        };
        let events = finish(vec![], &summary);
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: Some(&summary),
        };
        let junit = render(&record, ReportFormat::Junit);
        check_xml(&junit).unwrap();
        assert!(
            junit.contains("tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"1\""),
            "{junit}"
        );
        assert!(
            junit.contains("<failure message=\"the run cancelled: interrupted by SIGINT\">"),
            "{junit}"
        );
    }

    #[test]
    fn markdown_table_rows_stay_one_line() {
        let (header, events, summary) = failed_run();
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: Some(&summary),
        };
        let md = render(&record, ReportFormat::Markdown);
        // Each table's rows, as GFM splits them: on pipes not escaped.
        let cells = |line: &str| line.split('|').count() - line.matches("\\|").count();
        let mut tables = 0;
        let mut lines = md.lines().peekable();
        while let Some(first) = lines.next() {
            if !first.starts_with('|') {
                continue;
            }
            tables += 1;
            while let Some(line) = lines.next_if(|l| l.starts_with('|')) {
                assert!(line.ends_with('|') && !line.ends_with("\\|"), "a row was cut: {line:?}");
                assert!(!line.chars().any(char::is_control), "a control character in {line:?}");
                assert_eq!(
                    cells(line),
                    cells(first),
                    "a row with the wrong number of cells: {line:?}"
                );
            }
        }
        assert_eq!(tables, 3, "facts, inputs and steps");
    }

    #[test]
    fn json_timeline_leaves_out_live_output_and_repeats_no_summary() {
        let (header, events, summary) = succeeded_run();
        let record = RunRecord {
            header: &header,
            events: &events,
            summary: Some(&summary),
        };
        let json: Json = serde_json::from_str(&render(&record, ReportFormat::Json)).unwrap();
        let timeline = json["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), events.len() - 1);
        assert!(timeline.iter().all(|e| e["event"]["event"] != "step_output"));
        assert!(timeline.iter().all(|e| e["event"].get("summary").is_none()));
    }

    #[test]
    fn format_names() {
        for format in ReportFormat::ALL {
            assert_eq!(format.name().parse::<ReportFormat>(), Ok(format));
        }
        assert_eq!(ReportFormat::NAMES, ReportFormat::ALL.map(ReportFormat::name));
        let error = "junti".parse::<ReportFormat>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown report format `junti`; the formats are `md`, `json` and `junit`; did you mean `junit`?"
        );
        assert_eq!("xml".parse::<ReportFormat>().unwrap_err().help, None);
    }

    #[test]
    fn human_durations() {
        let cases = [
            (0, "0ms"),
            (350, "350ms"),
            (999, "999ms"),
            (1_000, "1.0s"),
            (1_249, "1.2s"),
            (59_940, "59.9s"),
            (59_960, "1m 00s"),
            (125_400, "2m 05s"),
            (3_599_400, "59m 59s"),
            (3_599_600, "1h 00m"),
            (3_725_000, "1h 02m"),
        ];
        for (ms, text) in cases {
            assert_eq!(human_duration(ms), text, "{ms}ms");
        }
        assert_eq!(human_duration(u64::MAX), "5124095576030h 26m");
    }

    #[test]
    fn journal_times() {
        assert_eq!(epoch_millis("2026-11-22T01:02:03.456Z"), Some(START_MS));
        assert_eq!(epoch_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(epoch_millis("2024-02-29T23:59:59.5Z"), Some(1_709_251_199_500));
        assert_eq!(epoch_millis("2026-11-22 01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-13-22T01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-11-22T01:02:03+01:00"), None);
        assert_eq!(epoch_millis("99999999999999999-11-22T01:02:03Z"), None);
        assert_eq!(epoch_millis("2026-11-22T01:02:03.Z"), None);
        assert_eq!(clock("2026-11-22T01:02:03.456Z"), "01:02:03.456");
        assert_eq!(clock("2026-11-22T01:02:03Z"), "01:02:03.000");
        assert_eq!(clock("yesterday"), "yesterday");
        for offset in [0, 999, 86_400_000, 40_000_000_000] {
            assert_eq!(epoch_millis(&at(offset)), Some(START_MS + offset));
        }
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(
            attr("a&b<c>\"d\"'e'\nf\tg\rh"),
            "a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos;&#10;f&#9;g&#13;h"
        );
        assert_eq!(text("x\u{0}\u{1b}y\u{FFFE}\nz"), "xy\nz");
        assert_eq!(text("\u{1b}[1;31merror\u{1b}[0m: \u{1b}]0;title\u{7}no"), "error: no");
        assert_eq!(text("]]>"), "]]&gt;");
    }

    /// Checks the well-formedness that matters here without an XML parser:
    /// one root, every tag closed in order, attributes quoted with no raw `<`
    /// or stray `&`, text with no raw `<` or stray `&`, and only characters
    /// XML 1.0 allows. (A hand check rather than a `quick-xml` dev-dependency,
    /// so this module needs no change to the engine's manifest.)
    fn check_xml(xml: &str) -> Result<(), String> {
        if let Some(c) = xml
            .chars()
            .find(|&c| (c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}')
        {
            return Err(format!("forbidden character {c:?}"));
        }
        let references = |text: &str| -> Result<(), String> {
            let mut rest = text;
            while let Some(i) = rest.find('&') {
                rest = &rest[i + 1..];
                let end = rest.find(';').ok_or("`&` without `;`")?;
                let name = &rest[..end];
                let ok = matches!(name, "amp" | "lt" | "gt" | "quot" | "apos")
                    || name
                        .strip_prefix('#')
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
                if !ok {
                    return Err(format!("bad reference `&{name};`"));
                }
            }
            Ok(())
        };
        let mut rest = xml
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .ok_or("no XML declaration")?;
        let mut open: Vec<&str> = Vec::new();
        let mut roots = 0;
        loop {
            let next = rest.find('<').unwrap_or(rest.len());
            let between = &rest[..next];
            if open.is_empty() && !between.trim().is_empty() {
                return Err(format!("text outside the root: {between:?}"));
            }
            if between.contains('>') {
                return Err(format!("raw `>` in text {between:?}"));
            }
            references(between)?;
            rest = &rest[next..];
            if rest.is_empty() {
                break;
            }
            let end = rest.find('>').ok_or("a tag is not closed")?;
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                match open.pop() {
                    Some(top) if top == name => continue,
                    top => return Err(format!("`</{name}>` closes {top:?}")),
                }
            }
            if open.is_empty() {
                roots += 1;
            }
            let (tag, empty) = match tag.strip_suffix('/') {
                Some(tag) => (tag, true),
                None => (tag, false),
            };
            let name_end = tag.find(char::is_whitespace).unwrap_or(tag.len());
            let name = &tag[..name_end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("bad element name {name:?}"));
            }
            let mut attributes = tag[name_end..].trim_start();
            let mut seen = Vec::new();
            while !attributes.is_empty() {
                let (key, after) = attributes
                    .split_once("=\"")
                    .ok_or(format!("bad attribute in <{tag}>"))?;
                let close = after.find('"').ok_or("an attribute value is not closed")?;
                let value = &after[..close];
                if value.contains('<') {
                    return Err(format!("raw `<` in attribute {key}={value:?}"));
                }
                references(value)?;
                if seen.contains(&key) {
                    return Err(format!("attribute `{key}` twice in <{name}>"));
                }
                seen.push(key);
                let after = &after[close + 1..];
                if !after.is_empty() && !after.starts_with(' ') {
                    return Err(format!("no space after attribute `{key}` in <{name}>"));
                }
                attributes = after.trim_start();
            }
            if !empty {
                open.push(name);
            }
        }
        if let Some(name) = open.pop() {
            return Err(format!("`<{name}>` is never closed"));
        }
        if roots != 1 {
            return Err(format!("{roots} root elements"));
        }
        Ok(())
    }

    #[test]
    fn the_xml_check_catches_what_it_should() {
        let declaration = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
        let good = format!("{declaration}<a x=\"1 &amp; 2\"><b/>t &lt; u</a>\n");
        check_xml(&good).unwrap();
        for bad in [
            "<a><b></a></b>",
            "<a x=\"1 < 2\"/>",
            "<a>1 & 2</a>",
            "<a>1 < 2</a>",
            "<a/><b/>",
            "<a>\u{1b}</a>",
            "<a x=\"1\"y=\"2\"/>",
            "<a>",
        ] {
            assert!(check_xml(&format!("{declaration}{bad}")).is_err(), "{bad}");
        }
    }
}

//! Stage "report", the Markdown format: a run for the incident ticket.
//! Facts, inputs, a table of steps, what was rolled back, and the timeline,
//! with every piece of text from a step escaped so that it cannot break a
//! table, open an HTML tag or close a code block.

use super::outcome::{Ending, Outcome, StepRow, has_outputs};
use super::text::{compact, human_duration, one_line, printable, without_escapes};
use super::timeline::{timeline, timeline_lines};
use crate::execute::StepStatus;
use std::fmt::Write;

pub(super) fn render(run: &Outcome) -> String {
    let header = run.header;
    let mut out = String::new();
    let _ = writeln!(out, "# Run {}: {}\n", md_text(&header.run_id), md_text(&header.runbook));

    if let Ending::Unfinished {
        last_at,
        planned,
        interrupted,
        ..
    } = &run.ending
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
            Some(planned) if *planned > reached => {
                let _ = writeln!(out, "; {} of the {planned} steps have no event.\n", planned - reached);
            }
            _ => out.push_str(".\n\n"),
        }
    }

    let (finished, duration) = match &run.ending {
        Ending::Finished { duration_ms, .. } => (
            run.finished_at().map_or_else(|| "—".to_string(), md_text),
            human_duration(*duration_ms),
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

    out.push_str("\n## Decisions\n\n");
    if run.decisions.is_empty() {
        out.push_str("Nobody was asked anything.\n");
    } else {
        out.push_str("| At | Step | Question | Answer | By | Waited |\n|---|---|---|---|---|---|\n");
        for decision in &run.decisions {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                md_text(&decision.at),
                decision.step.as_deref().map_or_else(|| "—".to_string(), md_code),
                md_text(&decision.question),
                md_text(&decision.answer),
                md_text(&decision.by),
                human_duration(decision.waited_ms)
            );
        }
    }

    out.push_str("\n## Timeline\n\n");
    let entries = timeline(run.events);
    if entries.is_empty() {
        out.push_str("Nothing was recorded after the header.\n");
    } else {
        // A code block keeps the columns; every line starts with a time, so
        // no text can close the fence.
        out.push_str("```text\n");
        for line in timeline_lines(&entries, |text| one_line(text).into()) {
            let _ = writeln!(out, "{line}");
        }
        out.push_str("```\n");
    }
    out
}

/// A step's status in the steps table.
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

#[cfg(test)]
mod tests {
    use crate::report::fixtures::{failed_run, succeeded_run, unfinished_run};
    use crate::report::{ReportFormat, RunRecord, render};

    #[test]
    fn succeeded_run_report() {
        let (header, events, _) = succeeded_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let md = render(&record, ReportFormat::Markdown);
        insta::assert_snapshot!("succeeded_md", md);
    }

    #[test]
    fn failed_run_report() {
        let (header, events, _) = failed_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let md = render(&record, ReportFormat::Markdown);
        insta::assert_snapshot!("failed_md", md);
    }

    #[test]
    fn unfinished_run_report() {
        let (header, events) = unfinished_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let md = render(&record, ReportFormat::Markdown);
        assert!(md.contains("This run did not finish** (last event at 2026-11-22T01:02:08.456Z)"));
        insta::assert_snapshot!("unfinished_md", md);
    }

    #[test]
    fn markdown_table_rows_stay_one_line() {
        let (header, events, _) = failed_run();
        let record = RunRecord {
            header: &header,
            events: &events,
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
}

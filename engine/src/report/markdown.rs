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
    let mut runbook = md_code(&path, Place::Cell);
    if !header.runbook_sha256.is_empty() {
        let short: String = header.runbook_sha256.chars().take(12).collect();
        let _ = write!(runbook, " (sha256 {})", md_code(&short, Place::Cell));
    }
    out.push_str("| | |\n|---|---|\n");
    for (fact, value) in [
        ("Status", run.status_words().to_string()),
        ("Started", md_text(&header.started_at)),
        ("Finished", finished),
        ("Duration", duration),
        ("Host", md_text(&header.host)),
        ("Runbook", runbook),
        ("Run id", md_code(&header.run_id, Place::Cell)),
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
            let _ = writeln!(
                out,
                "| {} | {} |",
                md_code(name, Place::Cell),
                md_code(&compact(value), Place::Cell)
            );
        }
    }

    out.push_str("\n## Steps\n\n");
    if run.steps.is_empty() {
        out.push_str("No step was recorded.\n");
    } else {
        out.push_str("| Step | Status | Duration | Attempts | Outputs | Error or reason |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for step in &run.steps {
            let mut title = md_code(&step.id, Place::Cell);
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
                md_code(&compact(&step.outputs), Place::Cell)
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
            let _ = writeln!(out, "{}. {}", i + 1, md_code(id, Place::Flow));
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
            let _ = writeln!(out, "- {}: {}", md_code(&step.id, Place::Flow), md_text(error));
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
                decision
                    .step
                    .as_deref()
                    .map_or_else(|| "—".to_string(), |step| md_code(step, Place::Cell)),
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

/// Plain text in Markdown, in a table cell or a paragraph, shown as
/// written by CommonMark and GFM renderers: every character that could
/// start markup is escaped (`\\` too, or it would escape the next one;
/// pipes, which would end a cell), `<` and `&` are written as entities, a
/// line break is `<br>` (the only one a cell can hold), the spaces that a
/// cell or paragraph would trim are entities, and a URL is kept from
/// becoming an autolink, which GFM takes from the source escapes and all.
fn md_text(text: &str) -> String {
    let text = without_escapes(text).replace("\r\n", "\n").replace('\r', "\n");
    let chars: Vec<char> = text.trim_end_matches('\n').chars().filter(|c| printable(*c)).collect();
    let run_at_end = |of: char| chars.len() - chars.iter().rev().take_while(|c| **c == of).count();
    // The spaces a renderer trims, and the `#`s that would close a heading.
    let (leading, trailing) = (chars.iter().take_while(|c| **c == ' ').count(), run_at_end(' '));
    let closing = run_at_end('#');
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).map(|i| chars[i]);
        let after = chars.get(i + 1).copied();
        match c {
            '\\' | '`' | '*' | '[' | ']' | '|' | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            // Inside a word (`snake_case`) an underscore cannot be emphasis.
            '_' if !(before.is_some_and(char::is_alphanumeric) && after.is_some_and(char::is_alphanumeric)) => {
                out.push_str("\\_");
            }
            '#' if i >= closing => out.push_str("\\#"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            ':' if chars[i + 1..].starts_with(&['/', '/']) => out.push_str("&#58;"),
            '.' if i >= 3 && chars[i - 3..i].iter().all(|c| c.eq_ignore_ascii_case(&'w')) => out.push_str("\\."),
            ' ' if i < leading || i >= trailing => out.push_str("&#32;"),
            '\n' => out.push_str("<br>"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Where a code span goes. GFM splits a table row into cells before it
/// reads code spans, so a pipe in a cell's code needs a backslash, which
/// GFM takes out again; anywhere else the backslash would show.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Place {
    Cell,
    Flow,
}

/// Text in a Markdown code span, fenced with more backticks than it holds,
/// and padded where the renderer would take a space off or join a
/// backtick to the fence. A code span cannot be empty: nothing shows.
fn md_code(text: &str, place: Place) -> String {
    let mut text = one_line(text);
    if text.is_empty() {
        return text;
    }
    if place == Place::Cell {
        text = text.replace('|', "\\|");
    }
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let trimmed = text.starts_with(' ') && text.ends_with(' ') && text.contains(|c| c != ' ');
    let pad = if text.starts_with('`') || text.ends_with('`') || trimmed {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::{Place, md_code, md_text};
    use crate::report::fixtures::{failed_run, succeeded_run, unfinished_run};
    use crate::report::{ReportFormat, RunRecord, render};

    /// Each case and its Markdown, as CommonMark and GFM read it back
    /// (checked against cmark-gfm by tests/consumers.rs).
    #[test]
    fn text_is_escaped_so_that_it_shows_as_written() {
        let cases = [
            ("plain words", "plain words"),
            ("a | b", r"a \| b"),
            (r"C:\temp\new", r"C:\\temp\\new"),
            // A backslash before a pipe: GFM takes one backslash off each
            // `\|` when it splits the row, then reads `\\` as one.
            (r"grep 'a\|b'", r"grep 'a\\\|b'"),
            (r"ends with \\", r"ends with \\\\"),
            ("one\ntwo\r\nthree\rfour\n\n", "one<br>two<br>three<br>four"),
            ("  two spaces in front", "&#32;&#32;two spaces in front"),
            ("behind  ", "behind&#32;&#32;"),
            ("   ", "&#32;&#32;&#32;"),
            ("in  the  middle", "in  the  middle"),
            ("tab\there", "tab&#9;here"),
            (
                "<b>bold</b> &amp; <!-- c -->",
                "&lt;b&gt;bold&lt;/b&gt; &amp;amp; &lt;!-- c --&gt;",
            ),
            ("*stars* **x** ~~gone~~ $x$", r"\*stars\* \*\*x\*\* \~\~gone\~\~ \$x\$"),
            ("[link](http://x) ![img](y)", r"\[link\](http&#58;//x) !\[img\](y)"),
            ("`code` and ``more``", r"\`code\` and \`\`more\`\`"),
            (
                "snake_case_id _emph_ __strong__",
                r"snake_case_id \_emph\_ \_\_strong\_\_",
            ),
            (
                "GET https://x.example/a?b=1&c=d_e",
                "GET https&#58;//x.example/a?b=1&amp;c=d_e",
            ),
            ("see www.example.com", r"see www\.example.com"),
            ("issue #12 and C#", r"issue #12 and C\#"),
            ("closing ##", r"closing \#\#"),
            ("bell\u{7} and \u{1b}[31mred\u{1b}[0m", "bell and red"),
        ];
        for (text, markdown) in cases {
            assert_eq!(md_text(text), markdown, "{text:?}");
        }
    }

    #[test]
    fn code_spans_keep_their_text() {
        let cases = [
            ("deploy", Place::Cell, "`deploy`"),
            ("a|b", Place::Cell, r"`a\|b`"),
            // Outside a table, a backslash in a code span shows.
            ("a|b", Place::Flow, "`a|b`"),
            (r"a\|b", Place::Cell, r"`a\\|b`"),
            (r"a\|b", Place::Flow, r"`a\|b`"),
            ("one `tick`", Place::Flow, "`` one `tick` ``"),
            ("`start", Place::Flow, "`` `start ``"),
            ("a ``b`` c", Place::Flow, "```a ``b`` c```"),
            // A renderer takes one space off each end when both ends have one.
            (" padded ", Place::Cell, "`  padded  `"),
            (" front", Place::Cell, "` front`"),
            ("  ", Place::Cell, "`  `"),
            ("two\nlines", Place::Cell, "`two ⏎ lines`"),
            ("<b>&amp;", Place::Cell, "`<b>&amp;`"),
            ("", Place::Cell, ""),
        ];
        for (text, place, markdown) in cases {
            assert_eq!(md_code(text, place), markdown, "{text:?} in a {place:?}");
        }
    }

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

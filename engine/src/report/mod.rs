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
//!
//! A record is read once into an outcome (how the run ended, a row per
//! step, in `outcome`); each format lays that out in a module of its own
//! (`markdown`, `json`, `junit`). [`timeline()`] puts events into words for
//! the Markdown report and for `runbook show` alike.

mod json;
mod junit;
mod markdown;
mod outcome;
mod text;
mod timeline;

#[cfg(test)]
mod fixtures;

pub use timeline::{TimelineEntry, timeline, timeline_lines};

use crate::event::StepStatus;
use crate::journal::{Header, Journal, TimedEvent};
use outcome::{Outcome, has_outputs};
use serde_json::{Value as Json, json};
use std::fmt;
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

/// A run as its journal recorded it: what a report is made from. How it
/// ended is what its events say: the last `run_finished`, unless state
/// events follow it.
#[derive(Debug, Clone, Copy)]
pub struct RunRecord<'a> {
    pub header: &'a Header,
    pub events: &'a [TimedEvent],
}

impl<'a> RunRecord<'a> {
    /// The record of a journal read back.
    pub fn from_journal(journal: &'a Journal) -> Self {
        Self {
            header: &journal.header,
            events: &journal.events,
        }
    }
}

/// The report of a run in `format`, ending with a newline.
pub fn render(record: &RunRecord, format: ReportFormat) -> String {
    let outcome = Outcome::of(record);
    match format {
        ReportFormat::Markdown => markdown::render(&outcome),
        ReportFormat::Json => json::render(&outcome),
        ReportFormat::Junit => junit::render(&outcome),
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

/// A decision in words: what was asked, the answer, who gave it and how long
/// it took (`None` for any other event).
pub fn decision_words(event: &crate::event::Event) -> Option<String> {
    outcome::DecisionRow::of("", event).map(|d| d.words())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execute::Event;
    use crate::report::fixtures::{
        all_formats, at, failed_run, header, reasons_run, rolled_back_later, succeeded_run, unfinished_run,
    };
    use crate::report::junit::tests::check_xml;

    #[test]
    fn a_rollback_killed_after_the_run_finished_is_unfinished() {
        // The journal's last summary is the first run's, and stale.
        let (header, events, _stale) = rolled_back_later(true);
        let record = RunRecord {
            header: &header,
            events: &events,
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

        let (header, events, _) = rolled_back_later(false);
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let [md, _, junit] = all_formats(&record);
        assert!(md.contains("| Status | ↶ rolled back on request |"), "{md}");
        assert!(md.contains("rollback requested: requested by the operator"), "{md}");
        assert!(!junit.contains("(run)"), "{junit}");
        assert!(junit.contains("<system-out>rolled back</system-out>"), "{junit}");
    }

    /// Issue 9: why each step failed reaches every format, with what the
    /// attempt produced that tells why.
    #[test]
    fn every_reason_a_step_failed_reaches_every_format() {
        let (header, events) = reasons_run(true);
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let [md, json, junit] = all_formats(&record);
        check_xml(&junit).unwrap();
        for (format, text) in [("md", &md), ("json", &json), ("junit", &junit)] {
            for needle in [
                "exit code 5; last stderr: token *** refused",
                "HTTP 503; body: {",
                "injected failure",
                "timed out after 300ms — killed by SIGTERM; last stdout: started",
                "result.stdout == ",
                "result.stdout = ",
                "cancelled (another step failed)",
                "exit code 4; last stderr: cannot undo ***",
            ] {
                assert!(text.contains(needle), "`{needle}` missing from {format}:\n{text}");
            }
        }
        insta::assert_snapshot!("reasons_md", md);
        insta::assert_snapshot!("reasons_json", json);
        insta::assert_snapshot!("reasons_junit", junit);

        // Killed while rolling back: read off each step's last event.
        let (header, events) = reasons_run(false);
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let [md, _, junit] = all_formats(&record);
        check_xml(&junit).unwrap();
        for needle in [
            "exit code 5; last stderr: token *** refused",
            "timed out after 300ms — killed by SIGTERM; last stdout: started",
            "cancelled: step `stopper` failed",
        ] {
            assert!(md.contains(needle), "`{needle}` missing:\n{md}");
        }
        insta::assert_snapshot!("reasons_killed_md", md);
    }

    #[test]
    fn every_format_shows_every_decision_with_who_and_when() {
        let (header, mut events, _) = failed_run();
        let decision = |offset: u64, step: Option<&str>, question: &str, answer: &str, waited_ms: u64| TimedEvent {
            seq: 0,
            at: at(offset),
            event: Event::Decision {
                step: step.map(str::to_string),
                question: question.into(),
                answer: answer.into(),
                by: "alice@ops-1".into(),
                waited_ms,
            },
        };
        // Before the run's summary, in the order they were taken.
        let end = events.len() - 1;
        events.insert(end, decision(9_800, None, "roll back run `x`: undo 1 step?", "yes", 0));
        events.insert(
            1,
            decision(5, Some("migrate"), "Migrate `orders`? <now> | a&b", "yes", 42_000),
        );
        for (i, event) in events.iter_mut().enumerate() {
            event.seq = i as u64 + 1;
        }
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let [md, json, junit] = all_formats(&record);
        assert!(md.contains("## Decisions"), "{md}");
        assert!(
            md.contains("| `migrate` | Migrate \\`orders\\`? &lt;now&gt; \\| a&amp;b | yes | alice@ops-1 | 42.0s |"),
            "{md}"
        );
        assert!(
            md.contains("| — | roll back run \\`x\\`: undo 1 step? | yes | alice@ops-1 |"),
            "{md}"
        );
        let json: Json = serde_json::from_str(&json).unwrap();
        let decisions = json["decisions"].as_array().unwrap();
        assert_eq!(decisions.len(), 2);
        assert_eq!(decisions[0]["step"], "migrate");
        assert_eq!(decisions[0]["by"], "alice@ops-1");
        assert_eq!(decisions[0]["waited_ms"], 42_000);
        assert_eq!(decisions[0]["at"], at(5));
        assert!(decisions[1].get("step").is_none());
        check_xml(&junit).unwrap();
        assert!(
            junit.contains("<system-out>decision at ")
                && junit.contains("Migrate `orders`? &lt;now&gt; | a&amp;b → yes (by alice@ops-1, after 42.0s)"),
            "{junit}"
        );
        assert!(junit.contains("name=\"decision.2\""), "{junit}");
        let shown = timeline(&events);
        assert!(
            shown.iter().any(|e| e.what.contains("decision: Migrate")),
            "`show` lists each decision"
        );
    }

    #[test]
    fn history_lines() {
        let (h1, e1, _) = succeeded_run();
        let (h2, e2, _) = failed_run();
        let (h3, e3) = unfinished_run();
        let lines = [
            history_line(&RunRecord {
                header: &h1,
                events: &e1,
            }),
            history_line(&RunRecord {
                header: &h2,
                events: &e2,
            }),
            history_line(&RunRecord {
                header: &h3,
                events: &e3,
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
}

//! Stage "report", the JUnit XML format: one test case per step, for CI
//! systems that run drills. A drill that did not end as it should fails
//! even when no step failed (a timeout, a cancellation, a crash), and text
//! from steps is escaped for XML 1.0 so that any parser reads the file.

use super::outcome::{Ending, Outcome, StepRow};
use super::text::{compact, without_escapes};
use crate::event::{RunStatus, StepStatus};
use serde_json::Value as Json;
use std::fmt::Write;

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

pub(super) fn render(run: &Outcome) -> String {
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
    // The operator's decisions about each step, shown with its case.
    let decided: Vec<Vec<String>> = run
        .steps
        .iter()
        .map(|step| {
            run.decisions
                .iter()
                .filter(|d| d.step.as_deref() == Some(step.id.as_str()))
                .map(|d| format!("decision at {}: {}", d.at, d.words()))
                .collect()
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
        let verdict = match &run.ending {
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
    // The widely used (Jenkins, Ant) JUnit schema allows `skipped` on a
    // `<testsuite>` but not on `<testsuites>`.
    let totals = format!(
        "tests=\"{}\" failures=\"{}\" errors=\"{}\" time=\"{}\"",
        cases.len(),
        count(|v| matches!(v, Verdict::Failure { .. })),
        count(|v| matches!(v, Verdict::Error { .. })),
        seconds(run.elapsed_ms()),
    );
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
    let _ = writeln!(out, "<testsuites name=\"runbook\" {totals}>");
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
    for (n, decision) in run.decisions.iter().enumerate() {
        let about = decision.step.as_deref().unwrap_or("the run");
        properties.push((
            format!("decision.{}", n + 1),
            format!("{} {about}: {}", decision.at, decision.words()),
        ));
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
    for (i, (name, duration_ms, verdict)) in cases.iter().enumerate() {
        let open = format!(
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{}\"",
            attr(&header.runbook),
            attr(name),
            seconds(*duration_ms)
        );
        let decisions = decided.get(i).map_or(&[][..], Vec::as_slice);
        if matches!(verdict, Verdict::Passed { note: None }) && decisions.is_empty() {
            let _ = writeln!(out, "{open}/>");
        } else {
            let _ = writeln!(out, "{open}>");
            verdict.write(&mut out);
            if !decisions.is_empty() {
                let _ = writeln!(out, "      <system-out>{}</system-out>", text(&decisions.join("\n")));
            }
            out.push_str("    </testcase>\n");
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// The time attribute JUnit wants: seconds with three decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
pub(super) mod tests {
    use super::{attr, text};
    use crate::event::{RunStatus, RunSummary, StepStatus};
    use crate::report::fixtures::{failed_run, finish, header, succeeded_run, summary_step, unfinished_run};
    use crate::report::{ReportFormat, RunRecord, render};
    use serde_json::{Value as Json, json};

    #[test]
    fn succeeded_run_report() {
        let (header, events, _) = succeeded_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let junit = render(&record, ReportFormat::Junit);
        insta::assert_snapshot!("succeeded_junit", junit);
        check_xml(&junit).unwrap();
        // The Jenkins/Ant schema: `skipped` is a `<testsuite>` attribute only.
        let suites = junit.lines().find(|l| l.starts_with("<testsuites")).unwrap();
        assert!(!suites.contains("skipped="), "{suites}");
        assert!(
            junit
                .lines()
                .any(|l| l.trim_start().starts_with("<testsuite ") && l.contains("skipped="))
        );
    }

    #[test]
    fn failed_run_report() {
        let (header, events, _) = failed_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let junit = render(&record, ReportFormat::Junit);
        insta::assert_snapshot!("failed_junit", junit);
        check_xml(&junit).unwrap();
    }

    #[test]
    fn unfinished_run_report() {
        let (header, events) = unfinished_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let junit = render(&record, ReportFormat::Junit);
        insta::assert_snapshot!("unfinished_junit", junit);
        check_xml(&junit).unwrap();
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
    pub(crate) fn check_xml(xml: &str) -> Result<(), String> {
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

//! Stage "report", the JSON format: a run for tools, as one pretty-printed
//! object. The steps are the rows every format shows; the timeline is the
//! events themselves, as recorded, without live output.

use super::outcome::Outcome;
use crate::execute::Event;
use serde_json::{Value as Json, json};

pub(super) fn render(run: &Outcome) -> String {
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
        "decisions": run.decisions,
        "timeline": timeline,
    });
    let mut out = serde_json::to_string_pretty(&report).unwrap_or_default();
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use crate::report::fixtures::{failed_run, succeeded_run, unfinished_run};
    use crate::report::{ReportFormat, RunRecord, render};
    use serde_json::Value as Json;

    #[test]
    fn succeeded_run_report() {
        let (header, events, _) = succeeded_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let json = render(&record, ReportFormat::Json);
        insta::assert_snapshot!("succeeded_json", json);
    }

    #[test]
    fn failed_run_report() {
        let (header, events, _) = failed_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let json = render(&record, ReportFormat::Json);
        insta::assert_snapshot!("failed_json", json);
    }

    #[test]
    fn unfinished_run_report() {
        let (header, events) = unfinished_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let json = render(&record, ReportFormat::Json);
        insta::assert_snapshot!("unfinished_json", json);
    }

    #[test]
    fn json_timeline_leaves_out_live_output_and_repeats_no_summary() {
        let (header, events, _) = succeeded_run();
        let record = RunRecord {
            header: &header,
            events: &events,
        };
        let json: Json = serde_json::from_str(&render(&record, ReportFormat::Json)).unwrap();
        let timeline = json["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), events.len() - 1);
        assert!(timeline.iter().all(|e| e["event"]["event"] != "step_output"));
        assert!(timeline.iter().all(|e| e["event"].get("summary").is_none()));
    }
}

//! Stage "report": a run's events in words, one line per event: when, which
//! step (or `(run)`), what happened. The Markdown report's timeline and
//! `runbook show` both come from here, so the two say the same thing about a
//! run; each only decides how to make the text safe where it goes.

use super::text::{clock, human_duration};
use crate::event::Failure;
use crate::execute::Event;
use crate::journal::TimedEvent;
use std::borrow::Cow;

/// One event in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry<'a> {
    /// When it was recorded, as the journal has it.
    pub at: &'a str,
    /// The step it is about, or `(run)`.
    pub step: &'a str,
    /// What happened, with the step's own text as recorded: it may hold line
    /// breaks and control characters, which each reader treats its own way.
    pub what: String,
}

/// Each event but live output and checkpoints, in words, in the order recorded.
pub fn timeline(events: &[TimedEvent]) -> Vec<TimelineEntry<'_>> {
    const RUN: &str = "(run)";
    events
        .iter()
        .filter_map(|timed| {
            let (step, what) = match &timed.event {
                Event::StepOutput { .. } | Event::StepProgress { .. } | Event::StepCheckpoint { .. } => return None,
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
                    failure,
                } => (
                    step.as_str(),
                    format!(
                        "attempt {attempt} failed: {}; retrying in {}",
                        Failure::with_detail(error, failure.as_ref()),
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
                    failure,
                } => (
                    step.as_str(),
                    format!(
                        "failed after {}: {} (on failure: {})",
                        human_duration(*duration_ms),
                        Failure::with_detail(error, failure.as_ref()),
                        on_failure.describe()
                    ),
                ),
                Event::StepSkipped { step, reason } => (step.as_str(), format!("skipped: {reason}")),
                Event::StepCancelled { step, reason, .. } => (step.as_str(), format!("cancelled: {reason}")),
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
                    failure,
                } => (
                    step.as_str(),
                    format!(
                        "rollback FAILED after {}: {}",
                        human_duration(*duration_ms),
                        Failure::with_detail(error, failure.as_ref())
                    ),
                ),
                Event::FinallyStarted { steps } => (RUN, format!("finally: {steps} step(s)")),
                Event::RunResumed { rerun, .. } if rerun.is_empty() => (RUN, "run resumed".to_string()),
                Event::RunResumed { rerun, .. } => (
                    RUN,
                    format!("run resumed; running again what was in flight: {}", rerun.join(", ")),
                ),
                Event::RollbackRequested { reason } => (RUN, format!("rollback requested: {reason}")),
                Event::Decision { step, .. } => (
                    step.as_deref().unwrap_or(RUN),
                    format!(
                        "decision: {}",
                        crate::report::decision_words(&timed.event).unwrap_or_default()
                    ),
                ),
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
            Some(TimelineEntry {
                at: timed.at.as_str(),
                step,
                what,
            })
        })
        .collect()
}

/// The entries as lines `01:02:03.456  step  what`, the steps in a column as
/// wide as the widest. `clean` makes a step and what happened fit where the
/// lines go: one line of a Markdown code block, or a terminal.
pub fn timeline_lines(entries: &[TimelineEntry<'_>], clean: impl Fn(&str) -> Cow<'_, str>) -> Vec<String> {
    let cleaned: Vec<(Cow<'_, str>, Cow<'_, str>)> = entries.iter().map(|e| (clean(e.step), clean(&e.what))).collect();
    let width = cleaned.iter().map(|(step, _)| step.chars().count()).max().unwrap_or(0);
    entries
        .iter()
        .zip(&cleaned)
        .map(|(entry, (step, what))| format!("{}  {step:<width$}  {what}", clock(entry.at)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::unfinished_run;

    #[test]
    fn lines_keep_the_steps_in_a_column_and_clean_step_and_text() {
        let (_, mut events) = unfinished_run();
        events.truncate(4);
        let lines = timeline_lines(&timeline(&events), |text| text.to_uppercase().into());
        assert_eq!(
            lines,
            [
                "01:02:03.456  (RUN)    RUN STARTED: 4 STEPS",
                "01:02:03.471  ISSUE    STARTED: REQUEST A CERTIFICATE FOR API.EXAMPLE.COM",
                "01:02:04.671  ISSUE    SUCCEEDED IN 1.2S",
                "01:02:04.676  INSTALL  STARTED: COPY THE CERTIFICATE TO 3 HOSTS",
            ]
        );
    }
}

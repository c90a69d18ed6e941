//! Stage "report", the model every format consumes: a run's record read
//! once into an [`Outcome`], how it ended and one row per step. The rows
//! come from the run's state as its journal replays it ([`RunState`]): a
//! finished run's from its summary; one that never finished, or whose
//! journal goes on after its summary, from each step's last event. The
//! formats only lay this out, so they cannot disagree about what happened.

use super::RunRecord;
use crate::clock::epoch_millis;
use crate::event::{Event, RunStatus, StepStatus};
use crate::journal::state::{Finished, Reason, Setback, StepState};
use crate::journal::{Header, RunState, TimedEvent};
use serde::Serialize;
use serde_json::Value as Json;
use std::fmt::Write;

/// How a run ended, as far as its record tells.
pub(super) enum Ending<'a> {
    Finished {
        status: RunStatus,
        duration_ms: u64,
        /// When its summary was recorded.
        at: String,
    },
    Unfinished {
        /// When the last event was recorded; `None` if there is none.
        last_at: Option<&'a str>,
        /// From the start to the last event, when the times can be read.
        elapsed_ms: Option<u64>,
        /// Main steps the runbook has, from `run_started`.
        planned: Option<usize>,
        /// The signal of the last `interrupted` event.
        interrupted: Option<String>,
    },
}

/// One step's row in every format.
#[derive(Debug, Clone, Serialize)]
pub(super) struct StepRow {
    pub(super) id: String,
    pub(super) name: Option<String>,
    pub(super) status: StepStatus,
    pub(super) is_finally: bool,
    pub(super) attempts: u32,
    pub(super) duration_ms: u64,
    pub(super) outputs: Json,
    /// The step's error, or why it was skipped, cancelled or not run.
    pub(super) error: Option<String>,
    /// Why its rollback failed.
    pub(super) rollback_error: Option<String>,
    /// Its rollback had started at the last event, with no result (a run
    /// that did not finish).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) rolling_back: bool,
}

impl StepRow {
    fn of(step: &StepState) -> Self {
        Self {
            id: step.id.clone(),
            name: step.name.clone(),
            status: if step.rolling_back {
                StepStatus::Running
            } else {
                step.status
            },
            is_finally: step.is_finally,
            attempts: step.attempts,
            duration_ms: step.duration_ms,
            outputs: step.outputs.clone(),
            error: step.setback.as_ref().map(setback_words),
            rollback_error: step.rollback_failure.as_ref().map(Reason::words),
            rolling_back: step.rolling_back,
        }
    }

    pub(super) fn ran(&self) -> bool {
        self.attempts > 0
    }
}

/// Why a step has not succeeded, in the words of every format.
fn setback_words(setback: &Setback) -> String {
    match setback {
        Setback::Retried { attempt, reason } => format!("attempt {attempt} failed: {}", reason.words()),
        Setback::Failed { reason, .. } | Setback::Summarised(reason) => reason.words(),
        Setback::Skipped { reason } | Setback::Cancelled { reason, .. } => reason.clone(),
        Setback::Recovered { action } => format!("put right after the run died: {action}"),
    }
}

/// An operator's decision, as every format shows it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DecisionRow {
    pub(super) at: String,
    /// The step it was about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) step: Option<String>,
    pub(super) question: String,
    pub(super) answer: String,
    pub(super) by: String,
    pub(super) waited_ms: u64,
}

impl DecisionRow {
    pub(super) fn of(at: &str, event: &Event) -> Option<Self> {
        let Event::Decision {
            step,
            question,
            answer,
            by,
            waited_ms,
        } = event
        else {
            return None;
        };
        Some(Self {
            at: at.to_string(),
            step: step.clone(),
            question: question.clone(),
            answer: answer.clone(),
            by: by.clone(),
            waited_ms: *waited_ms,
        })
    }

    /// Every decision of a run, in the order they were taken.
    fn all(events: &[TimedEvent]) -> Vec<Self> {
        events
            .iter()
            .filter_map(|timed| Self::of(&timed.at, &timed.event))
            .collect()
    }

    /// In words: the question, the answer, who gave it and how long it took.
    pub(super) fn words(&self) -> String {
        let waited = if self.waited_ms > 0 {
            format!(", after {}", super::text::human_duration(self.waited_ms))
        } else {
            String::new()
        };
        format!("{} → {} (by {}{waited})", self.question, self.answer, self.by)
    }
}

/// A run read for reporting: the summary when there is one, else what the
/// events say.
pub(super) struct Outcome<'a> {
    pub(super) header: &'a Header,
    pub(super) events: &'a [TimedEvent],
    pub(super) ending: Ending<'a>,
    pub(super) steps: Vec<StepRow>,
    pub(super) rolled_back: Vec<String>,
    pub(super) reason: Option<String>,
    /// What the operator decided, in order.
    pub(super) decisions: Vec<DecisionRow>,
}

impl<'a> Outcome<'a> {
    pub(super) fn of(record: &RunRecord<'a>) -> Self {
        let state = RunState::from_events(record.events);
        match state.finished() {
            Some(finished) if !finished.goes_on() => Self::finished(record, finished),
            _ => Self::unfinished(record, &state),
        }
    }

    fn finished(record: &RunRecord<'a>, finished: &Finished) -> Self {
        let summary = &finished.summary;
        let steps = finished
            .steps()
            .map(|step| StepRow {
                rollback_error: (step.status == StepStatus::RollbackFailed).then(|| {
                    step.rollback_failure
                        .as_ref()
                        .map_or_else(|| "failed".to_string(), Reason::words)
                }),
                ..StepRow::of(step)
            })
            .collect();
        Self {
            header: record.header,
            events: record.events,
            ending: Ending::Finished {
                status: summary.status,
                duration_ms: summary.duration_ms,
                at: finished.at.clone(),
            },
            steps,
            rolled_back: summary.rolled_back.clone(),
            reason: summary.reason.clone(),
            decisions: DecisionRow::all(record.events),
        }
    }

    /// Each step as its last event left it (from the last summary on, when
    /// a rollback asked for later goes on after it).
    fn unfinished(record: &RunRecord<'a>, state: &RunState) -> Self {
        let (steps, rolled_back): (Vec<StepRow>, &[String]) = match state.finished() {
            Some(finished) => (finished.steps().map(StepRow::of).collect(), finished.rolled_back()),
            None => (state.steps().map(StepRow::of).collect(), state.rolled_back()),
        };
        let last_at = record.events.last().map(|e| e.at.as_str());
        let elapsed_ms = last_at
            .and_then(epoch_millis)
            .zip(epoch_millis(&record.header.started_at))
            .map(|(last, start)| last.saturating_sub(start));
        let mut reason = format!(
            "the run did not finish (last event at {})",
            last_at.unwrap_or("none: nothing was recorded after the header")
        );
        if let Some(signal) = state.interrupted() {
            let _ = write!(reason, "; it was interrupted by {signal}");
        }
        Self {
            header: record.header,
            events: record.events,
            ending: Ending::Unfinished {
                last_at,
                elapsed_ms,
                planned: state.planned(),
                interrupted: state.interrupted().map(str::to_string),
            },
            steps,
            rolled_back: rolled_back.to_vec(),
            reason: Some(reason),
            decisions: DecisionRow::all(record.events),
        }
    }

    pub(super) fn succeeded(&self) -> bool {
        matches!(
            self.ending,
            Ending::Finished {
                status: RunStatus::Succeeded,
                ..
            }
        )
    }

    /// Whether the run ended as it should have: done, or undone on request.
    pub(super) fn ended_well(&self) -> bool {
        matches!(
            self.ending,
            Ending::Finished {
                status: RunStatus::Succeeded | RunStatus::RolledBack,
                ..
            }
        )
    }

    /// The status as tools read it: a [`RunStatus`] name, or `unfinished`.
    pub(super) fn status_name(&self) -> &'static str {
        match &self.ending {
            Ending::Finished { status, .. } => status.as_str(),
            Ending::Unfinished { .. } => "unfinished",
        }
    }

    pub(super) fn status_words(&self) -> &'static str {
        match &self.ending {
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

    pub(super) fn finished_at(&self) -> Option<&str> {
        match &self.ending {
            Ending::Finished { at, .. } => Some(at),
            Ending::Unfinished { .. } => None,
        }
    }

    pub(super) fn duration_ms(&self) -> Option<u64> {
        match &self.ending {
            Ending::Finished { duration_ms, .. } => Some(*duration_ms),
            Ending::Unfinished { .. } => None,
        }
    }

    /// The run's length for JUnit, which needs a number: as far as the record goes.
    pub(super) fn elapsed_ms(&self) -> u64 {
        match &self.ending {
            Ending::Finished { duration_ms, .. } => *duration_ms,
            Ending::Unfinished { elapsed_ms, .. } => {
                elapsed_ms.unwrap_or_else(|| self.steps.iter().fold(0, |sum, s| sum.saturating_add(s.duration_ms)))
            }
        }
    }
}

/// Whether a step has outputs worth showing: `null` and `{}` are none.
pub(super) fn has_outputs(outputs: &Json) -> bool {
    match outputs {
        Json::Null => false,
        Json::Object(map) => !map.is_empty(),
        _ => true,
    }
}

//! Stage "report", the model every format consumes: a run's record read
//! once into an [`Outcome`], how it ended and one row per step. A finished
//! run is read off its summary; one that never finished, or whose journal
//! goes on after its summary, is read off each step's last event. The
//! formats only lay this out, so they cannot disagree about what happened.

use super::RunRecord;
use crate::clock::epoch_millis;
use crate::event::Failure;
use crate::event::{Event, RunStatus, RunSummary, StepStatus, StepSummary};
use crate::journal::{Header, TimedEvent};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value as Json;
use std::fmt::Write;

/// How a run ended, as far as its record tells.
pub(super) enum Ending<'a> {
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
            error: step
                .error
                .as_ref()
                .map(|error| Failure::with_detail(error, step.failure.as_ref())),
            rollback_error: None,
            rolling_back: false,
        }
    }

    pub(super) fn ran(&self) -> bool {
        self.attempts > 0
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
}

impl<'a> Outcome<'a> {
    pub(super) fn of(record: &RunRecord<'a>) -> Self {
        match record.summary {
            Some(summary) if !goes_on_after_finishing(record.events) => Self::finished(record, summary),
            _ => Self::unfinished(record),
        }
    }

    fn finished(record: &RunRecord<'a>, summary: &RunSummary) -> Self {
        // The summary does not keep a rollback's error; its event does.
        let rollback_errors: IndexMap<&str, String> = record
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::RollbackFailed {
                    step, error, failure, ..
                } => Some((step.as_str(), Failure::with_detail(error, failure.as_ref()))),
                _ => None,
            })
            .collect();
        let steps = summary
            .steps
            .iter()
            .map(|s| StepRow {
                rollback_error: (s.status == StepStatus::RollbackFailed).then(|| {
                    rollback_errors
                        .get(s.id.as_str())
                        .map_or("failed", String::as_str)
                        .to_string()
                }),
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
                    step,
                    attempt,
                    error,
                    failure,
                    ..
                } => {
                    row(&mut rows, step, in_finally).error = Some(format!(
                        "attempt {attempt} failed: {}",
                        Failure::with_detail(error, failure.as_ref())
                    ));
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
                    failure,
                    ..
                } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::Failed;
                    row.duration_ms = *duration_ms;
                    row.error = Some(Failure::with_detail(error, failure.as_ref()));
                }
                Event::StepSkipped { step, reason } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::Skipped;
                    row.error = Some(reason.clone());
                }
                Event::StepCancelled { step, reason, .. } => {
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
                Event::RollbackFailed {
                    step, error, failure, ..
                } => {
                    let row = row(&mut rows, step, in_finally);
                    row.status = StepStatus::RollbackFailed;
                    row.rolling_back = false;
                    row.rollback_error = Some(Failure::with_detail(error, failure.as_ref()));
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
        match self.ending {
            Ending::Finished { status, .. } => status.as_str(),
            Ending::Unfinished { .. } => "unfinished",
        }
    }

    pub(super) fn status_words(&self) -> &'static str {
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

    pub(super) fn finished_at(&self) -> Option<&'a str> {
        match self.ending {
            Ending::Finished { at, .. } => at.or(self.events.last().map(|e| e.at.as_str())),
            Ending::Unfinished { .. } => None,
        }
    }

    pub(super) fn duration_ms(&self) -> Option<u64> {
        match self.ending {
            Ending::Finished { duration_ms, .. } => Some(duration_ms),
            Ending::Unfinished { .. } => None,
        }
    }

    /// The run's length for JUnit, which needs a number: as far as the record goes.
    pub(super) fn elapsed_ms(&self) -> u64 {
        match self.ending {
            Ending::Finished { duration_ms, .. } => duration_ms,
            Ending::Unfinished { elapsed_ms, .. } => {
                elapsed_ms.unwrap_or_else(|| self.steps.iter().fold(0, |sum, s| sum.saturating_add(s.duration_ms)))
            }
        }
    }
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

/// Whether a step has outputs worth showing: `null` and `{}` are none.
pub(super) fn has_outputs(outputs: &Json) -> bool {
    match outputs {
        Json::Null => false,
        Json::Object(map) => !map.is_empty(),
        _ => true,
    }
}

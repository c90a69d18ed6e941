//! Stage "journal", replay: a run's state read back from its events, one
//! event at a time. Resume, a later rollback, the reports and `show` all
//! read a run from here, so that none of them walks the events itself and
//! they cannot disagree about what a journal says.
//!
//! It keeps two books. The first is each step as the events left it; it is
//! what the executor takes up again. The second starts at the last
//! `run_finished`: the steps as that summary gave them, carried forward by
//! whatever came after it (a rollback asked for later). That is what a
//! record of the run shows, since a summary says some things the events do
//! not (steps that never started, how many attempts a step made).

use super::TimedEvent;
use crate::event::{Canceller, Event, Failure, RunStatus, RunSummary, StepStatus, StepSummary};
use crate::parse::raw::OnFailure;
use crate::step::Undo;
use indexmap::IndexMap;
use serde_json::Value as Json;

/// A run as its journal tells it.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Each step as its events left it, in the order it was first heard of.
    steps: IndexMap<String, StepState>,
    /// The last checkpoint of each attempt still in flight, in the order
    /// they were taken.
    checkpoints: IndexMap<String, Checkpoint>,
    /// Steps in the order they succeeded: the order to roll them back in.
    completed: Vec<String>,
    /// Steps in the order their rollback succeeded.
    rolled_back: Vec<String>,
    /// What stopped the run, or might have, in the order it happened.
    turns: Vec<Turn>,
    /// The main steps the runbook has, from the last `run_started`.
    planned: Option<usize>,
    /// The signal of the last `interrupted`.
    interrupted: Option<String>,
    finished: Option<Finished>,
    /// Whether `finally` had started at the last event: a step first heard
    /// of now is one of its steps.
    in_finally: bool,
}

/// The last `run_finished` of a journal, and what came after it.
#[derive(Debug, Clone)]
pub struct Finished {
    pub summary: RunSummary,
    /// When it was recorded.
    pub at: String,
    /// The summary's steps, carried forward by the events after it.
    steps: IndexMap<String, StepState>,
    /// The summary's rolled back steps, and those rolled back after it.
    rolled_back: Vec<String>,
    /// Whether anything but live output followed it.
    goes_on: bool,
}

/// One step, as the journal leaves it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepState {
    pub id: String,
    pub name: Option<String>,
    /// It was first heard of after `finally` started.
    pub is_finally: bool,
    /// Its own action's status: `running` from its start to its end (in
    /// flight, when the journal ends there), then how it ended; then
    /// `rolled_back` or `rollback_failed` once its rollback has ended.
    pub status: StepStatus,
    /// The highest attempt started.
    pub attempts: u32,
    /// How long its last attempt took, once it ended.
    pub duration_ms: u64,
    pub outputs: Json,
    /// How its kind undoes it, recorded with its success.
    pub undo: Option<Undo>,
    /// The last thing said of why it has not (or not yet) succeeded.
    pub setback: Option<Setback>,
    /// Its rollback started, and has not ended.
    pub rolling_back: bool,
    /// Why its rollback failed.
    pub rollback_failure: Option<Reason>,
}

/// Why a step has not succeeded, or not yet.
#[derive(Debug, Clone, PartialEq)]
pub enum Setback {
    /// An attempt failed, and another follows.
    Retried {
        attempt: u32,
        reason: Reason,
    },
    Failed {
        reason: Reason,
        on_failure: OnFailure,
    },
    Skipped {
        reason: String,
    },
    Cancelled {
        reason: String,
        by: Option<Canceller>,
    },
    /// An attempt cut short when the run died was put right by its kind.
    Recovered {
        action: String,
    },
    /// As a run's summary says it (a step carried over from `run_finished`).
    Summarised(Reason),
}

/// Why something failed, as its event says it: in words and, in journals
/// written since failures were typed, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    pub error: String,
    pub failure: Option<Failure>,
}

/// What an attempt of `kind` was about to do, journaled before it did it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub kind: String,
    pub state: Json,
}

/// Why a run was stopping when its journal ends: what a resumed run goes on with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopping {
    /// A step failed with `on_failure: rollback` (`rollback`) or `abort`.
    Failed {
        step: String,
        error: String,
        rollback: bool,
    },
    /// A rollback had started with no failure before it (a cancellation, a
    /// run timeout): it goes on.
    RollingBack,
    /// `runbook rollback RUN` asked for it.
    Requested,
}

/// An event that stops a run, or may.
#[derive(Debug, Clone)]
enum Turn {
    Failed {
        step: String,
        error: String,
        on_failure: OnFailure,
    },
    RollbackStarted {
        step: String,
    },
    RollbackRequested,
}

impl RunState {
    /// The state a journal's events leave, applied in order.
    pub fn from_events(events: &[TimedEvent]) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// Takes one more event into account.
    pub fn apply(&mut self, timed: &TimedEvent) {
        let event = &timed.event;
        if let Some(finished) = &mut self.finished
            // A decision alone (a rollback declined) leaves the run as it ended.
            && !matches!(event, Event::StepOutput { .. } | Event::StepProgress { .. } | Event::Log { .. } | Event::Decision { .. })
        {
            finished.goes_on = true;
        }
        match event {
            Event::RunStarted { steps, .. } => self.planned = Some(*steps),
            Event::RunResumed { .. } => self.in_finally = false,
            Event::RollbackRequested { .. } => {
                self.in_finally = false;
                self.turns.push(Turn::RollbackRequested);
            }
            Event::FinallyStarted { .. } => self.in_finally = true,
            Event::Interrupted { signal } => self.interrupted = Some(signal.clone()),
            Event::StepSucceeded { step, .. } => self.completed.push(step.clone()),
            Event::StepFailed {
                step,
                error,
                on_failure,
                ..
            } => self.turns.push(Turn::Failed {
                step: step.clone(),
                error: error.clone(),
                on_failure: *on_failure,
            }),
            Event::RollbackStarted { step, .. } => self.turns.push(Turn::RollbackStarted { step: step.clone() }),
            Event::RollbackSucceeded { step, .. } => {
                self.rolled_back.push(step.clone());
                if let Some(finished) = &mut self.finished {
                    finished.rolled_back.push(step.clone());
                }
            }
            Event::StepCheckpoint { step, kind, state } => {
                let checkpoint = Checkpoint {
                    kind: kind.clone(),
                    state: state.clone(),
                };
                // A later checkpoint of the same attempt keeps its place.
                self.checkpoints.insert(step.clone(), checkpoint);
            }
            Event::RunFinished { summary, .. } => {
                let before = self.finished.as_ref().map_or(&self.steps, |f| &f.steps);
                self.finished = Some(Finished::new(summary, &timed.at, before));
                self.in_finally = false;
            }
            _ => {}
        }
        if let Some(step) = ends_attempt(event) {
            self.checkpoints.shift_remove(step);
        }
        if let Some(step) = step_of(event) {
            let in_finally = self.in_finally;
            StepState::apply_in(&mut self.steps, step, in_finally, event);
            if let Some(finished) = &mut self.finished {
                StepState::apply_in(&mut finished.steps, step, in_finally, event);
            }
        }
    }

    /// Each step as its events left it, in the order it was first heard of.
    pub fn steps(&self) -> impl Iterator<Item = &StepState> {
        self.steps.values()
    }

    pub fn step(&self, id: &str) -> Option<&StepState> {
        self.steps.get(id)
    }

    /// Steps started and not ended, or cancelled: in flight when the run died.
    pub fn in_flight(&self) -> impl Iterator<Item = &StepState> {
        self.steps().filter(|s| s.in_flight())
    }

    /// Attempts in flight when the run died, with the last checkpoint each
    /// journaled, in the order they were first taken.
    pub fn cut_short(&self) -> impl Iterator<Item = (&str, &Checkpoint)> {
        self.checkpoints
            .iter()
            .map(|(step, checkpoint)| (step.as_str(), checkpoint))
    }

    /// Steps in the order they succeeded (a step that succeeded twice, twice).
    pub fn completed(&self) -> &[String] {
        &self.completed
    }

    /// Steps in the order their rollback succeeded.
    pub fn rolled_back(&self) -> &[String] {
        &self.rolled_back
    }

    /// Why the run was stopping when the journal ends, counting only the
    /// steps `main` says are main steps (a `finally` step's failure stops
    /// nothing). A rollback asked for outweighs everything; else the first
    /// failure that stops the run, or a rollback that started without one.
    pub fn stopping(&self, main: impl Fn(&str) -> bool) -> Option<Stopping> {
        let mut stopping = None;
        for turn in &self.turns {
            match turn {
                Turn::RollbackRequested => return Some(Stopping::Requested),
                Turn::Failed { .. } | Turn::RollbackStarted { .. } if stopping.is_some() => {}
                Turn::Failed {
                    step,
                    error,
                    on_failure,
                } if main(step) && *on_failure != OnFailure::Continue => {
                    stopping = Some(Stopping::Failed {
                        step: step.clone(),
                        error: error.clone(),
                        rollback: *on_failure == OnFailure::Rollback,
                    });
                }
                Turn::RollbackStarted { step } if main(step) => stopping = Some(Stopping::RollingBack),
                Turn::Failed { .. } | Turn::RollbackStarted { .. } => {}
            }
        }
        stopping
    }

    /// Whether a rollback was asked for (`runbook rollback RUN`).
    pub fn rollback_requested(&self) -> bool {
        self.turns.iter().any(|t| matches!(t, Turn::RollbackRequested))
    }

    /// The main steps the runbook has, as the last `run_started` said.
    pub fn planned(&self) -> Option<usize> {
        self.planned
    }

    /// The signal of the last `interrupted`.
    pub fn interrupted(&self) -> Option<&str> {
        self.interrupted.as_deref()
    }

    /// The last `run_finished`, and what came after it.
    pub fn finished(&self) -> Option<&Finished> {
        self.finished.as_ref()
    }

    /// The summary of the last `run_finished`.
    pub fn summary(&self) -> Option<&RunSummary> {
        self.finished.as_ref().map(|f| &f.summary)
    }

    /// Whether the run, as a whole, has finished: it has a summary and
    /// nothing happened after it. A rollback asked for later, still running
    /// or killed, makes that summary stale.
    pub fn has_finished(&self) -> bool {
        self.finished.as_ref().is_some_and(|f| !f.goes_on)
    }

    /// The run's status as `runs` and `show` name it: its summary's once it
    /// finished, else `running` while its process is `alive`, else
    /// `interrupted`. A rollback asked for after the run finished, still
    /// running or killed, makes the summary stale, as it does for the reports.
    pub fn status_name(&self, alive: impl FnOnce() -> bool) -> &'static str {
        match self.finished.as_ref() {
            Some(finished) if !finished.goes_on => finished.summary.status.as_str(),
            _ if alive() => RunStatus::Running.as_str(),
            _ => "interrupted",
        }
    }
}

impl Finished {
    fn new(summary: &RunSummary, at: &str, before: &IndexMap<String, StepState>) -> Self {
        let steps = summary
            .steps
            .iter()
            .map(|step| {
                let mut state = StepState::from_summary(step);
                // The summary does not keep why a rollback failed; its event did.
                state.rollback_failure = before.get(&step.id).and_then(|s| s.rollback_failure.clone());
                (step.id.clone(), state)
            })
            .collect();
        Self {
            summary: summary.clone(),
            at: at.to_string(),
            steps,
            rolled_back: summary.rolled_back.clone(),
            goes_on: false,
        }
    }

    /// The summary's steps, carried forward by the events after it.
    pub fn steps(&self) -> impl Iterator<Item = &StepState> {
        self.steps.values()
    }

    /// The summary's rolled back steps, then those rolled back after it.
    pub fn rolled_back(&self) -> &[String] {
        &self.rolled_back
    }

    /// Whether anything but live output followed it.
    pub fn goes_on(&self) -> bool {
        self.goes_on
    }
}

impl StepState {
    fn new(id: &str, is_finally: bool) -> Self {
        Self {
            id: id.to_string(),
            name: None,
            is_finally,
            status: StepStatus::Pending,
            attempts: 0,
            duration_ms: 0,
            outputs: Json::Null,
            undo: None,
            setback: None,
            rolling_back: false,
            rollback_failure: None,
        }
    }

    fn from_summary(step: &StepSummary) -> Self {
        Self {
            name: step.name.clone(),
            status: step.status,
            attempts: step.attempts,
            duration_ms: step.duration_ms,
            outputs: step.outputs.clone(),
            setback: step.error.as_ref().map(|error| {
                Setback::Summarised(Reason {
                    error: error.clone(),
                    failure: step.failure.clone(),
                })
            }),
            ..Self::new(&step.id, step.is_finally)
        }
    }

    /// Applies a step's event to its entry in `steps`, made when the step
    /// is first heard of.
    fn apply_in(steps: &mut IndexMap<String, StepState>, id: &str, in_finally: bool, event: &Event) {
        steps
            .entry(id.to_string())
            .or_insert_with(|| StepState::new(id, in_finally))
            .apply(event);
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::StepStarted { name, attempt, .. } => {
                if *attempt == 1 {
                    // Started afresh (a resumed run): what it did before is moot.
                    *self = StepState {
                        attempts: self.attempts,
                        ..StepState::new(&self.id, self.is_finally)
                    };
                }
                self.status = StepStatus::Running;
                self.attempts = self.attempts.max(*attempt);
                self.name = name.clone().or(self.name.take());
            }
            Event::StepRecovered { action, .. } => {
                self.setback = Some(Setback::Recovered { action: action.clone() });
            }
            Event::StepRetrying {
                attempt,
                error,
                failure,
                ..
            } => {
                self.setback = Some(Setback::Retried {
                    attempt: *attempt,
                    reason: Reason::new(error, failure),
                });
            }
            Event::StepSucceeded {
                duration_ms,
                outputs,
                undo,
                ..
            } => {
                self.status = StepStatus::Succeeded;
                self.duration_ms = *duration_ms;
                self.outputs = outputs.clone();
                self.undo = undo.clone();
                self.setback = None;
            }
            Event::StepFailed {
                duration_ms,
                error,
                on_failure,
                failure,
                ..
            } => {
                self.status = StepStatus::Failed;
                self.duration_ms = *duration_ms;
                self.setback = Some(Setback::Failed {
                    reason: Reason::new(error, failure),
                    on_failure: *on_failure,
                });
            }
            Event::StepSkipped { reason, .. } => {
                self.status = StepStatus::Skipped;
                self.setback = Some(Setback::Skipped { reason: reason.clone() });
            }
            Event::StepCancelled { reason, by, .. } => {
                self.status = StepStatus::Cancelled;
                self.setback = Some(Setback::Cancelled {
                    reason: reason.clone(),
                    by: by.clone(),
                });
            }
            Event::RollbackStarted { .. } => {
                self.rolling_back = true;
                self.rollback_failure = None;
            }
            Event::RollbackSucceeded { .. } => {
                self.status = StepStatus::RolledBack;
                self.rolling_back = false;
            }
            Event::RollbackFailed { error, failure, .. } => {
                self.status = StepStatus::RollbackFailed;
                self.rolling_back = false;
                self.rollback_failure = Some(Reason::new(error, failure));
            }
            _ => {}
        }
    }

    /// Started and not ended, or cancelled: it starts again when the run is resumed.
    pub fn in_flight(&self) -> bool {
        matches!(self.status, StepStatus::Running | StepStatus::Cancelled)
    }

    /// What it did is still in place: it succeeded, and was not rolled back
    /// (its rollback may have failed, or not ended).
    pub fn in_place(&self) -> bool {
        matches!(self.status, StepStatus::Succeeded | StepStatus::RollbackFailed)
    }

    /// Why it failed, typed, when it did (or its last attempt did, or it was
    /// cancelled by someone the journal names).
    pub fn failure(&self) -> Option<Failure> {
        match self.setback.as_ref()? {
            Setback::Failed { reason, .. } | Setback::Retried { reason, .. } => Some(reason.failure()),
            Setback::Summarised(reason) => reason.failure.clone(),
            Setback::Cancelled { by: Some(by), .. } => Some(Failure::Cancelled { by: by.clone() }),
            Setback::Cancelled { by: None, .. } | Setback::Skipped { .. } | Setback::Recovered { .. } => None,
        }
    }

    /// Whether it failed and the run went on after it (`on_failure:
    /// continue`, or the operator chose to skip it).
    pub fn continued(&self) -> bool {
        matches!(
            self.setback,
            Some(Setback::Failed {
                on_failure: OnFailure::Continue,
                ..
            })
        )
    }

    /// Why it was skipped, when it was.
    pub fn skip_reason(&self) -> Option<&str> {
        match &self.setback {
            Some(Setback::Skipped { reason }) => Some(reason),
            _ => None,
        }
    }
}

impl Reason {
    fn new(error: &str, failure: &Option<Failure>) -> Self {
        Self {
            error: error.to_string(),
            failure: failure.clone(),
        }
    }

    /// The failure, typed; in a journal from before failures were typed,
    /// the kind's failure in the event's words.
    pub fn failure(&self) -> Failure {
        self.failure.clone().unwrap_or_else(|| Failure::Kind {
            message: self.error.clone(),
            partial: None,
        })
    }

    /// The words, then what tells why (an exit code and stderr, an HTTP
    /// status and body) when there is more to say.
    pub fn words(&self) -> String {
        Failure::with_detail(&self.error, self.failure.as_ref())
    }
}

/// The step an event is about, for the events that change a step.
fn step_of(event: &Event) -> Option<&str> {
    match event {
        Event::StepStarted { step, .. }
        | Event::StepRecovered { step, .. }
        | Event::StepRetrying { step, .. }
        | Event::StepSucceeded { step, .. }
        | Event::StepFailed { step, .. }
        | Event::StepSkipped { step, .. }
        | Event::StepCancelled { step, .. }
        | Event::RollbackStarted { step, .. }
        | Event::RollbackSucceeded { step, .. }
        | Event::RollbackFailed { step, .. } => Some(step),
        _ => None,
    }
}

/// The step whose attempt in flight an event starts afresh, ends or puts
/// right: its checkpoint no longer tells what is half done.
fn ends_attempt(event: &Event) -> Option<&str> {
    match event {
        Event::StepStarted { step, .. }
        | Event::StepSucceeded { step, .. }
        | Event::StepFailed { step, .. }
        | Event::StepCancelled { step, .. }
        | Event::StepRecovered { step, .. }
        | Event::RollbackStarted { step, .. }
        | Event::RollbackSucceeded { step, .. }
        | Event::RollbackFailed { step, .. } => Some(step),
        _ => None,
    }
}

#[cfg(test)]
mod tests;

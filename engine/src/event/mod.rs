//! The events of a run: the one contract between the executor, which emits
//! them, and everything that reads a run — the journal, the terminal view,
//! `--output json`, the reports and `show`. It sits below them all and
//! imports no later stage, so that none of them depends on another.

pub mod failure;

use crate::parse::raw::OnFailure;
use crate::secrets::Redactor;
use crate::step::OutputStream;
pub use failure::{Canceller, Failure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    /// Every step succeeded or was skipped.
    Succeeded,
    /// A step failed and everything that had been done was rolled back.
    Failed,
    /// A step failed and nothing was rolled back (`on_failure: continue` or
    /// `abort`, `--no-rollback`, or the operator chose so).
    FailedWithoutRollback,
    /// A rollback action failed too, or was abandoned: a person must look.
    RollbackFailed,
    /// A step with `on_failure: abort` failed (or the operator chose abort):
    /// stopped without rollback, for a person to take over.
    Aborted,
    /// Stopped by Ctrl-C, SIGTERM or the operator.
    Cancelled,
    /// Rolled back later, on request (`runbook rollback RUN`).
    RolledBack,
    /// The journal could not be written: the run started nothing more, did
    /// not roll back and did not run `finally`. A person must look, free
    /// the disk, then resume or roll back.
    JournalFailed,
}

impl RunStatus {
    /// The exit status of the program, as the format contract defines it.
    pub fn exit_code(self) -> i32 {
        match self {
            RunStatus::Succeeded | RunStatus::RolledBack => crate::exit::SUCCESS,
            RunStatus::Failed | RunStatus::FailedWithoutRollback | RunStatus::Running => {
                crate::exit::FAILED_ROLLED_BACK
            }
            RunStatus::RollbackFailed | RunStatus::Aborted | RunStatus::JournalFailed => crate::exit::NEEDS_A_PERSON,
            RunStatus::Cancelled => crate::exit::CANCELLED,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::FailedWithoutRollback => "failed_without_rollback",
            RunStatus::RollbackFailed => "rollback_failed",
            RunStatus::Aborted => "aborted",
            RunStatus::Cancelled => "cancelled",
            RunStatus::RolledBack => "rolled_back",
            RunStatus::JournalFailed => "journal_failed",
        }
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    NotRun,
    RolledBack,
    RollbackFailed,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
            StepStatus::NotRun => "not_run",
            StepStatus::RolledBack => "rolled_back",
            StepStatus::RollbackFailed => "rollback_failed",
        }
    }
}

/// One thing that happened in a run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        run_id: String,
        runbook: String,
        steps: usize,
        dry_run: bool,
    },
    StepStarted {
        step: String,
        name: Option<String>,
        attempt: u32,
        action: String,
    },
    StepOutput {
        step: String,
        stream: OutputStream,
        line: String,
    },
    Log {
        step: String,
        level: String,
        message: String,
    },
    StepRetrying {
        step: String,
        attempt: u32,
        error: String,
        delay_ms: u64,
        /// Why the attempt failed, typed (`error` says it in words).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
    },
    StepSucceeded {
        step: String,
        duration_ms: u64,
        outputs: Json,
        /// How the kind undoes this step (when it knows, and the step has no
        /// `rollback` of its own): journaled so a later rollback can run it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        undo: Option<crate::step::Undo>,
    },
    StepFailed {
        step: String,
        duration_ms: u64,
        error: String,
        on_failure: OnFailure,
        /// Why it failed, typed (`error` says it in words).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
    },
    StepSkipped {
        step: String,
        reason: String,
    },
    /// What an attempt of `kind` is about to do (see `Host::checkpoint`),
    /// journaled before it does it.
    StepCheckpoint {
        step: String,
        kind: String,
        state: Json,
    },
    /// How a long step is getting on (a `wait`'s last probe, a `sleep`, the
    /// attempt of a step that retries), for the people watching: shown
    /// live, never journaled.
    StepProgress {
        step: String,
        /// In a few words: `probe 3: status 503`, `attempt 2 of 5`.
        note: String,
        /// When something happens next (the next probe, the end of a
        /// sleep), for a countdown.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next_in_ms: Option<u64>,
    },
    /// An attempt cut short by the death of the run was put right by its kind.
    StepRecovered {
        step: String,
        action: String,
    },
    StepCancelled {
        step: String,
        reason: String,
        /// Who or what stopped it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Canceller>,
    },
    Interrupted {
        signal: String,
    },
    RollbackStarted {
        step: String,
        action: String,
    },
    RollbackSucceeded {
        step: String,
        duration_ms: u64,
    },
    RollbackFailed {
        step: String,
        duration_ms: u64,
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<Failure>,
    },
    FinallyStarted {
        steps: usize,
    },
    /// A run picked up again after it died.
    RunResumed {
        run_id: String,
        /// Steps that were in flight and start again.
        rerun: Vec<String>,
    },
    /// `runbook rollback RUN`: roll back what a run did.
    RollbackRequested {
        reason: String,
    },
    /// A person's decision, or the flag that stood for one (`--yes`,
    /// `--step`, `--no-rollback`): the run's audit trail. The record's time
    /// is when it was decided.
    Decision {
        /// The step it was about, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        /// What was asked, in the words shown.
        question: String,
        /// The answer, in words.
        answer: String,
        /// Who decided: `--operator NAME`, else the login user and host.
        by: String,
        /// How long the question waited for its answer.
        #[serde(default)]
        waited_ms: u64,
    },
    RunFinished {
        status: RunStatus,
        duration_ms: u64,
        summary: RunSummary,
    },
}

/// The outcome of each step, for the final summary and reports.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct StepSummary {
    pub id: String,
    pub name: Option<String>,
    pub status: StepStatus,
    pub duration_ms: u64,
    pub attempts: u32,
    pub error: Option<String>,
    /// Why it failed, typed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub outputs: Json,
    pub is_finally: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    pub status: RunStatus,
    pub duration_ms: u64,
    pub steps: Vec<StepSummary>,
    /// Steps whose rollback ran, in the order it ran.
    pub rolled_back: Vec<String>,
    /// Why the run stopped, when it did not succeed.
    pub reason: Option<String>,
}

impl Event {
    /// Masks every secret in every text of the event, in place.
    pub fn mask(&mut self, redactor: &Redactor) {
        self.each_text(&mut |s| redactor.redact_string(s), &mut |j| redactor.redact_json(j));
    }

    /// Calls `text` on every string of the event and `json` on every JSON value.
    pub fn each_text(&mut self, text: &mut dyn FnMut(&mut String), json: &mut dyn FnMut(&mut Json)) {
        let mut text = |s: &mut String| text(s);
        match self {
            Event::RunStarted { run_id, runbook, .. } => {
                text(run_id);
                text(runbook);
            }
            Event::StepStarted { step, name, action, .. } => {
                text(step);
                name.iter_mut().for_each(&mut text);
                text(action);
            }
            Event::StepOutput { step, line, .. } => {
                text(step);
                text(line);
            }
            Event::Log { step, level, message } => {
                text(step);
                text(level);
                text(message);
            }
            Event::StepRetrying {
                step, error, failure, ..
            } => {
                text(step);
                text(error);
                if let Some(failure) = failure {
                    failure.each_text(&mut text, json);
                }
            }
            Event::StepSucceeded {
                step, outputs, undo, ..
            } => {
                text(step);
                json(outputs);
                if let Some(undo) = undo {
                    text(&mut undo.kind);
                    text(&mut undo.description);
                    json(&mut undo.params);
                }
            }
            Event::StepFailed {
                step, error, failure, ..
            } => {
                text(step);
                text(error);
                if let Some(failure) = failure {
                    failure.each_text(&mut text, json);
                }
            }
            Event::StepSkipped { step, reason } | Event::StepCancelled { step, reason, .. } => {
                text(step);
                text(reason);
            }
            Event::StepCheckpoint { step, kind, state } => {
                text(step);
                text(kind);
                json(state);
            }
            Event::StepRecovered { step, action }
            | Event::RollbackStarted { step, action }
            | Event::StepProgress { step, note: action, .. } => {
                text(step);
                text(action);
            }
            Event::Interrupted { signal } => text(signal),
            Event::RollbackSucceeded { step, .. } => text(step),
            Event::RollbackFailed {
                step, error, failure, ..
            } => {
                text(step);
                text(error);
                if let Some(failure) = failure {
                    failure.each_text(&mut text, json);
                }
            }
            Event::FinallyStarted { .. } => {}
            Event::RunResumed { run_id, rerun } => {
                text(run_id);
                rerun.iter_mut().for_each(&mut text);
            }
            Event::RollbackRequested { reason } => text(reason),
            Event::Decision {
                step,
                question,
                answer,
                by,
                ..
            } => {
                step.iter_mut().for_each(&mut text);
                text(question);
                text(answer);
                text(by);
            }
            Event::RunFinished { summary, .. } => summary.each_text(&mut text, json),
        }
    }
}

impl RunSummary {
    /// Masks every secret in every text of the summary, in place.
    pub fn mask(&mut self, redactor: &Redactor) {
        self.each_text(&mut |s| redactor.redact_string(s), &mut |j| redactor.redact_json(j));
    }

    /// Calls `text` on every string of the summary and `json` on every JSON value.
    pub fn each_text(&mut self, text: &mut dyn FnMut(&mut String), json: &mut dyn FnMut(&mut Json)) {
        let mut text = |s: &mut String| text(s);
        text(&mut self.run_id);
        text(&mut self.runbook);
        for step in &mut self.steps {
            text(&mut step.id);
            step.name.iter_mut().for_each(&mut text);
            step.error.iter_mut().for_each(&mut text);
            if let Some(failure) = &mut step.failure {
                failure.each_text(&mut text, json);
            }
            json(&mut step.outputs);
        }
        self.rolled_back.iter_mut().for_each(&mut text);
        self.reason.iter_mut().for_each(&mut text);
    }
}

/// One line of `--output json`: an event and when it happened (RFC 3339,
/// UTC, to the millisecond). Its JSON Schema is `schemas/run-events-v1.schema.json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EventLine<'a> {
    #[schemars(extend("format" = "date-time"))]
    pub at: String,
    #[serde(flatten)]
    pub event: std::borrow::Cow<'a, Event>,
}

impl<'a> EventLine<'a> {
    /// The event, stamped now.
    pub fn now(event: &'a Event) -> Self {
        Self {
            at: crate::clock::now(),
            event: std::borrow::Cow::Borrowed(event),
        }
    }
}

/// A consumer of a run's events.
pub trait Reporter: Send + Sync {
    fn event(&self, event: &Event);
}

/// Sends each event to several reporters.
pub struct Reporters(pub Vec<std::sync::Arc<dyn Reporter>>);

impl Reporter for Reporters {
    fn event(&self, event: &Event) {
        for reporter in &self.0 {
            reporter.event(event);
        }
    }
}

/// Reports events as `tracing` logs (`-v`: what happens, `-vv`: every event in full).
pub struct Trace;

impl Reporter for Trace {
    fn event(&self, event: &Event) {
        // Most runs log nothing: spend nothing on them.
        if !tracing::enabled!(target: "runbook", tracing::Level::INFO) {
            return;
        }
        let Ok(value) = serde_json::to_value(event) else { return };
        let kind = value.get("event").and_then(Json::as_str).unwrap_or("event");
        let step = value.get("step").and_then(Json::as_str).unwrap_or("");
        tracing::info!(target: "runbook", event = kind, step, "{kind} {step}");
        tracing::debug!(target: "runbook", "{value}");
    }
}

//! The person running the runbook: the questions the executor asks, and
//! what is answered when nobody can be asked.
//!
//! Every question is a [`Question`]: what is asked about, what will happen,
//! and a token that says when the question no longer matters (the run was
//! stopped meanwhile), so that an answer is never taken for a step that was
//! already given up. Every answer comes back as a [`Reply`], which says how
//! it was given; the executor journals each as a decision.

use crate::parse::raw::OnFailure;
use serde::Serialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What a confirmation (`confirm:` on a step, a `confirm` step) offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConfirmAnswer {
    Yes,
    /// No: leave this step out and go on (offered for `confirm:` on a step).
    Skip,
    /// No: stop the run and roll back what it did.
    Rollback,
    /// No: stop here, nothing rolled back, for a person to take over (exit 3).
    Stop,
}

/// What `--step` offers before each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StepAnswer {
    Yes,
    Skip,
    /// Stop the run and roll back what it did.
    Rollback,
    /// Stop here, nothing rolled back, for a person to take over.
    Stop,
    /// Yes, and stop asking for the rest of the run.
    Continue,
}

/// What a failed step offers in an interactive run (guided failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FailureAnswer {
    Retry,
    /// Count the step as failed and go on, as `on_failure: continue` does.
    Skip,
    Rollback,
    /// Stop here, nothing rolled back, for a person to take over (exit 3).
    Stop,
}

/// What the first Ctrl-C offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InterruptAnswer {
    Rollback,
    Continue,
    Quit,
}

/// How a question was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<T> {
    /// The person chose this.
    Given(T),
    /// Nobody answered within the limit set for unattended escalation:
    /// counted as "no" (the safe answer), and said so.
    Silence { waited: Duration },
    /// Ctrl-C at the prompt: one decision, to stop the run and roll back.
    Interrupted,
    /// The question no longer mattered (the run was stopped meanwhile):
    /// no answer is taken.
    Withdrawn,
}

/// One question put to the operator.
pub struct Question<'a> {
    /// The step it is about.
    pub step: &'a str,
    /// The runbook's own words (a confirmation message), if any.
    pub message: &'a str,
    /// What the step will do, in one line.
    pub action: &'a str,
    /// What the step will do, in full: its parameters as they will be used
    /// (secrets masked), one line each, multi-line values indented.
    pub detail: &'a str,
    /// Whether "skip this step" is offered.
    pub can_skip: bool,
    /// Cancelled when the question no longer matters.
    pub withdrawn: &'a CancellationToken,
}

/// A step that failed, for guided failure.
pub struct Setback<'a> {
    pub step: &'a str,
    /// Why it failed, in one line.
    pub error: &'a str,
    /// What tells why: an exit code and the end of stderr, an HTTP status and body.
    pub detail: Option<&'a str>,
    /// The last lines the step printed (secrets masked).
    pub output: &'a [String],
    /// What the runbook says to do, which is what happens without a person.
    pub on_failure: OnFailure,
    /// Attempts made so far.
    pub attempts: u32,
    /// Cancelled when the question no longer matters.
    pub withdrawn: &'a CancellationToken,
}

/// `runbook rollback RUN`: what will be undone, before anything is.
pub struct Undoing<'a> {
    pub run_id: &'a str,
    /// The steps to undo, in the order they will be undone (the last done
    /// first): each step's id and what undoing it does, in one line.
    pub steps: &'a [(String, String)],
}

/// Asks the operator. Methods block; the executor calls them off the runtime's threads.
pub trait Operator: Send + Sync {
    /// Whether a person can answer (a terminal).
    fn is_interactive(&self) -> bool;
    /// A step's `confirm:` or a `confirm` step.
    fn confirm(&self, question: &Question<'_>) -> Reply<ConfirmAnswer>;
    /// `--step`: before every step.
    fn before_step(&self, question: &Question<'_>) -> Reply<StepAnswer>;
    /// A step failed after all its attempts.
    fn failed(&self, setback: &Setback<'_>) -> Reply<FailureAnswer>;
    /// The first Ctrl-C or SIGTERM, once running steps have stopped.
    fn interrupted(&self) -> InterruptAnswer;
    /// Another Ctrl-C while rolling back: abandon the rollback?
    fn abandon_rollback(&self) -> bool;
    /// `runbook rollback RUN` without `--yes`: undo these steps? `Given(true)` is yes.
    fn approve_rollback(&self, undoing: &Undoing<'_>) -> Reply<bool>;
}

/// Nobody at the keyboard: the safe answers.
#[derive(Debug, Clone, Copy)]
pub struct Unattended {
    /// `--yes`: confirmations are answered yes.
    pub yes: bool,
}

impl Operator for Unattended {
    fn is_interactive(&self) -> bool {
        false
    }
    fn confirm(&self, _: &Question<'_>) -> Reply<ConfirmAnswer> {
        Reply::Given(if self.yes {
            ConfirmAnswer::Yes
        } else {
            ConfirmAnswer::Rollback
        })
    }
    fn before_step(&self, _: &Question<'_>) -> Reply<StepAnswer> {
        Reply::Given(if self.yes {
            StepAnswer::Continue
        } else {
            StepAnswer::Rollback
        })
    }
    fn failed(&self, setback: &Setback<'_>) -> Reply<FailureAnswer> {
        Reply::Given(FailureAnswer::from(setback.on_failure))
    }
    fn interrupted(&self) -> InterruptAnswer {
        InterruptAnswer::Rollback
    }
    fn abandon_rollback(&self) -> bool {
        false
    }
    fn approve_rollback(&self, _: &Undoing<'_>) -> Reply<bool> {
        Reply::Given(self.yes)
    }
}

impl From<OnFailure> for FailureAnswer {
    /// What the runbook's `on_failure` does, as an answer.
    fn from(on_failure: OnFailure) -> Self {
        match on_failure {
            OnFailure::Rollback => FailureAnswer::Rollback,
            OnFailure::Continue => FailureAnswer::Skip,
            OnFailure::Abort => FailureAnswer::Stop,
        }
    }
}

impl ConfirmAnswer {
    pub fn words(self) -> &'static str {
        match self {
            ConfirmAnswer::Yes => "yes",
            ConfirmAnswer::Skip => "no: skip this step and go on",
            ConfirmAnswer::Rollback => "no: stop and roll back",
            ConfirmAnswer::Stop => "no: stop here for a person, nothing rolled back",
        }
    }
}

impl StepAnswer {
    pub fn words(self) -> &'static str {
        match self {
            StepAnswer::Yes => "yes",
            StepAnswer::Skip => "skip this step",
            StepAnswer::Rollback => "no: stop and roll back",
            StepAnswer::Stop => "no: stop here for a person, nothing rolled back",
            StepAnswer::Continue => "yes, and stop asking",
        }
    }
}

impl FailureAnswer {
    pub fn words(self) -> &'static str {
        match self {
            FailureAnswer::Retry => "retry the step",
            FailureAnswer::Skip => "skip it: count it as failed and go on",
            FailureAnswer::Rollback => "roll back",
            FailureAnswer::Stop => "stop here for a person, nothing rolled back",
        }
    }

    /// The `on_failure` this answer amounts to, as journaled.
    pub fn on_failure(self) -> Option<OnFailure> {
        match self {
            FailureAnswer::Retry => None,
            FailureAnswer::Skip => Some(OnFailure::Continue),
            FailureAnswer::Rollback => Some(OnFailure::Rollback),
            FailureAnswer::Stop => Some(OnFailure::Abort),
        }
    }
}

impl InterruptAnswer {
    pub fn words(self) -> &'static str {
        match self {
            InterruptAnswer::Rollback => "roll back what was done",
            InterruptAnswer::Continue => "continue the run",
            InterruptAnswer::Quit => "quit, leaving things as they are",
        }
    }
}

//! The person running the runbook: the questions the executor asks, and
//! what is answered when nobody can be asked.

use serde::Serialize;

/// What `--step` offers before each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StepAnswer {
    Yes,
    No,
    Skip,
    /// Yes, and stop asking for the rest of the run.
    Continue,
}

/// What a failed verification gate offers in an interactive run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum GateAnswer {
    Retry,
    Skip,
    Rollback,
    Abort,
}

/// What the first Ctrl-C offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InterruptAnswer {
    Rollback,
    Continue,
    Quit,
}

/// Asks the operator. Methods block; the executor calls them off the runtime's threads.
pub trait Operator: Send + Sync {
    /// Whether a person can answer (a terminal on stdin).
    fn is_interactive(&self) -> bool;
    /// A step's `confirm:` or a `confirm` step. `action` says what the step will do.
    fn confirm(&self, step: &str, message: &str, action: &str) -> bool;
    /// `--step`: before every step.
    fn before_step(&self, step: &str, action: &str) -> StepAnswer;
    /// A `verify` gate failed after all attempts.
    fn gate_failed(&self, step: &str, error: &str) -> GateAnswer;
    /// The first Ctrl-C or SIGTERM, once running steps have stopped.
    fn interrupted(&self) -> InterruptAnswer;
    /// Another Ctrl-C while rolling back: abandon the rollback?
    fn abandon_rollback(&self) -> bool;
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
    fn confirm(&self, _: &str, _: &str, _: &str) -> bool {
        self.yes
    }
    fn before_step(&self, _: &str, _: &str) -> StepAnswer {
        if self.yes { StepAnswer::Continue } else { StepAnswer::No }
    }
    fn gate_failed(&self, _: &str, _: &str) -> GateAnswer {
        GateAnswer::Rollback
    }
    fn interrupted(&self) -> InterruptAnswer {
        InterruptAnswer::Rollback
    }
    fn abandon_rollback(&self) -> bool {
        false
    }
}

//! A run picked up from its journal: what was done, what was in flight,
//! what a kind must put right first, and what is left to roll back, all
//! read off the run's state as the journal replays it ([`RunState`]).

use super::*;
use crate::journal::state::Stopping;

/// Whether the run's journal shows a step still in place that can be
/// undone: it succeeded, was not rolled back since, and has a rollback, an
/// undo from its kind or a child run.
pub(super) fn anything_to_roll_back(runbook: &checked::Runbook, registry: &Registry, state: &RunState) -> bool {
    state.steps().filter(|s| s.in_place()).any(|done| {
        runbook.steps.iter().find(|s| s.id == done.id).is_some_and(|s| {
            s.rollback.is_some()
                || done.undo.is_some()
                || registry.get(&s.kind).is_some_and(|k| k.child_runbook_param().is_some())
        })
    })
}

/// Lets each kind put right what its attempt left half done when the run
/// died (processes still running, a path moved aside), before anything
/// runs again or is rolled back. A kind that cannot stops the run here, for
/// a person: nothing else is done.
pub(super) async fn recover_cut_short(host: &RunHost, state: &RunState) -> Result<(), Vec<Diagnostic>> {
    for (step, checkpoint) in state.cut_short() {
        let Some(kind) = host.registry.get(&checkpoint.kind).cloned() else {
            continue;
        };
        match kind.recover(&checkpoint.state).await {
            Ok(None) => {}
            Ok(Some(action)) => host.reporter.event(&Event::StepRecovered {
                step: step.to_string(),
                action,
            }),
            Err(error) => {
                return Err(vec![
                    Diagnostic::error(
                        codes::RECOVER,
                        host.redactor
                            .redact(&format!(
                                "step `{step}` was cut short when the run died, and what it left cannot be put right: {error}"
                            ))
                            .into_owned(),
                    )
                    .with_help("nothing was run; set it right by hand, then resume or roll back again"),
                ]);
            }
        }
    }
    Ok(())
}

impl Run {
    /// A journaled undo whose parameters held a secret holds `***` in its
    /// place: the kind rebuilds it from the step's parameters rendered now
    /// (the secrets read again), when it can.
    fn unmasked(&self, step: &checked::Step, undo: crate::step::Undo) -> crate::step::Undo {
        if !crate::secrets::holds_mask(&undo.params) {
            return undo;
        }
        let Some(kind) = self.shared.registry.get(&step.kind) else {
            return undo;
        };
        match self.shared.renderer().params(&step.with, &step.kind) {
            Ok(rendered) => kind.refresh_undo(&undo, &rendered.value).unwrap_or(undo),
            Err(_) => undo,
        }
    }

    /// Puts the run back where its journal left it. Returns the main steps
    /// that were in flight (or cancelled) and will start again.
    pub(super) fn restore(&mut self, state: &RunState) -> Vec<usize> {
        let compiled = self.shared.compiled.clone();
        let runbook = &compiled.runbook;
        let main: HashMap<&str, usize> = runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let restored = |status, outputs: Json, duration_ms: u64, which| Outcome {
            which,
            status,
            outputs,
            failure: None,
            undo: None,
            attempts: 1,
            duration: Duration::from_millis(duration_ms),
        };
        let mut in_flight = BTreeSet::new();
        for (i, step) in runbook.steps.iter().enumerate() {
            let Some(done) = state.step(&step.id) else { continue };
            match done.status {
                _ if done.in_flight() => {
                    in_flight.insert(i);
                }
                StepStatus::Succeeded | StepStatus::RolledBack | StepStatus::RollbackFailed => {
                    self.set_status(i, StepStatus::Succeeded, Some(done.outputs.clone()));
                    let mut outcome = restored(
                        StepStatus::Succeeded,
                        done.outputs.clone(),
                        done.duration_ms,
                        Which::Main(i),
                    );
                    outcome.undo = done.undo.clone().map(|undo| self.unmasked(step, undo));
                    self.outcomes.insert(Which::Main(i), outcome);
                    if done.status != StepStatus::Succeeded {
                        self.set_status(i, done.status, None);
                    }
                    self.rollback_failed |= done.status == StepStatus::RollbackFailed;
                }
                StepStatus::Skipped => {
                    self.set_status(i, StepStatus::Skipped, None);
                    if let Some(reason) = done.skip_reason() {
                        self.skip_reason.insert(i, reason.to_string());
                    }
                }
                StepStatus::Failed => {
                    self.set_status(i, StepStatus::Failed, None);
                    if done.continued() {
                        self.continued.insert(i);
                    }
                    let mut outcome = restored(StepStatus::Failed, Json::Null, done.duration_ms, Which::Main(i));
                    outcome.failure = done.failure();
                    self.outcomes.insert(Which::Main(i), outcome);
                }
                _ => {}
            }
        }
        // Rolled back in the order the journal did.
        self.completed = state
            .completed()
            .iter()
            .filter_map(|id| main.get(id.as_str()).copied())
            .collect();
        self.rolled_back = state
            .rolled_back()
            .iter()
            .filter(|id| main.contains_key(id.as_str()))
            .cloned()
            .collect();
        for (k, step) in runbook.finally.iter().enumerate() {
            let Some(done) = state.step(&step.id) else { continue };
            match done.status {
                StepStatus::Succeeded => {
                    self.finally_status[k] = StepStatus::Succeeded;
                    self.shared
                        .ctx
                        .set_step(&step.id, StepStatus::Succeeded, Some(to_value(&done.outputs)));
                }
                StepStatus::Skipped | StepStatus::Failed => self.finally_status[k] = done.status,
                _ => {}
            }
        }
        self.stop = state
            .stopping(|id| main.contains_key(id))
            .map(|stopping| match stopping {
                Stopping::Failed { step, error, rollback } => Stop::Failure {
                    reason: format!("step `{step}` failed: {error}"),
                    rollback,
                },
                Stopping::RollingBack => Stop::Failure {
                    reason: "the rollback was interrupted; it goes on".into(),
                    rollback: true,
                },
                Stopping::Requested => Stop::Requested,
            });
        for &i in &in_flight {
            self.set_status(i, StepStatus::Pending, None);
        }
        // What is left to run: pending steps whose needs have all finished.
        let finished = |status: StepStatus| {
            !matches!(
                status,
                StepStatus::Pending | StepStatus::Running | StepStatus::Cancelled
            )
        };
        for i in 0..self.status.len() {
            self.waiting[i] = compiled.graph.needs[i]
                .iter()
                .filter(|e| !finished(self.status[e.from]))
                .count();
        }
        self.ready = (0..self.status.len())
            .filter(|&i| self.status[i] == StepStatus::Pending && self.waiting[i] == 0)
            .collect();
        in_flight.into_iter().collect()
    }
}

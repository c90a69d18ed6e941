//! A run picked up from its journal: what was done, what was in flight,
//! what a kind must put right first, and what is left to roll back.

use super::*;

/// Main steps a journal shows started and not finished (or cancelled): in
/// flight when the run died.
pub(super) fn in_flight(journal: &Journal) -> Vec<String> {
    let mut open: indexmap::IndexSet<String> = indexmap::IndexSet::new();
    for timed in &journal.events {
        match &timed.event {
            Event::StepStarted { step, .. } | Event::StepCancelled { step, .. } => {
                open.insert(step.clone());
            }
            Event::StepSucceeded { step, .. } | Event::StepFailed { step, .. } | Event::StepSkipped { step, .. } => {
                open.shift_remove(step);
            }
            _ => {}
        }
    }
    open.into_iter().collect()
}

/// Whether a run's journal shows a step still in place that can be undone
/// (it succeeded, has a rollback, an undo from its kind or a child run, and
/// was not rolled back since).
pub(super) fn anything_to_roll_back(runbook: &checked::Runbook, registry: &Registry, journal: &Journal) -> bool {
    let mut in_place: indexmap::IndexSet<&str> = indexmap::IndexSet::new();
    for timed in &journal.events {
        match &timed.event {
            Event::StepSucceeded { step, undo, .. } => {
                let undoable = runbook.steps.iter().find(|s| &s.id == step).is_some_and(|s| {
                    s.rollback.is_some()
                        || undo.is_some()
                        || registry.get(&s.kind).is_some_and(|k| k.child_runbook_param().is_some())
                });
                if undoable {
                    in_place.insert(step);
                }
            }
            Event::StepStarted { step, .. } | Event::RollbackSucceeded { step, .. } => {
                in_place.shift_remove(step.as_str());
            }
            _ => {}
        }
    }
    !in_place.is_empty()
}

/// Attempts that were in flight when the run died, with the last checkpoint
/// each journaled: `(step, kind, state)`.
pub(super) fn cut_short(journal: &Journal) -> Vec<(String, String, Json)> {
    let mut open: indexmap::IndexMap<String, (String, Json)> = indexmap::IndexMap::new();
    for timed in &journal.events {
        match &timed.event {
            Event::StepCheckpoint { step, kind, state } => {
                open.insert(step.clone(), (kind.clone(), state.clone()));
            }
            Event::StepStarted { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepCancelled { step, .. }
            | Event::StepRecovered { step, .. }
            | Event::RollbackStarted { step, .. }
            | Event::RollbackSucceeded { step, .. }
            | Event::RollbackFailed { step, .. } => {
                open.shift_remove(step);
            }
            _ => {}
        }
    }
    open.into_iter()
        .map(|(step, (kind, state))| (step, kind, state))
        .collect()
}

/// Lets each kind put right what its attempt left half done when the run
/// died (processes still running, a path moved aside), before anything
/// runs again or is rolled back. A kind that cannot stops the run here, for
/// a person: nothing else is done.
pub(super) async fn recover_cut_short(host: &RunHost, journal: &Journal) -> Result<(), Vec<Diagnostic>> {
    for (step, kind_name, state) in cut_short(journal) {
        let Some(kind) = host.registry.get(&kind_name).cloned() else {
            continue;
        };
        match kind.recover(&state).await {
            Ok(None) => {}
            Ok(Some(action)) => host.reporter.event(&Event::StepRecovered { step, action }),
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
    /// Puts the run back where its journal left it. Returns the main steps
    /// that were in flight (or cancelled) and will start again.
    pub(super) fn restore(&mut self, journal: &Journal) -> Vec<usize> {
        let compiled = self.shared.compiled.clone();
        let runbook = &compiled.runbook;
        let main: HashMap<&str, usize> = runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let fin: HashMap<&str, usize> = runbook
            .finally
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.as_str(), i))
            .collect();
        let mut in_flight = BTreeSet::new();
        let restored = |status, outputs: Json, duration_ms: u64, which| Outcome {
            which,
            status,
            outputs,
            failure: None,
            undo: None,
            attempts: 1,
            duration: Duration::from_millis(duration_ms),
        };
        for timed in &journal.events {
            match &timed.event {
                Event::StepStarted { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.insert(i);
                    }
                }
                Event::StepSucceeded {
                    step,
                    outputs,
                    duration_ms,
                    undo,
                } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.remove(&i);
                        self.set_status(i, StepStatus::Succeeded, Some(outputs.clone()));
                        self.completed.push(i);
                        let mut outcome =
                            restored(StepStatus::Succeeded, outputs.clone(), *duration_ms, Which::Main(i));
                        outcome.undo = undo.clone();
                        self.outcomes.insert(Which::Main(i), outcome);
                    } else if let Some(&k) = fin.get(step.as_str()) {
                        self.finally_status[k] = StepStatus::Succeeded;
                        self.shared
                            .ctx
                            .set_step(step, StepStatus::Succeeded, Some(to_value(outputs)));
                    }
                }
                Event::StepSkipped { step, reason } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        self.set_status(i, StepStatus::Skipped, None);
                        self.skip_reason.insert(i, reason.clone());
                    } else if let Some(&k) = fin.get(step.as_str()) {
                        self.finally_status[k] = StepStatus::Skipped;
                    }
                }
                Event::StepFailed {
                    step,
                    error,
                    on_failure,
                    duration_ms,
                    failure,
                } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.remove(&i);
                        self.set_status(i, StepStatus::Failed, None);
                        let mut outcome = restored(StepStatus::Failed, Json::Null, *duration_ms, Which::Main(i));
                        // Journals from before failures were typed have the words only.
                        outcome.failure = Some(failure.clone().unwrap_or_else(|| Failure::Kind {
                            message: error.clone(),
                            partial: None,
                        }));
                        self.outcomes.insert(Which::Main(i), outcome);
                        let reason = format!("step `{step}` failed: {error}");
                        match on_failure {
                            OnFailure::Rollback => {
                                self.stop = self.stop.take().or(Some(Stop::Failure { reason, rollback: true }))
                            }
                            OnFailure::Abort => {
                                self.stop = self.stop.take().or(Some(Stop::Failure {
                                    reason,
                                    rollback: false,
                                }))
                            }
                            OnFailure::Continue => {}
                        }
                    } else if let Some(&k) = fin.get(step.as_str()) {
                        self.finally_status[k] = StepStatus::Failed;
                    }
                }
                Event::StepCancelled { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        in_flight.insert(i);
                    }
                }
                Event::RollbackStarted { step, .. } if self.stop.is_none() && main.contains_key(step.as_str()) => {
                    self.stop = Some(Stop::Failure {
                        reason: "the rollback was interrupted; it goes on".into(),
                        rollback: true,
                    });
                }
                Event::RollbackSucceeded { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        self.set_status(i, StepStatus::RolledBack, None);
                        self.rolled_back.push(step.clone());
                    }
                }
                Event::RollbackFailed { step, .. } => {
                    if let Some(&i) = main.get(step.as_str()) {
                        self.set_status(i, StepStatus::RollbackFailed, None);
                        self.rollback_failed = true;
                    }
                }
                Event::RollbackRequested { .. } => self.stop = Some(Stop::Requested),
                _ => {}
            }
        }
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

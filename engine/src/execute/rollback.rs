//! The end of a run: the rollback of what succeeded, in reverse order of
//! completion, then `finally`; nothing of it when the journal has failed.

use super::*;

impl Run {
    /// Rollback (when called for), then `finally`. Returns the run's status.
    pub(super) async fn finish(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) -> RunStatus {
        for i in 0..self.status.len() {
            if matches!(self.status[i], StepStatus::Pending | StepStatus::Running) {
                self.set_status(i, StepStatus::NotRun, None);
            }
        }
        if matches!(self.stop, Some(Stop::JournalFailed)) {
            self.shared.ctx.set_status(RunStatus::JournalFailed);
            return RunStatus::JournalFailed;
        }
        let wants_rollback = match &self.stop {
            Some(Stop::Failure { rollback, .. } | Stop::Cancel { rollback, .. }) => *rollback && !self.no_rollback,
            Some(Stop::Requested) => true,
            Some(Stop::JournalFailed | Stop::Halt { .. }) | None => false,
        };
        if wants_rollback {
            self.rollback(interrupts).await;
        }
        if !self.shared.journaled() {
            self.stop = Some(Stop::JournalFailed);
            self.shared.ctx.set_status(RunStatus::JournalFailed);
            return RunStatus::JournalFailed;
        }
        let any_failed = self.status.contains(&StepStatus::Failed);
        let status = if self.rollback_failed {
            RunStatus::RollbackFailed
        } else {
            match &self.stop {
                Some(Stop::Requested) => RunStatus::RolledBack,
                Some(Stop::Cancel { .. }) => RunStatus::Cancelled,
                Some(Stop::Halt { .. }) => RunStatus::Aborted,
                Some(Stop::Failure { .. }) if wants_rollback => RunStatus::Failed,
                Some(Stop::Failure { rollback: false, .. }) => RunStatus::Aborted,
                Some(Stop::Failure { .. }) => RunStatus::FailedWithoutRollback,
                Some(Stop::JournalFailed) => RunStatus::JournalFailed,
                None if any_failed => RunStatus::FailedWithoutRollback,
                None => RunStatus::Succeeded,
            }
        };
        self.shared.ctx.set_status(status);
        self.run_finally().await;
        status
    }

    pub(super) async fn rollback(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) {
        let order: Vec<usize> = self.completed.iter().rev().copied().collect();
        let mut abandoned = false;
        for i in order {
            // A `runbook` step without a rollback of its own is undone by rolling back its child run;
            // other steps without one by the action their kind gave when they succeeded.
            let child = self.step(i).rollback.is_none() && self.shared.runs_child(&self.step(i).kind);
            let undo = match self.step(i).rollback {
                None if !child => self.outcomes.get(&Which::Main(i)).and_then(|o| o.undo.clone()),
                _ => None,
            };
            if (self.step(i).rollback.is_none() && !child && undo.is_none()) || self.status[i] != StepStatus::Succeeded
            {
                continue;
            }
            let id = self.step(i).id.clone();
            if abandoned {
                self.rollback_failed = true;
                let failure = Failure::Cancelled {
                    by: Canceller::Operator,
                };
                self.shared.reporter.event(&Event::RollbackFailed {
                    step: id,
                    duration_ms: 0,
                    error: "not rolled back: the operator abandoned the rollback".into(),
                    failure: Some(failure),
                });
                continue;
            }
            let body = self
                .step(i)
                .rollback
                .as_ref()
                .map(|b| b.kind.clone())
                .unwrap_or_default();
            let params = self
                .step(i)
                .rollback
                .as_ref()
                .and_then(|b| self.shared.renderer().params(&b.with, &b.kind).ok())
                .map_or(Json::Null, |r| r.shown().clone());
            let action = match (&undo, child) {
                (Some(undo), _) => undo.description.clone(),
                (None, true) => format!("roll back the run {}", child_run_id(&self.shared.run_id, &id)),
                (None, false) => self.shared.describe(&body, &params),
            };
            self.shared.reporter.event(&Event::RollbackStarted {
                step: id.clone(),
                action,
            });
            if !self.shared.journaled() {
                // Its start could not be recorded: it must not start.
                return;
            }
            let cancel = CancellationToken::new();
            let shared = self.shared.clone();
            let token = cancel.clone();
            let child_id = id.clone();
            let mut task = tokio::spawn(async move {
                let started = Instant::now();
                let result = match undo {
                    Some(undo) => shared.run_undo(&child_id, undo, token).await,
                    None if child => shared
                        .rollback_child(&child_id)
                        .await
                        .map_err(|message| Failure::Kind { message, partial: None }),
                    None => return shared.run_action(Which::Rollback(i), token, false, 0).await,
                };
                Outcome {
                    which: Which::Rollback(i),
                    status: if result.is_ok() {
                        StepStatus::Succeeded
                    } else {
                        StepStatus::Failed
                    },
                    outputs: Json::Null,
                    failure: result.err(),
                    undo: None,
                    attempts: 1,
                    duration: started.elapsed(),
                }
            });
            let outcome = loop {
                tokio::select! {
                    joined = &mut task => break joined.ok(),
                    Some(signal) = interrupts.recv() => {
                        self.shared.reporter.event(&Event::Interrupted { signal: signal.to_string() });
                        if self.ask(false, |o| o.abandon_rollback()).await {
                            abandoned = true;
                            cancel.cancel();
                        }
                    }
                }
            };
            match outcome {
                Some(outcome) if outcome.status == StepStatus::Succeeded => {
                    self.set_status(i, StepStatus::RolledBack, None);
                    self.rolled_back.push(id.clone());
                    self.shared.reporter.event(&Event::RollbackSucceeded {
                        step: id,
                        duration_ms: millis(outcome.duration),
                    });
                }
                other => {
                    self.rollback_failed = true;
                    let (failure, duration) = other.map_or(
                        (
                            Failure::Kind {
                                message: "the rollback task ended abnormally".into(),
                                partial: None,
                            },
                            Duration::ZERO,
                        ),
                        |o| (o.failure_or_default(), o.duration),
                    );
                    self.set_status(i, StepStatus::RollbackFailed, None);
                    self.shared.reporter.event(&Event::RollbackFailed {
                        step: id,
                        duration_ms: millis(duration),
                        error: failure.message(),
                        failure: Some(failure),
                    });
                }
            }
        }
    }

    pub(super) async fn run_finally(&mut self) {
        let count = self.shared.compiled.runbook.finally.len();
        if count == 0 {
            return;
        }
        self.shared.reporter.event(&Event::FinallyStarted { steps: count });
        for k in 0..count {
            if !self.shared.journaled() {
                return;
            }
            let step = &self.shared.compiled.runbook.finally[k];
            let id = step.id.clone();
            if matches!(self.finally_status[k], StepStatus::Succeeded | StepStatus::Skipped)
                && !matches!(self.stop, Some(Stop::Requested))
            {
                continue;
            }
            if let Some(when) = &step.when {
                let ctx = self.shared.ctx.value(None);
                match template::eval(&when.text, &ctx) {
                    Ok(value) if value.is_true() => {}
                    Ok(_) => {
                        self.finally_status[k] = StepStatus::Skipped;
                        self.shared.ctx.set_step(&id, StepStatus::Skipped, None);
                        self.shared.reporter.event(&Event::StepSkipped {
                            step: id,
                            reason: format!(
                                "`{}` is false ({})",
                                when.text,
                                explain(&when.text, &ctx, &self.shared.redactor)
                            ),
                        });
                        continue;
                    }
                    Err(e) => {
                        self.finally_status[k] = StepStatus::Failed;
                        let failure = Failure::Evaluation {
                            message: format!("cannot evaluate the guard `{}`: {}", when.text, template::reason(&e)),
                        };
                        self.shared.reporter.event(&Event::StepFailed {
                            step: id,
                            duration_ms: 0,
                            error: failure.message(),
                            on_failure: OnFailure::Continue,
                            failure: Some(failure),
                        });
                        continue;
                    }
                }
            }
            let outcome = self
                .shared
                .run_action(Which::Finally(k), CancellationToken::new(), true, 0)
                .await;
            self.finally_status[k] = outcome.status;
            let outputs = (outcome.status == StepStatus::Succeeded).then(|| to_value(&outcome.outputs));
            self.shared.ctx.set_step(&id, outcome.status, outputs);
            if outcome.status == StepStatus::Succeeded {
                self.shared.reporter.event(&Event::StepSucceeded {
                    step: id,
                    duration_ms: millis(outcome.duration),
                    outputs: outcome.outputs.clone(),
                    undo: None,
                });
            } else {
                let failure = outcome.failure_or_default();
                self.shared.reporter.event(&Event::StepFailed {
                    step: id,
                    duration_ms: millis(outcome.duration),
                    error: failure.message(),
                    on_failure: OnFailure::Continue,
                    failure: Some(failure),
                });
            }
            self.outcomes.insert(outcome.which, outcome);
        }
    }
}

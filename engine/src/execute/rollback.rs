//! The end of a run: the rollback of what succeeded, in reverse order of
//! completion, then `finally`; nothing of it when the journal has failed.

use super::*;

/// One step a rollback undoes, and how.
pub(super) struct Undoer {
    i: usize,
    /// Undone by rolling back its child run.
    child: bool,
    /// The undo its kind gave when it succeeded (when it has no rollback of its own).
    undo: Option<crate::step::Undo>,
    /// What undoing it does, in one line.
    action: String,
}

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

    /// What a rollback undoes, in order (the last completed first): each
    /// succeeded step with a rollback of its own, a `runbook` step's child
    /// run, or the undo its kind gave when it succeeded.
    pub(super) fn undo_order(&self) -> Vec<Undoer> {
        let mut order = Vec::new();
        for &i in self.completed.iter().rev() {
            if self.status[i] != StepStatus::Succeeded {
                continue;
            }
            let step = self.step(i);
            let child = step.rollback.is_none() && self.shared.runs_child(&step.kind);
            let undo = match &step.rollback {
                None if !child => self.outcomes.get(&Which::Main(i)).and_then(|o| o.undo.clone()),
                _ => None,
            };
            let action = match (&undo, &step.rollback) {
                (Some(undo), _) => undo.description.clone(),
                (None, Some(body)) => {
                    let params = self
                        .shared
                        .renderer()
                        .params(&body.with, &body.kind)
                        .ok()
                        .map_or(Json::Null, |r| r.shown().clone());
                    self.shared.describe(&body.kind, &params)
                }
                (None, None) if child => format!("roll back the run {}", child_run_id(&self.shared.run_id, &step.id)),
                (None, None) => continue,
            };
            order.push(Undoer { i, child, undo, action });
        }
        order
    }

    /// `runbook rollback RUN` without `--yes`: the operator sees what will
    /// be undone, in order, and decides. Nothing has been done before this;
    /// a "no", or nobody to ask, leaves everything as it is.
    pub(super) async fn approve_rollback(&self) -> Result<(), Vec<Diagnostic>> {
        let steps: Vec<(String, String)> = self
            .undo_order()
            .into_iter()
            .map(|u| (self.step(u.i).id.clone(), u.action))
            .collect();
        let run_id = self.shared.run_id.clone();
        let count = steps.len();
        let question = format!(
            "roll back run `{run_id}`: undo {count} step{}?",
            if count == 1 { "" } else { "s" }
        );
        let interactive = self.shared.operator.is_interactive();
        let asked = Instant::now();
        let id = run_id.clone();
        let reply = self
            .ask(Reply::Withdrawn, move |o| {
                o.approve_rollback(&Undoing {
                    run_id: &id,
                    steps: &steps,
                })
            })
            .await;
        let words = match reply {
            Reply::Given(true) => {
                self.shared.decided(None, &question, "yes", asked.elapsed());
                return Ok(());
            }
            Reply::Given(false) if !interactive => {
                return Err(vec![
                    Diagnostic::error(
                        codes::NEEDS_CONFIRMATION,
                        format!(
                            "rolling back run `{run_id}` undoes {count} step{} and needs confirmation, and there is no terminal to ask on; nothing was done",
                            if count == 1 { "" } else { "s" }
                        ),
                    )
                    .with_help(
                        "run it from a terminal to see what it undoes and be asked, or pass `--yes` to roll back without asking",
                    ),
                ]);
            }
            Reply::Given(false) => "no".to_string(),
            Reply::Silence { waited } => silence_words(waited),
            Reply::Interrupted => "Ctrl-C at the prompt".to_string(),
            Reply::Withdrawn => WITHDRAWN_WORDS.to_string(),
        };
        self.shared.decided(None, &question, &words, asked.elapsed());
        Err(vec![
            Diagnostic::error(
                codes::DECLINED,
                format!("run `{run_id}` was not rolled back ({words}); nothing was done"),
            )
            .with_help(format!("`runbook rollback {run_id}` again when it should be")),
        ])
    }

    pub(super) async fn rollback(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) {
        let mut abandoned = false;
        for Undoer { i, child, undo, action } in self.undo_order() {
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

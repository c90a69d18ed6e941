//! The state of one run and its scheduler: ready steps start up to
//! `max_parallel`, guards and confirmations admit them, their outcomes
//! release the steps that need them, and signals, timeouts and failures stop
//! the run.

use super::*;

/// The state of one run.
pub(super) struct Run {
    pub(super) shared: Arc<RunHost>,
    pub(super) status: Vec<StepStatus>,
    pub(super) finally_status: Vec<StepStatus>,
    pub(super) outcomes: HashMap<Which, Outcome>,
    /// Unfinished needs of each step.
    pub(super) waiting: Vec<usize>,
    /// Steps whose needs have all finished, by position.
    pub(super) ready: BTreeSet<usize>,
    pub(super) completed: Vec<usize>,
    pub(super) rolled_back: Vec<String>,
    pub(super) rollback_failed: bool,
    pub(super) stop: Option<Stop>,
    pub(super) max_parallel: usize,
    pub(super) step_mode: bool,
    pub(super) no_rollback: bool,
    pub(super) deadline: Option<Instant>,
    pub(super) timeout: Option<Duration>,
    pub(super) cancel: CancellationToken,
    pub(super) skip_reason: HashMap<usize, String>,
    /// Who stopped the run, when it was stopped from outside.
    pub(super) cancelled_by: Option<Canceller>,
    /// The run's own time limit passed.
    pub(super) run_timed_out: bool,
}

impl Run {
    pub(super) fn new(shared: Arc<RunHost>, request: &RunRequest) -> Self {
        let runbook = &shared.compiled.runbook;
        let graph = &shared.compiled.graph;
        let waiting: Vec<usize> = graph.needs.iter().map(Vec::len).collect();
        let ready = waiting
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == 0)
            .map(|(i, _)| i)
            .collect();
        let max_parallel = runbook
            .max_parallel
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get()))
            .max(1);
        Self {
            status: vec![StepStatus::Pending; runbook.steps.len()],
            finally_status: vec![StepStatus::Pending; runbook.finally.len()],
            outcomes: HashMap::new(),
            waiting,
            ready,
            completed: Vec::new(),
            rolled_back: Vec::new(),
            rollback_failed: false,
            stop: None,
            max_parallel,
            step_mode: request.step_mode,
            no_rollback: request.no_rollback,
            deadline: request.timeout.and_then(|t| Instant::now().checked_add(t)),
            timeout: request.timeout,
            cancel: CancellationToken::new(),
            skip_reason: HashMap::new(),
            cancelled_by: None,
            run_timed_out: false,
            shared,
        }
    }

    pub(super) fn step(&self, i: usize) -> &checked::Step {
        &self.shared.compiled.runbook.steps[i]
    }

    pub(super) fn set_status(&mut self, i: usize, status: StepStatus, outputs: Option<Json>) {
        self.status[i] = status;
        let id = self.shared.compiled.runbook.steps[i].id.clone();
        self.shared.ctx.set_step(&id, status, outputs.map(to_value));
    }

    /// A step has finished (succeeded, skipped, failed): release the steps that need it.
    pub(super) fn release(&mut self, i: usize) {
        let dependents: Vec<usize> = self.shared.compiled.graph.dependents(i).collect();
        for d in dependents {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 {
                self.ready.insert(d);
            }
        }
    }

    /// Asks the operator on a blocking thread, one question at a time.
    /// `fallback` is the safe answer if asking itself fails.
    pub(super) async fn ask<T: Send + 'static>(
        &self,
        fallback: T,
        question: impl FnOnce(&dyn Operator) -> T + Send + 'static,
    ) -> T {
        let _guard = self.shared.prompt.lock().await;
        let operator = self.shared.operator.clone();
        tokio::task::spawn_blocking(move || question(operator.as_ref()))
            .await
            .unwrap_or(fallback)
    }

    /// Decides whether a ready step starts: blocked by a failed need, guard, confirmation, `--step`.
    pub(super) async fn admit(&mut self, i: usize) -> Admission {
        let runbook = &self.shared.compiled.runbook;
        let step = &runbook.steps[i];
        let failed_need = self.shared.compiled.graph.needs[i]
            .iter()
            .map(|e| e.from)
            .find(|&n| matches!(self.status[n], StepStatus::Failed | StepStatus::NotRun));
        if let Some(n) = failed_need {
            return Admission::Blocked(format!("`{}` did not succeed", runbook.steps[n].id));
        }
        if let Some(when) = &step.when {
            match template::eval(&when.text, &self.shared.ctx.value(None)) {
                Ok(value) if value.is_true() => {}
                Ok(_) => {
                    return Admission::Skip(format!(
                        "`{}` is false ({})",
                        when.text,
                        explain(&when.text, &self.shared.ctx.value(None), &self.shared.redactor)
                    ));
                }
                Err(e) => {
                    return Admission::Fail(format!(
                        "cannot evaluate the guard `{}`: {}",
                        when.text,
                        template::reason(&e)
                    ));
                }
            }
        }
        let asks = !self.shared.yes && (self.step_mode || step.confirm.is_some());
        // What the step will do, in words, only when someone will be asked.
        let action = if asks {
            let params = self
                .shared
                .renderer()
                .params(&step.with, &step.kind)
                .map_or(Json::Null, |r| r.shown().clone());
            self.shared.describe(&step.kind, &params)
        } else {
            String::new()
        };
        if self.step_mode && !self.shared.yes {
            let (id, text) = (step.id.clone(), action.clone());
            match self.ask(StepAnswer::No, move |o| o.before_step(&id, &text)).await {
                StepAnswer::Yes => {}
                StepAnswer::Continue => self.step_mode = false,
                StepAnswer::Skip => return Admission::Skip("skipped by the operator".into()),
                StepAnswer::No => {
                    return Admission::Decline(format!("the operator stopped the run before `{}`", step.id));
                }
            }
        }
        if let Some(confirm) = &step.confirm
            && !self.shared.yes
        {
            let message = self.shared.renderer().text(confirm).map_or_else(
                |_| confirm.text.clone(),
                |r| self.shared.redactor.redact(r.shown()).into_owned(),
            );
            let (id, text) = (step.id.clone(), action);
            if !self.ask(false, move |o| o.confirm(&id, &message, &text)).await {
                return Admission::Decline(format!("the operator declined `{}`", step.id));
            }
        }
        Admission::Run
    }

    pub(super) async fn main(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) {
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut running = 0usize;
        loop {
            // Start what can start.
            while self.stop.is_none() && running < self.max_parallel {
                let Some(i) = self.ready.pop_first() else { break };
                let admission = self.admit(i).await;
                if !self.shared.journaled() {
                    self.ready.insert(i);
                    self.stop = Some(Stop::JournalFailed);
                    break;
                }
                match admission {
                    Admission::Run => {
                        self.set_status(i, StepStatus::Running, None);
                        let shared = self.shared.clone();
                        let cancel = self.cancel.child_token();
                        tasks.spawn(async move { shared.run_action(Which::Main(i), cancel, true).await });
                        running += 1;
                    }
                    Admission::Skip(reason) => {
                        self.emit_skip(i, reason, StepStatus::Skipped);
                        self.release(i);
                    }
                    Admission::Blocked(reason) => {
                        self.emit_skip(i, reason, StepStatus::NotRun);
                        self.release(i);
                    }
                    Admission::Fail(reason) => {
                        self.fail(i, Failure::Evaluation { message: reason }, Duration::ZERO);
                        self.release(i);
                    }
                    Admission::Decline(reason) => {
                        self.ready.insert(i);
                        self.cancelled_by = Some(Canceller::Operator);
                        self.stop = Some(Stop::Cancel { reason, rollback: true });
                        self.cancel.cancel();
                    }
                }
            }
            if running == 0 {
                break;
            }
            let deadline = self.deadline;
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(joined) = tasks.join_next() => {
                    running -= 1;
                    match joined {
                        Ok(outcome) => self.finished(outcome).await,
                        Err(e) => self.stop_with(Stop::Failure { reason: format!("a step task ended abnormally: {e}"), rollback: true }),
                    }
                }
                Some(signal) = interrupts.recv() => {
                    if signal == crate::journal::JOURNAL_FAILED {
                        self.stop = Some(Stop::JournalFailed);
                        self.cancel.cancel();
                        while let Some(joined) = tasks.join_next().await {
                            running -= 1;
                            if let Ok(outcome) = joined {
                                self.finished(outcome).await;
                            }
                        }
                        continue;
                    }
                    self.shared.reporter.event(&Event::Interrupted { signal: signal.to_string() });
                    self.cancel.cancel();
                    // Let running steps stop (their processes get SIGTERM, then SIGKILL).
                    while let Some(joined) = tasks.join_next().await {
                        running -= 1;
                        if let Ok(outcome) = joined {
                            self.finished(outcome).await;
                        }
                    }
                    if self.stop.is_some() {
                        continue;
                    }
                    match self.ask(InterruptAnswer::Rollback, |o| o.interrupted()).await {
                        InterruptAnswer::Continue => {
                            self.cancel = CancellationToken::new();
                            // Cancelled steps start again.
                            for i in 0..self.status.len() {
                                if self.status[i] == StepStatus::Cancelled {
                                    self.set_status(i, StepStatus::Pending, None);
                                    self.ready.insert(i);
                                }
                            }
                        }
                        InterruptAnswer::Rollback => {
                            self.cancelled_by = Some(Canceller::Signal(signal.to_string()));
                            self.stop_with(Stop::Cancel { reason: format!("interrupted by {signal}"), rollback: true });
                        }
                        InterruptAnswer::Quit => {
                            self.cancelled_by = Some(Canceller::Signal(signal.to_string()));
                            self.stop_with(Stop::Cancel { reason: format!("interrupted by {signal}; left as it is"), rollback: false });
                        }
                    }
                }
                () = expired => {
                    let reason = format!("the run timed out after {}", format_duration(self.timeout.unwrap_or_default()));
                    self.deadline = None;
                    self.run_timed_out = true;
                    self.stop_with(Stop::Failure { reason, rollback: true });
                }
            }
        }
    }

    pub(super) fn stop_with(&mut self, stop: Stop) {
        if self.stop.is_none() {
            self.stop = Some(stop);
        }
        self.cancel.cancel();
    }

    pub(super) fn emit_skip(&mut self, i: usize, reason: String, status: StepStatus) {
        self.set_status(i, status, None);
        self.skip_reason.insert(i, reason.clone());
        self.shared.reporter.event(&Event::StepSkipped {
            step: self.step(i).id.clone(),
            reason,
        });
    }

    pub(super) fn fail(&mut self, i: usize, failure: Failure, duration: Duration) {
        let on_failure = self.step(i).on_failure;
        let error = failure.message();
        self.set_status(i, StepStatus::Failed, None);
        self.shared.reporter.event(&Event::StepFailed {
            step: self.step(i).id.clone(),
            duration_ms: millis(duration),
            error: error.clone(),
            on_failure,
            failure: Some(failure),
        });
        let reason = format!("step `{}` failed: {error}", self.step(i).id);
        match on_failure {
            OnFailure::Continue => {}
            OnFailure::Rollback => self.stop_with(Stop::Failure { reason, rollback: true }),
            OnFailure::Abort => self.stop_with(Stop::Failure {
                reason,
                rollback: false,
            }),
        }
    }

    pub(super) async fn finished(&mut self, outcome: Outcome) {
        let Which::Main(i) = outcome.which else { return };
        let duration = outcome.duration;
        match outcome.status {
            StepStatus::Succeeded => {
                self.set_status(i, StepStatus::Succeeded, Some(outcome.outputs.clone()));
                self.completed.push(i);
                self.shared.reporter.event(&Event::StepSucceeded {
                    step: self.step(i).id.clone(),
                    duration_ms: millis(duration),
                    outputs: outcome.outputs.clone(),
                    undo: outcome.undo.clone(),
                });
                self.release(i);
            }
            StepStatus::Cancelled => {
                self.set_status(i, StepStatus::Cancelled, None);
                let by = self.canceller();
                self.shared.reporter.event(&Event::StepCancelled {
                    step: self.step(i).id.clone(),
                    reason: self.stop_reason().unwrap_or_else(|| "cancelled".into()),
                    by: Some(by.clone()),
                });
                let mut outcome = outcome;
                if matches!(outcome.failure, Some(Failure::Cancelled { .. }) | None) {
                    outcome.failure = Some(Failure::Cancelled { by });
                }
                self.outcomes.insert(outcome.which, outcome);
                return;
            }
            _ => {
                let failure = outcome.failure_or_default();
                let error = failure.message();
                if failure.is_gate() && self.stop.is_none() && self.shared.operator.is_interactive() {
                    let text = self.shared.redactor.redact(&error).into_owned();
                    let id = self.step(i).id.clone();
                    match self.ask(GateAnswer::Rollback, move |o| o.gate_failed(&id, &text)).await {
                        GateAnswer::Retry => {
                            self.set_status(i, StepStatus::Pending, None);
                            self.ready.insert(i);
                            self.outcomes.insert(outcome.which, outcome);
                            return;
                        }
                        GateAnswer::Skip => {
                            self.emit_skip(
                                i,
                                format!("skipped by the operator after: {error}"),
                                StepStatus::Skipped,
                            );
                            self.release(i);
                            self.outcomes.insert(outcome.which, outcome);
                            return;
                        }
                        GateAnswer::Rollback => {
                            self.fail(i, failure, duration);
                            let reason = format!("step `{}` failed verification", self.step(i).id);
                            self.stop_with(Stop::Failure { reason, rollback: true });
                        }
                        GateAnswer::Abort => {
                            self.fail(i, failure, duration);
                            let reason = format!(
                                "step `{}` failed verification; stopped without rollback",
                                self.step(i).id
                            );
                            self.stop = Some(Stop::Failure {
                                reason,
                                rollback: false,
                            });
                            self.cancel.cancel();
                        }
                    }
                } else {
                    self.fail(i, failure, duration);
                    if self.step(i).on_failure == OnFailure::Continue {
                        self.release(i);
                    }
                }
            }
        }
        self.outcomes.insert(outcome.which, outcome);
    }

    /// What happened when the journal could not be written, and what to do.
    pub(super) fn journal_failure_words(&self) -> String {
        let journal = self.shared.journal.as_ref();
        let error = journal.and_then(|j| j.failure()).unwrap_or_default();
        let mut words = format!(
            "the journal could not be written ({error}): nothing more was started, nothing was rolled back \
             and `finally` did not run"
        );
        let unrecorded = journal.map(|j| j.unrecorded()).unwrap_or_default();
        if !unrecorded.is_empty() {
            let names: Vec<String> = unrecorded.iter().map(|s| format!("`{s}`")).collect();
            words.push_str(&format!(
                "; whether {} finished is not journaled: check by hand",
                names.join(", ")
            ));
        }
        words.push_str(&format!(
            "; make room, then `runbook resume {id}` or `runbook rollback {id}`",
            id = self.shared.run_id
        ));
        words
    }

    /// Who or what stopped the steps still running.
    pub(super) fn canceller(&self) -> Canceller {
        match &self.stop {
            Some(Stop::JournalFailed) => Canceller::Journal,
            Some(Stop::Cancel { .. }) => self.cancelled_by.clone().unwrap_or(Canceller::Operator),
            Some(Stop::Failure { .. }) if self.run_timed_out => Canceller::RunTimeout,
            Some(Stop::Failure { .. }) => Canceller::AnotherStep,
            Some(Stop::Requested) | None => Canceller::Operator,
        }
    }

    pub(super) fn stop_reason(&self) -> Option<String> {
        self.stop.as_ref().map(|s| match s {
            Stop::Failure { reason, .. } | Stop::Cancel { reason, .. } => reason.clone(),
            Stop::Requested => "rolled back on request".to_string(),
            Stop::JournalFailed => self.journal_failure_words(),
        })
    }

    pub(super) fn summary(&self, status: RunStatus, duration: Duration) -> RunSummary {
        let runbook = &self.shared.compiled.runbook;
        let mut steps = Vec::new();
        let entries = runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s, Which::Main(i), self.status[i]))
            .chain(
                runbook
                    .finally
                    .iter()
                    .enumerate()
                    .map(|(k, s)| (s, Which::Finally(k), self.finally_status[k])),
            );
        for (step, which, step_status) in entries {
            let outcome = self.outcomes.get(&which);
            let error = match which {
                Which::Main(i) => self.skip_reason.get(&i).cloned(),
                _ => None,
            }
            .or_else(|| outcome.and_then(|o| o.failure.as_ref().map(Failure::message)));
            // A step that ended otherwise than well keeps why, typed.
            let failure = outcome
                .filter(|o| o.status != StepStatus::Succeeded)
                .and_then(|o| o.failure.clone());
            steps.push(StepSummary {
                id: step.id.clone(),
                name: step.name.clone(),
                status: if step_status == StepStatus::Pending {
                    StepStatus::NotRun
                } else {
                    step_status
                },
                duration_ms: outcome.map_or(0, |o| millis(o.duration)),
                attempts: outcome.map_or(0, |o| o.attempts),
                error,
                failure,
                outputs: outcome.map_or(Json::Null, |o| o.outputs.clone()),
                is_finally: matches!(which, Which::Finally(_)),
            });
        }
        RunSummary {
            run_id: self.shared.run_id.clone(),
            runbook: runbook.name.clone(),
            status,
            duration_ms: millis(duration),
            steps,
            rolled_back: self.rolled_back.clone(),
            reason: self.stop_reason(),
        }
    }
}

pub(super) enum Admission {
    Run,
    Skip(String),
    Blocked(String),
    Fail(String),
    Decline(String),
}

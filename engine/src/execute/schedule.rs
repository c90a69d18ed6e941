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
    /// The steps running now.
    pub(super) tasks: JoinSet<Outcome>,
    /// The question on the screen, if any; the run goes on meanwhile.
    pub(super) question: Option<Open>,
    /// Failed steps waiting for their question while another is open.
    pub(super) failures_waiting: std::collections::VecDeque<Outcome>,
    /// Failed steps the run goes on after (`on_failure: continue`, or the
    /// operator said skip): finished, for the steps that need them.
    pub(super) continued: BTreeSet<usize>,
    /// Attempts each step made before the operator had it retried.
    pub(super) earlier_attempts: Vec<u32>,
    pub(super) step_mode: bool,
    pub(super) no_rollback: bool,
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
            tasks: JoinSet::new(),
            question: None,
            failures_waiting: std::collections::VecDeque::new(),
            continued: BTreeSet::new(),
            earlier_attempts: vec![0; runbook.steps.len()],
            step_mode: request.step_mode,
            no_rollback: request.no_rollback,
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
        let _paused = self.shared.clocks.pause(None);
        let operator = self.shared.operator.clone();
        tokio::task::spawn_blocking(move || question(operator.as_ref()))
            .await
            .unwrap_or(fallback)
    }

    /// Decides whether a ready step starts: blocked by a need that failed,
    /// skipped by its guard, or to be asked about (a confirmation, `--step`).
    pub(super) fn admit(&mut self, i: usize) -> Admission {
        let runbook = &self.shared.compiled.runbook;
        let step = &runbook.steps[i];
        let failed_need = self.shared.compiled.graph.needs[i]
            .iter()
            .map(|e| e.from)
            .find(|&n| match self.status[n] {
                StepStatus::Failed => !self.continued.contains(&n),
                StepStatus::NotRun => true,
                _ => false,
            });
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
        let message = step.confirm.as_ref().map(|confirm| {
            self.shared.renderer().text(confirm).map_or_else(
                |_| confirm.text.clone(),
                |r| self.shared.redactor.redact(r.shown()).into_owned(),
            )
        });
        if self.shared.yes {
            if let Some(message) = &message {
                self.shared
                    .decided(Some(&step.id), message, "yes (--yes)", Duration::ZERO);
            }
            return Admission::Run;
        }
        // A step that asks for itself is not asked about twice.
        let asks_itself = self.shared.registry.get(&step.kind).is_some_and(|k| k.asks_operator());
        let asked = match &message {
            Some(_) => Asked::Confirm,
            None if self.step_mode && !asks_itself => Asked::Step,
            None => return Admission::Run,
        };
        // What the step will do, in words and in full, only when someone will be asked.
        let params = self
            .shared
            .renderer()
            .params(&step.with, &step.kind)
            .map_or(Json::Null, |r| r.shown().clone());
        let action = self.shared.describe(&step.kind, &params);
        let mut detail = in_full(&params);
        if let Some(preview) = self.shared.registry.get(&step.kind).and_then(|k| k.preview(&params)) {
            detail.push_str(&format!("as things are now: {preview}\n"));
        }
        let text = match (&asked, message) {
            (Asked::Confirm, Some(message)) => message,
            _ => format!("run step `{}`?", step.id),
        };
        Admission::Ask(Ask {
            asked,
            text,
            action,
            detail: self.shared.redactor.redact(&detail).into_owned(),
        })
    }

    /// Puts a question on the screen; the run goes on while it is there.
    pub(super) fn open(&mut self, i: usize, ask: Ask) {
        let withdraw = CancellationToken::new();
        let shared = self.shared.clone();
        let step = self.step(i).id.clone();
        let on_failure = self.step(i).on_failure;
        let (token, text) = (withdraw.clone(), ask.text.clone());
        let (asked, action, detail) = (ask.asked.kind(), ask.action, ask.detail);
        let failure = match &ask.asked {
            Asked::Failure(outcome) => Some((outcome.failure_or_default(), outcome.attempts)),
            _ => None,
        };
        let reply = tokio::spawn(async move {
            let guard = shared.prompt.clone().lock_owned().await;
            let _paused = shared.clocks.pause(None);
            let operator = shared.operator.clone();
            let output = shared.tail(&step);
            tokio::task::spawn_blocking(move || {
                let _guard = guard;
                let question = Question {
                    step: &step,
                    message: &text,
                    action: &action,
                    detail: &detail,
                    can_skip: true,
                    withdrawn: &token,
                };
                match (asked, failure) {
                    (AskedKind::Confirm, _) => Answered::Confirm(operator.confirm(&question)),
                    (AskedKind::Step, _) => Answered::Step(operator.before_step(&question)),
                    (AskedKind::Failure, failure) => {
                        let (failure, attempts) = failure.unwrap_or_else(|| {
                            (
                                Failure::Kind {
                                    message: "failed".into(),
                                    partial: None,
                                },
                                1,
                            )
                        });
                        let (error, detail) = (failure.message(), failure.detail());
                        Answered::Failure(operator.failed(&Setback {
                            step: &step,
                            error: &error,
                            detail: detail.as_deref(),
                            output: &output,
                            on_failure,
                            attempts,
                            withdrawn: &token,
                        }))
                    }
                }
            })
            .await
            .unwrap_or(Answered::Lost)
        });
        self.question = Some(Open {
            step: i,
            asked: ask.asked,
            text: ask.text,
            withdraw,
            started: Instant::now(),
            reply,
        });
    }

    /// Starts step `i`.
    pub(super) fn start(&mut self, i: usize) {
        self.set_status(i, StepStatus::Running, None);
        let shared = self.shared.clone();
        let cancel = self.cancel.child_token();
        let earlier = self.earlier_attempts[i];
        self.tasks
            .spawn(async move { shared.run_action(Which::Main(i), cancel, true, earlier).await });
    }

    /// What the operator answered (or why nobody did), acted on and journaled.
    pub(super) fn answered(&mut self, open: Open, answered: Answered) {
        let i = open.step;
        let id = self.step(i).id.clone();
        let waited = open.started.elapsed();
        let decided = |run: &Self, words: &str| run.shared.decided(Some(&id), &open.text, words, waited);
        match (open.asked, answered) {
            (Asked::Confirm, Answered::Confirm(reply)) => match reply {
                Reply::Given(answer) => {
                    decided(self, answer.words());
                    match answer {
                        ConfirmAnswer::Yes => self.start(i),
                        ConfirmAnswer::Skip => {
                            self.emit_skip(i, "skipped by the operator".into(), StepStatus::Skipped);
                            self.release(i);
                        }
                        ConfirmAnswer::Rollback => self.decline(i, format!("the operator declined `{id}`")),
                        ConfirmAnswer::Stop => self.halt(format!("the operator stopped the run at `{id}`")),
                    }
                }
                Reply::Silence { waited } => {
                    decided(self, &silence_words(waited));
                    self.decline(i, format!("nobody answered the confirmation of `{id}`"));
                }
                Reply::Interrupted => {
                    decided(self, INTERRUPTED_WORDS);
                    self.interrupted_at_prompt(i);
                }
                Reply::Withdrawn => {
                    decided(self, WITHDRAWN_WORDS);
                    self.ready.insert(i);
                }
            },
            (Asked::Step, Answered::Step(reply)) => match reply {
                Reply::Given(answer) => {
                    decided(self, answer.words());
                    match answer {
                        StepAnswer::Yes => self.start(i),
                        StepAnswer::Continue => {
                            self.step_mode = false;
                            self.start(i);
                        }
                        StepAnswer::Skip => {
                            self.emit_skip(i, "skipped by the operator".into(), StepStatus::Skipped);
                            self.release(i);
                        }
                        StepAnswer::Rollback => {
                            self.decline(i, format!("the operator stopped the run before `{id}`"));
                        }
                        StepAnswer::Stop => self.halt(format!("the operator stopped the run before `{id}`")),
                    }
                }
                Reply::Silence { waited } => {
                    decided(self, &silence_words(waited));
                    self.decline(i, format!("nobody answered whether to run `{id}`"));
                }
                Reply::Interrupted => {
                    decided(self, INTERRUPTED_WORDS);
                    self.interrupted_at_prompt(i);
                }
                Reply::Withdrawn => {
                    decided(self, WITHDRAWN_WORDS);
                    self.ready.insert(i);
                }
            },
            (Asked::Failure(outcome), Answered::Failure(reply)) => {
                let on_failure = self.step(i).on_failure;
                let (words, answer) = match reply {
                    Reply::Given(answer) => (answer.words().to_string(), answer),
                    Reply::Silence { waited } => (
                        format!(
                            "no answer within {}: the runbook's `on_failure: {}` decides",
                            format_duration(waited),
                            on_failure.as_str()
                        ),
                        FailureAnswer::from(on_failure),
                    ),
                    Reply::Interrupted => (INTERRUPTED_WORDS.to_string(), FailureAnswer::Rollback),
                    Reply::Withdrawn => (WITHDRAWN_WORDS.to_string(), FailureAnswer::from(on_failure)),
                };
                decided(self, &words);
                self.after_failure(*outcome, answer);
            }
            // The question could not be put (its thread was lost): the safe answer.
            (Asked::Failure(outcome), _) => {
                let answer = FailureAnswer::from(self.step(i).on_failure);
                self.after_failure(*outcome, answer);
            }
            (_, _) => self.decline(i, format!("the question about `{id}` could not be put")),
        }
    }

    /// A failed step, once it is decided what follows: retried, or failed
    /// with what the decision amounts to.
    fn after_failure(&mut self, outcome: Outcome, answer: FailureAnswer) {
        let Which::Main(i) = outcome.which else { return };
        let failure = outcome.failure_or_default();
        match answer.on_failure() {
            None => {
                self.earlier_attempts[i] = outcome.attempts;
                self.shared.reporter.event(&Event::StepRetrying {
                    step: self.step(i).id.clone(),
                    attempt: outcome.attempts,
                    error: failure.message(),
                    delay_ms: 0,
                    failure: Some(failure),
                });
                self.set_status(i, StepStatus::Pending, None);
                self.ready.insert(i);
                self.outcomes.insert(outcome.which, outcome);
            }
            Some(on_failure) => {
                self.fail_as(i, failure, outcome.duration, on_failure);
                self.outcomes.insert(outcome.which, outcome);
            }
        }
    }

    /// The operator said no: the run stops and rolls back.
    fn decline(&mut self, i: usize, reason: String) {
        self.ready.insert(i);
        self.cancelled_by = Some(Canceller::Operator);
        self.stop_with(Stop::Cancel { reason, rollback: true });
    }

    /// The operator stopped the run for a person: nothing is rolled back.
    fn halt(&mut self, reason: String) {
        self.cancelled_by = Some(Canceller::Operator);
        self.stop_with(Stop::Halt {
            reason: format!("{reason}; nothing was rolled back: a person takes over"),
        });
    }

    /// Ctrl-C at a question: one decision, to stop and roll back.
    fn interrupted_at_prompt(&mut self, i: usize) {
        self.ready.insert(i);
        self.cancelled_by = Some(Canceller::Signal("SIGINT".into()));
        self.stop_with(Stop::Cancel {
            reason: format!("interrupted at the question about `{}`", self.step(i).id),
            rollback: true,
        });
    }

    /// Withdraws the open question, if any, and acts on how it ended.
    async fn withdraw(&mut self) {
        let Some(mut open) = self.question.take() else { return };
        open.withdraw.cancel();
        let answered = (&mut open.reply).await.unwrap_or(Answered::Lost);
        self.answered(open, answered);
    }

    pub(super) async fn main(&mut self, interrupts: &mut mpsc::UnboundedReceiver<&'static str>) {
        // The run's own time limit, which time at prompts does not use up.
        let clocks = self.shared.clone();
        let limit = self.timeout;
        let mut expired = Box::pin(async move {
            match limit {
                Some(limit) => clocks.clocks.sleep(limit, None).await,
                None => std::future::pending().await,
            }
        });
        loop {
            if self.question.is_none()
                && let Some(outcome) = self.failures_waiting.pop_front()
            {
                if self.stop.is_none() {
                    self.ask_about_failure(outcome);
                } else {
                    let answer = FailureAnswer::from(self.step(which_main(&outcome)).on_failure);
                    self.after_failure(outcome, answer);
                }
                continue;
            }
            // Start what can start.
            while self.stop.is_none() && self.question.is_none() && self.tasks.len() < self.max_parallel {
                let Some(i) = self.ready.pop_first() else { break };
                let admission = self.admit(i);
                if !self.shared.journaled() {
                    self.ready.insert(i);
                    self.stop = Some(Stop::JournalFailed);
                    break;
                }
                match admission {
                    Admission::Run => self.start(i),
                    Admission::Ask(ask) => self.open(i, ask),
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
                    }
                }
            }
            if self.stop.is_some() && self.question.is_some() {
                // The question no longer matters: its answer is not taken.
                self.withdraw().await;
                continue;
            }
            if self.tasks.is_empty() && self.question.is_none() && self.failures_waiting.is_empty() {
                break;
            }
            let asking = self.question.is_some();
            let running = !self.tasks.is_empty();
            tokio::select! {
                Some(joined) = self.tasks.join_next(), if running => {
                    match joined {
                        Ok(outcome) => self.finished(outcome).await,
                        Err(e) => self.stop_with(Stop::Failure { reason: format!("a step task ended abnormally: {e}"), rollback: true }),
                    }
                }
                answered = reply_of(&mut self.question), if asking => {
                    if let Some(open) = self.question.take() {
                        self.answered(open, answered);
                    }
                }
                Some(signal) = interrupts.recv() => {
                    if signal == crate::journal::JOURNAL_FAILED {
                        self.stop = Some(Stop::JournalFailed);
                        self.cancel.cancel();
                        self.withdraw().await;
                        while let Some(joined) = self.tasks.join_next().await {
                            if let Ok(outcome) = joined {
                                self.finished(outcome).await;
                            }
                        }
                        continue;
                    }
                    self.shared.reporter.event(&Event::Interrupted { signal: signal.to_string() });
                    self.cancel.cancel();
                    self.withdraw().await;
                    // Let running steps stop (their processes get SIGTERM, then SIGKILL).
                    while let Some(joined) = self.tasks.join_next().await {
                        if let Ok(outcome) = joined {
                            self.finished(outcome).await;
                        }
                    }
                    if self.stop.is_some() {
                        continue;
                    }
                    let answer = self.ask(InterruptAnswer::Rollback, |o| o.interrupted()).await;
                    self.shared.decided(None, &format!("interrupted by {signal}: what now?"), answer.words(), Duration::ZERO);
                    match answer {
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
                () = &mut expired, if !self.run_timed_out => {
                    let reason = format!("the run timed out after {}", format_duration(self.timeout.unwrap_or_default()));
                    self.run_timed_out = true;
                    self.stop_with(Stop::Failure { reason, rollback: true });
                }
            }
        }
    }

    /// Puts the question about a failed step, or queues it behind the one on the screen.
    fn ask_about_failure(&mut self, outcome: Outcome) {
        if self.question.is_some() {
            self.failures_waiting.push_back(outcome);
            return;
        }
        let i = which_main(&outcome);
        let failure = outcome.failure_or_default();
        let text = format!("step `{}` failed: {}. what now?", self.step(i).id, failure.message());
        let text = self.shared.redactor.redact(&text).into_owned();
        self.open(
            i,
            Ask {
                asked: Asked::Failure(Box::new(outcome)),
                text,
                action: String::new(),
                detail: String::new(),
            },
        );
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

    /// Step `i` failed: what its `on_failure` says follows.
    pub(super) fn fail(&mut self, i: usize, failure: Failure, duration: Duration) {
        let on_failure = self.step(i).on_failure;
        self.fail_as(i, failure, duration, on_failure);
    }

    /// Step `i` failed, and `on_failure` follows (the runbook's, or what the operator chose).
    pub(super) fn fail_as(&mut self, i: usize, failure: Failure, duration: Duration, on_failure: OnFailure) {
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
            OnFailure::Continue => {
                // Finished, for the steps that need it: they run.
                self.continued.insert(i);
                self.release(i);
            }
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
                let declined = self
                    .shared
                    .declined
                    .lock()
                    .ok()
                    .and_then(|mut d| d.remove(&self.step(i).id));
                let id = self.step(i).id.clone();
                let failure = outcome.failure_or_default();
                match declined {
                    // A `confirm` step answered no: the answer says how the run stops.
                    Some(declined) => {
                        self.set_status(i, StepStatus::Failed, None);
                        self.shared.reporter.event(&Event::StepFailed {
                            step: id.clone(),
                            duration_ms: millis(duration),
                            error: failure.message(),
                            on_failure: if declined == Declined::Stop {
                                OnFailure::Abort
                            } else {
                                OnFailure::Rollback
                            },
                            failure: Some(failure),
                        });
                        match declined {
                            Declined::Rollback => {
                                self.cancelled_by = Some(Canceller::Operator);
                                self.stop_with(Stop::Cancel {
                                    reason: format!("the operator declined `{id}`"),
                                    rollback: true,
                                });
                            }
                            Declined::Stop => self.halt(format!("the operator stopped the run at `{id}`")),
                            Declined::Interrupted => {
                                self.cancelled_by = Some(Canceller::Signal("SIGINT".into()));
                                self.stop_with(Stop::Cancel {
                                    reason: format!("interrupted at the question about `{id}`"),
                                    rollback: true,
                                });
                            }
                        }
                    }
                    // Guided failure: a person at the terminal decides.
                    None if self.stop.is_none() && self.shared.operator.is_interactive() && !self.shared.yes => {
                        self.ask_about_failure(outcome);
                        return;
                    }
                    None => self.fail(i, failure, duration),
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
            Some(Stop::Cancel { .. } | Stop::Halt { .. }) => self.cancelled_by.clone().unwrap_or(Canceller::Operator),
            Some(Stop::Failure { .. }) if self.run_timed_out => Canceller::RunTimeout,
            Some(Stop::Failure { .. }) => Canceller::AnotherStep,
            Some(Stop::Requested) | None => Canceller::Operator,
        }
    }

    pub(super) fn stop_reason(&self) -> Option<String> {
        self.stop.as_ref().map(|s| match s {
            Stop::Failure { reason, .. } | Stop::Cancel { reason, .. } | Stop::Halt { reason } => reason.clone(),
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
    /// A person decides.
    Ask(Ask),
}

/// A question to put about a step.
pub(super) struct Ask {
    pub(super) asked: Asked,
    /// The question, in the words shown and journaled.
    pub(super) text: String,
    pub(super) action: String,
    pub(super) detail: String,
}

pub(super) enum Asked {
    Confirm,
    Step,
    Failure(Box<Outcome>),
}

#[derive(Clone, Copy)]
enum AskedKind {
    Confirm,
    Step,
    Failure,
}

impl Asked {
    fn kind(&self) -> AskedKind {
        match self {
            Asked::Confirm => AskedKind::Confirm,
            Asked::Step => AskedKind::Step,
            Asked::Failure(_) => AskedKind::Failure,
        }
    }
}

pub(super) enum Answered {
    Confirm(Reply<ConfirmAnswer>),
    Step(Reply<StepAnswer>),
    Failure(Reply<FailureAnswer>),
    /// The prompt's thread ended without an answer.
    Lost,
}

/// A question on the screen.
pub(super) struct Open {
    pub(super) step: usize,
    pub(super) asked: Asked,
    pub(super) text: String,
    pub(super) withdraw: CancellationToken,
    pub(super) started: Instant,
    pub(super) reply: tokio::task::JoinHandle<Answered>,
}

/// The answer to the open question (pending while there is none).
async fn reply_of(question: &mut Option<Open>) -> Answered {
    match question {
        Some(open) => (&mut open.reply).await.unwrap_or(Answered::Lost),
        None => std::future::pending().await,
    }
}

fn which_main(outcome: &Outcome) -> usize {
    match outcome.which {
        Which::Main(i) | Which::Rollback(i) | Which::Finally(i) => i,
    }
}

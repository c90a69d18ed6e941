//! One action of a run (a step, a rollback body, a `finally` step): its
//! attempts with retries and backoff, each bounded by the timeout and the
//! run's cancellation, and the gates, `until` and outputs over its result.

use super::*;

/// Which action of the runbook a task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Which {
    Main(usize),
    Finally(usize),
    Rollback(usize),
}

/// A step or rollback body, as the attempt loop sees it.
pub(super) struct Action<'a> {
    pub(super) id: &'a str,
    pub(super) kind: &'a str,
    pub(super) with: &'a Param,
    pub(super) timeout: Option<Duration>,
    pub(super) retry: Option<&'a Retry>,
    pub(super) verify: &'a [Text],
    pub(super) outputs: &'a [(String, Text)],
    /// What tells its idempotency key from the step's: `:rollback` for a
    /// step's rollback body, which does the opposite of the step.
    pub(super) key_suffix: &'static str,
}

pub(super) fn action(runbook: &checked::Runbook, which: Which) -> Option<Action<'_>> {
    let from_step = |s| step_action(s);
    fn step_action(s: &checked::Step) -> Action<'_> {
        Action {
            id: &s.id,
            kind: &s.kind,
            with: &s.with,
            timeout: s.timeout,
            retry: s.retry.as_ref(),
            verify: &s.verify,
            outputs: &s.outputs,
            key_suffix: "",
        }
    }
    Some(match which {
        Which::Main(i) => from_step(&runbook.steps[i]),
        Which::Finally(i) => from_step(&runbook.finally[i]),
        Which::Rollback(i) => {
            let step = &runbook.steps[i];
            let body = step.rollback.as_ref()?;
            Action {
                id: &step.id,
                kind: &body.kind,
                with: &body.with,
                timeout: body.timeout,
                retry: body.retry.as_ref(),
                verify: &body.verify,
                outputs: &[],
                key_suffix: ":rollback",
            }
        }
    })
}

/// How one step (all its attempts) ended.
#[derive(Debug, Clone)]
pub(super) struct Outcome {
    pub(super) which: Which,
    pub(super) status: StepStatus,
    pub(super) outputs: Json,
    /// Why it failed (or was cancelled).
    pub(super) failure: Option<Failure>,
    /// How the kind undoes the step, for a step without a `rollback` of its own.
    pub(super) undo: Option<crate::step::Undo>,
    pub(super) attempts: u32,
    pub(super) duration: Duration,
}

impl Outcome {
    /// Why it did not succeed ("failed" when nothing more is known).
    pub(super) fn failure_or_default(&self) -> Failure {
        self.failure.clone().unwrap_or_else(|| Failure::Kind {
            message: "failed".into(),
            partial: None,
        })
    }
}

/// Shows what a step's output held back when its attempt ends, however it ends.
pub(super) struct FlushOutput<'a> {
    pub(super) host: &'a RunHost,
    pub(super) step: &'a str,
}

impl Drop for FlushOutput<'_> {
    fn drop(&mut self) {
        let held: Vec<(OutputStream, String)> = match self.host.streams.lock() {
            Ok(mut streams) => {
                let keys: Vec<_> = streams.keys().filter(|(s, _)| s == self.step).cloned().collect();
                keys.into_iter()
                    .filter_map(|key| {
                        let mut masker = streams.remove(&key)?;
                        Some((key.1, masker.flush(&self.host.redactor)?))
                    })
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        for (stream, line) in held {
            self.host.reporter.event(&Event::StepOutput {
                step: self.step.to_string(),
                stream,
                line,
            });
        }
    }
}

/// The delay before attempt `attempt + 1`.
pub(super) fn backoff_delay(retry: &Retry, attempt: u32) -> Duration {
    let base = match retry.backoff {
        Backoff::Fixed => retry.delay,
        Backoff::Exponential => retry
            .delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30))),
    };
    let capped = retry.max_delay.map_or(base, |max| base.min(max));
    if retry.jitter {
        capped.mul_f64(1.0 - fastrand::f64() * 0.5)
    } else {
        capped
    }
}

impl RunHost {
    /// Runs every attempt of an action (numbered on from `earlier`, the
    /// attempts made before the operator had it retried). Never panics,
    /// never hangs past cancellation plus the kill grace.
    pub(super) async fn run_action(
        &self,
        which: Which,
        cancel: CancellationToken,
        announce: bool,
        earlier: u32,
    ) -> Outcome {
        let started = Instant::now();
        let runbook = &self.compiled.runbook;
        let Some(action) = action(runbook, which) else {
            return Outcome {
                which,
                status: StepStatus::Failed,
                outputs: Json::Null,
                failure: Some(Failure::NotStarted {
                    why: "no such action".into(),
                }),
                undo: None,
                attempts: 0,
                duration: Duration::ZERO,
            };
        };
        let attempts = action.retry.map_or(1, |r| r.attempts.max(1));
        let mut outcome = Outcome {
            which,
            status: StepStatus::Failed,
            outputs: Json::Null,
            failure: None,
            undo: None,
            attempts: 0,
            duration: Duration::ZERO,
        };
        // A step without a `rollback` of its own may be undone by its kind.
        let undoable = matches!(which, Which::Main(i) if runbook.steps[i].rollback.is_none());
        for n in 1..=attempts {
            let attempt = earlier + n;
            outcome.attempts = attempt;
            let rendered = match self.renderer().params(action.with, action.kind) {
                Ok(rendered) => rendered,
                Err(e) => {
                    outcome.failure = Some(Failure::Evaluation { message: e });
                    break;
                }
            };
            if announce {
                self.reporter.event(&Event::StepStarted {
                    step: action.id.to_string(),
                    name: match which {
                        Which::Main(i) | Which::Rollback(i) => runbook.steps[i].name.clone(),
                        Which::Finally(k) => runbook.finally[k].name.clone(),
                    },
                    attempt,
                    action: self.describe(action.kind, rendered.shown()),
                });
                if attempts > 1 {
                    self.display.event(&Event::StepProgress {
                        step: action.id.to_string(),
                        note: format!("attempt {attempt} of {}", earlier + attempts),
                        next_in_ms: None,
                    });
                }
            }
            if !self.journaled() {
                // Its start could not be recorded: it must not start.
                outcome.status = StepStatus::Cancelled;
                outcome.failure = Some(Failure::NotStarted {
                    why: "not started: the journal could not be written".into(),
                });
                break;
            }
            let params = rendered.value;
            let undo_params = undoable.then(|| params.clone());
            let mut retry_helps = true;
            let result = self.attempt(&action, attempt, params, &cancel, &mut retry_helps).await;
            if cancel.is_cancelled() {
                // Who stopped it is the scheduler's to say.
                outcome.status = StepStatus::Cancelled;
                outcome.failure = Some(Failure::Cancelled {
                    by: Canceller::AnotherStep,
                });
                break;
            }
            let undo = match (&result, &undo_params) {
                (Ok(result), Some(params)) => self.registry.get(action.kind).and_then(|k| k.undo(params, result)),
                _ => None,
            };
            match result.and_then(|result| self.check(&action, &result)) {
                Ok(outputs) => {
                    outcome.undo = undo;
                    outcome.status = StepStatus::Succeeded;
                    outcome.outputs = outputs;
                    outcome.failure = None;
                    break;
                }
                Err(failure) => {
                    outcome.failure = Some(failure.clone());
                    if n < attempts
                        && retry_helps
                        && let Some(retry) = action.retry
                    {
                        let delay = backoff_delay(retry, n);
                        self.reporter.event(&Event::StepRetrying {
                            step: action.id.to_string(),
                            attempt,
                            error: failure.message(),
                            delay_ms: millis(delay),
                            failure: Some(failure),
                        });
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = cancel.cancelled() => {
                                outcome.status = StepStatus::Cancelled;
                                outcome.failure = Some(Failure::Cancelled { by: Canceller::AnotherStep });
                                break;
                            }
                        }
                    } else {
                        // No retry: the kind said none can help (or none is left).
                        break;
                    }
                }
            }
        }
        outcome.duration = started.elapsed();
        outcome
    }

    /// One attempt: the kind's future, bounded by the timeout and the run's cancellation.
    pub(super) async fn attempt(
        &self,
        action: &Action<'_>,
        attempt: u32,
        params: Json,
        cancel: &CancellationToken,
        retry_helps: &mut bool,
    ) -> Result<Json, Failure> {
        let Some(kind) = self.registry.get(action.kind).cloned() else {
            return Err(Failure::NotStarted {
                why: format!("unknown step kind `{}`", action.kind),
            });
        };
        let attempt_cancel = cancel.child_token();
        let cx = StepContext {
            run_id: self.run_id.clone(),
            step_id: action.id.to_string(),
            attempt,
            idempotency_key: format!("{}:{}{}", self.run_id, action.id, action.key_suffix),
            params,
            cancel: attempt_cancel.clone(),
            kill_grace: self.kill_grace,
            host: self.this.upgrade().ok_or_else(|| Failure::NotStarted {
                why: "the run has ended".into(),
            })?,
        };
        let _flush = FlushOutput {
            host: self,
            step: action.id,
        };
        self.set_running_kind(action.id, action.kind);
        let mut future = kind.run(cx);
        let timeout = action.timeout;
        // Time at a prompt the step put (a `confirm` step) does not count.
        let expired = async {
            match timeout {
                Some(t) => self.clocks.sleep(t, Some(action.id)).await,
                None => std::future::pending().await,
            }
        };
        let bound = self.kill_grace + Duration::from_secs(2);
        tokio::select! {
            result = &mut future => result.map_err(|error| {
                // The kind knows another attempt cannot help.
                *retry_helps = error.retryable;
                Failure::kind(error)
            }),
            () = expired => {
                attempt_cancel.cancel();
                // What the attempt had produced when it was stopped (an exit
                // code, output) is kept: it often says why it hung.
                let partial = tokio::time::timeout(bound, &mut future).await.ok().and_then(|r| r.err()).and_then(|e| e.result);
                Err(Failure::TimedOut { after_ms: millis(timeout.unwrap_or_default()), partial })
            }
            () = cancel.cancelled() => {
                let _ = tokio::time::timeout(bound, &mut future).await;
                Err(Failure::Cancelled { by: Canceller::AnotherStep })
            }
        }
    }

    pub(super) fn set_running_kind(&self, step: &str, kind: &str) {
        if let Ok(mut kinds) = self.running_kinds.lock() {
            kinds.insert(step.to_string(), kind.to_string());
        }
    }

    /// Runs the action a kind gave to undo a step (parameters already concrete).
    pub(super) async fn run_undo(
        &self,
        step: &str,
        undo: crate::step::Undo,
        cancel: CancellationToken,
    ) -> Result<(), Failure> {
        self.set_running_kind(step, &undo.kind);
        let kind = self
            .registry
            .get(&undo.kind)
            .cloned()
            .ok_or_else(|| Failure::NotStarted {
                why: format!("unknown step kind `{}`", undo.kind),
            })?;
        let cx = StepContext {
            run_id: self.run_id.clone(),
            step_id: step.to_string(),
            attempt: 1,
            idempotency_key: format!("{}:{step}:undo", self.run_id),
            params: undo.params,
            cancel,
            kill_grace: self.kill_grace,
            host: self.this.upgrade().ok_or_else(|| Failure::NotStarted {
                why: "the run has ended".into(),
            })?,
        };
        kind.run(cx).await.map(|_| ()).map_err(Failure::kind)
    }

    /// Verify gates, `retry.until` and outputs over a result.
    pub(super) fn check(&self, action: &Action<'_>, result: &Json) -> Result<Json, Failure> {
        let ctx = self.ctx.value(Some(result));
        for gate in action.verify {
            match template::eval(&gate.text, &ctx) {
                Ok(value) if value.is_true() => {}
                Ok(_) => {
                    return Err(Failure::Gate {
                        expression: gate.text.clone(),
                        seen: explain(&gate.text, &ctx, &self.redactor),
                    });
                }
                Err(e) => {
                    return Err(Failure::Gate {
                        expression: gate.text.clone(),
                        seen: format!("cannot evaluate: {}", template::reason(&e)),
                    });
                }
            }
        }
        if let Some(until) = action.retry.and_then(|r| r.until.as_ref()) {
            match template::eval(&until.text, &ctx) {
                Ok(value) if value.is_true() => {}
                Ok(_) => {
                    return Err(Failure::Until {
                        expression: until.text.clone(),
                        seen: explain(&until.text, &ctx, &self.redactor),
                    });
                }
                Err(e) => {
                    return Err(Failure::Evaluation {
                        message: format!("cannot evaluate `{}`: {}", until.text, template::reason(&e)),
                    });
                }
            }
        }
        let mut outputs = serde_json::Map::new();
        let renderer = self.renderer();
        for (name, expression) in action.outputs {
            match renderer.expression(expression, result) {
                Ok(value) => {
                    outputs.insert(name.clone(), serde_json::to_value(&value).unwrap_or(Json::Null));
                }
                Err(e) => {
                    return Err(Failure::Evaluation {
                        message: format!(
                            "cannot compute output `{name}` = `{}`: {}",
                            expression.text,
                            template::reason(&e)
                        ),
                    });
                }
            }
        }
        Ok(Json::Object(outputs))
    }
}

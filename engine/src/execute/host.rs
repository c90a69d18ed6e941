//! What every task of a run shares, and the engine's side of the
//! [`Host`] a step kind talks to: nested probes, expressions, questions,
//! output, checkpoints.

use super::*;

/// What every task of a run shares, and the engine's side of [`Host`].
pub(super) struct RunHost {
    pub(super) this: Weak<RunHost>,
    pub(super) compiled: Arc<Compiled>,
    pub(super) state_dir: Option<PathBuf>,
    /// The terminal and logs, without the journal: child runs report here.
    pub(super) display: Arc<dyn Reporter>,
    pub(super) registry: Arc<Registry>,
    pub(super) ctx: RunContext,
    pub(super) reporter: Arc<dyn Reporter>,
    pub(super) operator: Arc<dyn Operator>,
    pub(super) run_id: String,
    pub(super) kill_grace: Duration,
    pub(super) yes: bool,
    /// Held while a question is on the screen: one at a time.
    pub(super) prompt: Arc<tokio::sync::Mutex<()>>,
    /// Who answers the questions, for the audit trail.
    pub(super) operator_name: String,
    /// Time spent at prompts, which counts against no timeout.
    pub(super) clocks: PromptClocks,
    /// The last lines each step printed.
    pub(super) tails: std::sync::Mutex<HashMap<String, std::collections::VecDeque<String>>>,
    /// A `confirm` step answered "no": how the run is to stop.
    pub(super) declined: std::sync::Mutex<HashMap<String, Declined>>,
    /// The run's journal, for records a kind must see written before it acts.
    pub(super) journal: Option<Arc<JournalWriter>>,
    pub(super) redactor: Arc<Redactor>,
    /// The environment the run was given, which its child runs get too.
    pub(super) env: Env,
    /// The kind each step's current action runs (a rollback body's, an undo's).
    pub(super) running_kinds: std::sync::Mutex<HashMap<String, String>>,
    /// Output held back per step and stream, see [`crate::secrets::StreamMasker`].
    pub(super) streams: std::sync::Mutex<HashMap<(String, OutputStream), crate::secrets::StreamMasker>>,
}

impl Host for RunHost {
    fn run_nested(&self, kind: &str, params: Json, cancel: CancellationToken) -> StepFuture<'_> {
        let kind_name = kind.to_string();
        Box::pin(async move {
            let kind = self
                .registry
                .get(&kind_name)
                .cloned()
                .ok_or_else(|| StepError::new(format!("unknown step kind `{kind_name}`")))?;
            let host: Arc<dyn Host> = self.this.upgrade().ok_or_else(|| StepError::new("the run has ended"))?;
            let cx = StepContext {
                run_id: self.run_id.clone(),
                step_id: format!("{kind_name} probe"),
                attempt: 1,
                idempotency_key: format!("{}:{kind_name}", self.run_id),
                params,
                cancel,
                kill_grace: self.kill_grace,
                host,
            };
            kind.run(cx).await
        })
    }

    fn eval(&self, expression: &str, result: &Json) -> Result<Json, String> {
        let value = template::eval(expression, &self.ctx.value(Some(result)))
            .map_err(|e| format!("cannot evaluate `{expression}`: {}", template::reason(&e)))?;
        serde_json::to_value(&value).map_err(|e| e.to_string())
    }

    fn confirm<'a>(
        &'a self,
        step: &'a str,
        message: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let message = self.redactor.redact(message).into_owned();
            if self.yes {
                self.decided(Some(step), &message, "yes (--yes)", Duration::ZERO);
                return Ok(true);
            }
            if !self.operator.is_interactive() {
                return Err("no terminal to ask for approval on; run with `--yes` to approve".into());
            }
            // Withdrawn when the step is given up: its answer is not taken.
            let withdrawn = CancellationToken::new();
            let _withdraw = withdrawn.clone().drop_guard();
            let guard = self.prompt.clone().lock_owned().await;
            let _paused = self.clocks.pause(Some(step));
            let asked = Instant::now();
            let operator = self.operator.clone();
            let (id, text) = (step.to_string(), message.clone());
            let reply = tokio::task::spawn_blocking(move || {
                let _guard = guard;
                operator.confirm(&Question {
                    step: &id,
                    message: &text,
                    action: "approval step",
                    detail: "",
                    can_skip: false,
                    withdrawn: &withdrawn,
                })
            })
            .await
            .map_err(|e| e.to_string())?;
            let (answer, declined) = match reply {
                Reply::Given(ConfirmAnswer::Yes) => ("yes".to_string(), None),
                Reply::Given(answer @ ConfirmAnswer::Stop) => (answer.words().to_string(), Some(Declined::Stop)),
                Reply::Given(answer) => (answer.words().to_string(), Some(Declined::Rollback)),
                Reply::Silence { waited } => (silence_words(waited), Some(Declined::Rollback)),
                Reply::Interrupted => (INTERRUPTED_WORDS.to_string(), Some(Declined::Interrupted)),
                Reply::Withdrawn => {
                    self.decided(Some(step), &message, WITHDRAWN_WORDS, asked.elapsed());
                    return Err("the question was withdrawn: the run was stopping".into());
                }
            };
            self.decided(Some(step), &message, &answer, asked.elapsed());
            match declined {
                None => Ok(true),
                Some(declined) => {
                    if let Ok(mut all) = self.declined.lock() {
                        all.insert(step.to_string(), declined);
                    }
                    Ok(false)
                }
            }
        })
    }

    fn output(&self, step: &str, stream: OutputStream, text: &str, line_end: bool) {
        let shown = if line_end && self.redactor.is_empty() {
            Some(text.to_string())
        } else {
            // Masked over the pieces of a long line, so that a secret cut in
            // two by a piece boundary is still masked.
            let Ok(mut streams) = self.streams.lock() else { return };
            let stream_masker = streams.entry((step.to_string(), stream)).or_default();
            let shown = stream_masker.push(&self.redactor, text, line_end);
            if line_end {
                streams.remove(&(step.to_string(), stream));
            }
            shown
        };
        if let Some(line) = shown {
            self.keep_tail(step, &line);
            self.reporter.event(&Event::StepOutput {
                step: step.to_string(),
                stream,
                line,
            });
        }
    }

    fn checkpoint(&self, step: &str, state: Json) -> Result<(), String> {
        let kind = self.kind_of(step).unwrap_or_default();
        let event = Event::StepCheckpoint {
            step: step.to_string(),
            kind,
            state,
        };
        self.reporter.event(&event);
        match &self.journal {
            Some(journal) => match journal.failure() {
                Some(e) => Err(format!("the journal cannot be written ({e}); nothing more was done")),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    fn add_secret(&self, value: &str) {
        if !value.is_empty() {
            self.redactor.add(value);
        }
    }

    fn mask(&self, text: &str) -> String {
        self.redactor.redact(text).into_owned()
    }

    fn progress(&self, step: &str, note: &str, next_in: Option<Duration>) {
        self.display.event(&Event::StepProgress {
            step: step.to_string(),
            note: note.to_string(),
            next_in_ms: next_in.map(millis),
        });
    }
    fn log(&self, step: &str, level: &str, message: &str) {
        self.reporter.event(&Event::Log {
            step: step.to_string(),
            level: level.to_string(),
            message: message.to_string(),
        });
    }
    fn run_runbook(&self, step: &str, inputs: Json, cancel: CancellationToken) -> StepFuture<'_> {
        let step = step.to_string();
        Box::pin(async move {
            let child = self.compiled.children.get(&step).cloned().ok_or_else(|| {
                StepError::new(format!(
                    "step `{step}` has no runbook to run (it was not loaded from a file)"
                ))
            })?;
            let child_id = child_run_id(&self.run_id, &step);
            let mode = match &self.state_dir {
                Some(dir) => match crate::journal::read(dir, &child_id) {
                    Ok(journal) => match journal.finished() {
                        // Already ran to the end (a resumed parent): its outputs stand.
                        Some(summary) if summary.status == RunStatus::Succeeded => return Ok(child_result(summary)),
                        Some(summary) => {
                            return Err(StepError::new(format!(
                                "the runbook already ran as run {child_id} and ended {}",
                                summary.status.as_str()
                            )));
                        }
                        None => Mode::Resume(Box::new(journal)),
                    },
                    Err(crate::journal::JournalError::NotFound { .. }) => Mode::Run,
                    Err(e) => return Err(StepError::new(e.to_string())),
                },
                None => Mode::Run,
            };
            let inputs = inputs
                .as_object()
                .map(|map| {
                    map.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            let summary = self.execute_child(&step, child, inputs, mode, cancel).await?;
            if summary.status == RunStatus::Succeeded {
                Ok(child_result(&summary))
            } else {
                Err(StepError::new(format!(
                    "the runbook `{}` {} (run {}){}",
                    summary.runbook,
                    summary.status.as_str().replace('_', " "),
                    summary.run_id,
                    summary.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
                ))
                .with_result(child_result(&summary)))
            }
        })
    }
}

impl RunHost {
    /// Whether everything so far could be journaled (always, without a journal).
    pub(super) fn journaled(&self) -> bool {
        self.journal.as_ref().is_none_or(|j| j.failure().is_none())
    }

    /// Whether a step of this kind runs a child runbook.
    pub(super) fn runs_child(&self, kind: &str) -> bool {
        self.registry
            .get(kind)
            .is_some_and(|k| k.child_runbook_param().is_some())
    }

    pub(super) fn renderer(&self) -> context::Renderer<'_> {
        self.ctx.renderer(&self.registry, &self.redactor)
    }

    /// The kind running as step `step` now: its rollback body's while it is
    /// being rolled back (the journal says which), else the step's own.
    pub(super) fn kind_of(&self, step: &str) -> Option<String> {
        if let Some(kind) = self.running_kinds.lock().ok().and_then(|k| k.get(step).cloned()) {
            return Some(kind);
        }
        let runbook = &self.compiled.runbook;
        let found = runbook.steps.iter().chain(&runbook.finally).find(|s| s.id == step)?;
        Some(found.kind.clone())
    }

    /// What a step will do, in words: from parameters masked before the
    /// kind can cut them short.
    pub(super) fn describe(&self, kind: &str, params: &Json) -> String {
        let mut params = params.clone();
        self.redactor.redact_json(&mut params);
        self.registry
            .get(kind)
            .map_or_else(|| kind.to_string(), |k| k.describe(&params))
    }
}

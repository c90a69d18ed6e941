//! Runs of other runbooks (the `runbook` kind): a child run journaled
//! beside its parent, sharing its secrets, environment and operator, and
//! rolled back with it.

use super::*;

/// The id of the run a `runbook` step starts: stable, so a resumed parent finds it.
pub(super) fn child_run_id(parent: &str, step: &str) -> String {
    format!("{parent}.{step}")
}

pub(super) fn child_result(summary: &RunSummary) -> Json {
    let outputs: serde_json::Map<String, Json> = summary
        .steps
        .iter()
        .filter(|s| !s.outputs.is_null())
        .map(|s| (s.id.clone(), s.outputs.clone()))
        .collect();
    serde_json::json!({ "run_id": summary.run_id, "status": summary.status.as_str(), "outputs": outputs })
}

impl RunHost {
    /// Runs a child runbook (or rolls it back) with this run's operator and display.
    pub(super) fn execute_child<'a>(
        &'a self,
        step: &'a str,
        child: Arc<Compiled>,
        inputs: Vec<(String, String)>,
        mode: Mode,
        cancel: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = Result<RunSummary, StepError>> + Send + 'a>> {
        Box::pin(self.execute_child_inner(step, child, inputs, mode, cancel))
    }

    pub(super) async fn execute_child_inner(
        &self,
        step: &str,
        child: Arc<Compiled>,
        inputs: Vec<(String, String)>,
        mode: Mode,
        cancel: CancellationToken,
    ) -> Result<RunSummary, StepError> {
        let child_id = child_run_id(&self.run_id, step);
        let origin = child.origin.clone();
        let request = RunRequest {
            inputs,
            env: self.env.clone(),
            base_dir: origin
                .as_ref()
                .and_then(|o| o.path.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_default(),
            step_mode: false,
            yes: self.yes,
            no_rollback: false,
            timeout: None,
            kill_grace: self.kill_grace,
            run_id: Some(child_id),
            secrets: Some(self.redactor.clone()),
            state: match (&self.state_dir, origin) {
                (Some(dir), Some(origin)) => Some(StateRequest {
                    state_dir: dir.clone(),
                    runbook_path: origin.path,
                    runbook_text: origin.text,
                }),
                _ => None,
            },
            mode,
            operator: self.operator_name.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(async move {
            cancel.cancelled().await;
            let _ = tx.send("the parent run stopped");
        });
        let operator: Arc<dyn Operator> = Arc::new(NestedOperator(self.operator.clone()));
        let reporter: Arc<dyn Reporter> = Arc::new(ChildReporter {
            step: step.to_string(),
            inner: self.display.clone(),
        });
        let result = execute(child, self.registry.clone(), request, operator, reporter, rx).await;
        watcher.abort();
        result.map_err(|diagnostics| {
            StepError::new(
                diagnostics
                    .iter()
                    .map(|d| d.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }

    /// Rolls back the child run of a `runbook` step, from its journal.
    /// (Boxed: runs nest, so their futures are recursive.)
    pub(super) fn rollback_child<'a>(
        &'a self,
        step: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let dir = self
                .state_dir
                .as_ref()
                .ok_or("the child run has no journal to roll back from")?;
            let journal = crate::journal::read(dir, &child_run_id(&self.run_id, step)).map_err(|e| e.to_string())?;
            let child = self
                .compiled
                .children
                .get(step)
                .cloned()
                .ok_or("the child runbook is not loaded")?;
            let summary = self
                .execute_child(
                    step,
                    child,
                    Vec::new(),
                    Mode::Rollback(Box::new(journal)),
                    CancellationToken::new(),
                )
                .await
                .map_err(|e| e.message)?;
            match summary.status {
                RunStatus::RolledBack => Ok(()),
                other => Err(format!("the child run ended {}", other.as_str())),
            }
        })
    }
}

/// A child run asks the same person, but a stop from its parent rolls it back without asking.
pub(super) struct NestedOperator(Arc<dyn Operator>);

impl Operator for NestedOperator {
    fn is_interactive(&self) -> bool {
        self.0.is_interactive()
    }
    fn confirm(&self, question: &Question<'_>) -> Reply<ConfirmAnswer> {
        self.0.confirm(question)
    }
    fn before_step(&self, question: &Question<'_>) -> Reply<StepAnswer> {
        self.0.before_step(question)
    }
    fn failed(&self, setback: &Setback<'_>) -> Reply<FailureAnswer> {
        self.0.failed(setback)
    }
    fn interrupted(&self) -> InterruptAnswer {
        InterruptAnswer::Rollback
    }
    fn abandon_rollback(&self) -> bool {
        false
    }
    fn approve_rollback(&self, _: &Undoing<'_>) -> Reply<bool> {
        // Part of the parent's rollback, which was decided there.
        Reply::Given(true)
    }
}

/// Shows a child run's events as steps of the parent (`parent_step/child_step`).
pub(super) struct ChildReporter {
    pub(super) step: String,
    pub(super) inner: Arc<dyn Reporter>,
}

impl Reporter for ChildReporter {
    fn event(&self, event: &Event) {
        let event = match event {
            Event::RunStarted {
                run_id, runbook, steps, ..
            } => Event::Log {
                step: self.step.clone(),
                level: "info".into(),
                message: format!("runbook `{runbook}` starts as run {run_id} ({steps} steps)"),
            },
            Event::RunFinished { status, .. } => Event::Log {
                step: self.step.clone(),
                level: "info".into(),
                message: format!("runbook finished: {}", status.as_str()),
            },
            other => {
                let Ok(mut value) = serde_json::to_value(other) else {
                    return;
                };
                if let Some(step) = value.get_mut("step")
                    && let Some(name) = step.as_str()
                {
                    *step = Json::String(format!("{}/{name}", self.step));
                }
                match serde_json::from_value(value) {
                    Ok(event) => event,
                    Err(_) => return,
                }
            }
        };
        self.inner.event(&event);
    }
}

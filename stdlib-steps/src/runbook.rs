//! The `runbook` step kind: runs another runbook file as one step. Its
//! outputs become this step's result; when the parent rolls back, the child
//! run is rolled back too (unless the step has a `rollback` of its own).
//! The engine loads and checks the child at compile time (cycles between
//! files are errors) and runs it as a journaled child run.

use runbook_engine::step::{StepContext, StepFuture, StepKind};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Runs another runbook.
#[derive(Debug, Clone, Copy, Default)]
pub struct Runbook;

/// Parameters of a `runbook` step.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunbookParams {
    /// The runbook file to run, relative to this runbook's folder (a plain path, no template).
    pub file: String,
    /// Its inputs, by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, Json>,
}

impl StepKind for Runbook {
    fn child_runbook_param(&self) -> Option<&'static str> {
        Some("file")
    }

    fn name(&self) -> &'static str {
        "runbook"
    }

    fn summary(&self) -> &'static str {
        "Run another runbook file as one step; its rollbacks join this run's."
    }

    fn params_schema(&self) -> Json {
        crate::schema_of::<RunbookParams>()
    }

    fn describe(&self, params: &Json) -> String {
        let file = params.get("file").and_then(Json::as_str).unwrap_or("(no file given)");
        let inputs: Vec<&str> = params
            .get("inputs")
            .and_then(Json::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if inputs.is_empty() {
            format!("run the runbook `{file}`")
        } else {
            format!("run the runbook `{file}` with inputs {}", inputs.join(", "))
        }
    }

    /// Result: `{"run_id": ..., "status": "succeeded", "outputs": {step: {...}}}`.
    fn run(&self, cx: StepContext) -> StepFuture<'_> {
        Box::pin(async move {
            let params: RunbookParams = crate::read_params("runbook", &cx.params)?;
            let inputs = serde_json::to_value(params.inputs).unwrap_or(Json::Null);
            cx.host.run_runbook(&cx.step_id, inputs, cx.cancel.clone()).await
        })
    }
}

//! The `runbook` step kind: runs another runbook file as one step. Its
//! outputs become this step's result; when the parent rolls back, the child
//! run is rolled back too (unless the step has a `rollback` of its own).
//! The engine loads and checks the child at compile time (cycles between
//! files are errors) and runs it as a journaled child run.

use indexmap::IndexMap;
use runbook_engine::kit::{Kind, Traits};
use runbook_engine::step::{StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;

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
    pub inputs: IndexMap<String, Json>,
}

impl Kind for Runbook {
    type Params = RunbookParams;
    const NAME: &'static str = "runbook";
    const SUMMARY: &'static str = "Run another runbook file as one step; its rollbacks join this run's.";
    const TRAITS: Traits = Traits {
        child_runbook: Some("file"),
        ..Traits::NONE
    };

    fn describe(&self, params: &RunbookParams) -> String {
        if params.inputs.is_empty() {
            format!("run the runbook `{}`", params.file)
        } else {
            let inputs: Vec<&str> = params.inputs.keys().map(String::as_str).collect();
            format!("run the runbook `{}` with inputs {}", params.file, inputs.join(", "))
        }
    }

    /// Result: `{"run_id": ..., "status": "succeeded", "outputs": {step: {...}}}`.
    async fn run(&self, params: RunbookParams, cx: StepContext) -> Result<Json, StepError> {
        let inputs = serde_json::to_value(params.inputs).unwrap_or(Json::Null);
        cx.host.run_runbook(&cx.step_id, inputs, cx.cancel.clone()).await
    }
}

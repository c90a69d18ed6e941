//! The `confirm` step kind: stops and asks the operator before going on.

use runbook_engine::kit::{Kind, Traits};
use runbook_engine::step::{StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::json;

use crate::words::quoted;

/// Asks the operator a yes/no question; the run goes on only on yes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Confirm;

/// Parameters of a `confirm` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmParams {
    /// The question put to the operator, such as `Switch DNS to the standby?`.
    #[schemars(length(min = 1))]
    pub message: String,
}

impl Kind for Confirm {
    type Params = ConfirmParams;
    const NAME: &'static str = "confirm";
    const SUMMARY: &'static str = "Ask the operator to confirm before the run goes on.";
    const TRAITS: Traits = Traits {
        read_only: true,
        asks_operator: true,
        ..Traits::NONE
    };

    fn describe(&self, params: &ConfirmParams) -> String {
        format!("ask the operator: {}", quoted(&params.message))
    }

    /// Result: `{"confirmed": true}`; a "no" fails the step.
    async fn run(&self, params: ConfirmParams, cx: StepContext) -> Result<Json, StepError> {
        let answer = tokio::select! {
            answer = cx.host.confirm(&cx.step_id, &params.message) => answer,
            () = cx.cancel.cancelled() => return Err(crate::cancelled()),
        };
        match answer {
            Ok(true) => Ok(json!({"confirmed": true})),
            Ok(false) => Err(StepError::new(format!("the operator declined: {}", params.message))
                .with_result(json!({"confirmed": false}))),
            Err(e) => Err(StepError::new(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn good_params_pass() {
        assert_valid::<ConfirmParams>(
            "confirm",
            json!({"message": "Switch {{ inputs.domain }} to failover mode?"}),
        );
        assert_valid::<ConfirmParams>("confirm", json!({"message": "Go on?"}));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("confirm", json!({}), "", "missing parameter `message`");
        assert_rejected(
            "confirm",
            json!({"message": ""}),
            "/message",
            "needs at least 1 character",
        );
        assert_rejected(
            "confirm",
            json!({"message": "Go?", "default": "yes"}),
            "/default",
            "unknown parameter `default`",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "confirm",
            &[
                json!({"message": "Switch api.example.com to failover mode?"}),
                json!({"message": "Restore <steps.pick.outputs.snapshot>?\nThis overwrites the database."}),
                json!({"message": ["not", "text"]}),
            ],
        ));
    }

    #[tokio::test]
    async fn goes_on_only_on_yes() {
        let params = json!({"message": "Switch DNS to the standby?"});
        let yes = Arc::new(FakeHost::new().with_answer(Ok(true)));
        assert_eq!(
            run("confirm", &yes, params.clone()).await.unwrap(),
            json!({"confirmed": true})
        );

        let no = Arc::new(FakeHost::new().with_answer(Ok(false)));
        let error = run("confirm", &no, params.clone()).await.unwrap_err();
        assert_eq!(error.message, "the operator declined: Switch DNS to the standby?");
        assert_eq!(error.result, Some(json!({"confirmed": false})));

        let nobody = Arc::new(FakeHost::new().with_answer(Err("no terminal to ask on; pass `--yes`".into())));
        let error = run("confirm", &nobody, params).await.unwrap_err();
        assert_eq!(error.message, "no terminal to ask on; pass `--yes`");
    }
}

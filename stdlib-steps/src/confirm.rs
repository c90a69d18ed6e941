//! The `confirm` step kind: stops and asks the operator before going on.

use runbook_engine::step::StepKind;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::words::{field, quoted};

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

impl StepKind for Confirm {
    fn name(&self) -> &'static str {
        "confirm"
    }

    fn summary(&self) -> &'static str {
        "Ask the operator to confirm before the run goes on."
    }

    fn params_schema(&self) -> Json {
        crate::schema_of::<ConfirmParams>()
    }

    fn read_only(&self) -> bool {
        true
    }

    fn describe(&self, params: &Json) -> String {
        match field(params, "message") {
            Some(message) => format!("ask the operator: {}", quoted(&message)),
            None => "ask the operator to confirm".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{assert_rejected, assert_valid, describe_all};
    use serde_json::json;

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
}

//! The `assert` step kind: fails the run unless expressions hold.

use runbook_engine::kit::{Kind, Traits};
use runbook_engine::step::{StepContext, StepError};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde_json::Value as Json;
use serde_json::json;
use std::borrow::Cow;

use crate::words::{code, series};

/// Checks that expressions hold, and fails with `message` when one does not.
#[derive(Debug, Clone, Copy, Default)]
pub struct Assert;

/// Parameters of an `assert` step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertParams {
    /// An expression that must be true (such as
    /// `steps.health.outputs.healthy`), or a list of them that must all be.
    pub that: Conditions,

    /// What to say when a condition does not hold.
    #[serde(default)]
    #[schemars(with = "String")]
    pub message: Option<String>,
}

/// One expression, or a list of expressions that must all hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Conditions {
    One(String),
    All(Vec<String>),
}

impl Conditions {
    /// The expressions, one or many.
    pub fn expressions(&self) -> &[String] {
        match self {
            Conditions::One(one) => std::slice::from_ref(one),
            Conditions::All(all) => all,
        }
    }
}

impl JsonSchema for Conditions {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Conditions".into()
    }

    // One flat schema rather than `anyOf`, so that a mistake is reported
    // precisely (`minLength` applies to strings only, `items` to lists only).
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "array"],
            "minLength": 1,
            "items": { "type": "string", "minLength": 1 },
            "minItems": 1
        })
    }
}

impl Kind for Assert {
    type Params = AssertParams;
    const NAME: &'static str = "assert";
    const SUMMARY: &'static str = "Check that expressions hold; fail the run if one does not.";
    const TRAITS: Traits = Traits {
        read_only: true,
        expression_params: &["/that"],
        ..Traits::NONE
    };

    fn describe(&self, params: &AssertParams) -> String {
        let conditions: Vec<String> = params.that.expressions().iter().map(|c| code(c)).collect();
        if conditions.is_empty() {
            return "check nothing (no condition given)".to_string();
        }
        format!("check that {}", series(&conditions, "and"))
    }

    /// Result: `{"checked": n}`. The first condition that does not hold
    /// fails the step, with `{"checked": n, "failed": "<expression>",
    /// "value": <its value>}`.
    async fn run(&self, params: AssertParams, cx: StepContext) -> Result<Json, StepError> {
        let expressions = params.that.expressions();
        for (checked, expression) in expressions.iter().enumerate() {
            // The host's error names the expression.
            let value = cx.host.eval(expression, &Json::Null).map_err(StepError::new)?;
            if !crate::is_truthy(&value) {
                let shown = crate::words::shorten(&value.to_string());
                let mut message = format!("`{expression}` does not hold (it is {shown})");
                if let Some(said) = &params.message {
                    message = format!("{said}: {message}");
                }
                return Err(StepError::new(message)
                    .with_result(json!({"checked": checked, "failed": expression, "value": value})));
            }
        }
        Ok(json!({"checked": expressions.len()}))
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
        assert_valid::<AssertParams>("assert", json!({"that": "steps.health.outputs.healthy"}));
        assert_valid::<AssertParams>(
            "assert",
            json!({"that": ["inputs.n > 0", "inputs.n < 10"], "message": "n out of range"}),
        );
    }

    #[test]
    fn params_read_at_run_time() {
        let params: AssertParams = serde_json::from_value(json!({"that": "a"})).unwrap();
        assert_eq!(params.that.expressions(), ["a"]);
        let params: AssertParams = serde_json::from_value(json!({"that": ["a", "b"]})).unwrap();
        assert_eq!(params.that.expressions(), ["a", "b"]);
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("assert", json!({"message": "x"}), "", "missing parameter `that`");
        assert_rejected("assert", json!({"that": []}), "/that", "needs at least 1 item");
        assert_rejected("assert", json!({"that": ""}), "/that", "needs at least 1 character");
        assert_rejected(
            "assert",
            json!({"that": true}),
            "/that",
            "`that` must be a string or a list, found a boolean",
        );
        assert_rejected("assert", json!({"that": ["a", 1]}), "/that/1", "must be a string");
        assert_rejected(
            "assert",
            json!({"that": "a", "msg": "x"}),
            "/msg",
            "unknown parameter `msg`",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "assert",
            &[
                json!({"that": "steps.health.outputs.healthy"}),
                json!({"that": ["a", "b"], "message": "not ready"}),
                json!({"that": ["inputs.n > 0", "inputs.n < 10", "inputs.domain != ''"]}),
                json!({"that": []}),
            ],
        ));
    }

    fn host() -> Arc<FakeHost> {
        Arc::new(FakeHost::new().with_context(json!({"inputs": {"n": 5, "name": ""}})))
    }

    #[tokio::test]
    async fn passes_when_every_condition_holds() {
        let result = run("assert", &host(), json!({"that": ["inputs.n > 0", "inputs.n < 10"]})).await;
        assert_eq!(result.unwrap(), json!({"checked": 2}));
        let result = run("assert", &host(), json!({"that": "inputs.n"})).await;
        assert_eq!(result.unwrap(), json!({"checked": 1}));
    }

    #[tokio::test]
    async fn names_the_first_condition_that_does_not_hold() {
        let error = run(
            "assert",
            &host(),
            json!({"that": ["inputs.n > 0", "inputs.n < 3", "inputs.n < 2"], "message": "n out of range"}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "n out of range: `inputs.n < 3` does not hold (it is false)"
        );
        assert_eq!(
            error.result,
            Some(json!({"checked": 1, "failed": "inputs.n < 3", "value": false}))
        );

        let error = run("assert", &host(), json!({"that": "inputs.name"}))
            .await
            .unwrap_err();
        assert_eq!(error.message, r#"`inputs.name` does not hold (it is "")"#);
    }

    #[tokio::test]
    async fn an_expression_that_cannot_be_evaluated_fails() {
        let error = run("assert", &host(), json!({"that": "inputs.m > 0"}))
            .await
            .unwrap_err();
        assert!(error.message.starts_with("cannot evaluate `inputs.m > 0`: "), "{error}");
    }
}

//! The `json.validate` step kind: checks that a file is valid JSON and, with
//! a JSON Schema, that it has the expected shape, such as "a snapshot whose
//! counters are all above zero" before restoring it.

use runbook_engine::kit::{Kind, Templated, Traits};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};
use std::path::Path;

use crate::file_work::blocking;
use crate::json_input;
use crate::words::code;

/// Checks JSON against a JSON Schema.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonValidate;

/// Parameters of a `json.validate` step: the JSON (`file` or `value`) and,
/// optionally, the schema it must match (`schema` or `schema_file`).
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonValidateParams {
    /// A JSON file to check. Give either `file` or `value`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub file: Option<String>,

    /// A value to check instead of a file, such as a previous step's output
    /// (`"{{ steps.api.outputs.body }}"`: one expression keeps its type).
    /// Give either `file` or `value`.
    #[serde(default, deserialize_with = "json_input::present")]
    #[schemars(with = "Json")]
    pub value: Option<Json>,

    /// The JSON Schema the JSON must match, written inline. Without
    /// `schema` or `schema_file` a `file` is only checked to be valid JSON.
    #[serde(default)]
    #[schemars(with = "Templated<Map<String, Json>>")]
    pub schema: Option<Templated<Map<String, Json>>>,

    /// A file holding the JSON Schema, instead of `schema`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub schema_file: Option<String>,
}

/// How many schema errors the result lists.
const MAX_ERRORS: usize = 100;

/// How many the message names.
const ERRORS_SHOWN: usize = 3;

impl Kind for JsonValidate {
    type Params = JsonValidateParams;
    const NAME: &'static str = "json.validate";
    const SUMMARY: &'static str = "Check that a file or value is valid JSON matching a JSON Schema.";
    const TRAITS: Traits = Traits {
        read_only: true,
        ..Traits::NONE
    };

    fn params_rules(&self) -> Vec<Json> {
        vec![
            runbook_engine::kit::exactly_one_of(&["file", "value"]),
            runbook_engine::kit::not_both("schema", "schema_file"),
            json!({ "if": { "required": ["value"] }, "then": runbook_engine::kit::exactly_one_of(&["schema", "schema_file"]) }),
        ]
    }

    fn validate(&self, params: &JsonValidateParams) -> Vec<ParamProblem> {
        let mut problems: Vec<ParamProblem> = json_input::check(params.file.as_deref(), params.value.as_ref())
            .into_iter()
            .collect();
        let schema = params.schema.as_ref();
        let schema_file = params.schema_file.is_some();
        if schema.is_some() && schema_file {
            problems.push(
                ParamProblem::new("/schema_file", "`schema` and `schema_file` are both given")
                    .with_help("keep one of them"),
            );
        }
        if schema.is_none() && !schema_file && params.value.is_some() {
            problems.push(
                ParamProblem::new("", "nothing to check: `value` is JSON already")
                    .with_help("add `schema:` or `schema_file:` with the JSON Schema it must match"),
            );
        }
        // An inline schema is judged now, unless it still holds templates.
        if let Some(schema) = schema.and_then(Templated::known)
            && !Json::Object(schema.clone()).to_string().contains("{{")
            && let Err(e) = jsonschema::validator_for(&Json::Object(schema.clone()))
        {
            problems.push(ParamProblem::new(
                "/schema",
                format!("`schema` is not a valid JSON Schema: {e}"),
            ));
        }
        problems
    }

    fn describe(&self, params: &JsonValidateParams) -> String {
        let subject = json_input::describe(params.file.as_deref(), params.value.as_ref());
        let matches = if params.value.is_some() {
            "matches"
        } else {
            "is JSON matching"
        };
        if params.schema.is_some() {
            format!("check that {subject} {matches} the inline schema")
        } else if let Some(schema_file) = &params.schema_file {
            format!("check that {subject} {matches} the schema in {}", code(schema_file))
        } else {
            format!("check that {subject} is valid JSON")
        }
    }

    /// Result: `{"valid": true}`. When the JSON does not match, the step
    /// fails with `{"valid": false, "errors": [{"pointer": "/counters/x",
    /// "message": "..."}]}`; when it is not JSON at all, with one error that
    /// also has `line` and `column`.
    async fn run(&self, params: JsonValidateParams, cx: StepContext) -> Result<Json, StepError> {
        blocking(&cx.cancel, move |_| validate(params)).await
    }
}

fn validate(params: JsonValidateParams) -> Result<Json, StepError> {
    let (instance, name) =
        json_input::load(params.file.as_deref(), params.value.as_ref()).map_err(|error| {
            match error.result.as_ref().and_then(|r| r.get("line").zip(r.get("column"))) {
                Some((line, column)) => {
                    let errors = json!([{"pointer": "", "message": error.message, "line": line, "column": column}]);
                    let result = json!({"valid": false, "errors": errors});
                    StepError::new(error.message.clone()).with_result(result)
                }
                None => error,
            }
        })?;
    let schema = match (params.schema, params.schema_file) {
        (Some(schema), None) => Json::Object(schema.get()?.clone()),
        (None, Some(file)) => json_input::read(Path::new(&file)).map_err(|e| StepError::new(e.message))?,
        (None, None) => return Ok(json!({"valid": true})),
        (Some(_), Some(_)) => return Err(StepError::new("`schema` and `schema_file` are both given")),
    };
    let validator = jsonschema::validator_for(&schema)
        .map_err(|e| StepError::new(format!("the schema is not a valid JSON Schema: {e}")))?;
    let mut errors = Vec::new();
    let mut count = 0;
    for error in validator.iter_errors(&instance) {
        count += 1;
        if errors.len() < MAX_ERRORS {
            errors.push((error.instance_path().as_str().to_string(), error.to_string()));
        }
    }
    if errors.is_empty() {
        return Ok(json!({"valid": true}));
    }
    let mut shown: Vec<String> = errors
        .iter()
        .take(ERRORS_SHOWN)
        .map(|(pointer, message)| {
            let place = if pointer.is_empty() {
                "at the top".to_string()
            } else {
                format!("at `{pointer}`")
            };
            format!("{place}: {message}")
        })
        .collect();
    if count > ERRORS_SHOWN {
        shown.push(format!("and {} more", count - ERRORS_SHOWN));
    }
    let noun = if count == 1 { "error" } else { "errors" };
    let message = format!(
        "{name} does not match the schema ({count} {noun}): {}",
        shown.join("; ")
    );
    let errors: Vec<Json> = errors
        .into_iter()
        .map(|(pointer, message)| json!({"pointer": pointer, "message": message}))
        .collect();
    Err(StepError::new(message).with_result(json!({"valid": false, "errors": errors})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use std::fs;
    use std::sync::Arc;

    /// A memory snapshot's shape: a non-empty `counters` object whose
    /// values are all above zero.
    fn snapshot_schema() -> Json {
        json!({
            "type": "object",
            "required": ["counters"],
            "properties": {
                "counters": {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"type": "integer", "minimum": 1}
                }
            }
        })
    }

    #[test]
    fn good_params_pass() {
        assert_valid::<JsonValidateParams>("json.validate", json!({"file": "/x.json"}));
        assert_valid::<JsonValidateParams>("json.validate", json!({"file": "/x.json", "schema": snapshot_schema()}));
        assert_valid::<JsonValidateParams>(
            "json.validate",
            json!({"value": "{{ steps.api.outputs.body }}", "schema_file": "/s.json"}),
        );
        assert_valid::<JsonValidateParams>("json.validate", json!({"value": null, "schema": {"type": "null"}}));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected("json.validate", json!({}), "", "missing parameter `file` or `value`");
        assert_rejected(
            "json.validate",
            json!({"file": "/x", "value": 1, "schema": {}}),
            "/value",
            "`file` and `value` are both given",
        );
        assert_rejected(
            "json.validate",
            json!({"file": "/x", "schema": {}, "schema_file": "/s"}),
            "/schema_file",
            "`schema` and `schema_file` are both given",
        );
        assert_rejected("json.validate", json!({"value": [1]}), "", "nothing to check");
        assert_rejected(
            "json.validate",
            json!({"file": "/x", "schema": {"type": "thing"}}),
            "/schema",
            "`schema` is not a valid JSON Schema",
        );
        assert_rejected(
            "json.validate",
            json!({"file": "/x", "schema": "{}"}),
            "/schema",
            "must be a mapping, found a string",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "json.validate",
            &[
                json!({"file": "/var/lib/memory/snapshots/n.json", "schema": snapshot_schema()}),
                json!({"file": "<steps.find.outputs.path>", "schema_file": "/etc/memory/snapshot.schema.json"}),
                json!({"file": "/x.json"}),
                json!({"value": "<steps.api.outputs.body>", "schema": {"type": "object"}}),
                json!({}),
            ],
        ));
    }

    #[tokio::test]
    async fn valid_json_passes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.json");
        fs::write(&file, r#"{"counters": {"events": 3, "agents": 1}}"#).unwrap();
        let host = Arc::new(FakeHost::new());
        let result = run("json.validate", &host, json!({"file": file})).await.unwrap();
        assert_eq!(result, json!({"valid": true}));
        let result = run(
            "json.validate",
            &host,
            json!({"file": file, "schema": snapshot_schema()}),
        )
        .await
        .unwrap();
        assert_eq!(result, json!({"valid": true}));
        let schema_file = dir.path().join("schema.json");
        fs::write(&schema_file, snapshot_schema().to_string()).unwrap();
        let value = json!({"counters": {"events": 3}});
        let result = run(
            "json.validate",
            &host,
            json!({"value": value, "schema_file": schema_file}),
        )
        .await
        .unwrap();
        assert_eq!(result, json!({"valid": true}));
    }

    #[tokio::test]
    async fn schema_errors_come_with_their_pointers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.json");
        fs::write(&file, r#"{"counters": {"events": 0, "agents": "many"}}"#).unwrap();
        let host = Arc::new(FakeHost::new());
        let error = run(
            "json.validate",
            &host,
            json!({"file": file, "schema": snapshot_schema()}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "`{}` does not match the schema (2 errors): at `/counters/events`: 0 is less than the minimum of 1; at `/counters/agents`: \"many\" is not of type \"integer\"",
                file.display()
            )
        );
        assert_eq!(
            error.result,
            Some(json!({"valid": false, "errors": [
                {"pointer": "/counters/events", "message": "0 is less than the minimum of 1"},
                {"pointer": "/counters/agents", "message": "\"many\" is not of type \"integer\""},
            ]}))
        );
        let error = run(
            "json.validate",
            &host,
            json!({"value": [], "schema": snapshot_schema()}),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "the value does not match the schema (1 error): at the top: [] is not of type \"object\""
        );
    }

    #[tokio::test]
    async fn invalid_json_is_placed_by_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.json");
        fs::write(&file, "{\n  \"counters\": {\n    \"events\": 3,\n  }\n}\n").unwrap();
        let host = Arc::new(FakeHost::new());
        let error = run("json.validate", &host, json!({"file": file})).await.unwrap_err();
        let message = format!(
            "`{}` is not valid JSON: trailing comma at line 4 column 3",
            file.display()
        );
        assert_eq!(error.message, message);
        assert_eq!(
            error.result,
            Some(json!({"valid": false, "errors": [{"pointer": "", "message": message, "line": 4, "column": 3}]}))
        );
        let missing = dir.path().join("nope.json");
        let error = run("json.validate", &host, json!({"file": missing})).await.unwrap_err();
        assert_eq!(
            error.message,
            format!("cannot read `{}`: no such file or directory", missing.display())
        );
        // A bad schema file is named too.
        let error = run("json.validate", &host, json!({"value": 1, "schema_file": file}))
            .await
            .unwrap_err();
        assert!(
            error
                .message
                .starts_with(&format!("`{}` is not valid JSON", file.display())),
            "{error}"
        );
    }
}

//! The `json.query` step kind: picks a value out of a JSON file (or a
//! value) with a JMESPath expression, for later steps to use as
//! `steps.ID.outputs...`.
//!
//! JMESPath, through the `jmespath` crate: it is specified, with a
//! compliance suite the crate runs, and it does more than pick values out
//! (filters, projections, `length`, `max_by`, `sort_by`), which JSONPath
//! does not. The expression is compiled when the runbook is checked, so a
//! typo shows before anything runs. Its objects come back with their keys
//! sorted.

use runbook_engine::kit::{Kind, Templated, Traits};
use runbook_engine::step::{ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::file_work::blocking;
use crate::words::code;
use crate::{is_template, json_input};

/// Picks a value out of JSON with a JMESPath expression.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonQuery;

/// Parameters of a `json.query` step.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonQueryParams {
    /// A JSON file to query. Give either `file` or `value`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub file: Option<String>,

    /// A value to query instead of a file, such as a previous step's output
    /// (`"{{ steps.api.outputs.body }}"`: one expression keeps its type).
    /// Give either `file` or `value`.
    #[serde(default, deserialize_with = "json_input::present")]
    #[schemars(with = "Json")]
    pub value: Option<Json>,

    /// A JMESPath expression (jmespath.org), such as `counters.events`,
    /// `length(items[?status=='ok'])` or `max_by(snapshots, &time).name`.
    #[schemars(length(min = 1))]
    pub query: String,

    /// Fail when the query finds nothing (`null`).
    #[serde(default = "yes")]
    #[schemars(with = "Templated<bool>")]
    pub required: Templated<bool>,
}

fn yes() -> Templated<bool> {
    Templated::Value(true)
}

impl Kind for JsonQuery {
    type Params = JsonQueryParams;
    const NAME: &'static str = "json.query";
    const SUMMARY: &'static str = "Pick a value out of a JSON file or value with a JMESPath expression.";
    const TRAITS: Traits = Traits {
        read_only: true,
        ..Traits::NONE
    };

    fn params_rules(&self) -> Vec<Json> {
        vec![runbook_engine::kit::exactly_one_of(&["file", "value"])]
    }

    fn validate(&self, params: &JsonQueryParams) -> Vec<ParamProblem> {
        let mut problems: Vec<ParamProblem> = json_input::check(params.file.as_deref(), params.value.as_ref())
            .into_iter()
            .collect();
        if !is_template(&params.query)
            && let Err(e) = jmespath::compile(&params.query)
        {
            problems.push(
                ParamProblem::new(
                    "/query",
                    format!("`{}` is not a JMESPath expression: {}", params.query, words(&e)),
                )
                .with_help("see jmespath.org for the syntax, e.g. `counters.events` or `items[0].id`"),
            );
        }
        problems
    }

    fn describe(&self, params: &JsonQueryParams) -> String {
        let missing = if params.required == Templated::Value(false) {
            "null if it finds nothing"
        } else {
            "failing if it finds nothing"
        };
        format!(
            "read {} from {}, {missing}",
            code(&params.query),
            json_input::describe(params.file.as_deref(), params.value.as_ref())
        )
    }

    /// Result: `{"value": <what the query found>}`. With `required` (the
    /// default), finding nothing (`null`) fails the step with `{"value":
    /// null}`.
    async fn run(&self, params: JsonQueryParams, cx: StepContext) -> Result<Json, StepError> {
        blocking(&cx.cancel, move |_| query(&params)).await
    }
}

/// A JMESPath error in words: `unexpected token at column 9`.
fn words(error: &jmespath::JmespathError) -> String {
    let reason = match &error.reason {
        jmespath::ErrorReason::Parse(text) => text.clone(),
        jmespath::ErrorReason::Runtime(e) => e.to_string(),
    };
    let reason = crate::os_error_words(reason.trim_end_matches('.'));
    format!("{reason} at column {}", error.column + 1)
}

fn query(params: &JsonQueryParams) -> Result<Json, StepError> {
    let expression = jmespath::compile(&params.query).map_err(|e| {
        StepError::new(format!(
            "`{}` is not a JMESPath expression: {}",
            params.query,
            words(&e)
        ))
    })?;
    let (data, name) = json_input::load(params.file.as_deref(), params.value.as_ref())?;
    let found = expression
        .search(&data)
        .map_err(|e| StepError::new(format!("`{}` failed on {name}: {}", params.query, words(&e))))?;
    let value = serde_json::to_value(&*found)
        .map_err(|e| StepError::new(format!("`{}` found something that is not JSON: {e}", params.query)))?;
    if value.is_null() && *params.required.get()? {
        return Err(
            StepError::new(format!("`{}` found nothing in {name}", params.query)).with_result(json!({"value": null}))
        );
    }
    Ok(json!({"value": value}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use std::fs;
    use std::sync::Arc;

    #[test]
    fn good_params_pass() {
        assert_valid::<JsonQueryParams>("json.query", json!({"file": "/x.json", "query": "counters.events"}));
        assert_valid::<JsonQueryParams>(
            "json.query",
            json!({"value": "{{ steps.api.outputs.body }}", "query": "items[?ok].id", "required": false}),
        );
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected(
            "json.query",
            json!({"query": "a"}),
            "",
            "missing parameter `file` or `value`",
        );
        assert_rejected("json.query", json!({"file": "/x"}), "", "missing parameter `query`");
        let problem = assert_rejected(
            "json.query",
            json!({"file": "/x", "query": "counters.[events"}),
            "/query",
            "`counters.[events` is not a JMESPath expression: ",
        );
        assert!(problem.message.ends_with("at column 17"), "{problem:?}");
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "json.query",
            &[
                json!({"file": "/var/lib/memory/snapshots/n.json", "query": "counters.events"}),
                json!({"value": "<steps.api.outputs.body>", "query": "items[?status=='ok'] | length(@)", "required": false}),
                json!({}),
            ],
        ));
    }

    #[tokio::test]
    async fn picks_values_out_of_a_file_or_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.json");
        fs::write(
            &file,
            r#"{"counters": {"events": 3}, "snapshots": [{"name": "a", "time": 1}, {"name": "b", "time": 5}]}"#,
        )
        .unwrap();
        let host = Arc::new(FakeHost::new());
        let result = run("json.query", &host, json!({"file": file, "query": "counters.events"}))
            .await
            .unwrap();
        assert_eq!(result, json!({"value": 3}));
        let result = run(
            "json.query",
            &host,
            json!({"file": file, "query": "max_by(snapshots, &time).name"}),
        )
        .await
        .unwrap();
        assert_eq!(result, json!({"value": "b"}));
        let value = json!({"items": [{"status": "ok", "id": 1}, {"status": "bad", "id": 2}]});
        let result = run(
            "json.query",
            &host,
            json!({"value": value, "query": "items[?status=='ok'].id"}),
        )
        .await
        .unwrap();
        assert_eq!(result, json!({"value": [1]}));
    }

    #[tokio::test]
    async fn finding_nothing_fails_unless_allowed() {
        let host = Arc::new(FakeHost::new());
        let value = json!({"counters": {}});
        let error = run("json.query", &host, json!({"value": value, "query": "counters.events"}))
            .await
            .unwrap_err();
        assert_eq!(error.message, "`counters.events` found nothing in the value");
        assert_eq!(error.result, Some(json!({"value": null})));
        let result = run(
            "json.query",
            &host,
            json!({"value": value, "query": "counters.events", "required": false}),
        )
        .await
        .unwrap();
        assert_eq!(result, json!({"value": null}));
    }

    #[tokio::test]
    async fn errors_say_where() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.json");
        fs::write(&file, "{\"a\": 1,,}").unwrap();
        let host = Arc::new(FakeHost::new());
        let error = run("json.query", &host, json!({"file": file, "query": "a"}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            format!(
                "`{}` is not valid JSON: key must be a string at line 1 column 9",
                file.display()
            )
        );
        assert_eq!(error.result, Some(json!({"line": 1, "column": 9})));
        let error = run("json.query", &host, json!({"value": {"a": 1}, "query": "nope(a)"}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "`nope(a)` failed on the value: call to undefined function nope at column 5"
        );
    }
}

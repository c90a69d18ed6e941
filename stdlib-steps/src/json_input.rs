//! The JSON the `json.*` kinds work on: a `file`, or a `value` given in the
//! step (such as a previous step's output), never both.

use runbook_engine::step::{ParamProblem, StepError};
use serde::{Deserialize, Deserializer};
use serde_json::{Value as Json, json};
use std::path::Path;

use crate::file_work::io_error;
use crate::words::code;

/// Reads `value` so that an explicit `null` counts as given (it is a JSON
/// value like any other), while a missing `value` stays `None`.
pub(crate) fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(deserializer).map(Some)
}

/// The problems of `file` and `value` as written: exactly one is needed.
pub(crate) fn check(file: Option<&str>, value: Option<&Json>) -> Option<ParamProblem> {
    match (file.is_some(), value.is_some()) {
        (true, true) => Some(
            ParamProblem::new("/value", "`file` and `value` are both given")
                .with_help("keep `file` to read a JSON file, or `value` to use a value from the runbook"),
        ),
        (false, false) => Some(ParamProblem::new("", "missing parameter `file` or `value`").with_help(
            "add `file:` with a JSON file, or `value:` with a value such as `\"{{ steps.api.outputs.body }}\"`",
        )),
        _ => None,
    }
}

/// What the step works on, in words for `describe`: `` `f.json` `` or
/// `` the value `...` ``.
pub(crate) fn describe(file: Option<&str>, value: Option<&Json>) -> String {
    match (file, value) {
        (Some(file), _) => code(file),
        (None, Some(value)) => format!("the value {}", code(&crate::words::any(value))),
        (None, None) => "(no `file` or `value` given)".to_string(),
    }
}

/// The JSON to work on, and how to name it in messages.
pub(crate) fn load(file: Option<&str>, value: Option<&Json>) -> Result<(Json, String), StepError> {
    match (file, value) {
        (Some(file), None) => Ok((read(Path::new(file))?, format!("`{file}`"))),
        (None, Some(value)) => Ok((value.clone(), "the value".to_string())),
        (Some(_), Some(_)) => Err(StepError::new("`file` and `value` are both given")),
        (None, None) => Err(StepError::new("missing parameter `file` or `value`")),
    }
}

/// Reads and parses a JSON file. A syntax error fails with its position,
/// also given as `{"line": l, "column": c}` in the error's result.
pub(crate) fn read(path: &Path) -> Result<Json, StepError> {
    let bytes = std::fs::read(path).map_err(|e| io_error("read", path, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        StepError::new(format!("`{}` is not valid JSON: {e}", path.display()))
            .with_result(json!({"line": e.line(), "column": e.column()}))
    })
}

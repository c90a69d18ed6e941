//! The built-in step kinds (`shell`, `http`, `wait`, `assert`, `sleep`,
//! `confirm`, `log`, `runbook`, the `file.*` kinds for snapshots and atomic
//! changes, and the `json.*` kinds): their static descriptions, which the
//! engine uses to check and plan a runbook without running anything.
//!
//! Each kind lives in its own module with its parameter struct. The struct is
//! the contract for `with`: its doc comments become the JSON Schema that
//! `check` validates against and editors show, and the same struct reads the
//! rendered parameters when the step runs.
//!
//! Each kind's `run` does one attempt of a step with rendered parameters;
//! timeouts, retries, `verify` and `outputs` are the executor's business.
//! Every `run` ends soon after its cancellation token is cancelled (the
//! `shell` kind within its `kill_grace`, plus a few milliseconds and at
//! worst 1.5 s more) and leaves no child process behind, even when its
//! future is dropped.
//!
//! Kinds are registered explicitly by the embedding program:
//!
//! ```
//! let mut registry = runbook_engine::step::Registry::new();
//! stdlib_steps::register(&mut registry);
//! assert!(registry.get("shell").is_some());
//! ```

mod assert;
mod command_output;
mod confirm;
mod file_prune;
mod file_remove;
mod file_restore;
mod file_snapshot;
mod file_verify;
mod file_work;
mod file_write;
mod http;
mod human_duration;
mod json_input;
mod json_query;
mod json_validate;
mod log;
mod manifest;
mod parent_death;
mod path_problem;
mod process_table;
mod restore_plan;
mod runbook;
mod shell;
mod sleep;
mod step_processes;
mod stored_snapshot;
mod tree;
mod wait;
mod words;

pub use assert::{Assert, AssertParams, Conditions};
pub use confirm::{Confirm, ConfirmParams};
pub use file_prune::{FilePrune, FilePruneParams};
pub use file_remove::{FileRemove, FileRemoveParams};
pub use file_restore::{FileRestore, FileRestoreParams};
pub use file_snapshot::{FileSnapshot, FileSnapshotParams, SnapshotFormat};
pub use file_verify::{FileVerify, FileVerifyParams};
pub use file_write::{FileWrite, FileWriteParams};
pub use http::{ExpectStatus, Http, HttpParams, Method, QueryValue};
pub use human_duration::HumanDuration;
pub use json_query::{JsonQuery, JsonQueryParams};
pub use json_validate::{JsonValidate, JsonValidateParams};
pub use log::{Level, Log, LogParams};
pub use runbook::{Runbook, RunbookParams};
pub use shell::{Shell, ShellParams};
pub use sleep::{Sleep, SleepParams};
pub use wait::{StepBody, Wait, WaitParams};

use runbook_engine::step::{Registry, StepError};
// A parameter string that is still a template is judged only once rendered;
// the engine's test decides which strings those are.
use runbook_engine::template::is_template;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

/// Registers every built-in step kind.
pub fn register(registry: &mut Registry) {
    registry.register(Shell);
    registry.register(Http::default());
    registry.register(Wait);
    registry.register(Assert);
    registry.register(Sleep);
    registry.register(Confirm);
    registry.register(Log);
    registry.register(Runbook);
    registry.register(FileSnapshot);
    registry.register(FileVerify);
    registry.register(FileRestore);
    registry.register(FileWrite);
    registry.register(FilePrune);
    registry.register(FileRemove);
    registry.register(JsonValidate);
    registry.register(JsonQuery);
}

/// The JSON Schema of a parameter struct, as one self-contained document
/// (nested types are inlined, so there is no `$ref` to resolve).
fn schema_of<T: JsonSchema>() -> Json {
    let mut schema = schemars::schema_for!(T).to_value();
    // Optional parameters are `Option`s read with `#[serde(default)]`, for
    // which schemars writes `"default": null`. That contradicts their type
    // (null is not accepted) and would lead editors to fill in `null`: the
    // default of an optional parameter is its absence.
    if let Some(properties) = schema.get_mut("properties").and_then(Json::as_object_mut) {
        for property in properties.values_mut().filter_map(Json::as_object_mut) {
            if property.get("default").is_some_and(Json::is_null) {
                property.remove("default");
            }
        }
    }
    schema
}

/// The JSON pointer of `name` inside the value at `parent` (RFC 6901).
fn pointer(parent: &str, name: &str) -> String {
    format!("{parent}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// Reads a kind's rendered parameters into its parameter struct. `check`
/// has accepted them before, so a failure here means a template rendered
/// into something the kind cannot take, such as `timeout: "{{ inputs.t }}"`
/// becoming `soon`.
fn read_params<P: DeserializeOwned>(kind: &str, params: &Json) -> Result<P, StepError> {
    serde_json::from_value(params.clone())
        .map_err(|e| StepError::new(format!("the parameters of this `{kind}` step do not read: {e}")))
}

/// Whether an expression's value counts as true, as in Jinja: `false`,
/// `null`, `0`, `""`, `[]` and `{}` are false, everything else is true.
fn is_truthy(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Json::String(text) => !text.is_empty(),
        Json::Array(items) => !items.is_empty(),
        Json::Object(map) => !map.is_empty(),
    }
}

/// An operating system's error message as a phrase in a sentence:
/// `No such file or directory (os error 2)` becomes `no such file or
/// directory`.
fn os_error_words(message: &str) -> String {
    let message = match message.rfind(" (os error ") {
        Some(at) if message.ends_with(')') => &message[..at],
        _ => message,
    };
    let mut chars = message.chars();
    match chars.next() {
        // Keep acronyms such as `DNS` as they are.
        Some(first) if !chars.next().is_some_and(char::is_uppercase) => first
            .to_lowercase()
            .chain(message[first.len_utf8()..].chars())
            .collect(),
        _ => message.to_string(),
    }
}

/// The error of an attempt that was cancelled before it finished.
fn cancelled() -> StepError {
    StepError::new("cancelled")
}

#[cfg(test)]
mod tests;

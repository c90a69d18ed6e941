//! The built-in step kinds (`shell`, `http`, `wait`, `assert`, `sleep`,
//! `confirm`, `log`): their static descriptions, which the engine uses to
//! check and plan a runbook without running anything.
//!
//! Each kind lives in its own module with its parameter struct. The struct is
//! the contract for `with`: its doc comments become the JSON Schema that
//! `check` validates against and editors show, and the same struct reads the
//! rendered parameters when the step runs.
//!
//! Kinds are registered explicitly by the embedding program:
//!
//! ```
//! let mut registry = runbook_engine::step::Registry::new();
//! stdlib_steps::register(&mut registry);
//! assert!(registry.get("shell").is_some());
//! ```

mod assert;
mod confirm;
mod http;
mod human_duration;
mod log;
mod shell;
mod sleep;
mod wait;
mod words;

pub use assert::{Assert, AssertParams, Conditions};
pub use confirm::{Confirm, ConfirmParams};
pub use http::{ExpectStatus, Http, HttpParams, Method, QueryValue};
pub use human_duration::HumanDuration;
pub use log::{Level, Log, LogParams};
pub use shell::{Shell, ShellParams};
pub use sleep::{Sleep, SleepParams};
pub use wait::{StepBody, Wait, WaitParams};

use runbook_engine::step::Registry;
// A parameter string that is still a template is judged only once rendered;
// the engine's test decides which strings those are.
use runbook_engine::template::is_template;
use schemars::JsonSchema;
use serde_json::Value as Json;

/// Registers every built-in step kind.
pub fn register(registry: &mut Registry) {
    registry.register(Shell);
    registry.register(Http);
    registry.register(Wait);
    registry.register(Assert);
    registry.register(Sleep);
    registry.register(Confirm);
    registry.register(Log);
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

#[cfg(test)]
mod tests;

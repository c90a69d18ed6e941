//! The step-kind kit: the typed way to write a kind of step.
//!
//! A kind declares its parameter type (a struct that derives `Deserialize`
//! and `JsonSchema`, whose doc comments become the schema `check` validates
//! against and editors show), says what it does ([`Traits`]), and receives
//! its parameters read into that type in `validate`, `describe`,
//! `undo_summary`, `undo`, `preview` and `run`. The kit does the rest of
//! [`StepKind`]: the schema, reading parameters with the JSON pointer of a
//! value that does not read, and checking rendered parameters against
//! `validate` again before `run`, so a rule is written once.
//!
//! ```
//! use runbook_engine::kit::{Kind, Traits};
//! use runbook_engine::step::{StepContext, StepError};
//! use runbook_engine::words::HumanDuration;
//! use serde_json::{Value as Json, json};
//!
//! /// Parameters of a `pause` step.
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct PauseParams {
//!     /// How long to pause, such as `5s`.
//!     duration: HumanDuration,
//! }
//!
//! struct Pause;
//!
//! impl Kind for Pause {
//!     type Params = PauseParams;
//!     const NAME: &'static str = "pause";
//!     const SUMMARY: &'static str = "Pause for a while.";
//!     const TRAITS: Traits = Traits { read_only: true, ..Traits::NONE };
//!
//!     fn describe(&self, params: &PauseParams) -> String {
//!         format!("pause for {}", params.duration)
//!     }
//!
//!     async fn run(&self, params: PauseParams, cx: StepContext) -> Result<Json, StepError> {
//!         tokio::select! {
//!             () = tokio::time::sleep(params.duration.0) => Ok(json!({})),
//!             () = cx.cancel.cancelled() => Err(runbook_engine::kit::cancelled()),
//!         }
//!     }
//! }
//!
//! let mut registry = runbook_engine::step::Registry::new();
//! registry.register(Pause);
//! assert_eq!(registry.get("pause").unwrap().describe(&json!({"duration": "90s"})), "pause for 1m30s");
//! ```

pub mod process;
mod templated;

pub use templated::{Reading, Templated};

use crate::step::{ParamProblem, RecoverFuture, StepContext, StepError, StepFuture, StepKind, TemplatePlaces, Undo};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use std::future::Future;

/// What a kind does, beyond running: what the engine asks of a kind instead
/// of knowing kinds by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traits {
    /// Running the step leaves the world as it was.
    pub read_only: bool,
    /// Running the step asks the operator: a run with nobody to ask refuses
    /// to start rather than stop at it.
    pub asks_operator: bool,
    /// The parameter naming another runbook that the step runs as a child
    /// run: checked with this one and rolled back with it.
    pub child_runbook: Option<&'static str>,
    /// JSON pointers of parameters that are expressions the kind evaluates
    /// itself (`wait`'s `/until`), not templates.
    pub expression_params: &'static [&'static str],
    /// JSON pointers of parameters that are step bodies (`uses` and `with`).
    pub nested_steps: &'static [&'static str],
    /// JSON pointers of string parameters that are shell commands: values
    /// templated into them are quoted for `sh`.
    pub shell_params: &'static [&'static str],
    /// JSON pointers of string parameters that are URLs: values templated
    /// into them are encoded for the part of the URL they land in.
    pub url_params: &'static [&'static str],
}

impl Traits {
    /// A kind that changes things, asks nobody and has no special parameters.
    pub const NONE: Self = Self {
        read_only: false,
        asks_operator: false,
        child_runbook: None,
        expression_params: &[],
        nested_steps: &[],
        shell_params: &[],
        url_params: &[],
    };
}

/// A kind of step written with the kit. Register it with
/// [`Registry::register`](crate::step::Registry::register) like any
/// [`StepKind`].
///
/// Before a run (`check`, `plan`), a parameter may still be a template or a
/// stand-in for a value known only at run time; fields that are not plain
/// strings take those as [`Templated`]. `run` and `undo` get the rendered
/// parameters, which `validate` has accepted.
pub trait Kind: Send + Sync + 'static {
    /// The parameters under `with`.
    type Params: DeserializeOwned + JsonSchema + Send + 'static;

    /// The name used in `uses:`.
    const NAME: &'static str;

    /// One line saying what the kind does, for docs and the schema.
    const SUMMARY: &'static str;

    /// What the kind does beyond running.
    const TRAITS: Traits = Traits::NONE;

    /// Checks beyond the schema, written once: before the run on the
    /// parameters as written, and again on the rendered ones before `run`.
    fn validate(&self, _params: &Self::Params) -> Vec<ParamProblem> {
        Vec::new()
    }

    /// The rules of `validate` that JSON Schema can say, for the format's
    /// schema (see [`StepKind::params_rules`]).
    fn params_rules(&self) -> Vec<Json> {
        Vec::new()
    }

    /// What the step will do, in words, such as "POST https://api/resolve
    /// with a JSON body".
    fn describe(&self, params: &Self::Params) -> String;

    /// How this kind undoes a step that succeeded, in words, for `plan`.
    fn undo_summary(&self, _params: &Self::Params) -> Option<String> {
        None
    }

    /// The action that undoes a step that succeeded with these parameters
    /// and this result, when the kind knows one (see [`StepKind::undo`]).
    fn undo(&self, _params: &Self::Params, _result: &Json) -> Option<Undo> {
        None
    }

    /// What the step would do to the world as it is now, for `plan`: it may
    /// read but never change anything.
    fn preview(&self, _params: &Self::Params) -> Option<String> {
        None
    }

    /// Puts right an attempt that was in flight when the run died, from the
    /// last checkpoint it journaled (see [`StepKind::recover`]).
    fn recover(&self, checkpoint: &Json) -> impl Future<Output = Result<Option<String>, String>> + Send {
        let _ = checkpoint;
        async { Ok(None) }
    }

    /// Runs one attempt. It must end soon after `cx.cancel` is cancelled,
    /// and leave no child process behind when it ends or is dropped
    /// ([`process`] does that for processes).
    fn run(&self, params: Self::Params, cx: StepContext) -> impl Future<Output = Result<Json, StepError>> + Send;
}

impl<K: Kind> StepKind for K {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn summary(&self) -> &'static str {
        K::SUMMARY
    }

    fn params_schema(&self) -> Json {
        schema_of::<K::Params>()
    }

    fn expression_params(&self) -> &'static [&'static str] {
        K::TRAITS.expression_params
    }

    fn nested_steps(&self) -> &'static [&'static str] {
        K::TRAITS.nested_steps
    }

    fn read_only(&self) -> bool {
        K::TRAITS.read_only
    }

    fn asks_operator(&self) -> bool {
        K::TRAITS.asks_operator
    }

    fn child_runbook_param(&self) -> Option<&'static str> {
        K::TRAITS.child_runbook
    }

    fn shell_params(&self) -> &'static [&'static str] {
        K::TRAITS.shell_params
    }

    fn url_params(&self) -> &'static [&'static str] {
        K::TRAITS.url_params
    }

    fn validate(&self, params: &Json) -> Vec<ParamProblem> {
        match read::<K::Params>(params, Reading::AsWritten) {
            Ok(typed) => Kind::validate(self, &typed),
            Err(problem) => vec![problem],
        }
    }

    fn params_rules(&self) -> Vec<Json> {
        Kind::params_rules(self)
    }

    /// Parameters are read into `K::Params`: a template only where it is
    /// [`Templated`] or text.
    fn template_places(&self) -> TemplatePlaces {
        TemplatePlaces::Marked
    }

    fn describe(&self, params: &Json) -> String {
        match read::<K::Params>(params, Reading::Shown) {
            Ok(typed) => Kind::describe(self, &typed),
            Err(problem) => format!("run `{}` ({})", K::NAME, problem.message),
        }
    }

    fn undo_summary(&self, params: &Json) -> Option<String> {
        Kind::undo_summary(self, &read::<K::Params>(params, Reading::Shown).ok()?)
    }

    fn undo(&self, params: &Json, result: &Json) -> Option<Undo> {
        Kind::undo(self, &read::<K::Params>(params, Reading::Rendered).ok()?, result)
    }

    fn preview(&self, params: &Json) -> Option<String> {
        Kind::preview(self, &read::<K::Params>(params, Reading::Rendered).ok()?)
    }

    fn recover<'a>(&'a self, checkpoint: &'a Json) -> RecoverFuture<'a> {
        Box::pin(Kind::recover(self, checkpoint))
    }

    fn run(&self, cx: StepContext) -> StepFuture<'_> {
        let params = read_rendered::<K>(self, &cx.params);
        Box::pin(async move { Kind::run(self, params?, cx).await })
    }
}

/// Reads rendered parameters and checks them with the kind's `validate`:
/// a problem fails the attempt before it changes anything.
fn read_rendered<K: Kind>(kind: &K, params: &Json) -> Result<K::Params, StepError> {
    let typed = read::<K::Params>(params, Reading::Rendered).map_err(|problem| {
        StepError::new(format!(
            "the parameters of this `{}` step do not read: {}",
            K::NAME,
            problem.message
        ))
    })?;
    match Kind::validate(kind, &typed).into_iter().next() {
        Some(problem) => Err(StepError::new(match problem.help {
            Some(help) => format!("{}. Nothing was changed; {help}", problem.message),
            None => format!("{}. Nothing was changed", problem.message),
        })),
        None => Ok(typed),
    }
}

/// Reads parameters into `P`, with the pointer of a value that does not
/// read. `reading` says which values may still stand in for later ones.
pub fn read<P: DeserializeOwned>(params: &Json, reading: Reading) -> Result<P, ParamProblem> {
    let _reading = templated::Scope::enter(reading);
    serde_path_to_error::deserialize::<_, P>(params).map_err(|error| {
        let pointer = pointer_of(error.path());
        let message = error.inner().to_string();
        let field = pointer.rsplit('/').next().filter(|f| !f.is_empty());
        let Some(field) = field.map(|f| f.replace("~1", "/").replace("~0", "~")) else {
            return ParamProblem::new(&pointer, message);
        };
        // A duration's own words name the value; say which parameter it is.
        match message.split_once(crate::words::HumanDuration::NOT_ONE) {
            Some((_, why)) => ParamProblem::new(
                &pointer,
                format!("`{field}`{}{why}", crate::words::HumanDuration::NOT_ONE),
            )
            .with_help(crate::words::HumanDuration::HELP),
            None => ParamProblem::new(&pointer, format!("`{field}`: {message}")),
        }
    })
}

/// The JSON pointer (RFC 6901) of a path serde walked.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out = pointer(&out, &index.to_string()),
            Segment::Map { key } => out = pointer(&out, key),
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    out
}

/// The JSON Schema of a parameter type, as one self-contained document
/// (nested types are inlined, so there is no `$ref` to resolve).
pub fn schema_of<T: JsonSchema>() -> Json {
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

/// A rule for [`Kind::params_rules`]: exactly one of these parameters.
pub fn exactly_one_of(names: &[&str]) -> Json {
    let each: Vec<Json> = names
        .iter()
        .map(|name| serde_json::json!({ "required": [name] }))
        .collect();
    serde_json::json!({ "oneOf": each })
}

/// A rule for [`Kind::params_rules`]: not both of these parameters.
pub fn not_both(a: &str, b: &str) -> Json {
    serde_json::json!({ "not": { "required": [a, b] } })
}

/// A rule for [`Kind::params_rules`]: the parameter `name`, when given,
/// also matches `schema`.
pub fn param_rule(name: &str, schema: Json) -> Json {
    serde_json::json!({ "properties": { name: schema } })
}

/// The JSON pointer of `name` inside the value at `parent` (RFC 6901).
pub fn pointer(parent: &str, name: &str) -> String {
    format!("{parent}/{}", name.replace('~', "~0").replace('/', "~1"))
}

/// The error of an attempt that was cancelled before it finished.
pub fn cancelled() -> StepError {
    StepError::new("cancelled")
}

/// Whether an expression's value counts as true, as in Jinja: `false`,
/// `null`, `0`, `""`, `[]` and `{}` are false, everything else is true.
pub fn is_truthy(value: &Json) -> bool {
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
pub fn os_error_words(message: &str) -> String {
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

#[cfg(test)]
mod tests;

//! The step-kind interface: what every kind of step, built in or plugin,
//! tells the engine about itself, and the registry that holds them.
//!
//! A kind's static description (name, parameter schema, which parameters are
//! expressions or nested steps, `describe`) is kept apart from running it, so
//! `check` and `plan` never execute anything.

use crate::words::HumanDuration;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A problem a kind found in its parameters beyond what its schema says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamProblem {
    /// JSON pointer into `with`, e.g. `/method`; empty for the whole of `with`.
    pub pointer: String,
    pub message: String,
    pub help: Option<String>,
}

impl ParamProblem {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The keyword that marks, in a kind's parameter schema, a place where a
/// template may stand for the value (see [`TemplatePlaces::Marked`]).
/// Validators ignore it; the format's schema lets a template through there.
pub const TEMPLATE_KEYWORD: &str = "x-template";

/// Where a kind takes a template in `with` before the run renders it, as
/// `check` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplatePlaces {
    /// At every place: the kind judges its parameters once rendered (a
    /// plugin's kinds).
    Anywhere,
    /// At places of text, and where its parameter schema marks one with
    /// [`TEMPLATE_KEYWORD`]; the other places it reads as typed values, which
    /// a template is not (a kind written with the kit).
    Marked,
}

/// A kind of step: `shell`, `http`, `wait`, ... or a plugin.
pub trait StepKind: Send + Sync + 'static {
    /// The name used in `uses:`.
    fn name(&self) -> &'static str;

    /// One line saying what the kind does, for docs and the schema.
    fn summary(&self) -> &'static str;

    /// JSON Schema of the kind's `with` parameters.
    fn params_schema(&self) -> Json;

    /// JSON pointers of parameters that are expressions evaluated by the kind
    /// itself (such as `wait`'s `/until`), rather than templates.
    fn expression_params(&self) -> &'static [&'static str] {
        &[]
    }

    /// JSON pointers of parameters that are themselves step bodies
    /// (`uses` and `with`), such as `wait`'s `/probe`.
    fn nested_steps(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether running the step leaves the world as it was (no side effects).
    fn read_only(&self) -> bool {
        false
    }

    /// Whether running the step asks the operator (the `confirm` kind): a run
    /// with nobody to ask refuses to start rather than stop at it.
    fn asks_operator(&self) -> bool {
        false
    }

    /// The parameter naming another runbook that the step runs as a child
    /// run (the `runbook` kind's `file`): that runbook is checked with this
    /// one, and rolled back with it.
    fn child_runbook_param(&self) -> Option<&'static str> {
        None
    }

    /// Checks beyond the schema. Parameters are as written: strings may still
    /// hold templates, which must not be judged before they are rendered.
    fn validate(&self, _params: &Json) -> Vec<ParamProblem> {
        Vec::new()
    }

    /// Where a template may stand in `with` before the run renders it.
    fn template_places(&self) -> TemplatePlaces {
        TemplatePlaces::Anywhere
    }

    /// What `validate` checks that JSON Schema can say too (two parameters
    /// that exclude each other, one of two that must be given), as schemas
    /// that `with` must match as well. The format's JSON Schema adds them so
    /// that editors see what `check` sees; `check` leaves them to
    /// `validate`, which says them in better words.
    fn params_rules(&self) -> Vec<Json> {
        Vec::new()
    }

    /// What the step will do with these parameters, in words, such as
    /// "POST https://api/snrl/resolve with a JSON body". Values known only at
    /// run time appear as placeholders like `<steps.resolve.outputs.pop>`.
    fn describe(&self, params: &Json) -> String;

    /// How this kind undoes a step that succeeded, in words, for `plan`
    /// (a step without a `rollback` of its own is undone this way).
    fn undo_summary(&self, _params: &Json) -> Option<String> {
        None
    }

    /// The action that undoes a step that succeeded with these parameters
    /// and this result, when the kind knows one. Runs when the run rolls
    /// back and the step has no `rollback` of its own; it is journaled with
    /// the step's success, so a later `runbook rollback` can run it too.
    fn undo(&self, _params: &Json, _result: &Json) -> Option<Undo> {
        None
    }

    /// The undo journaled for a step, rebuilt with the step's parameters as
    /// rendered now: the journal keeps `***` for a secret, and a rollback
    /// run later, from the journal, reads the secrets again. `None` keeps
    /// the journaled undo as it is.
    fn refresh_undo(&self, _undo: &Undo, _params: &Json) -> Option<Undo> {
        None
    }

    /// What the step would do to the world as it is now, for `plan`: it may
    /// read (list the files a prune would delete) but never change anything.
    /// Called only when no parameter waits for a run-time value.
    fn preview(&self, _params: &Json) -> Option<String> {
        None
    }

    /// JSON pointers of string parameters that are shell commands: values
    /// templated into them are quoted for `sh`, so an input cannot inject
    /// commands (`{{ x | safe }}` opts out).
    fn shell_params(&self) -> &'static [&'static str] {
        &[]
    }

    /// JSON pointers of string parameters that are URLs: values templated
    /// into them are encoded for the part of the URL they land in (a value
    /// that starts the URL is its base), so an input cannot reach another
    /// path, host or query (`{{ x | safe }}` opts out).
    fn url_params(&self) -> &'static [&'static str] {
        &[]
    }

    /// Puts right an attempt of this kind that was in flight when the run
    /// died, from the last [`Host::checkpoint`] it journaled: stops what it
    /// left running, undoes a half-made change, so that the world is as it
    /// was before the attempt (or as after it, when it had finished). Called
    /// on resume and on a later rollback, before the step runs again or the
    /// run is rolled back. `Ok(Some(words))` says what it did, `Ok(None)`
    /// that nothing was needed; `Err` stops the run for a person.
    fn recover<'a>(&'a self, checkpoint: &'a Json) -> RecoverFuture<'a> {
        let _ = checkpoint;
        Box::pin(async { Ok(None) })
    }

    /// Runs one attempt of the step with rendered parameters. The future
    /// must end soon after `cx.cancel` is cancelled, and must leave no child
    /// process behind when it ends or is dropped.
    fn run(&self, cx: StepContext) -> StepFuture<'_>;
}

/// An action that undoes a step: a kind and its (rendered) parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Undo {
    pub kind: String,
    pub params: Json,
    /// What it does, in words.
    pub description: String,
}

/// What [`StepKind::recover`] did, in words, or why it could not.
pub type RecoverFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, String>> + Send + 'a>>;

/// The result of one attempt: the step's `result` (JSON), or why it failed.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<Json, StepError>> + Send + 'a>>;

/// Why a step attempt failed, with what it produced so far (an exit code, a
/// response) so that `verify`, `until` and the report can show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepError {
    pub message: String,
    pub result: Option<Json>,
    /// Whether another attempt may succeed (the step's `retry` applies);
    /// `false` when the kind knows it cannot (a request the service refused).
    pub retryable: bool,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            result: None,
            retryable: true,
        }
    }

    pub fn with_result(mut self, result: Json) -> Self {
        self.result = Some(result);
        self
    }

    /// No retry can help: the step fails at once, whatever its `retry`.
    pub fn not_retryable(mut self) -> Self {
        self.retryable = false;
        self
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How much a message for the run's log matters ([`Host::log`]): `info`,
/// `warn` or `error`. Logging never fails a step, whatever the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum LogLevel {
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which stream a line of a step's live output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What a running step may ask of the engine.
pub trait Host: Send + Sync {
    /// Runs another kind with rendered parameters (a `wait`'s probe), as one attempt.
    fn run_nested(&self, kind: &str, params: Json, cancel: CancellationToken) -> StepFuture<'_>;

    /// Evaluates an expression with the run's context and `result` bound.
    fn eval(&self, expression: &str, result: &Json) -> Result<Json, String>;

    /// Asks the operator a yes/no question (the `confirm` kind). `Err` when
    /// nobody can answer (no terminal and no `--yes`).
    fn confirm<'a>(
        &'a self,
        step: &'a str,
        message: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;

    /// The step's live output: one line, without its line end. `line_end`
    /// is false when the text is a piece of a longer line whose rest follows
    /// in the next call (a line too long to hold whole); the engine masks
    /// secrets across such pieces.
    fn output(&self, step: &str, stream: OutputStream, text: &str, line_end: bool);

    /// Journals what an attempt is about to do, durably, before it does it
    /// (a process group it started, a path it is about to move aside), so
    /// that if the run dies mid-attempt, [`StepKind::recover`] can put things
    /// right on resume or on a later rollback. `Err` when the journal cannot
    /// be written: the attempt must then change nothing more and fail.
    fn checkpoint(&self, step: &str, state: Json) -> Result<(), String> {
        let _ = (step, state);
        Ok(())
    }

    /// A message for the run's log (the `log` kind): `info`, `warn` or `error`.
    fn log(&self, step: &str, level: &str, message: &str);

    /// How a long step is getting on, in a few words (`probe 3: status
    /// 503`), and when something happens next, for the live view's
    /// countdown. Shown, never journaled.
    fn progress(&self, step: &str, note: &str, next_in: Option<std::time::Duration>) {
        let _ = (step, note, next_in);
    }

    /// A value the step produced that is secret (a token a plugin made): it
    /// is masked from now on, in the step's result, the journal and
    /// everything shown.
    fn add_secret(&self, value: &str) {
        let _ = value;
    }

    /// `text` with the run's secrets masked, for a kind that shortens text
    /// it puts in a message (a plugin's stray line): masked first, the cut
    /// cannot leave the start of a secret for the engine's masking to miss.
    fn mask(&self, text: &str) -> String {
        text.to_string()
    }

    /// Runs the runbook that step `step` uses (the `runbook` kind), with
    /// these inputs, as a journaled child run whose rollback joins the
    /// parent's. The result has the child's `run_id`, `status` and each
    /// step's `outputs`.
    fn run_runbook(&self, step: &str, inputs: Json, cancel: CancellationToken) -> StepFuture<'_> {
        let _ = (step, inputs, cancel);
        Box::pin(async { Err(StepError::new("this host cannot run other runbooks")) })
    }
}

/// Everything one attempt of a step gets.
#[derive(Clone)]
pub struct StepContext {
    pub run_id: String,
    pub step_id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Stable across attempts and resumes: run id + step id.
    pub idempotency_key: String,
    /// The parameters, rendered; expression parameters are left as written.
    pub params: Json,
    /// Cancelled on timeout, on Ctrl-C and when another step fails.
    pub cancel: CancellationToken,
    /// How long child processes get between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    pub host: Arc<dyn Host>,
}

impl std::fmt::Debug for StepContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepContext")
            .field("step_id", &self.step_id)
            .field("attempt", &self.attempt)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// A kind together with its parameter schema, compiled on first use.
struct Entry {
    kind: Arc<dyn StepKind>,
    validator: OnceLock<(Json, Result<jsonschema::Validator, String>)>,
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        Self {
            kind: Arc::clone(&self.kind),
            validator: OnceLock::new(),
        }
    }
}

/// The step kinds a runbook may use. Kinds are registered explicitly.
#[derive(Default, Clone)]
pub struct Registry {
    kinds: IndexMap<&'static str, Entry>,
    /// Plugins that were looked for and cannot be used, by name, with why.
    unusable: IndexMap<String, ParamProblem>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a kind; a kind registered later under the same name replaces the earlier one.
    pub fn register(&mut self, kind: impl StepKind) {
        self.register_arc(Arc::new(kind));
    }

    pub fn register_arc(&mut self, kind: Arc<dyn StepKind>) {
        self.kinds.insert(
            kind.name(),
            Entry {
                kind,
                validator: OnceLock::new(),
            },
        );
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn StepKind>> {
        self.kinds.get(name).map(|e| &e.kind)
    }

    /// Records that the plugin `plugin` cannot be used, and why (its
    /// `message` and a `help` line): a step using one of its kinds is
    /// refused with these words.
    pub fn set_unusable(&mut self, plugin: &str, why: ParamProblem) {
        self.unusable.insert(plugin.to_string(), why);
    }

    /// Why the plugin `plugin` cannot be used, if it was looked for and cannot.
    pub fn unusable(&self, plugin: &str) -> Option<&ParamProblem> {
        self.unusable.get(plugin)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    pub fn kinds(&self) -> impl Iterator<Item = &Arc<dyn StepKind>> {
        self.kinds.values().map(|e| &e.kind)
    }

    /// Checks parameters against the kind's schema. Each problem comes with
    /// the JSON pointer of the offending value. `skip` says which values are
    /// templates and so cannot be judged until rendered.
    pub fn check_schema(&self, name: &str, params: &Json, skip: &dyn Fn(&str) -> bool) -> Vec<ParamProblem> {
        let Some(entry) = self.kinds.get(name) else {
            return Vec::new();
        };
        let (schema, validator) = entry.validator.get_or_init(|| {
            let schema = entry.kind.params_schema();
            let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string());
            (schema, validator)
        });
        let validator = match validator {
            Ok(v) => v,
            Err(e) => {
                return vec![ParamProblem::new(
                    "",
                    format!("the step kind `{name}` has an invalid parameter schema: {e}"),
                )];
            }
        };
        let mut problems = Vec::new();
        for error in validator.iter_errors(params) {
            let pointer = error.instance_path().as_str().to_string();
            if skip(&pointer) {
                continue;
            }
            problems.push(describe_schema_error(schema, &pointer, error.kind(), error.instance()));
        }
        problems
    }
}

/// Turns a schema error into a message in our words.
fn describe_schema_error(
    schema: &Json,
    pointer: &str,
    kind: &jsonschema::error::ValidationErrorKind,
    instance: &Json,
) -> ParamProblem {
    use jsonschema::error::ValidationErrorKind as K;
    let field = if pointer.is_empty() {
        "`with`".to_string()
    } else {
        format!("`{}`", pointer.trim_start_matches('/').replace('/', "."))
    };
    match kind {
        K::AdditionalProperties { unexpected } => {
            let known = property_names(schema, pointer);
            let name = unexpected.first().cloned().unwrap_or_default();
            let mut problem = ParamProblem::new(format!("{pointer}/{name}"), format!("unknown parameter `{name}`"));
            let help = crate::diagnostic::suggestion(&name, known.iter().map(String::as_str)).unwrap_or_else(|| {
                let names: Vec<&str> = known.iter().map(String::as_str).collect();
                format!("the parameters are {}", crate::words::list(&names))
            });
            problem.help = Some(help);
            problem
        }
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            ParamProblem::new(pointer, format!("missing parameter `{name}`"))
                .with_help(format!("add `{name}:` under `with`"))
        }
        K::Type { kind } => ParamProblem::new(
            pointer,
            format!("{field} must be {}, found {}", type_words(kind), json_kind(instance)),
        )
        .with_help(format!(
            "write {} here; the format reference lists each kind's parameters",
            type_words(kind)
        )),
        K::Enum { options } => {
            let names: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut problem =
                ParamProblem::new(pointer, format!("{field} must be one of {}", crate::words::list(&refs)));
            if let Some(text) = instance.as_str() {
                problem.help = crate::diagnostic::suggestion(text, refs.iter().copied());
            }
            problem
        }
        // A duration that does not read: in the parser's words, as when it is read.
        K::Pattern { pattern } if pattern == HumanDuration::PATTERN => {
            let text = instance.as_str().unwrap_or_default();
            let why = crate::words::parse_duration(text)
                .err()
                .unwrap_or_else(|| format!("`{text}` does not read as one"));
            let name = pointer.rsplit('/').next().unwrap_or_default();
            let name = name.replace("~1", "/").replace("~0", "~");
            ParamProblem::new(pointer, format!("`{name}`{}{why}", HumanDuration::NOT_ONE))
                .with_help(HumanDuration::HELP)
        }
        other => ParamProblem::new(pointer, format!("{field}: {}", other_message(other, instance))),
    }
}

fn other_message(kind: &jsonschema::error::ValidationErrorKind, instance: &Json) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    match kind {
        K::Minimum { limit } | K::ExclusiveMinimum { limit } => format!("{instance} is below the minimum {limit}"),
        K::Maximum { limit } | K::ExclusiveMaximum { limit } => format!("{instance} is above the maximum {limit}"),
        K::MinItems { limit } => format!("needs at least {limit} item(s)"),
        K::MinLength { limit } => format!("needs at least {limit} character(s)"),
        K::Pattern { pattern } => format!("{instance} does not match `{pattern}`"),
        K::OneOfNotValid { .. } | K::AnyOf { .. } => format!("{instance} is not one of the accepted forms"),
        K::OneOfMultipleValid { .. } => "is ambiguous: it matches more than one accepted form".into(),
        K::Not { .. } => "is not allowed here".into(),
        K::FalseSchema => "is not allowed here".into(),
        _ => format!("{instance} is not valid here"),
    }
}

fn type_words(kind: &jsonschema::error::TypeKind) -> String {
    use jsonschema::error::TypeKind;
    let one = |t: &jsonschema::JsonType| match t.to_string().as_str() {
        "string" => "a string".to_string(),
        "integer" => "an integer".to_string(),
        "number" => "a number".to_string(),
        "boolean" => "`true` or `false`".to_string(),
        "object" => "a mapping".to_string(),
        "array" => "a list".to_string(),
        "null" => "null".to_string(),
        other => other.to_string(),
    };
    match kind {
        TypeKind::Single(t) => one(t),
        TypeKind::Multiple(ts) => {
            let words: Vec<String> = ts.iter().map(|t| one(&t)).collect();
            words.join(" or ")
        }
    }
}

pub fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

/// The property names the schema allows at `pointer` (for suggestions).
fn property_names(schema: &Json, pointer: &str) -> Vec<String> {
    let mut node = schema;
    for token in pointer.split('/').skip(1) {
        node = match node.get("properties").and_then(|p| p.get(token)) {
            Some(n) => n,
            None => match node.get("items") {
                Some(items) if token.parse::<usize>().is_ok() => items,
                _ => return Vec::new(),
            },
        };
    }
    node.get("properties")
        .and_then(Json::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

impl crate::quote::Quoting {
    /// The parameters of `kind` that are shell commands and URLs; none for
    /// a kind that is not registered.
    pub fn of(registry: &Registry, kind: &str) -> Self {
        registry
            .get(kind)
            .map_or_else(Self::default, |k| Self::new(k.shell_params(), k.url_params()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Echo;
    impl StepKind for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn summary(&self) -> &'static str {
            "prints"
        }
        fn params_schema(&self) -> Json {
            json!({
                "type": "object",
                "properties": { "message": { "type": "string" }, "level": { "enum": ["info", "warn"] }, "times": { "type": "integer" } },
                "required": ["message"],
                "additionalProperties": false
            })
        }
        fn describe(&self, params: &Json) -> String {
            format!("print {}", params["message"])
        }
        fn run(&self, cx: StepContext) -> StepFuture<'_> {
            Box::pin(async move { Ok(cx.params) })
        }
    }

    #[test]
    fn schema_problems_are_in_our_words() {
        let mut registry = Registry::new();
        registry.register(Echo);
        let problems = registry.check_schema("echo", &json!({"mesage": "x", "level": "wran", "times": "3"}), &|_| {
            false
        });
        let messages: Vec<_> = problems
            .iter()
            .map(|p| (p.pointer.as_str(), p.message.as_str(), p.help.as_deref()))
            .collect();
        assert!(
            messages.contains(&("/mesage", "unknown parameter `mesage`", Some("did you mean `message`?"))),
            "{messages:#?}"
        );
        assert!(
            messages.contains(&("", "missing parameter `message`", Some("add `message:` under `with`"))),
            "{messages:#?}"
        );
        assert!(
            messages.contains(&(
                "/times",
                "`times` must be an integer, found a string",
                Some("write an integer here; the format reference lists each kind's parameters")
            )),
            "{messages:#?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.0 == "/level" && m.2 == Some("did you mean `warn`?")),
            "{messages:#?}"
        );
        let skipped = registry.check_schema("echo", &json!({"message": "x", "times": "{{ inputs.n }}"}), &|p| {
            p == "/times"
        });
        assert!(skipped.is_empty(), "{skipped:?}");
    }
}

//! The runbook as written: every key of format v1 with the span it came from,
//! not yet checked beyond its shape. Conversion from [`Node`]s collects every
//! wrong type, missing key and unknown key of the file in one pass.
//!
//! These types also generate the JSON Schema of the format (`runbook schema`),
//! so the schema and the parser are one definition.

use crate::diagnostic::{Diagnostic, Span, suggestion};
use crate::parse::node::{Node, Value};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use std::borrow::Cow;

pub const CODE_WRONG_TYPE: &str = "runbook::parse::wrong_type";
pub const CODE_UNKNOWN_KEY: &str = "runbook::parse::unknown_key";
pub const CODE_MISSING_KEY: &str = "runbook::parse::missing_key";
pub const CODE_BAD_VALUE: &str = "runbook::parse::bad_value";

/// A value and the span of the YAML it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A whole runbook file.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(title = "runbook", deny_unknown_fields)]
pub struct Runbook {
    /// Format version; must be `1`.
    #[schemars(rename = "runbook", schema_with = "version_schema")]
    pub version: Option<Spanned<i64>>,
    /// Identity of the runbook, shown in plans and reports; the default lock key.
    pub name: Option<Spanned<String>>,
    /// One paragraph: what the procedure is for and when to use it.
    pub description: Option<Spanned<String>>,
    /// Typed parameters given with `--input NAME=VALUE`, from the environment, or defaults.
    pub inputs: NamedMap<Input>,
    /// Values from the environment or a file, masked as `***` everywhere.
    pub secrets: NamedMap<Secret>,
    /// Named values computed once from templates, readable as `vars.NAME`.
    pub vars: NamedMap<Node>,
    /// Step plugins, by name: the path of each plugin's executable, relative
    /// to this runbook's folder. A step uses a plugin's kind as `NAME.KIND`.
    pub plugins: NamedMap<Spanned<String>>,
    /// `timeout`, `retry` and `on_failure` for every step that does not set its own.
    pub defaults: Option<Defaults>,
    /// How many ready steps may run at once (default: the number of CPUs).
    #[schemars(range(min = 1))]
    pub max_parallel: Option<Spanned<i64>>,
    /// Template; two runs whose lock keys are equal never overlap on one machine.
    pub lock: Option<Spanned<String>>,
    /// The procedure. Without `needs`, a step waits for the step above it.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// Steps that always run at the end, after rollback if any.
    pub finally: Vec<Step>,
    #[schemars(skip)]
    pub span: Span,
}

fn version_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "description": "Format version; must be `1`.", "const": 1 })
}

/// The schema of a time limit, a duration that is not zero, for the fields
/// that hold one. (A type, not a function, so that an `Option` of it stays
/// an optional field.)
struct TimeLimitSchema;

impl JsonSchema for TimeLimitSchema {
    fn schema_name() -> Cow<'static, str> {
        "TimeLimit".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        Schema::try_from(HumanDuration::time_limit_schema()).unwrap_or_default()
    }
}

/// An ordered mapping of names to values, each name with its span.
#[derive(Debug, Clone)]
pub struct NamedMap<T>(pub Vec<(Spanned<String>, T)>);

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> NamedMap<T> {
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k.value == name).map(|(_, v)| v)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.value.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = &(Spanned<String>, T)> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: JsonSchema> JsonSchema for NamedMap<T> {
    fn schema_name() -> Cow<'static, str> {
        format!("Map_of_{}", T::schema_name()).into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<T>();
        json_schema!({
            "type": "object",
            "propertyNames": { "pattern": crate::words::NAME_PATTERN },
            "additionalProperties": value,
        })
    }
}

impl JsonSchema for Node {
    fn schema_name() -> Cow<'static, str> {
        "AnyValue".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({})
    }
}

/// The type of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
    Duration,
    Url,
    Enum,
    Datetime,
}

impl InputType {
    pub const NAMES: &'static [&'static str] = &[
        "string", "integer", "number", "boolean", "duration", "url", "enum", "datetime",
    ];
    pub const ALL: [InputType; 8] = [
        InputType::String,
        InputType::Integer,
        InputType::Number,
        InputType::Boolean,
        InputType::Duration,
        InputType::Url,
        InputType::Enum,
        InputType::Datetime,
    ];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// One typed parameter of the runbook.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields, transform = input_rules)]
pub struct Input {
    /// string (default), integer, number, boolean, duration, url, enum with `values`, or datetime.
    #[schemars(rename = "type")]
    pub ty: Option<Spanned<InputType>>,
    /// The value when none is given on the command line or in the environment.
    pub default: Option<Node>,
    /// Whether a value must be given; by default, inputs without a default are required.
    pub required: Option<Spanned<bool>>,
    /// What the input means, shown in plans and `--help`-like listings.
    pub description: Option<Spanned<String>>,
    /// Environment variable read when the input is not given on the command line.
    #[schemars(length(min = 1))]
    pub env: Option<Spanned<String>>,
    /// The allowed values of an `enum` input.
    pub values: Option<Vec<Spanned<String>>>,
    /// A regular expression the whole value of a `string` input must match.
    #[schemars(extend("format" = "regex"))]
    pub pattern: Option<Spanned<String>>,
    #[schemars(skip)]
    pub span: Span,
}

/// Where a secret's value comes from. It is never printed.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields, transform = secret_rules)]
pub struct Secret {
    /// Environment variable that holds the secret.
    pub env: Option<Spanned<String>>,
    /// File whose contents (without the final newline) are the secret.
    pub file: Option<Spanned<String>>,
    /// What the secret is for.
    pub description: Option<Spanned<String>>,
    #[schemars(skip)]
    pub span: Span,
}

/// What every step gets unless it says otherwise.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Defaults {
    /// Time limit of each step.
    #[schemars(with = "Option<TimeLimitSchema>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// How failed steps are retried.
    pub retry: Option<Retry>,
    /// What a failing step does to the run.
    pub on_failure: Option<Spanned<OnFailure>>,
    #[schemars(skip)]
    pub span: Span,
}

/// Backoff between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Backoff {
    Fixed,
    Exponential,
}

impl Backoff {
    pub const NAMES: &'static [&'static str] = &["fixed", "exponential"];
    pub const ALL: [Backoff; 2] = [Backoff::Fixed, Backoff::Exponential];
}

/// How a step is retried when it fails.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Retry {
    /// Total number of attempts, the first included (at least 1).
    #[schemars(range(min = 1))]
    pub attempts: Option<Spanned<i64>>,
    /// `fixed` or `exponential` (default) growth of the delay.
    pub backoff: Option<Spanned<Backoff>>,
    /// Delay before the second attempt (default 1s).
    pub delay: Option<Spanned<HumanDuration>>,
    /// Upper bound of the delay with exponential backoff.
    pub max_delay: Option<Spanned<HumanDuration>>,
    /// Randomise each delay by up to half of it, so retries of many runs do not align.
    pub jitter: Option<Spanned<bool>>,
    /// Expression over `result`; retry until it holds, even if the step succeeded.
    pub until: Option<Spanned<String>>,
    #[schemars(skip)]
    pub span: Span,
}

/// What a failing step does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema, serde::Serialize, serde::Deserialize)]
#[schemars(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Roll back every step that succeeded, in reverse order, then run `finally`.
    #[serde(alias = "roll back")]
    Rollback,
    /// Record the failure and go on with the steps that do not need this one.
    Continue,
    /// Stop at once, without rollback.
    Abort,
}

impl OnFailure {
    pub const NAMES: &'static [&'static str] = &["rollback", "continue", "abort"];
    pub const ALL: [OnFailure; 3] = [OnFailure::Rollback, OnFailure::Continue, OnFailure::Abort];

    /// The name written in a runbook.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Continue => "continue",
            OnFailure::Abort => "abort",
        }
    }
}

/// One step of the procedure.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Step {
    /// Unique id, `[a-z][a-z0-9_]*`; later steps read `steps.ID.outputs`.
    #[schemars(pattern(crate::words::NAME_PATTERN))]
    pub id: Option<Spanned<String>>,
    /// Human name shown in plans and prompts.
    pub name: Option<Spanned<String>>,
    /// Longer explanation of the step.
    pub description: Option<Spanned<String>>,
    /// The step kind: `shell`, `http`, `wait`, `assert`, `sleep`, `confirm`, `log`, or a plugin.
    pub uses: Option<Spanned<String>>,
    /// The kind's parameters. Strings are templates; a string that is exactly one `{{ expr }}` keeps the expression's type.
    pub with: Option<Node>,
    /// Steps this one waits for. Without `needs`, the step above; `needs: []` starts at once.
    pub needs: Option<Spanned<Vec<Spanned<String>>>>,
    /// Guard: an expression; when false the step is skipped (and counts as finished).
    #[schemars(schema_with = "expression_schema")]
    pub when: Option<Spanned<String>>,
    /// Message; the run stops and asks before this step.
    pub confirm: Option<Spanned<String>>,
    /// Expressions over `result` that must all hold after the step, else it fails.
    #[schemars(schema_with = "one_or_many_expressions")]
    pub verify: Vec<Spanned<String>>,
    /// Named expressions over `result`, readable later as `steps.ID.outputs.NAME`.
    pub outputs: NamedMap<Spanned<String>>,
    /// Time limit; a timed-out step's whole process tree is killed.
    #[schemars(with = "Option<TimeLimitSchema>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// How the step is retried when it fails.
    pub retry: Option<Retry>,
    /// `rollback` (default), `continue` or `abort`.
    pub on_failure: Option<Spanned<OnFailure>>,
    /// A step body that undoes this step; run in reverse order when the run rolls back.
    pub rollback: Option<Box<StepBody>>,
    /// `true` lets a resumed run re-run this step if it was in flight when the run died.
    pub idempotent: Option<Spanned<bool>>,
    #[schemars(skip)]
    pub span: Span,
}

/// A step without an id or place in the graph: a rollback action or a probe.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct StepBody {
    /// Human name shown in plans.
    pub name: Option<Spanned<String>>,
    /// Longer explanation.
    pub description: Option<Spanned<String>>,
    /// The step kind.
    pub uses: Option<Spanned<String>>,
    /// The kind's parameters (templates).
    pub with: Option<Node>,
    /// Time limit.
    #[schemars(with = "Option<TimeLimitSchema>")]
    pub timeout: Option<Spanned<HumanDuration>>,
    /// How the action is retried when it fails.
    pub retry: Option<Retry>,
    /// Expressions over `result` that must hold after the action.
    #[schemars(schema_with = "one_or_many_expressions")]
    pub verify: Vec<Spanned<String>>,
    #[schemars(skip)]
    pub span: Span,
}

/// What `check` reads as a URL (`validate`'s `check_url`), as a JSON Schema
/// pattern: a scheme, `://`, a host, and no whitespace.
pub const URL_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s]\S*$";

/// What `check` asks of an input that JSON Schema can say: `values` with an
/// `enum` and only then, and a default of the input's type.
fn input_rules(schema: &mut Schema) {
    let of_type = |ty: &str, rule: serde_json::Value| {
        // Without `type`, an input is a string.
        let condition = if ty == "string" {
            serde_json::json!({ "properties": { "type": { "const": ty } } })
        } else {
            serde_json::json!({ "properties": { "type": { "const": ty } }, "required": ["type"] })
        };
        serde_json::json!({ "if": condition, "then": rule })
    };
    let default = |value: serde_json::Value| serde_json::json!({ "properties": { "default": value } });
    let rules = vec![
        of_type(
            "enum",
            serde_json::json!({ "required": ["values"], "properties": { "values": { "minItems": 1 } } }),
        ),
        serde_json::json!({
            "if": { "properties": { "type": { "const": "enum" } }, "required": ["type"] },
            "else": { "properties": { "values": false } }
        }),
        of_type("string", default(serde_json::json!({ "type": ["string", "number"] }))),
        of_type("integer", default(serde_json::json!({ "type": "integer" }))),
        of_type("number", default(serde_json::json!({ "type": "number" }))),
        of_type("boolean", default(serde_json::json!({ "type": "boolean" }))),
        of_type(
            "duration",
            default(serde_json::json!({ "type": "string", "pattern": HumanDuration::PATTERN })),
        ),
        of_type(
            "url",
            default(serde_json::json!({ "type": "string", "pattern": URL_PATTERN })),
        ),
        of_type("enum", default(serde_json::json!({ "type": "string" }))),
    ];
    schema.insert("allOf".into(), serde_json::Value::Array(rules));
}

/// A secret comes from `env` or from `file`: one of them, not both.
fn secret_rules(schema: &mut Schema) {
    schema.insert(
        "oneOf".into(),
        serde_json::json!([{ "required": ["env"] }, { "required": ["file"] }]),
    );
}

fn expression_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Guard: an expression; when false the step is skipped (and counts as finished).",
        "type": ["string", "boolean"]
    })
}

fn one_or_many_expressions(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Expressions over `result` that must all hold.",
        "anyOf": [
            { "type": "string" },
            { "type": "array", "items": { "type": "string" } }
        ]
    })
}

// ---------------------------------------------------------------------------
// Conversion from nodes.

/// Collects diagnostics while converting.
pub struct Collector {
    pub diagnostics: Vec<Diagnostic>,
}

impl Collector {
    fn wrong_type(&mut self, node: &Node, key: &str, expected: &str) {
        self.diagnostics.push(
            Diagnostic::error(
                CODE_WRONG_TYPE,
                format!("`{key}` must be {expected}, found {}", node.kind_name()),
            )
            .with_label(node.span, format!("expected {expected}"))
            .with_help(how_to_write(expected, key)),
        );
    }
}

/// How to write a value of the expected type, for the help line.
fn how_to_write(expected: &str, key: &str) -> String {
    if expected.starts_with("a string") {
        format!("put the value in quotes, e.g. `{key}: \"...\"`")
    } else if expected.starts_with("an integer") {
        format!("write a whole number without quotes, e.g. `{key}: 3`")
    } else if expected.starts_with("`true`") {
        format!("write `{key}: true` or `{key}: false`")
    } else if expected.starts_with("a list") {
        format!("write a list as `{key}: [a, b]`, or one `- item` per line under `{key}:`")
    } else if expected.starts_with("a mapping (the runbook)") {
        "a runbook file is a mapping of keys: `runbook: 1`, `name: ...`, `steps:` and so on".to_string()
    } else if expected.starts_with("a mapping") {
        format!("write `name: value` lines indented under `{key}:`")
    } else {
        format!("write {expected}")
    }
}

/// A value that can be read from a node, reporting problems to the collector.
pub trait FromNode: Sized {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self>;
}

impl FromNode for Spanned<String> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Str(s) => Some(Spanned::new(s.clone(), node.span)),
            _ => {
                cx.wrong_type(node, key, "a string");
                None
            }
        }
    }
}

impl FromNode for Spanned<i64> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Int(i) => Some(Spanned::new(*i, node.span)),
            _ => {
                cx.wrong_type(node, key, "an integer");
                None
            }
        }
    }
}

impl FromNode for Spanned<bool> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Bool(b) => Some(Spanned::new(*b, node.span)),
            _ => {
                cx.wrong_type(node, key, "`true` or `false`");
                None
            }
        }
    }
}

impl FromNode for Node {
    fn from_node(node: &Node, _: &str, _: &mut Collector) -> Option<Self> {
        Some(node.clone())
    }
}

impl FromNode for Spanned<HumanDuration> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let expected = "a duration such as `30s`, `5m` or `1h30m`";
        match &node.value {
            Value::Str(s) => match if key == "timeout" {
                parse_timeout(s)
            } else {
                parse_duration(s)
            } {
                Ok(d) => Some(Spanned::new(HumanDuration(d), node.span)),
                Err(reason) => {
                    cx.diagnostics.push(
                        Diagnostic::error(CODE_BAD_VALUE, format!("`{key}` is not a valid duration: {reason}"))
                            .with_label(node.span, format!("expected {expected}")),
                    );
                    None
                }
            },
            Value::Int(i) => {
                cx.diagnostics.push(
                    Diagnostic::error(
                        CODE_WRONG_TYPE,
                        format!("`{key}` must be {expected}, found a bare number"),
                    )
                    .with_label(node.span, "a number without a unit")
                    .with_help(format!("write the unit, e.g. `{i}s` for {i} seconds")),
                );
                None
            }
            _ => {
                cx.wrong_type(node, key, expected);
                None
            }
        }
    }
}

/// Enums written as one of a fixed set of names.
trait Named: Sized + Copy + 'static {
    const NAMES: &'static [&'static str];
    const VALUES: &'static [Self];
}

impl Named for InputType {
    const NAMES: &'static [&'static str] = InputType::NAMES;
    const VALUES: &'static [Self] = &InputType::ALL;
}
impl Named for Backoff {
    const NAMES: &'static [&'static str] = Backoff::NAMES;
    const VALUES: &'static [Self] = &Backoff::ALL;
}
impl Named for OnFailure {
    const NAMES: &'static [&'static str] = OnFailure::NAMES;
    const VALUES: &'static [Self] = &OnFailure::ALL;
}

impl<T: Named> FromNode for Spanned<T> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let Some(text) = node.as_str() else {
            cx.wrong_type(node, key, &format!("one of {}", list(T::NAMES)));
            return None;
        };
        match T::NAMES.iter().position(|n| *n == text) {
            Some(i) => Some(Spanned::new(T::VALUES[i], node.span)),
            None => {
                cx.diagnostics.push(
                    Diagnostic::error(CODE_BAD_VALUE, format!("`{text}` is not a valid `{key}`"))
                        .with_label(node.span, format!("expected one of {}", list(T::NAMES)))
                        .with_optional_help(suggestion(text, T::NAMES.iter().copied())),
                );
                None
            }
        }
    }
}

/// `a`, `b` or `c` as text.
pub use crate::words::list;
use crate::words::{HumanDuration, parse_duration, parse_timeout};

impl<T: FromNode> FromNode for Vec<T> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Seq(items) => Some(items.iter().filter_map(|item| T::from_node(item, key, cx)).collect()),
            Value::Null => Some(Vec::new()),
            _ => {
                cx.wrong_type(node, key, "a list");
                None
            }
        }
    }
}

impl<T: FromNode> FromNode for Spanned<Vec<T>> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        Vec::<T>::from_node(node, key, cx).map(|v| Spanned::new(v, node.span))
    }
}

impl<T: FromNode> FromNode for NamedMap<T> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => Some(NamedMap(
                entries
                    .iter()
                    .filter_map(|(k, v)| {
                        let name = Spanned::<String>::from_node(k, key, cx)?;
                        Some((name.clone(), T::from_node(v, &name.value, cx)?))
                    })
                    .collect(),
            )),
            Value::Null => Some(NamedMap::default()),
            _ => {
                cx.wrong_type(node, key, "a mapping of names to values");
                None
            }
        }
    }
}

impl<T: FromNode> FromNode for Box<T> {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        T::from_node(node, key, cx).map(Box::new)
    }
}

/// Reads the entries of a mapping by name and reports the ones nobody asked for.
struct MapReader<'a> {
    node: &'a Node,
    entries: &'a [(Node, Node)],
    known: &'static [&'static str],
    what: &'static str,
}

impl<'a> MapReader<'a> {
    fn new(
        node: &'a Node,
        key: &str,
        what: &'static str,
        known: &'static [&'static str],
        cx: &mut Collector,
    ) -> Option<Self> {
        match &node.value {
            Value::Map(entries) => Some(Self {
                node,
                entries,
                known,
                what,
            }),
            _ => {
                cx.wrong_type(node, key, &format!("a mapping ({what})"));
                None
            }
        }
    }

    fn raw(&self, key: &str) -> Option<&'a Node> {
        debug_assert!(self.known.contains(&key), "{key} is not declared for {}", self.what);
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    fn get<T: FromNode>(&self, key: &str, cx: &mut Collector) -> Option<T> {
        T::from_node(self.raw(key)?, key, cx)
    }

    fn list<T: FromNode>(&self, key: &str, cx: &mut Collector) -> Vec<T> {
        self.get::<Vec<T>>(key, cx).unwrap_or_default()
    }

    fn map<T: FromNode>(&self, key: &str, cx: &mut Collector) -> NamedMap<T> {
        self.get::<NamedMap<T>>(key, cx).unwrap_or_default()
    }

    /// Reports a missing key.
    fn require<T>(&self, value: &Option<T>, key: &str, help: &str, cx: &mut Collector) {
        if value.is_none() && self.raw(key).is_none() {
            cx.diagnostics.push(
                Diagnostic::error(CODE_MISSING_KEY, format!("{} has no `{key}`", self.what))
                    .with_label(self.label_span(), format!("`{key}` is missing here"))
                    .with_help(help.to_string()),
            );
        }
    }

    /// Where to point for the mapping as a whole: its first key (block mappings have no own span).
    fn label_span(&self) -> Span {
        match self.entries.first() {
            Some((k, _)) if self.node.span.len == 0 => k.span,
            _ => self.node.span,
        }
    }

    /// Reports unknown keys, with the nearest known key as a suggestion.
    fn finish(self, cx: &mut Collector) {
        for (key, _) in self.entries {
            let name = key.key_text();
            if self.known.contains(&name.as_str()) {
                continue;
            }
            let help = suggestion(&name, self.known.iter().copied())
                .unwrap_or_else(|| format!("the keys of {} are {}", self.what, list(self.known)));
            cx.diagnostics.push(
                Diagnostic::error(CODE_UNKNOWN_KEY, format!("unknown key `{name}` in {}", self.what))
                    .with_label(key.span, "unknown key")
                    .with_help(help),
            );
        }
    }
}

pub const RUNBOOK_KEYS: &[&str] = &[
    "runbook",
    "name",
    "description",
    "inputs",
    "secrets",
    "vars",
    "plugins",
    "defaults",
    "max_parallel",
    "lock",
    "steps",
    "finally",
];
pub const INPUT_KEYS: &[&str] = &["type", "default", "required", "description", "env", "values", "pattern"];
pub const SECRET_KEYS: &[&str] = &["env", "file", "description"];
pub const DEFAULTS_KEYS: &[&str] = &["timeout", "retry", "on_failure"];
pub const RETRY_KEYS: &[&str] = &["attempts", "backoff", "delay", "max_delay", "jitter", "until"];
pub const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "uses",
    "with",
    "needs",
    "when",
    "confirm",
    "verify",
    "outputs",
    "timeout",
    "retry",
    "on_failure",
    "rollback",
    "idempotent",
];
pub const BODY_KEYS: &[&str] = &["name", "description", "uses", "with", "timeout", "retry", "verify"];

pub const CODE_EMPTY: &str = "runbook::parse::empty";

impl Runbook {
    /// Reads a runbook from its document node, collecting every problem.
    pub fn from_document(node: &Node, cx: &mut Collector) -> Option<Runbook> {
        if node.value == Value::Null {
            cx.diagnostics.push(
                Diagnostic::error(CODE_EMPTY, "the file is empty")
                    .with_help("a runbook starts with `runbook: 1`, a `name` and a list of `steps`"),
            );
            return None;
        }
        let m = MapReader::new(node, "runbook", "the runbook", RUNBOOK_KEYS, cx)?;
        let version = m.get("runbook", cx);
        m.require(
            &version,
            "runbook",
            "add `runbook: 1` at the top of the file (the format version)",
            cx,
        );
        let runbook = Runbook {
            version,
            name: m.get("name", cx),
            description: m.get("description", cx),
            inputs: m.map("inputs", cx),
            secrets: m.map("secrets", cx),
            vars: m.map("vars", cx),
            plugins: m.map("plugins", cx),
            defaults: m.get("defaults", cx),
            max_parallel: m.get("max_parallel", cx),
            lock: m.get("lock", cx),
            steps: m.list("steps", cx),
            finally: m.list("finally", cx),
            span: node.span,
        };
        m.finish(cx);
        Some(runbook)
    }
}

impl FromNode for Input {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let m = MapReader::new(node, key, "an input", INPUT_KEYS, cx)?;
        let input = Input {
            ty: m.get("type", cx),
            default: m.get("default", cx),
            required: m.get("required", cx),
            description: m.get("description", cx),
            env: m.get("env", cx),
            values: m.get("values", cx),
            pattern: m.get("pattern", cx),
            span: m.label_span(),
        };
        m.finish(cx);
        Some(input)
    }
}

impl FromNode for Secret {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let m = MapReader::new(node, key, "a secret", SECRET_KEYS, cx)?;
        let secret = Secret {
            env: m.get("env", cx),
            file: m.get("file", cx),
            description: m.get("description", cx),
            span: m.label_span(),
        };
        m.finish(cx);
        Some(secret)
    }
}

impl FromNode for Defaults {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let m = MapReader::new(node, key, "`defaults`", DEFAULTS_KEYS, cx)?;
        let defaults = Defaults {
            timeout: m.get("timeout", cx),
            retry: m.get("retry", cx),
            on_failure: m.get("on_failure", cx),
            span: m.label_span(),
        };
        m.finish(cx);
        Some(defaults)
    }
}

impl FromNode for Retry {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let m = MapReader::new(node, key, "`retry`", RETRY_KEYS, cx)?;
        let retry = Retry {
            attempts: m.get("attempts", cx),
            backoff: m.get("backoff", cx),
            delay: m.get("delay", cx),
            max_delay: m.get("max_delay", cx),
            jitter: m.get("jitter", cx),
            until: m.get("until", cx),
            span: m.label_span(),
        };
        m.finish(cx);
        Some(retry)
    }
}

/// `when` may be written as an expression or as a plain boolean.
fn expression(m: &MapReader<'_>, key: &str, cx: &mut Collector) -> Option<Spanned<String>> {
    let node = m.raw(key)?;
    match &node.value {
        Value::Bool(b) => Some(Spanned::new(b.to_string(), node.span)),
        _ => Spanned::<String>::from_node(node, key, cx),
    }
}

/// `verify` may be one expression or a list of them.
fn expressions(m: &MapReader<'_>, key: &str, cx: &mut Collector) -> Vec<Spanned<String>> {
    match m.raw(key) {
        Some(node) if matches!(node.value, Value::Str(_)) => {
            Spanned::<String>::from_node(node, key, cx).into_iter().collect()
        }
        Some(node) => Vec::from_node(node, key, cx).unwrap_or_default(),
        None => Vec::new(),
    }
}

impl FromNode for Step {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let m = MapReader::new(node, key, "a step", STEP_KEYS, cx)?;
        let step = Step {
            id: m.get("id", cx),
            name: m.get("name", cx),
            description: m.get("description", cx),
            uses: m.get("uses", cx),
            with: m.get("with", cx),
            needs: m.get("needs", cx),
            when: expression(&m, "when", cx),
            confirm: m.get("confirm", cx),
            verify: expressions(&m, "verify", cx),
            outputs: m.map("outputs", cx),
            timeout: m.get("timeout", cx),
            retry: m.get("retry", cx),
            on_failure: m.get("on_failure", cx),
            rollback: m.get("rollback", cx),
            idempotent: m.get("idempotent", cx),
            span: m.label_span(),
        };
        m.require(
            &step.id,
            "id",
            "give the step a unique id such as `id: check_health`",
            cx,
        );
        m.require(
            &step.uses,
            "uses",
            "say which kind of step this is, e.g. `uses: shell`",
            cx,
        );
        m.finish(cx);
        Some(step)
    }
}

impl FromNode for StepBody {
    fn from_node(node: &Node, key: &str, cx: &mut Collector) -> Option<Self> {
        let m = MapReader::new(node, key, "a step body", BODY_KEYS, cx)?;
        let body = StepBody {
            name: m.get("name", cx),
            description: m.get("description", cx),
            uses: m.get("uses", cx),
            with: m.get("with", cx),
            timeout: m.get("timeout", cx),
            retry: m.get("retry", cx),
            verify: expressions(&m, "verify", cx),
            span: m.label_span(),
        };
        m.require(
            &body.uses,
            "uses",
            "say which kind of step undoes this one, e.g. `uses: shell`",
            cx,
        );
        m.finish(cx);
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::SourceFile;
    use crate::parse::node::parse_yaml;

    fn read(text: &str) -> (Option<Runbook>, Vec<Diagnostic>) {
        let node = parse_yaml(&SourceFile::new("t.yaml", text)).unwrap();
        let mut cx = Collector {
            diagnostics: Vec::new(),
        };
        let runbook = Runbook::from_document(&node, &mut cx);
        (runbook, cx.diagnostics)
    }

    #[test]
    fn reads_every_key_of_a_step() {
        let (runbook, diagnostics) = read(
            "runbook: 1\nname: x\nsteps:\n  - id: a\n    uses: shell\n    with: {run: ls}\n    needs: []\n    when: true\n    verify: result.exit_code == 0\n    timeout: 5s\n    retry: {attempts: 3, backoff: fixed, delay: 1s}\n    on_failure: continue\n    rollback: {uses: log, with: {message: undo}}\n    idempotent: true\n",
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let step = &runbook.unwrap().steps[0];
        assert_eq!(step.when.as_ref().unwrap().value, "true");
        assert_eq!(step.verify.len(), 1);
        assert_eq!(
            step.timeout.as_ref().unwrap().value.0,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(step.on_failure.as_ref().unwrap().value, OnFailure::Continue);
        assert!(step.needs.as_ref().unwrap().value.is_empty());
    }

    #[test]
    fn collects_every_problem_in_one_pass() {
        let (_, diagnostics) = read(
            "runbook: 1\nsteps:\n  - id: a\n    uses: shell\n    nedds: [b]\n    timeout: 30\n  - id: b\n    uses: log\n    on_failure: rolback\nfinaly: []\n",
        );
        let codes: Vec<_> = diagnostics.iter().map(|d| (d.code, d.help.clone())).collect();
        assert_eq!(diagnostics.len(), 4, "{codes:#?}");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.help.as_deref() == Some("did you mean `needs`?"))
        );
        assert!(
            diagnostics
                .iter()
                .any(|d| d.help.as_deref() == Some("did you mean `finally`?"))
        );
        assert!(
            diagnostics
                .iter()
                .any(|d| d.help.as_deref() == Some("did you mean `rollback`?"))
        );
        assert!(
            diagnostics
                .iter()
                .any(|d| d.help.as_deref() == Some("write the unit, e.g. `30s` for 30 seconds"))
        );
    }
}

//! Stage 2, validate: [`raw::Runbook`] → [`checked::Runbook`]. Checks names,
//! types, step kinds and their parameters, templates and the names they read,
//! and collects every diagnostic of the file rather than stopping at the first.
//! Whether referenced steps are guaranteed to have finished is the compile
//! stage's question, since it needs the graph.

pub mod checked;
pub mod datetime;
pub mod inputs;
pub mod pattern;

use crate::diagnostic::{Diagnostic, SourceFile, Span, suggestion};
use crate::parse::node::{Node, Value};
use crate::parse::raw::{self, Backoff, InputType, OnFailure, Spanned, list};
use crate::quote;
use crate::step::Registry;
use crate::template;
use checked::{Body, Needs, Param, Ref, Retry, SecretSource, Step, Text};
use std::collections::HashMap;
use std::time::Duration;

/// Ids and names: `[a-z][a-z0-9_]*`.
pub use crate::words::NAME_PATTERN;

pub mod codes {
    pub const VERSION: &str = "runbook::validate::version";
    pub const INVALID_ID: &str = "runbook::validate::invalid_id";
    pub const DUPLICATE_ID: &str = "runbook::validate::duplicate_id";
    pub const UNKNOWN_KIND: &str = "runbook::validate::unknown_kind";
    pub const BAD_PARAMETER: &str = "runbook::validate::bad_parameter";
    pub const UNKNOWN_DEPENDENCY: &str = "runbook::validate::unknown_dependency";
    pub const TEMPLATE_SYNTAX: &str = "runbook::validate::template_syntax";
    pub const UNKNOWN_FILTER: &str = "runbook::validate::unknown_filter";
    pub const UNDEFINED_NAME: &str = "runbook::validate::undefined_name";
    pub const BAD_INPUT: &str = "runbook::validate::bad_input";
    pub const BAD_SECRET: &str = "runbook::validate::bad_secret";
    pub const BAD_VALUE: &str = "runbook::validate::bad_value";
    pub const NOT_IN_FINALLY: &str = "runbook::validate::not_in_finally";
    pub const NO_STEPS: &str = "runbook::validate::no_steps";
    pub const SHELL_QUOTING: &str = "runbook::validate::shell_quoting";
    pub const PLUGIN: &str = "runbook::validate::plugin";
    pub const BAD_PLUGIN: &str = "runbook::validate::bad_plugin";
}

pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A name rewritten to fit the pattern, for the help line.
fn fixed_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "step_");
    }
    out
}

/// Validates a parsed runbook. The checked runbook is returned even when
/// there are errors (without the parts in error), so that the graph can
/// still be checked for cycles in the same pass; only a runbook without
/// errors may go further than that.
pub fn validate(source: &SourceFile, raw: &raw::Runbook, registry: &Registry) -> (checked::Runbook, Vec<Diagnostic>) {
    let mut validator = Validator {
        source,
        registry,
        diagnostics: Vec::new(),
        inputs: raw.inputs.names().collect(),
        secrets: raw.secrets.names().collect(),
        vars: raw.vars.names().collect(),
        steps: HashMap::new(),
    };
    let runbook = validator.runbook(raw);
    validator.plugins(raw);
    (runbook, validator.diagnostics)
}

/// What a template or expression may read.
#[derive(Clone, Copy)]
struct Scope {
    /// `result` of the step (verify, outputs, until).
    result: bool,
    /// `steps.*` (not in vars and lock, which are computed before any step).
    steps: bool,
    /// `vars.*`: all of them, or only the first n (a var may read earlier vars).
    vars: Option<usize>,
}

const STEP_SCOPE: Scope = Scope {
    result: false,
    steps: true,
    vars: None,
};
const RESULT_SCOPE: Scope = Scope {
    result: true,
    steps: true,
    vars: None,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Template,
    Expression,
}

struct StepInfo<'a> {
    outputs: Vec<&'a str>,
}

struct Validator<'a> {
    source: &'a SourceFile,
    registry: &'a Registry,
    diagnostics: Vec<Diagnostic>,
    inputs: Vec<&'a str>,
    secrets: Vec<&'a str>,
    vars: Vec<&'a str>,
    steps: HashMap<&'a str, StepInfo<'a>>,
}

impl<'a> Validator<'a> {
    fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    fn runbook(&mut self, raw: &'a raw::Runbook) -> checked::Runbook {
        if let Some(version) = &raw.version
            && version.value != 1
        {
            self.error(
                Diagnostic::error(codes::VERSION, format!("unsupported format version {}", version.value))
                    .with_label(version.span, "this version of runbook reads format 1")
                    .with_help("write `runbook: 1`; if the file was written for a newer runbook, upgrade runbook"),
            );
        }
        if raw.steps.is_empty() {
            self.error(
                Diagnostic::error(codes::NO_STEPS, "the runbook has no steps")
                    .with_label(Span::new(0, 0), "")
                    .with_help("add a `steps:` list; each step has an `id` and `uses`"),
            );
        }
        // First pass: every step id and its outputs, so references can be checked in any order.
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for step in raw.steps.iter().chain(&raw.finally) {
            let Some(id) = &step.id else { continue };
            if !is_valid_name(&id.value) {
                self.error(
                    Diagnostic::error(codes::INVALID_ID, format!("invalid step id `{}`", id.value))
                        .with_label(
                            id.span,
                            "ids are lowercase letters, digits and `_`, starting with a letter",
                        )
                        .with_help(format!("rename it, e.g. `{}`", fixed_name(&id.value))),
                );
            }
            if let Some(first) = seen.get(id.value.as_str()) {
                self.error(
                    Diagnostic::error(codes::DUPLICATE_ID, format!("duplicate step id `{}`", id.value))
                        .with_label(*first, "first used here")
                        .with_label(id.span, "used again here")
                        .with_help("step ids must be unique in a runbook; rename one of them"),
                );
                continue;
            }
            seen.insert(&id.value, id.span);
            self.steps.insert(
                &id.value,
                StepInfo {
                    outputs: step.outputs.names().collect(),
                },
            );
        }

        let inputs = raw
            .inputs
            .iter()
            .filter_map(|(name, input)| self.input(name, input))
            .collect();
        let secrets = raw
            .secrets
            .iter()
            .filter_map(|(name, secret)| self.secret(name, secret))
            .collect();
        let vars = raw
            .vars
            .iter()
            .enumerate()
            .map(|(i, (name, node))| {
                self.check_name(name, "var");
                let scope = Scope {
                    result: false,
                    steps: false,
                    vars: Some(i),
                };
                checked::Var {
                    name: name.value.clone(),
                    value: self.param(node, scope),
                    span: name.span,
                }
            })
            .collect();
        let defaults = raw.defaults.as_ref();
        if let Some(p) = &raw.max_parallel
            && p.value < 1
        {
            self.error(
                Diagnostic::error(codes::BAD_VALUE, "`max_parallel` must be at least 1")
                    .with_label(p.span, "at least 1")
                    .with_help("use `max_parallel: 1` to run one step at a time"),
            );
        }
        let lock = raw.lock.as_ref().and_then(|l| {
            self.text(
                &l.value,
                l.span,
                Mode::Template,
                Scope {
                    result: false,
                    steps: false,
                    vars: None,
                },
            )
        });
        let steps = raw.steps.iter().filter_map(|s| self.step(s, defaults, false)).collect();
        let finally = raw
            .finally
            .iter()
            .filter_map(|s| self.step(s, defaults, true))
            .collect();
        checked::Runbook {
            name: raw
                .name
                .as_ref()
                .map_or_else(|| file_stem(&self.source.name), |n| n.value.clone()),
            description: raw.description.as_ref().map(|d| d.value.clone()),
            inputs,
            secrets,
            vars,
            max_parallel: raw.max_parallel.as_ref().map(|p| p.value.max(1) as usize),
            lock,
            steps,
            finally,
        }
    }

    fn check_name(&mut self, name: &Spanned<String>, what: &str) {
        if !is_valid_name(&name.value) {
            self.error(
                Diagnostic::error(codes::INVALID_ID, format!("invalid {what} name `{}`", name.value))
                    .with_label(
                        name.span,
                        "names are lowercase letters, digits and `_`, starting with a letter",
                    )
                    .with_help(format!(
                        "rename it, e.g. `{}`",
                        fixed_name(&name.value).replace("step_", "x_")
                    )),
            );
        }
    }

    fn input(&mut self, name: &Spanned<String>, input: &raw::Input) -> Option<checked::Input> {
        self.check_name(name, "input");
        let ty = input.ty.as_ref().map_or(InputType::String, |t| t.value);
        let values: Vec<String> = input.values.iter().flatten().map(|v| v.value.clone()).collect();
        if ty == InputType::Enum && values.is_empty() {
            self.error(
                Diagnostic::error(codes::BAD_INPUT, format!("enum input `{}` has no `values`", name.value))
                    .with_label(
                        input.ty.as_ref().map_or(name.span, |t| t.span),
                        "an enum needs its values",
                    )
                    .with_help("list the allowed values, e.g. `values: [staging, production]`"),
            );
        }
        if ty != InputType::Enum && input.values.is_some() {
            self.error(
                Diagnostic::error(
                    codes::BAD_INPUT,
                    format!("input `{}` has `values` but is not an enum", name.value),
                )
                .with_label(name.span, format!("of type `{}`", ty.name()))
                .with_help("add `type: enum`, or remove `values`"),
            );
        }
        let default =
            input
                .default
                .as_ref()
                .and_then(|node| match inputs::check_default(ty, &values, &node.to_json()) {
                    Ok(value) => Some(value),
                    Err(reason) => {
                        self.error(
                            Diagnostic::error(
                                codes::BAD_INPUT,
                                format!("bad default for input `{}`: {reason}", name.value),
                            )
                            .with_label(node.span, format!("expected a value of type `{}`", ty.name())),
                        );
                        None
                    }
                });
        if let Some(env) = &input.env
            && env.value.is_empty()
        {
            self.error(
                Diagnostic::error(codes::BAD_INPUT, "`env` is empty")
                    .with_label(env.span, "name an environment variable"),
            );
        }
        let pattern = input
            .pattern
            .as_ref()
            .and_then(|p| self.input_pattern(name, ty, p, input.default.as_ref(), default.as_ref()));
        Some(checked::Input {
            name: name.value.clone(),
            ty,
            required: input.required.as_ref().map_or(input.default.is_none(), |r| r.value),
            default,
            description: input.description.as_ref().map(|d| d.value.clone()),
            env: input.env.as_ref().map(|e| e.value.clone()),
            values,
            pattern,
            span: name.span,
        })
    }

    /// A `string` input's `pattern`: it must compile, and the default must match it.
    fn input_pattern(
        &mut self,
        name: &Spanned<String>,
        ty: InputType,
        written: &Spanned<String>,
        default_node: Option<&Node>,
        default: Option<&serde_json::Value>,
    ) -> Option<(pattern::InputPattern, Span)> {
        if ty != InputType::String {
            self.error(
                Diagnostic::error(
                    codes::BAD_INPUT,
                    format!("input `{}` has a `pattern` but is of type `{}`", name.value, ty.name()),
                )
                .with_label(written.span, "a pattern is for string inputs")
                .with_help("remove `pattern`, or make the input `type: string`"),
            );
            return None;
        }
        let compiled = match pattern::InputPattern::new(&written.value) {
            Ok(compiled) => compiled,
            Err(e) => {
                let place = e.range.clone().map_or(written.span, |r| {
                    template::map_range(&self.source.text, written.span, &written.value, r)
                });
                self.error(
                    Diagnostic::error(
                        codes::BAD_INPUT,
                        format!("the pattern of input `{}` does not compile: {}", name.value, e.message),
                    )
                    .with_label(place, e.message)
                    .with_help(
                        "a pattern is a regular expression (the syntax of the Rust `regex` crate); \
                         to mean a character such as `(`, `[` or `.` itself, write it with a backslash: `\\(`",
                    ),
                );
                return None;
            }
        };
        if let (Some(node), Some(serde_json::Value::String(value))) = (default_node, default)
            && !compiled.matches(value)
        {
            self.error(
                Diagnostic::error(
                    codes::BAD_INPUT,
                    format!(
                        "the default of input `{}`, `{value}`, does not match its pattern `{}`",
                        name.value, written.value
                    ),
                )
                .with_label(node.span, "does not match")
                .with_label(written.span, "the pattern, which the whole value must match")
                .with_help("change the default or the pattern"),
            );
        }
        Some((compiled, written.span))
    }

    fn secret(&mut self, name: &Spanned<String>, secret: &raw::Secret) -> Option<checked::Secret> {
        self.check_name(name, "secret");
        let source = match (&secret.env, &secret.file) {
            (Some(env), None) => SecretSource::Env(env.value.clone()),
            (None, Some(file)) => SecretSource::File(file.value.clone()),
            (Some(_), Some(file)) => {
                self.error(
                    Diagnostic::error(
                        codes::BAD_SECRET,
                        format!("secret `{}` has both `env` and `file`", name.value),
                    )
                    .with_label(file.span, "choose one source")
                    .with_help("keep either `env: VARIABLE` or `file: path`"),
                );
                return None;
            }
            (None, None) => {
                self.error(
                    Diagnostic::error(
                        codes::BAD_SECRET,
                        format!("secret `{}` says nowhere to read it from", name.value),
                    )
                    .with_label(name.span, "no `env` or `file`")
                    .with_help(format!(
                        "add `env: {}` or `file: path/to/secret`",
                        name.value.to_ascii_uppercase()
                    )),
                );
                return None;
            }
        };
        Some(checked::Secret {
            name: name.value.clone(),
            source,
            description: secret.description.as_ref().map(|d| d.value.clone()),
            span: name.span,
        })
    }

    fn step(&mut self, step: &'a raw::Step, defaults: Option<&raw::Defaults>, is_finally: bool) -> Option<Step> {
        let id = step.id.as_ref()?;
        let uses = step.uses.as_ref()?;
        if is_finally {
            if let Some(needs) = &step.needs {
                self.error(
                    Diagnostic::error(codes::NOT_IN_FINALLY, "`needs` has no place in a `finally` step")
                        .with_label(needs.span, "finally steps run one after another, in order")
                        .with_help("remove `needs`; order the finally steps as they should run"),
                );
            }
            if let Some(rollback) = &step.rollback {
                self.error(
                    Diagnostic::error(codes::NOT_IN_FINALLY, "`rollback` has no place in a `finally` step")
                        .with_label(rollback.span, "finally steps are never rolled back")
                        .with_help("move the step into `steps`, or remove its `rollback`"),
                );
            }
        }
        let with = self.with(&uses.value, uses.span, step.with.as_ref());
        let needs = match &step.needs {
            None => Needs::Previous,
            Some(needs) => Needs::Explicit(
                needs
                    .value
                    .iter()
                    .filter(|n| self.dependency(n))
                    .map(|n| (n.value.clone(), n.span))
                    .collect(),
            ),
        };
        let when = step
            .when
            .as_ref()
            .and_then(|w| self.text(&w.value, w.span, Mode::Expression, STEP_SCOPE));
        let confirm = step
            .confirm
            .as_ref()
            .and_then(|c| self.text(&c.value, c.span, Mode::Template, STEP_SCOPE));
        let verify = self.expressions(&step.verify);
        let outputs = step
            .outputs
            .iter()
            .filter_map(|(name, expr)| {
                self.check_name(name, "output");
                Some((
                    name.value.clone(),
                    self.text(&expr.value, expr.span, Mode::Expression, RESULT_SCOPE)?,
                ))
            })
            .collect();
        let timeout = step
            .timeout
            .as_ref()
            .or(defaults.and_then(|d| d.timeout.as_ref()))
            .map(|t| t.value.0);
        let retry = step
            .retry
            .as_ref()
            .or(defaults.and_then(|d| d.retry.as_ref()))
            .and_then(|r| self.retry(r));
        let on_failure = step
            .on_failure
            .as_ref()
            .or(defaults.and_then(|d| d.on_failure.as_ref()))
            .map_or(OnFailure::Rollback, |o| o.value);
        let rollback = step.rollback.as_deref().and_then(|b| self.body(b));
        Some(Step {
            id: id.value.clone(),
            span: id.span,
            name: step.name.as_ref().map(|n| n.value.clone()),
            description: step.description.as_ref().map(|d| d.value.clone()),
            kind: uses.value.clone(),
            kind_span: uses.span,
            with,
            needs,
            when,
            confirm,
            verify,
            outputs,
            timeout,
            retry,
            on_failure,
            rollback,
            idempotent: step.idempotent.as_ref().is_some_and(|i| i.value),
            is_finally,
        })
    }

    /// Checks one entry of `needs`; false drops it from the graph.
    fn dependency(&mut self, need: &Spanned<String>) -> bool {
        if self.steps.contains_key(need.value.as_str()) {
            return true;
        }
        let help = suggestion(&need.value, self.steps.keys().copied())
            .unwrap_or_else(|| "`needs` lists ids of other steps of this runbook".to_string());
        self.error(
            Diagnostic::error(
                codes::UNKNOWN_DEPENDENCY,
                format!("unknown step `{}` in `needs`", need.value),
            )
            .with_label(need.span, "no step has this id")
            .with_help(help),
        );
        false
    }

    fn body(&mut self, body: &raw::StepBody) -> Option<Body> {
        let uses = body.uses.as_ref()?;
        Some(Body {
            name: body.name.as_ref().map(|n| n.value.clone()),
            description: body.description.as_ref().map(|d| d.value.clone()),
            kind: uses.value.clone(),
            with: self.with(&uses.value, uses.span, body.with.as_ref()),
            timeout: body.timeout.as_ref().map(|t| t.value.0),
            retry: body.retry.as_ref().and_then(|r| self.retry(r)),
            verify: self.expressions(&body.verify),
        })
    }

    fn expressions(&mut self, exprs: &[Spanned<String>]) -> Vec<Text> {
        exprs
            .iter()
            .filter_map(|e| self.text(&e.value, e.span, Mode::Expression, RESULT_SCOPE))
            .collect()
    }

    fn retry(&mut self, retry: &raw::Retry) -> Option<Retry> {
        let attempts = retry.attempts.as_ref().map_or(1, |a| a.value);
        if attempts < 1 {
            let span = retry.attempts.as_ref().map_or(retry.span, |a| a.span);
            self.error(
                Diagnostic::error(codes::BAD_VALUE, "`attempts` must be at least 1")
                    .with_label(span, "the first attempt counts")
                    .with_help("`attempts: 3` tries a step up to three times"),
            );
        }
        let delay = retry.delay.as_ref().map_or(Duration::from_secs(1), |d| d.value.0);
        let max_delay = retry.max_delay.as_ref().map(|d| d.value.0);
        if let (Some(max), Some(span)) = (max_delay, retry.max_delay.as_ref().map(|d| d.span))
            && max < delay
        {
            self.error(
                Diagnostic::error(codes::BAD_VALUE, "`max_delay` is shorter than `delay`")
                    .with_label(span, "bounds the delay")
                    .with_help("make `max_delay` at least as long as `delay`"),
            );
        }
        Some(Retry {
            attempts: attempts.clamp(1, i64::from(u32::MAX)) as u32,
            backoff: retry.backoff.as_ref().map_or(Backoff::Exponential, |b| b.value),
            delay,
            max_delay,
            jitter: retry.jitter.as_ref().is_some_and(|j| j.value),
            until: retry
                .until
                .as_ref()
                .and_then(|u| self.text(&u.value, u.span, Mode::Expression, RESULT_SCOPE)),
        })
    }

    /// Checks the kind and its parameters, and turns `with` into a [`Param`] tree.
    fn with(&mut self, kind_name: &str, kind_span: Span, with: Option<&Node>) -> Param {
        let empty = Node {
            span: kind_span,
            value: Value::Map(Vec::new()),
        };
        let node = with.unwrap_or(&empty);
        let Some(kind) = self.registry.get(kind_name).cloned() else {
            if let Some(diagnostic) = self.plugin_problem(kind_name, kind_span) {
                self.error(diagnostic);
                return self.param(node, STEP_SCOPE);
            }
            let help = suggestion(kind_name, self.registry.names()).unwrap_or_else(|| {
                format!(
                    "the step kinds are {}",
                    list(&self.registry.names().collect::<Vec<_>>())
                )
            });
            self.error(
                Diagnostic::error(codes::UNKNOWN_KIND, format!("unknown step kind `{kind_name}`"))
                    .with_label(kind_span, "no step kind has this name")
                    .with_help(help),
            );
            return self.param(node, STEP_SCOPE);
        };
        let json = node.to_json();
        let skip = |pointer: &str| {
            node.pointer(pointer)
                .and_then(Node::as_str)
                .is_some_and(template::is_template)
        };
        let mut problems = self.registry.check_schema(kind_name, &json, &skip);
        if problems.is_empty() {
            problems = kind.validate(&json);
        }
        for problem in problems {
            let span = node
                .key_span(&problem.pointer)
                .filter(|_| problem.message.starts_with("unknown parameter"))
                .or_else(|| node.pointer(&problem.pointer).map(|n| n.span))
                .filter(|s| s.len > 0 || with.is_some())
                .unwrap_or(if with.is_some() { node.span } else { kind_span });
            self.error(
                Diagnostic::error(
                    codes::BAD_PARAMETER,
                    format!("{} (step kind `{kind_name}`)", problem.message),
                )
                .with_label(span, "")
                .with_optional_help(problem.help),
            );
        }
        self.shell_quoting(kind.shell_params(), node);
        let expressions = kind.expression_params();
        let nested = kind.nested_steps();
        let has_result = !nested.is_empty();
        self.kind_param(node, "", expressions, nested, has_result)
    }

    /// The names under `plugins:`. (Whether each can be used is said where
    /// a step uses it.)
    fn plugins(&mut self, raw: &raw::Runbook) {
        for (name, path) in raw.plugins.iter() {
            if !crate::plugin::protocol::is_name(&name.value) || crate::plugin::RESERVED.contains(&name.value.as_str())
            {
                self.error(
                    Diagnostic::error(codes::BAD_PLUGIN, format!("`{}` cannot name a plugin", name.value))
                        .with_label(name.span, "a plugin's name")
                        .with_help(format!(
                            "a plugin's name is lower-case letters, digits and `_`, starting with a letter, and not {}",
                            list(crate::plugin::RESERVED)
                        )),
                );
            }
            if path.value.trim().is_empty() {
                self.error(
                    Diagnostic::error(codes::BAD_PLUGIN, format!("plugin `{}` has no path", name.value))
                        .with_label(path.span, "empty")
                        .with_help("give the path of its executable, relative to this runbook's folder"),
                );
            }
        }
    }

    /// Why `uses: PLUGIN.KIND` cannot be used, when `PLUGIN` is a plugin
    /// that was looked for: it cannot be used, or has no kind `KIND`.
    fn plugin_problem(&self, kind_name: &str, span: Span) -> Option<Diagnostic> {
        let (plugin, kind) = kind_name.split_once('.')?;
        if let Some(why) = self.registry.unusable(plugin) {
            return Some(
                Diagnostic::error(codes::PLUGIN, why.message.clone())
                    .with_label(span, format!("this step uses plugin `{plugin}`"))
                    .with_optional_help(why.help.clone()),
            );
        }
        let prefix = format!("{plugin}.");
        let kinds: Vec<&str> = self
            .registry
            .names()
            .filter_map(|name| name.strip_prefix(&prefix))
            .collect();
        if kinds.is_empty() || crate::plugin::RESERVED.contains(&plugin) {
            return None;
        }
        let help = suggestion(kind, kinds.iter().copied())
            .unwrap_or_else(|| format!("plugin `{plugin}` provides {}", list(&kinds)));
        Some(
            Diagnostic::error(codes::PLUGIN, format!("plugin `{plugin}` has no kind `{kind}`"))
                .with_label(span, "not among the kinds its `describe` lists")
                .with_help(help),
        )
    }

    /// Values printed where no quoting can keep them from running commands
    /// (inside backticks, `${…}`, `$'…'`): refused before anything runs.
    fn shell_quoting(&mut self, shell_params: &[&str], with: &Node) {
        for pointer in shell_params {
            let Some(node) = with.pointer(pointer) else { continue };
            let Some(text) = node.as_str() else { continue };
            if !template::is_template(text) || template::template_references(text).is_err() {
                continue;
            }
            for problem in quote::shell_template_problems(text) {
                let span = template::map_range(&self.source.text, node.span, text, problem.range);
                self.error(
                    Diagnostic::error(codes::SHELL_QUOTING, problem.message)
                        .with_label(span, problem.label)
                        .with_help(problem.help),
                );
            }
        }
    }

    fn kind_param(
        &mut self,
        node: &Node,
        pointer: &str,
        expressions: &[&str],
        nested: &[&str],
        has_result: bool,
    ) -> Param {
        if expressions.contains(&pointer) {
            let scope = if has_result { RESULT_SCOPE } else { STEP_SCOPE };
            return match &node.value {
                Value::Str(s) => self
                    .text(s, node.span, Mode::Expression, scope)
                    .map_or(Param::Value(node.to_json()), Param::Expression),
                Value::Seq(items) => Param::List(
                    items
                        .iter()
                        .map(|item| match &item.value {
                            Value::Str(s) => self
                                .text(s, item.span, Mode::Expression, scope)
                                .map_or(Param::Value(item.to_json()), Param::Expression),
                            _ => Param::Value(item.to_json()),
                        })
                        .collect(),
                ),
                _ => Param::Value(node.to_json()),
            };
        }
        if nested.contains(&pointer)
            && let Value::Map(entries) = &node.value
        {
            let uses = entries.iter().find(|(k, _)| k.as_str() == Some("uses"));
            let with = entries.iter().find(|(k, _)| k.as_str() == Some("with")).map(|(_, v)| v);
            let mut out = Vec::new();
            if let Some((_, uses)) = uses
                && let Some(kind) = uses.as_str()
            {
                out.push(("uses".to_string(), Param::Value(uses.to_json())));
                out.push(("with".to_string(), self.with(kind, uses.span, with)));
            }
            return Param::Map(out);
        }
        match &node.value {
            Value::Seq(items) => Param::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.kind_param(item, &format!("{pointer}/{i}"), expressions, nested, has_result))
                    .collect(),
            ),
            Value::Map(entries) => Param::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = k.key_text();
                        let child = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                        (key, self.kind_param(v, &child, expressions, nested, has_result))
                    })
                    .collect(),
            ),
            _ => self.param(node, STEP_SCOPE),
        }
    }

    /// A free-form value: strings with `{{ }}` become templates.
    fn param(&mut self, node: &Node, scope: Scope) -> Param {
        match &node.value {
            Value::Str(s) if template::is_template(s) => {
                let native = template::single_expression(s).is_some();
                match self.text(s, node.span, Mode::Template, scope) {
                    Some(text) if native => Param::Native(text),
                    Some(text) => Param::Template(text),
                    None => Param::Value(node.to_json()),
                }
            }
            Value::Seq(items) => Param::List(items.iter().map(|i| self.param(i, scope)).collect()),
            Value::Map(entries) => Param::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_text(), self.param(v, scope)))
                    .collect(),
            ),
            _ => Param::Value(node.to_json()),
        }
    }

    /// Parses a template or expression and checks the names it reads.
    fn text(&mut self, value: &str, span: Span, mode: Mode, scope: Scope) -> Option<Text> {
        let analysed = match mode {
            Mode::Template => template::template_references(value),
            Mode::Expression => template::expression_references(value),
        };
        let paths = match analysed {
            Ok(paths) => paths,
            Err(error) => {
                let label_span = error
                    .range
                    .clone()
                    .map_or(span, |r| template::map_range(&self.source.text, span, value, r));
                let what = if mode == Mode::Template {
                    "template"
                } else {
                    "expression"
                };
                let help = if mode == Mode::Expression && value.contains("{{") {
                    "expressions are written without `{{ }}`, e.g. `when: steps.check.outputs.ok`".to_string()
                } else {
                    "check the braces and the expression syntax (minijinja, like Jinja2)".to_string()
                };
                self.error(
                    Diagnostic::error(
                        codes::TEMPLATE_SYNTAX,
                        format!("{what} syntax error: {}", error.message),
                    )
                    .with_label(label_span, error.message)
                    .with_help(help),
                );
                return None;
            }
        };
        let mut ok = true;
        for unknown in template::unknown_names(value, mode == Mode::Expression) {
            let label_span = template::map_range(&self.source.text, span, value, unknown.range.clone());
            let help = match unknown.suggestion {
                Some(name) => format!("did you mean `{name}`?"),
                None => format!(
                    "the {kind}s are minijinja's built-in {kind}s, and `quote` for shell words",
                    kind = unknown.kind
                ),
            };
            self.error(
                Diagnostic::error(
                    codes::UNKNOWN_FILTER,
                    format!("unknown {} `{}`", unknown.kind, unknown.name),
                )
                .with_label(label_span, format!("no such {}", unknown.kind))
                .with_help(help),
            );
            ok = false;
        }
        let mut refs = Vec::with_capacity(paths.len());
        for path in paths {
            let ref_span = template::find_name(&self.source.text, span, value, &path);
            ok &= self.check_reference(&path, ref_span, scope);
            refs.push(Ref { path, span: ref_span });
        }
        ok.then(|| Text {
            text: value.to_string(),
            span,
            refs,
        })
    }

    fn check_reference(&mut self, path: &str, span: Span, scope: Scope) -> bool {
        let parts: Vec<&str> = path.split('.').collect();
        let undefined = |message: String, help: String| {
            Diagnostic::error(codes::UNDEFINED_NAME, message)
                .with_label(span, "not defined")
                .with_help(help)
        };
        let declared = |kind: &str, list: &[&str], name: &str, section: &str| -> Option<Diagnostic> {
            if list.contains(&name) {
                return None;
            }
            let help =
                suggestion(name, list.iter().copied()).unwrap_or_else(|| format!("declare it under `{section}:`"));
            Some(undefined(format!("undefined {kind} `{name}`"), help))
        };
        let problem = match (parts[0], parts.get(1)) {
            ("inputs", Some(name)) => declared("input", &self.inputs, name, "inputs"),
            ("secrets", Some(name)) => declared("secret", &self.secrets, name, "secrets"),
            ("vars", Some(name)) => {
                let visible = &self.vars[..scope.vars.unwrap_or(self.vars.len()).min(self.vars.len())];
                if !visible.contains(name) && self.vars.contains(name) {
                    Some(undefined(
                        format!("var `{name}` is not computed yet here"),
                        "vars are computed in order; a var may read only the vars above it".into(),
                    ))
                } else {
                    declared("var", visible, name, "vars")
                }
            }
            ("inputs" | "secrets" | "vars", None) => None,
            ("steps", _) if !scope.steps => Some(undefined(
                format!("`{path}` is not available here"),
                "vars and the lock key are computed before any step runs; read step outputs in steps".into(),
            )),
            ("steps", None) => None,
            ("steps", Some(id)) => self
                .check_step_reference(&parts, id)
                .map(|(message, help)| undefined(message, help)),
            ("run", None) => None,
            ("run", Some(field)) => {
                let fields = ["id", "status", "dry_run", "started_at"];
                (!fields.contains(field)).then(|| {
                    let help = suggestion(field, fields).unwrap_or_else(|| format!("`run` has {}", list(&fields)));
                    undefined(format!("`run` has no field `{field}`"), help)
                })
            }
            ("result", _) if scope.result => None,
            ("result", _) => Some(undefined(
                "`result` is not available here".into(),
                "`result` is the step's own result, readable in `verify`, `outputs` and `until`".into(),
            )),
            (root, _) => {
                let mut roots = vec!["inputs", "secrets", "vars", "steps", "run"];
                if scope.result {
                    roots.push("result");
                }
                let help = suggestion(root, roots.iter().copied())
                    .map(|s| format!("{s} (names start with {})", list(&roots)))
                    .unwrap_or_else(|| format!("names start with {}", list(&roots)));
                Some(undefined(format!("undefined name `{root}`"), help))
            }
        };
        match problem {
            Some(diagnostic) => {
                self.error(diagnostic);
                false
            }
            None => true,
        }
    }

    fn check_step_reference(&self, parts: &[&str], id: &str) -> Option<(String, String)> {
        let Some(info) = self.steps.get(id) else {
            let help = suggestion(id, self.steps.keys().copied())
                .unwrap_or_else(|| "no step of this runbook has this id".into());
            return Some((format!("undefined step `{id}`"), help));
        };
        match parts.get(2) {
            None | Some(&"status") => None,
            Some(&"outputs") => {
                let name = parts.get(3)?;
                if info.outputs.contains(name) {
                    return None;
                }
                let help = suggestion(name, info.outputs.iter().copied()).unwrap_or_else(|| {
                    if info.outputs.is_empty() {
                        format!("step `{id}` declares no outputs; add `outputs: {{ {name}: result... }}` to it")
                    } else {
                        format!("step `{id}` declares {}", list(&info.outputs))
                    }
                });
                Some((format!("step `{id}` has no output `{name}`"), help))
            }
            Some(other) => Some((
                format!("`steps.{id}` has no field `{other}`"),
                suggestion(other, ["outputs", "status"])
                    .unwrap_or_else(|| "a step exposes `outputs` and `status`".into()),
            )),
        }
    }
}

fn file_stem(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    base.split('.').next().unwrap_or(base).to_string()
}

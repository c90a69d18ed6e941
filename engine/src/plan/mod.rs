//! Stage 4, plan: compiled runbook + inputs → [`Plan`], what a run would do,
//! without doing anything. Pure: it reads no secret value (it only checks
//! that each secret is available) and calls only the kinds' `describe`.
//!
//! Values known only at run time are shown as placeholders such as
//! `<steps.resolve_pop.outputs.pop>`; `--assume` replaces them with a value
//! so an author can explore a branch.

mod failure;
mod guard;
mod render;

pub use failure::{PlannedFailure, PlannedStop, PlannedUndo};
pub use guard::{Decision, Guard, KnownGuard, decide};
pub use render::{render_dot, render_mermaid, render_text};

use crate::compile::Compiled;
use crate::diagnostic::Diagnostic;
use crate::parse::raw::{Backoff, InputType, OnFailure, list};
use crate::quote::{self, Quote};
use crate::step::Registry;
use crate::template::{self, Piece};
use crate::validate::checked::{self, Leaf, Param, RenderParams, SecretSource, Text};
use crate::validate::datetime::start_now;
use crate::validate::inputs::{parse_input_text, resolve_time};
use crate::words::format_duration;
use jiff::Timestamp;
use minijinja::Value;
use minijinja::value::{Object, ObjectRepr};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub mod codes {
    pub const UNKNOWN_INPUT: &str = "runbook::plan::unknown_input";
    pub const MISSING_INPUT: &str = "runbook::plan::missing_input";
    pub const BAD_INPUT: &str = "runbook::plan::bad_input";
    pub const BAD_ASSUMPTION: &str = "runbook::plan::bad_assumption";
    pub const MISSING_SECRET: &str = "runbook::plan::missing_secret";
    pub const RENDER: &str = "runbook::plan::render";
}

/// Looks up an environment variable.
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// What the planner is told besides the runbook.
#[derive(Default)]
pub struct PlanRequest<'a> {
    /// `--input NAME=VALUE`, in order.
    pub inputs: Vec<(String, String)>,
    /// `--assume steps.ID.outputs.NAME=VALUE` (or `steps.ID.status=...`).
    pub assume: Vec<(String, String)>,
    /// The environment, for inputs with `env` and secrets.
    pub env: Option<EnvLookup<'a>>,
    /// Whether a secret file exists (relative paths are resolved by the caller).
    pub file_exists: Option<&'a dyn Fn(&str) -> bool>,
}

/// The dry run of a runbook.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub runbook: String,
    pub description: Option<String>,
    pub inputs: Vec<PlannedInput>,
    pub secrets: Vec<PlannedSecret>,
    pub vars: Vec<PlannedVar>,
    pub lock: Option<String>,
    pub max_parallel: Option<usize>,
    pub waves: Vec<Vec<String>>,
    pub steps: Vec<PlannedStep>,
    #[serde(rename = "finally")]
    pub finally_steps: Vec<PlannedStep>,
    /// What the run does after the failures `--assume` asks about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<PlannedFailure>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedInput {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub value: Json,
    /// `argument`, `env NAME` or `default`.
    pub source: String,
    /// A `datetime` given relative to the start of the run (`-24h`, `now`),
    /// as written; `value` is the time it stands for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedSecret {
    pub name: String,
    /// `env NAME` or `file PATH`.
    pub source: String,
    pub available: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedVar {
    pub name: String,
    pub value: Json,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedRetry {
    pub attempts: u32,
    pub backoff: &'static str,
    pub delay: String,
    pub max_delay: Option<String>,
    pub jitter: bool,
    pub until: Option<String>,
}

/// An action: what a step (or its rollback) does.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedAction {
    pub kind: String,
    /// A rollback body's own name. A step's is the step's (`PlannedStep::name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The kind's own words for what it will do.
    pub action: String,
    /// Parameters rendered with what is known now.
    pub params: Json,
    /// What the kind sees it would do to the world as it is now (a dry-run
    /// listing), when no parameter waits for a run-time value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub id: String,
    pub name: Option<String>,
    /// 1-based wave; finally steps have none.
    pub wave: Option<usize>,
    pub needs: Vec<String>,
    #[serde(flatten)]
    pub action: PlannedAction,
    pub guard: Guard,
    pub confirm: Option<String>,
    pub verify: Vec<String>,
    pub outputs: BTreeMap<String, String>,
    pub timeout: Option<String>,
    pub retry: Option<PlannedRetry>,
    pub on_failure: OnFailure,
    pub rollback: Option<PlannedAction>,
    pub idempotent: bool,
    pub read_only: bool,
    /// For a `runbook` step: the plan of the runbook it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<Box<Plan>>,
    /// Why the step never starts, when an assumed failure stops the run before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_run: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub steps: usize,
    pub waves: usize,
    pub confirmations: usize,
    pub with_rollback: usize,
    pub skipped: usize,
    pub decided_at_run_time: usize,
    pub finally: usize,
    /// Steps an assumed failure stops the run before (only when there are any).
    #[serde(skip_serializing_if = "is_zero")]
    pub not_run: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A value known only at run time; renders as `<path>`.
#[derive(Debug)]
struct Placeholder(String);

impl Object for Placeholder {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from_object(Placeholder(format!("{}.{}", self.0, key))))
    }
    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}>", self.0)
    }
}

fn to_value<T: Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

fn placeholder(path: &str) -> Value {
    Value::from_object(Placeholder(path.to_string()))
}

/// Builds the plan. Fails only on inputs and assumptions that cannot be used.
pub fn plan(
    compiled: &Compiled,
    registry: &Registry,
    request: &PlanRequest<'_>,
) -> Result<(Plan, Vec<Diagnostic>), Vec<Diagnostic>> {
    let runbook = &compiled.runbook;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let no_env = |_: &str| None;
    let env: &dyn Fn(&str) -> Option<String> = request.env.unwrap_or(&no_env);

    // A plan shows relative times as a run started now would resolve them.
    let inputs = resolve_inputs(runbook, &request.inputs, env, start_now(), &|_| false, &mut errors);
    let assumed = parse_assumptions(compiled, &request.assume, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }

    let secrets: Vec<PlannedSecret> = runbook
        .secrets
        .iter()
        .map(|s| {
            let (source, available) = match &s.source {
                SecretSource::Env(var) => (format!("env {var}"), env(var).is_some_and(|v| !v.is_empty())),
                SecretSource::File(path) => (format!("file {path}"), request.file_exists.is_some_and(|f| f(path))),
            };
            if !available {
                warnings.push(
                    Diagnostic::warning(
                        codes::MISSING_SECRET,
                        format!("secret `{}` is not set ({source})", s.name),
                    )
                    .with_label(s.span, "declared here")
                    .with_help(match &s.source {
                        SecretSource::Env(var) => {
                            format!("export {var}=... before `runbook run`; a run without it refuses to start")
                        }
                        SecretSource::File(path) => {
                            format!("create {path} before `runbook run`; a run without it refuses to start")
                        }
                    }),
                );
            }
            PlannedSecret {
                name: s.name.clone(),
                source,
                available,
            }
        })
        .collect();

    // The template context: known values, masked secrets, placeholders for the rest.
    let mut context: BTreeMap<&str, Value> = BTreeMap::new();
    let input_values: BTreeMap<String, Value> = inputs.iter().map(|i| (i.name.clone(), to_value(&i.value))).collect();
    context.insert("inputs", to_value(&input_values));
    let masked: BTreeMap<&str, &str> = runbook.secrets.iter().map(|s| (s.name.as_str(), "***")).collect();
    context.insert("secrets", to_value(&masked));
    let run: BTreeMap<&str, Value> = [
        ("id", placeholder("run.id")),
        ("status", placeholder("run.status")),
        ("dry_run", Value::from(true)),
        ("started_at", placeholder("run.started_at")),
    ]
    .into_iter()
    .collect();
    context.insert("run", Value::from(run));
    let mut steps_context: BTreeMap<String, Value> = BTreeMap::new();
    for step in runbook.steps.iter().chain(&runbook.finally) {
        let outputs: BTreeMap<String, Value> = step
            .outputs
            .iter()
            .map(|(name, _)| {
                let path = format!("steps.{}.outputs.{name}", step.id);
                let value = assumed.get(&path).map_or_else(|| placeholder(&path), to_value);
                (name.clone(), value)
            })
            .collect();
        let status_path = format!("steps.{}.status", step.id);
        let status = assumed
            .get(&status_path)
            .map_or_else(|| placeholder(&status_path), to_value);
        steps_context.insert(
            step.id.clone(),
            Value::from(BTreeMap::from([("outputs", Value::from(outputs)), ("status", status)])),
        );
    }
    context.insert("steps", Value::from(steps_context));

    let mut vars = Vec::new();
    let mut var_values: BTreeMap<String, Value> = BTreeMap::new();
    for var in &runbook.vars {
        context.insert("vars", Value::from(var_values.clone()));
        let ctx = Value::from(context.clone());
        let value = Renderer {
            ctx: &ctx,
            assumed: &assumed,
            registry,
        }
        .params(&var.value, "", &mut warnings);
        var_values.insert(var.name.clone(), to_value(&value));
        vars.push(PlannedVar {
            name: var.name.clone(),
            value,
        });
    }
    context.insert("vars", Value::from(var_values));
    let ctx = Value::from(context.clone());

    let planner = Planner {
        compiled,
        env: request.env,
        registry,
        ctx: &ctx,
        assumed: &assumed,
    };
    let mut warnings_out = warnings;
    let graph = &compiled.graph;
    let mut steps: Vec<PlannedStep> = graph
        .order()
        .map(|i| {
            let step = &runbook.steps[i];
            let needs = graph.needs[i]
                .iter()
                .map(|e| runbook.steps[e.from].id.clone())
                .collect();
            planner.step(step, Some(graph.wave_of[i] + 1), needs, &mut warnings_out)
        })
        .collect();
    let lock = runbook.lock.as_ref().map(|l| planner.template(l, &mut warnings_out));
    let failure = failure::plan_failure(compiled, &mut steps, &assumed, &mut warnings_out);
    // After an assumed failure, `finally` reads how the run ended.
    let (finally_ctx, finally_assumed) = match &failure {
        Some(failure) => {
            let status = failure.run_status.as_str();
            let mut run: BTreeMap<&str, Value> = BTreeMap::new();
            if let Some(known) = context.get("run") {
                for key in ["id", "dry_run", "started_at"] {
                    run.insert(key, known.get_attr(key).unwrap_or_default());
                }
            }
            run.insert("status", Value::from(status));
            context.insert("run", Value::from(run));
            let mut assumed = assumed.clone();
            assumed.insert("run.status".into(), Json::String(status.into()));
            (Value::from(context), assumed)
        }
        None => (ctx.clone(), assumed.clone()),
    };
    let finally_planner = Planner {
        ctx: &finally_ctx,
        assumed: &finally_assumed,
        ..planner
    };
    let finally_steps: Vec<PlannedStep> = runbook
        .finally
        .iter()
        .map(|step| finally_planner.step(step, None, Vec::new(), &mut warnings_out))
        .collect();

    let summary = Summary {
        steps: steps.len(),
        waves: graph.waves.len(),
        // The questions the run may ask: not those of steps that cannot run.
        confirmations: steps
            .iter()
            .chain(&finally_steps)
            .filter(|s| s.not_run.is_none() && !s.guard.is_known_false())
            .filter(|s| s.confirm.is_some() || registry.get(&s.action.kind).is_some_and(|k| k.asks_operator()))
            .count(),
        with_rollback: steps.iter().filter(|s| s.rollback.is_some()).count(),
        skipped: steps
            .iter()
            .filter(|s| s.not_run.is_none() && s.guard.is_known_false())
            .count(),
        decided_at_run_time: steps
            .iter()
            .filter(|s| s.not_run.is_none() && matches!(s.guard, Guard::AtRunTime { .. }))
            .count(),
        finally: finally_steps.len(),
        not_run: steps.iter().filter(|s| s.not_run.is_some()).count(),
    };
    let waves = graph
        .waves
        .iter()
        .map(|w| w.iter().map(|&i| runbook.steps[i].id.clone()).collect())
        .collect();
    Ok((
        Plan {
            runbook: runbook.name.clone(),
            description: runbook.description.clone(),
            inputs,
            secrets,
            vars,
            lock,
            max_parallel: runbook.max_parallel,
            waves,
            steps,
            finally_steps,
            failure,
            summary,
        },
        warnings_out,
    ))
}

/// Resolves inputs from arguments, the environment and defaults, for a run
/// that starts at `start` (relative `datetime` values count from it). Each
/// value is checked against its type and pattern; an error shows the value
/// unless `holds_secret` says it holds one.
pub fn resolve_inputs(
    runbook: &checked::Runbook,
    given: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    start: Timestamp,
    holds_secret: &dyn Fn(&str) -> bool,
    errors: &mut Vec<Diagnostic>,
) -> Vec<PlannedInput> {
    for (name, _) in given {
        if !runbook.inputs.iter().any(|i| &i.name == name) {
            let names: Vec<&str> = runbook.inputs.iter().map(|i| i.name.as_str()).collect();
            let help = crate::diagnostic::suggestion(name, names.iter().copied()).unwrap_or_else(|| {
                if names.is_empty() {
                    "this runbook takes no inputs".to_string()
                } else {
                    format!("the inputs are {}", list(&names))
                }
            });
            errors.push(Diagnostic::error(codes::UNKNOWN_INPUT, format!("unknown input `{name}`")).with_help(help));
        }
    }
    let mut out = Vec::new();
    for input in &runbook.inputs {
        let from_args = given
            .iter()
            .rev()
            .find(|(n, _)| n == &input.name)
            .map(|(_, v)| (v.clone(), "argument".to_string()));
        let from_env = || {
            input
                .env
                .as_ref()
                .and_then(|var| env(var).map(|v| (v, format!("env {var}"))))
        };
        let parsed = match from_args.or_else(from_env) {
            Some((text, source)) => match parse_input_text(input.ty, &input.values, &text) {
                Ok(value) => Some((value, source)),
                Err(reason) => {
                    let reason = if holds_secret(&text) {
                        format!(
                            "the value holds a secret, so it is not shown; it is not a valid {}",
                            input.ty.name()
                        )
                    } else {
                        reason
                    };
                    errors.push(bad_input(input, &source, &reason));
                    continue;
                }
            },
            None => input.default.clone().map(|d| (d, "default".to_string())),
        };
        let resolved = parsed.map(|(value, source)| match (input.ty, &value) {
            (InputType::Datetime, Json::String(text)) => match resolve_time(text, start) {
                Ok((value, relative)) => Ok((value, source, relative)),
                Err(reason) => Err(bad_input(input, &source, &reason)),
            },
            _ => Ok((value, source, None)),
        });
        let resolved = match resolved {
            Some(Ok((value, source, relative))) => match &input.pattern {
                Some((pattern, span)) if !value.as_str().is_some_and(|v| pattern.matches(v)) => {
                    let text = value.as_str().unwrap_or_default();
                    let reason = if holds_secret(text) {
                        format!(
                            "the value holds a secret, so it is not shown; it does not match the pattern `{}`",
                            pattern.text()
                        )
                    } else {
                        format!("`{text}` does not match the pattern `{}`", pattern.text())
                    };
                    let help = match &input.description {
                        Some(description) => format!("`{}`: {description}", input.name),
                        None => format!("give a value that matches, e.g. `--input {}=...`", input.name),
                    };
                    errors.push(
                        Diagnostic::error(
                            codes::BAD_INPUT,
                            format!("bad value for input `{}` ({source}): {reason}", input.name),
                        )
                        .with_label(*span, "the whole value must match this pattern")
                        .with_help(help),
                    );
                    continue;
                }
                _ => Some((value, source, relative)),
            },
            Some(Err(diagnostic)) => {
                errors.push(diagnostic);
                continue;
            }
            None => None,
        };
        match resolved {
            Some((value, source, relative)) => out.push(PlannedInput {
                name: input.name.clone(),
                ty: input.ty.name(),
                value,
                source,
                relative,
                description: input.description.clone(),
            }),
            None if input.required => {
                let mut help = format!("pass `--input {}=VALUE`", input.name);
                if let Some(var) = &input.env {
                    help.push_str(&format!(" or set the environment variable {var}"));
                }
                errors.push(
                    Diagnostic::error(codes::MISSING_INPUT, format!("missing required input `{}`", input.name))
                        .with_label(input.span, "declared here, without a default")
                        .with_help(help),
                );
            }
            None => out.push(PlannedInput {
                name: input.name.clone(),
                ty: input.ty.name(),
                value: Json::Null,
                source: "not given".into(),
                relative: None,
                description: input.description.clone(),
            }),
        }
    }
    out
}

/// A value that does not fit its input's type: what is wrong, where the
/// input says what it takes, and how to give one.
fn bad_input(input: &checked::Input, source: &str, reason: &str) -> Diagnostic {
    let help = match input.ty {
        InputType::Datetime => format!(
            "give a time in RFC 3339 (`2026-12-03T08:00:00Z`) or relative to the start of the run \
             (`-24h`, `now`), e.g. `--input {}=-24h`",
            input.name
        ),
        _ => format!("give a {} value, e.g. `--input {}=...`", input.ty.name(), input.name),
    };
    Diagnostic::error(
        codes::BAD_INPUT,
        format!("bad value for input `{}` ({source}): {reason}", input.name),
    )
    .with_label(input.span, format!("declared as {}", input.ty.name()))
    .with_help(help)
}

/// Parses `--assume` values: JSON when they parse as JSON, text otherwise.
fn parse_assumptions(
    compiled: &Compiled,
    assume: &[(String, String)],
    errors: &mut Vec<Diagnostic>,
) -> HashMap<String, Json> {
    let mut out = HashMap::new();
    for (path, text) in assume {
        let parts: Vec<&str> = path.split('.').collect();
        let valid = match parts.as_slice() {
            ["steps", id, "outputs", name] => compiled
                .runbook
                .step(id)
                .is_some_and(|s| s.outputs.iter().any(|(n, _)| n == name)),
            ["steps", id, "status"] => compiled.runbook.step(id).is_some(),
            _ => false,
        };
        if !valid {
            errors.push(
                Diagnostic::error(codes::BAD_ASSUMPTION, format!("cannot assume `{path}`"))
                    .with_help("assume a declared output or a status: `--assume steps.ID.outputs.NAME=VALUE` or `steps.ID.status=failed`"),
            );
            continue;
        }
        let value = serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.clone()));
        out.insert(path.clone(), value);
    }
    out
}

#[derive(Clone, Copy)]
struct Planner<'a> {
    compiled: &'a Compiled,
    env: Option<EnvLookup<'a>>,
    registry: &'a Registry,
    ctx: &'a Value,
    assumed: &'a HashMap<String, Json>,
}

/// Names whose value the plan cannot know.
fn runtime_only(path: &str, assumed: &HashMap<String, Json>) -> bool {
    let assumed_now = assumed.keys().any(|a| path == a || path.starts_with(&format!("{a}.")));
    !assumed_now
        && (path.starts_with("steps.")
            || matches!(path, "run.id" | "run.status" | "run.started_at")
            || path == "steps"
            || path == "run")
}

impl Planner<'_> {
    /// A `runbook` step's child runbook, planned with the inputs known now.
    fn child_plan(&self, step: &checked::Step, warnings: &mut Vec<Diagnostic>) -> Option<Box<Plan>> {
        let child = self.compiled.children.get(&step.id)?;
        let params = Renderer {
            ctx: self.ctx,
            assumed: self.assumed,
            registry: self.registry,
        }
        .params(&step.with, &step.kind, &mut Vec::new());
        let inputs = params
            .get("inputs")
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                    .collect()
            })
            .unwrap_or_default();
        let request = PlanRequest {
            inputs,
            assume: Vec::new(),
            env: self.env,
            file_exists: None,
        };
        match plan(child, self.registry, &request) {
            Ok((plan, _)) => Some(Box::new(plan)),
            Err(errors) => {
                let reasons: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
                warnings.push(
                    Diagnostic::warning(
                        codes::RENDER,
                        format!(
                            "cannot plan the runbook of step `{}` now: {}",
                            step.id,
                            reasons.join("; ")
                        ),
                    )
                    .with_label(step.kind_span, "runs another runbook"),
                );
                None
            }
        }
    }

    fn step(
        &self,
        step: &checked::Step,
        wave: Option<usize>,
        needs: Vec<String>,
        warnings: &mut Vec<Diagnostic>,
    ) -> PlannedStep {
        // The step's name is the step's, once (the action is flattened into it).
        let action = self.action(&step.kind, None, &step.with, warnings);
        let undo = kind_undo(self.registry, &step.kind, &action.params);
        let guard = match &step.when {
            None => Guard::Always,
            Some(when) => self.guard(when),
        };
        let kind = self.registry.get(&step.kind);
        PlannedStep {
            id: step.id.clone(),
            name: step.name.clone(),
            wave,
            needs,
            action,
            guard,
            confirm: step.confirm.as_ref().map(|c| self.template(c, warnings)),
            verify: step.verify.iter().map(|v| v.text.clone()).collect(),
            outputs: step.outputs.iter().map(|(n, e)| (n.clone(), e.text.clone())).collect(),
            timeout: step.timeout.map(format_duration),
            retry: step.retry.as_ref().map(|r| PlannedRetry {
                attempts: r.attempts,
                backoff: match r.backoff {
                    Backoff::Fixed => "fixed",
                    Backoff::Exponential => "exponential",
                },
                delay: format_duration(r.delay),
                max_delay: r.max_delay.map(format_duration),
                jitter: r.jitter,
                until: r.until.as_ref().map(|u| u.text.clone()),
            }),
            on_failure: step.on_failure,
            rollback: match &step.rollback {
                Some(body) => Some(self.action(&body.kind, body.name.clone(), &body.with, warnings)),
                // Without a rollback of its own, the kind may know how to undo the step.
                None => undo.map(|summary| PlannedAction {
                    kind: step.kind.clone(),
                    name: None,
                    action: format!("{summary} (automatic)"),
                    params: Json::Null,
                    preview: None,
                }),
            },
            idempotent: step.idempotent,
            read_only: kind.is_some_and(|k| k.read_only()),
            runbook: self.child_plan(step, warnings),
            not_run: None,
        }
    }

    fn action(
        &self,
        kind_name: &str,
        name: Option<String>,
        with: &Param,
        warnings: &mut Vec<Diagnostic>,
    ) -> PlannedAction {
        let params = Renderer {
            ctx: self.ctx,
            assumed: self.assumed,
            registry: self.registry,
        }
        .params(with, kind_name, warnings);
        let mut action = self
            .registry
            .get(kind_name)
            .map_or_else(|| format!("run `{kind_name}`"), |k| k.describe(&params));
        // Nested steps (a `wait`'s probe) are described by their own kind.
        if let Some(kind) = self.registry.get(kind_name) {
            for pointer in kind.nested_steps() {
                if let Some(nested) = params.pointer(pointer)
                    && let Some(nested_kind) = nested
                        .get("uses")
                        .and_then(Json::as_str)
                        .and_then(|k| self.registry.get(k))
                {
                    let nested_with = nested.get("with").cloned().unwrap_or(Json::Null);
                    action.push_str(&format!(
                        "; {}: {}",
                        pointer.trim_start_matches('/'),
                        nested_kind.describe(&nested_with)
                    ));
                }
            }
        }
        let waits = serde_json::to_string(&params).is_ok_and(|text| text.contains("<steps.") || text.contains("<run."));
        let preview = if waits {
            None
        } else {
            self.registry.get(kind_name).and_then(|k| k.preview(&params))
        };
        PlannedAction {
            kind: kind_name.to_string(),
            name,
            action,
            params,
            preview,
        }
    }

    fn template(&self, text: &Text, warnings: &mut Vec<Diagnostic>) -> String {
        match template::render(&text.text, self.ctx) {
            Ok(rendered) => rendered,
            Err(e) => {
                warnings.push(render_warning(text, &e));
                text.text.clone()
            }
        }
    }
}

fn short_value(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
}

fn render_warning(text: &Text, error: &minijinja::Error) -> Diagnostic {
    Diagnostic::warning(
        codes::RENDER,
        format!("cannot render `{}` now: {}", text.text, template::reason(error)),
    )
    .with_label(text.span, "shown as written")
}

/// Whether a template branches (`{% if %}`, `x if c else y`) on a value known only at run time.
fn decides_at_run_time(text: &Text, assumed: &HashMap<String, Json>) -> bool {
    let branches = text.text.contains("{%") || text.text.contains(" if ");
    branches && text.refs.iter().any(|r| runtime_only(&r.path, assumed))
}

/// How the kind would undo a step with these parameters, in words.
fn kind_undo(registry: &Registry, kind: &str, params: &Json) -> Option<String> {
    registry.get(kind).and_then(|k| k.undo_summary(params))
}

/// Renders parameter trees with what is known now.
struct Renderer<'a> {
    ctx: &'a Value,
    assumed: &'a HashMap<String, Json>,
    registry: &'a Registry,
}

impl Renderer<'_> {
    /// The `with` of a step of `kind`: its shell commands and URLs are
    /// rendered quoted, as a run would. What cannot be rendered now is shown
    /// as written, with a warning.
    fn params(&self, param: &Param, kind: &str, warnings: &mut Vec<Diagnostic>) -> Json {
        let mut render = Leaves {
            renderer: self,
            warnings,
        };
        match param.render_for(self.registry, kind, &mut render) {
            Ok(json) => json,
            Err(never) => match never {},
        }
    }

    fn render(&self, quote: Option<Quote>, text: &str) -> Result<String, minijinja::Error> {
        match quote {
            Some(Quote::Shell) => template::render_shell(text, self.ctx),
            Some(Quote::Url) => render_url(text, self.ctx),
            None => template::render(text, self.ctx),
        }
    }
}

/// A plan's rendering of parameters, which never fails.
struct Leaves<'a, 'r> {
    renderer: &'a Renderer<'r>,
    warnings: &'a mut Vec<Diagnostic>,
}

impl RenderParams for Leaves<'_, '_> {
    type Out = Json;
    type Error = std::convert::Infallible;

    fn leaf(&mut self, leaf: Leaf<'_>, quote: Option<Quote>) -> Result<Json, Self::Error> {
        let renderer = self.renderer;
        Ok(match leaf {
            Leaf::Value(v) => v.clone(),
            Leaf::Expression(t) => Json::String(t.text.clone()),
            // A choice made on a value known only at run time cannot be shown
            // rendered: the placeholder would pick a branch. Show it as written.
            Leaf::Template(t) if decides_at_run_time(t, renderer.assumed) => Json::String(t.text.clone()),
            Leaf::Template(t) => match renderer.render(quote, &t.text) {
                Ok(s) => Json::String(s),
                Err(e) => {
                    self.warnings.push(render_warning(t, &e));
                    Json::String(t.text.clone())
                }
            },
            Leaf::Native(t) => {
                let pending = t.refs.iter().any(|r| runtime_only(&r.path, renderer.assumed));
                if pending || quote.is_some() {
                    return Ok(Json::String(match renderer.render(quote, &t.text) {
                        Ok(s) => s,
                        Err(e) => {
                            if quote.is_some() {
                                self.warnings.push(render_warning(t, &e));
                            }
                            t.text.clone()
                        }
                    }));
                }
                let expression = template::single_expression(&t.text).unwrap_or(&t.text);
                match template::eval(expression, renderer.ctx) {
                    Ok(v) => serde_json::to_value(&v).unwrap_or_else(|_| Json::String(v.to_string())),
                    Err(e) => {
                        self.warnings.push(render_warning(t, &e));
                        Json::String(t.text.clone())
                    }
                }
            }
        })
    }

    fn list(&mut self, items: Vec<Json>) -> Json {
        Json::Array(items)
    }

    fn map(&mut self, entries: Vec<(String, Json)>) -> Json {
        Json::Object(entries.into_iter().collect())
    }
}

/// A URL as a run would encode it, except that what stands in for a value
/// (a placeholder such as `<steps.resolve.outputs.pop>`, a masked secret)
/// is shown as it is, so the plan reads as the URL the run will request. A
/// stand-in at the start is the base URL, and is read as one.
fn render_url(text: &str, ctx: &Value) -> Result<String, minijinja::Error> {
    /// Read in place of a base URL the plan cannot know.
    const SOME_BASE: &str = "http://base.invalid";
    if !template::is_template(text) {
        return Ok(text.to_string());
    }
    let mut base = None;
    let pieces: Vec<Piece> = template::render_pieces(text, ctx)?
        .into_iter()
        .enumerate()
        .map(|(i, piece)| match piece {
            Piece::Value { text, safe: false } if stands_in(&text) && i == 0 => {
                base = Some(text);
                Piece::Value {
                    text: SOME_BASE.into(),
                    safe: false,
                }
            }
            Piece::Value { text, safe: false } if stands_in(&text) => Piece::Value { text, safe: true },
            piece => piece,
        })
        .collect();
    let url = quote::url(&pieces).map_err(template::quoting_error)?;
    Ok(match base {
        Some(base) => format!("{base}{}", &url[SOME_BASE.len()..]),
        None => url,
    })
}

/// Whether a printed value is the plan's stand-in for a value: a
/// placeholder or a masked secret.
fn stands_in(text: &str) -> bool {
    let placeholder = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .is_some_and(|path| {
            (path.starts_with("steps.") || path.starts_with("run."))
                && path.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
    placeholder || text == "***"
}

impl OnFailure {
    pub fn describe(self) -> &'static str {
        match self {
            OnFailure::Rollback => "roll back",
            OnFailure::Continue => "continue",
            OnFailure::Abort => "abort",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_show_stand_ins_as_they_are_and_encode_known_values() {
        let steps = Value::from(BTreeMap::from([
            ("base", placeholder("steps.a.outputs.base")),
            ("id", placeholder("steps.a.outputs.id")),
        ]));
        let ctx = Value::from(BTreeMap::from([
            ("steps", steps),
            (
                "inputs",
                Value::from(BTreeMap::from([("q", "a&b"), ("api", "http://h:1")])),
            ),
            ("secrets", Value::from(BTreeMap::from([("key", "***")]))),
        ]));
        let url = render_url(
            "{{ steps.base }}/items/{{ steps.id }}/{{ inputs.q }}?key={{ secrets.key }}&q={{ inputs.q }}",
            &ctx,
        );
        assert_eq!(
            url.unwrap(),
            "<steps.a.outputs.base>/items/<steps.a.outputs.id>/a%26b?key=***&q=a%26b"
        );
        let url = render_url("{{ inputs.api }}/items/{{ inputs.q }}", &ctx);
        assert_eq!(url.unwrap(), "http://h:1/items/a%26b");
        let refused = render_url("{{ inputs.api }}/items/{{ '..' }}", &ctx).unwrap_err();
        assert!(
            template::reason(&refused).contains("climb out of the path"),
            "{refused}"
        );
    }
}

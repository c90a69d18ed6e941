//! The template context of a run: inputs, secrets, vars, `run`, and the
//! steps' outputs and statuses as they finish. Step views are read lazily
//! from shared state, so rendering a template costs the same at step 1 and
//! at step 10,000.

use crate::event::{RunStatus, StepStatus};
use crate::quote::Quote;
use crate::secrets::{MASK, Redactor, stand_in, stand_in_json};
use crate::step::Registry;
use crate::template::{self, Piece, Place};
use crate::validate::checked::{Leaf, Param, Ref, RenderParams, Text};
use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

/// What later templates can read of a step.
#[derive(Debug, Clone)]
pub struct StepView {
    pub status: StepStatus,
    pub outputs: Option<Value>,
}

/// Shared, changing state of a run as templates see it.
#[derive(Debug)]
pub struct LiveState {
    pub steps: RwLock<HashMap<String, StepView>>,
    pub status: RwLock<RunStatus>,
}

#[derive(Debug)]
struct StepsObject(Arc<LiveState>);

impl Object for StepsObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let steps = self.0.steps.read().ok()?;
        let view = steps.get(key.as_str()?)?;
        let mut map = vec![("status", Value::from(view.status.as_str()))];
        if let Some(outputs) = &view.outputs {
            map.push(("outputs", outputs.clone()));
        }
        Some(map_value(map))
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self
            .0
            .steps
            .read()
            .map(|s| s.keys().map(|k| Value::from(k.clone())).collect())
            .unwrap_or_default();
        Enumerator::Values(keys)
    }
}

#[derive(Debug)]
struct RunObject {
    id: String,
    started_at: String,
    state: Arc<LiveState>,
}

impl Object for RunObject {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "id" => Value::from(self.id.clone()),
            "started_at" => Value::from(self.started_at.clone()),
            "dry_run" => Value::from(false),
            "status" => Value::from(self.state.status.read().ok()?.as_str()),
            _ => return None,
        })
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["id", "status", "dry_run", "started_at"])
    }
}

/// The fixed part of the context plus the live state.
#[derive(Debug, Clone)]
pub struct RunContext {
    inputs: Value,
    secrets: Value,
    vars: Value,
    run: Value,
    steps: Value,
    pub live: Arc<LiveState>,
    /// Secrets and the vars computed from them, replaced by stand-ins (see
    /// [`crate::secrets::stand_in`]), to tell which printed values come
    /// from a secret.
    secrets_stand_in: Value,
    vars_stand_in: Value,
    secret_vars: Arc<HashSet<String>>,
    any_secret: bool,
}

/// A template map from names and values.
pub fn map_value<K: Into<String>>(entries: impl IntoIterator<Item = (K, Value)>) -> Value {
    Value::from(
        entries
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect::<std::collections::BTreeMap<String, Value>>(),
    )
}

pub fn to_value<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

impl RunContext {
    pub fn new(
        run_id: &str,
        started_at: &str,
        inputs: &serde_json::Map<String, Json>,
        secrets: &HashMap<String, String>,
    ) -> Self {
        let live = Arc::new(LiveState {
            steps: RwLock::new(HashMap::new()),
            status: RwLock::new(RunStatus::Running),
        });
        let stand_ins: HashMap<&String, String> = secrets.iter().map(|(k, v)| (k, stand_in(v))).collect();
        Self {
            inputs: to_value(inputs),
            secrets: to_value(secrets),
            vars: map_value(Vec::<(String, Value)>::new()),
            run: Value::from_object(RunObject {
                id: run_id.to_string(),
                started_at: started_at.to_string(),
                state: live.clone(),
            }),
            steps: Value::from_object(StepsObject(live.clone())),
            live,
            secrets_stand_in: to_value(stand_ins),
            vars_stand_in: map_value(Vec::<(String, Value)>::new()),
            secret_vars: Arc::new(HashSet::new()),
            any_secret: !secrets.is_empty(),
        }
    }

    /// Sets the vars: each with its value and, for those computed from a
    /// secret, the value's stand-in.
    pub fn set_vars(&mut self, vars: &[ComputedVar]) {
        self.vars = map_value(vars.iter().map(|v| (v.name.clone(), to_value(&v.value))));
        self.vars_stand_in = map_value(vars.iter().map(|v| {
            let value = if v.secret {
                stand_in_json(&v.value)
            } else {
                v.value.clone()
            };
            (v.name.clone(), to_value(value))
        }));
        self.secret_vars = Arc::new(vars.iter().filter(|v| v.secret).map(|v| v.name.clone()).collect());
    }

    /// The context for templates; `result` bound when given.
    pub fn value(&self, result: Option<&Json>) -> Value {
        self.build(result, &self.secrets, &self.vars)
    }

    /// The context with every secret (and var computed from one) replaced by its stand-in.
    fn value_stand_in(&self, result: Option<&Json>) -> Value {
        self.build(result, &self.secrets_stand_in, &self.vars_stand_in)
    }

    fn build(&self, result: Option<&Json>, secrets: &Value, vars: &Value) -> Value {
        let mut entries = vec![
            ("inputs", self.inputs.clone()),
            ("secrets", secrets.clone()),
            ("vars", vars.clone()),
            ("run", self.run.clone()),
            ("steps", self.steps.clone()),
        ];
        if let Some(result) = result {
            entries.push(("result", to_value(result)));
        }
        map_value(entries)
    }

    /// Whether a template or expression reading these names may print a secret.
    pub fn reads_secret(&self, refs: &[Ref]) -> bool {
        self.any_secret
            && refs.iter().any(|r| {
                r.path == "secrets"
                    || r.path.starts_with("secrets.")
                    || r.path == "vars"
                    || r.path
                        .strip_prefix("vars.")
                        .is_some_and(|rest| self.secret_vars.contains(rest.split('.').next().unwrap_or(rest)))
            })
    }

    pub fn set_step(&self, id: &str, status: StepStatus, outputs: Option<Value>) {
        if let Ok(mut steps) = self.live.steps.write() {
            let entry = steps
                .entry(id.to_string())
                .or_insert(StepView { status, outputs: None });
            entry.status = status;
            if outputs.is_some() {
                entry.outputs = outputs;
            }
        }
    }

    pub fn set_status(&self, status: RunStatus) {
        if let Ok(mut s) = self.live.status.write() {
            *s = status;
        }
    }

    /// A renderer of this context's templates, which masks what comes from a secret.
    pub fn renderer<'a>(&'a self, registry: &'a Registry, redactor: &'a Redactor) -> Renderer<'a> {
        Renderer {
            ctx: self,
            registry,
            redactor,
            real: self.value(None),
            stand_in: OnceLock::new(),
        }
    }
}

/// A var as computed for a run.
#[derive(Debug, Clone)]
pub struct ComputedVar {
    pub name: String,
    pub value: Json,
    /// Computed from a secret: masked, and a secret to later templates.
    pub secret: bool,
}

/// Something rendered for a run: the value the step gets, and what people
/// are shown of it, where every value that comes from a secret is `***`
/// (`None`: the same as the value).
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered<T> {
    pub value: T,
    pub shown: Option<T>,
}

impl<T> Rendered<T> {
    fn plain(value: T) -> Self {
        Self { value, shown: None }
    }

    /// What people may see.
    pub fn shown(&self) -> &T {
        self.shown.as_ref().unwrap_or(&self.value)
    }

    fn map<U>(self, f: impl Fn(T) -> U) -> Rendered<U> {
        Rendered {
            value: f(self.value),
            shown: self.shown.map(f),
        }
    }
}

/// Renders a run's templates. Every template that reads a secret is
/// rendered twice, with the secrets and with their stand-ins: the printed
/// values that differ come from a secret, whatever filters or loops made
/// them. They are masked where shown and added to the run's secrets, so the
/// step's output, results and errors cannot show them either.
pub struct Renderer<'a> {
    ctx: &'a RunContext,
    registry: &'a Registry,
    redactor: &'a Redactor,
    real: Value,
    stand_in: OnceLock<Value>,
}

impl Renderer<'_> {
    fn stand_in(&self) -> &Value {
        self.stand_in.get_or_init(|| self.ctx.value_stand_in(None))
    }

    /// A step's parameters for kind `kind`: shell commands quoted, nested
    /// step bodies with their own kind's rules.
    pub fn params(&self, param: &Param, kind: &str) -> Result<Rendered<Json>, String> {
        param.render_for(self.registry, kind, &mut &*self)
    }

    /// A text such as a confirmation's message.
    pub fn text(&self, text: &Text) -> Result<Rendered<String>, String> {
        self.template(text, Place::Text)
            .map_err(|e| render_error(&text.text, &e))
    }

    /// Renders a template for its place; when it reads a secret, finds the
    /// printed values that come from it.
    fn template(&self, text: &Text, place: Place) -> Result<Rendered<String>, minijinja::Error> {
        if !self.ctx.reads_secret(&text.refs) {
            return template::render_for(&text.text, &self.real, place).map(Rendered::plain);
        }
        let real = template::render_pieces(&text.text, &self.real)?;
        let value = template::assemble(&real, place)?;
        let other = template::render_pieces(&text.text, self.stand_in());
        let same_shape = other.as_ref().is_ok_and(|other| {
            other.len() == real.len()
                && real.iter().zip(other).all(|(a, b)| match (a, b) {
                    (Piece::Literal(a), Piece::Literal(b)) => a == b,
                    (Piece::Value { .. }, Piece::Value { .. }) => true,
                    _ => false,
                })
        });
        let Ok(other) = other
            .as_ref()
            .map_err(|_| ())
            .and_then(|o| if same_shape { Ok(o) } else { Err(()) })
        else {
            // What the template writes depends on the secret: all of it is secret.
            self.redactor.add(&value);
            self.redactor.add(&template::join(&real));
            return Ok(Rendered {
                value,
                shown: Some(MASK.to_string()),
            });
        };
        let tainted: Vec<bool> = real.iter().zip(other).map(|(a, b)| a.text() != b.text()).collect();
        if !tainted.contains(&true) {
            return Ok(Rendered::plain(value));
        }
        self.redactor.add_all(secret_stretches(&real, &tainted));
        let masked: Vec<Piece> = real
            .iter()
            .zip(&tainted)
            .map(|(piece, tainted)| match (piece, tainted) {
                (_, true) => Piece::Value {
                    text: MASK.to_string(),
                    safe: true,
                },
                (piece, false) => piece.clone(),
            })
            .collect();
        Ok(Rendered {
            value,
            shown: Some(template::assemble(&masked, place)?),
        })
    }

    /// Evaluates an expression over a result (an output); a value that
    /// comes from a secret is added to the run's secrets.
    pub fn expression(&self, text: &Text, result: &Json) -> Result<Value, minijinja::Error> {
        let value = template::eval(&text.text, &self.ctx.value(Some(result)))?;
        if self.ctx.reads_secret(&text.refs) {
            let other = template::eval(&text.text, &self.ctx.value_stand_in(Some(result))).ok();
            if other.as_ref() != Some(&value)
                && let Ok(json) = serde_json::to_value(&value)
            {
                self.redactor.add_all(strings(&json));
            }
        }
        Ok(value)
    }
}

impl RenderParams for &Renderer<'_> {
    type Out = Rendered<Json>;
    type Error = String;

    fn leaf(&mut self, leaf: Leaf<'_>, quote: Option<Quote>) -> Result<Rendered<Json>, String> {
        let place = match quote {
            Some(Quote::Shell) => Place::Shell,
            Some(Quote::Url) => Place::Url,
            None => Place::Text,
        };
        Ok(match leaf {
            Leaf::Value(v) => Rendered::plain(v.clone()),
            Leaf::Expression(t) => Rendered::plain(Json::String(t.text.clone())),
            Leaf::Template(t) => self
                .template(t, place)
                .map_err(|e| render_error(&t.text, &e))?
                .map(Json::String),
            Leaf::Native(t) if place != Place::Text => self
                .template(t, place)
                .map_err(|e| render_error(&t.text, &e))?
                .map(Json::String),
            Leaf::Native(t) => {
                let expression = template::single_expression(&t.text).unwrap_or(&t.text);
                let value = template::eval(expression, &self.real).map_err(|e| render_error(&t.text, &e))?;
                let value =
                    serde_json::to_value(&value).map_err(|e| format!("cannot use the value of `{}`: {e}", t.text))?;
                if !self.ctx.reads_secret(&t.refs) {
                    return Ok(Rendered::plain(value));
                }
                let other = template::eval(expression, self.stand_in())
                    .ok()
                    .and_then(|v| serde_json::to_value(&v).ok());
                if other.as_ref() == Some(&value) {
                    Rendered::plain(value)
                } else {
                    self.redactor.add_all(strings(&value));
                    Rendered {
                        value,
                        shown: Some(Json::String(MASK.into())),
                    }
                }
            }
        })
    }

    fn list(&mut self, items: Vec<Rendered<Json>>) -> Rendered<Json> {
        let masked = items.iter().any(|r| r.shown.is_some());
        Rendered {
            shown: masked.then(|| Json::Array(items.iter().map(|r| r.shown().clone()).collect())),
            value: Json::Array(items.into_iter().map(|r| r.value).collect()),
        }
    }

    fn map(&mut self, entries: Vec<(String, Rendered<Json>)>) -> Rendered<Json> {
        let masked = entries.iter().any(|(_, r)| r.shown.is_some());
        Rendered {
            shown: masked.then(|| Json::Object(entries.iter().map(|(k, r)| (k.clone(), r.shown().clone())).collect())),
            value: Json::Object(entries.into_iter().map(|(k, r)| (k, r.value)).collect()),
        }
    }
}

/// The texts a secret shows as in a rendered template: each value that
/// comes from it, and each stretch of such values with only a little text
/// between them on one line (a loop printing a secret piece by piece).
fn secret_stretches(pieces: &[Piece], tainted: &[bool]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stretch: Option<(usize, usize)> = None;
    for (i, piece) in pieces.iter().enumerate() {
        if tainted[i] {
            found.push(piece.text().to_string());
            stretch = Some(stretch.map_or((i, i), |(start, _)| (start, i)));
            continue;
        }
        let joins = matches!(piece, Piece::Literal(text) if text.len() <= 3 && !text.contains('\n'));
        if !joins && let Some((start, end)) = stretch.take() {
            found.push(template::join(&pieces[start..=end]));
        }
    }
    if let Some((start, end)) = stretch {
        found.push(template::join(&pieces[start..=end]));
    }
    found
}

/// Every string in a value, and the value as JSON text when it is not one.
fn strings(value: &Json) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(value: &Json, out: &mut Vec<String>) {
        match value {
            Json::String(s) => out.push(s.clone()),
            Json::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Json::Object(map) => map.values().for_each(|v| walk(v, out)),
            other => out.push(other.to_string()),
        }
    }
    walk(value, &mut out);
    if !value.is_string() {
        out.push(value.to_string());
    }
    out
}

fn render_error(text: &str, error: &minijinja::Error) -> String {
    format!("cannot render `{text}`: {}", template::reason(error))
}

/// Whether a value counts as true in a gate or guard (Jinja's truthiness).
pub fn is_true(value: &Value) -> bool {
    value.is_true()
}

/// Names an expression reads and their current values: `result.status =
/// 503`. Values are masked before they are cut short.
pub fn explain(expression: &str, ctx: &Value, redactor: &Redactor) -> String {
    let Ok(paths) = template::expression_references(expression) else {
        return String::new();
    };
    paths
        .iter()
        .map(|path| {
            let value = template::eval(path, ctx)
                .map(|v| serde_json::to_string(&v).unwrap_or_else(|_| v.to_string()))
                .unwrap_or_else(|_| "undefined".into());
            format!("{path} = {}", truncate(&redactor.redact(&value), 200))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

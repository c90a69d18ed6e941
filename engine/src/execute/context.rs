//! The template context of a run: inputs, secrets, vars, `run`, and the
//! steps' outputs and statuses as they finish. Step views are read lazily
//! from shared state, so rendering a template costs the same at step 1 and
//! at step 10,000.

use crate::execute::event::{RunStatus, StepStatus};
use crate::quote::{Quote, Quoting};
use crate::step::Registry;
use crate::template;
use crate::validate::checked::Param;
use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
        }
    }

    pub fn set_vars(&mut self, vars: Vec<(String, Value)>) {
        self.vars = map_value(vars);
    }

    /// The context for templates; `result` bound when given.
    pub fn value(&self, result: Option<&Json>) -> Value {
        let mut entries = vec![
            ("inputs", self.inputs.clone()),
            ("secrets", self.secrets.clone()),
            ("vars", self.vars.clone()),
            ("run", self.run.clone()),
            ("steps", self.steps.clone()),
        ];
        if let Some(result) = result {
            entries.push(("result", to_value(result)));
        }
        map_value(entries)
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
}

/// Renders a step's parameters for running it. Shell commands and URLs
/// (the kind's `shell_params` and `url_params`) have the values printed
/// into them quoted for their place; nested step bodies use their own kind's.
pub fn render_params(param: &Param, ctx: &Value, registry: &Registry, kind: &str) -> Result<Json, String> {
    render(param, ctx, registry, "", &Quoting::of(registry, kind))
}

/// Renders a template of the parameter at `pointer`, quoted as `quoting` says.
fn render_text(quoting: &Quoting, pointer: &str, text: &str, ctx: &Value) -> Result<String, String> {
    match quoting.at(pointer) {
        Some(Quote::Shell) => template::render_shell(text, ctx),
        Some(Quote::Url) => template::render_url(text, ctx),
        None => template::render(text, ctx),
    }
    .map_err(|e| render_error(text, &e))
}

fn render(param: &Param, ctx: &Value, registry: &Registry, pointer: &str, quoting: &Quoting) -> Result<Json, String> {
    Ok(match param {
        Param::Value(v) => v.clone(),
        Param::Expression(t) => Json::String(t.text.clone()),
        Param::Template(t) => Json::String(render_text(quoting, pointer, &t.text, ctx)?),
        Param::Native(t) => {
            if quoting.at(pointer).is_some() {
                Json::String(render_text(quoting, pointer, &t.text, ctx)?)
            } else {
                let expression = template::single_expression(&t.text).unwrap_or(&t.text);
                let value = template::eval(expression, ctx).map_err(|e| render_error(&t.text, &e))?;
                serde_json::to_value(&value).map_err(|e| format!("cannot use the value of `{}`: {e}", t.text))?
            }
        }
        Param::List(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, p)| render(p, ctx, registry, &format!("{pointer}/{i}"), quoting))
                .collect::<Result<_, _>>()?,
        ),
        Param::Map(entries) => {
            // A nested step body (`uses` + `with`) renders its `with` with its own kind's rules.
            let nested_kind = entries.iter().find_map(|(k, p)| match (k.as_str(), p) {
                ("uses", Param::Value(Json::String(kind))) => Some(kind.clone()),
                _ => None,
            });
            let mut out = serde_json::Map::new();
            for (key, value) in entries {
                let rendered = match (&nested_kind, key.as_str()) {
                    (Some(kind), "with") => render_params(value, ctx, registry, kind)?,
                    _ => render(value, ctx, registry, &format!("{pointer}/{key}"), quoting)?,
                };
                out.insert(key.clone(), rendered);
            }
            Json::Object(out)
        }
    })
}

fn render_error(text: &str, error: &minijinja::Error) -> String {
    format!("cannot render `{text}`: {}", template::reason(error))
}

/// Whether a value counts as true in a gate or guard (Jinja's truthiness).
pub fn is_true(value: &Value) -> bool {
    value.is_true()
}

/// Names an expression reads and their current values: `result.status = 503`.
pub fn explain(expression: &str, ctx: &Value) -> String {
    let Ok(paths) = template::expression_references(expression) else {
        return String::new();
    };
    paths
        .iter()
        .map(|path| {
            let value = template::eval(path, ctx)
                .map(|v| serde_json::to_string(&v).unwrap_or_else(|_| v.to_string()))
                .unwrap_or_else(|_| "undefined".into());
            format!("{path} = {}", truncate(&value, 200))
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

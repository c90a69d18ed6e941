//! The runbook after validation: names resolved, types known, templates
//! parsed, defaults applied. Only a `checked::Runbook` can be compiled.

use crate::diagnostic::Span;
use crate::parse::raw::{Backoff, InputType, OnFailure};
use crate::quote::{Quote, Quoting};
use crate::step::Registry;
use crate::validate::pattern::InputPattern;
use serde_json::Value as Json;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub description: Option<String>,
    pub inputs: Vec<Input>,
    pub secrets: Vec<Secret>,
    pub vars: Vec<Var>,
    pub max_parallel: Option<usize>,
    pub lock: Option<Text>,
    pub steps: Vec<Step>,
    pub finally: Vec<Step>,
}

impl Runbook {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().chain(&self.finally).find(|s| s.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub ty: InputType,
    pub default: Option<Json>,
    pub required: bool,
    pub description: Option<String>,
    pub env: Option<String>,
    pub values: Vec<String>,
    /// What the whole value of a `string` input must match, and where it is written.
    pub pattern: Option<(InputPattern, Span)>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(String),
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub source: SecretSource,
    pub description: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Var {
    pub name: String,
    pub value: Param,
    pub span: Span,
}

/// A name a template or expression reads, and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub path: String,
    pub span: Span,
}

impl Ref {
    /// The step id of a `steps.ID...` reference.
    pub fn step_id(&self) -> Option<&str> {
        let mut parts = self.path.split('.');
        (parts.next() == Some("steps")).then(|| parts.next()).flatten()
    }
}

/// A template or expression as written, with what it reads.
#[derive(Debug, Clone)]
pub struct Text {
    pub text: String,
    pub span: Span,
    pub refs: Vec<Ref>,
}

/// A parameter value: literal, template, or nested structure.
#[derive(Debug, Clone)]
pub enum Param {
    Value(Json),
    /// A string with `{{ }}` rendered to text.
    Template(Text),
    /// A string that is exactly one `{{ expr }}`: keeps the expression's type.
    Native(Text),
    /// A parameter the kind evaluates itself, such as `wait`'s `until`.
    Expression(Text),
    List(Vec<Param>),
    Map(Vec<(String, Param)>),
}

impl Param {
    /// Every template and expression inside.
    pub fn texts(&self) -> Vec<&Text> {
        let mut out = Vec::new();
        self.collect_texts(&mut out);
        out
    }

    fn collect_texts<'a>(&'a self, out: &mut Vec<&'a Text>) {
        match self {
            Param::Value(_) => {}
            Param::Template(t) | Param::Native(t) | Param::Expression(t) => out.push(t),
            Param::List(items) => items.iter().for_each(|p| p.collect_texts(out)),
            Param::Map(entries) => entries.iter().for_each(|(_, p)| p.collect_texts(out)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Param> {
        match self {
            Param::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Renders the parameters of a step of `kind` with `render`: the one walk
    /// over a parameter tree that a plan and a run share. Each leaf gets the
    /// quoting of its place (the kind's shell commands and URLs); a nested
    /// step body (`uses` + `with`) renders its `with` by its own kind's.
    pub fn render_for<R: RenderParams>(
        &self,
        registry: &Registry,
        kind: &str,
        render: &mut R,
    ) -> Result<R::Out, R::Error> {
        self.walk(registry, &Quoting::of(registry, kind), "", render)
    }

    fn walk<R: RenderParams>(
        &self,
        registry: &Registry,
        quoting: &Quoting,
        pointer: &str,
        render: &mut R,
    ) -> Result<R::Out, R::Error> {
        match self {
            Param::List(items) => {
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, p)| p.walk(registry, quoting, &format!("{pointer}/{i}"), render))
                    .collect::<Result<_, _>>()?;
                Ok(render.list(items))
            }
            Param::Map(entries) => {
                let nested_kind = entries.iter().find_map(|(k, p)| match (k.as_str(), p) {
                    ("uses", Param::Value(Json::String(kind))) => Some(kind.as_str()),
                    _ => None,
                });
                let entries = entries
                    .iter()
                    .map(|(key, p)| {
                        let value = match (nested_kind, key.as_str()) {
                            (Some(kind), "with") => p.render_for(registry, kind, render),
                            _ => p.walk(registry, quoting, &format!("{pointer}/{key}"), render),
                        }?;
                        Ok((key.clone(), value))
                    })
                    .collect::<Result<_, _>>()?;
                Ok(render.map(entries))
            }
            Param::Value(v) => render.leaf(Leaf::Value(v), quoting.at(pointer)),
            Param::Template(t) => render.leaf(Leaf::Template(t), quoting.at(pointer)),
            Param::Native(t) => render.leaf(Leaf::Native(t), quoting.at(pointer)),
            Param::Expression(t) => render.leaf(Leaf::Expression(t), quoting.at(pointer)),
        }
    }
}

/// A parameter that is not a list or a map.
#[derive(Debug, Clone, Copy)]
pub enum Leaf<'a> {
    Value(&'a Json),
    Template(&'a Text),
    Native(&'a Text),
    Expression(&'a Text),
}

/// How parameters are rendered, leaf by leaf (see [`Param::render_for`]).
pub trait RenderParams {
    type Out;
    type Error;
    /// A value, template or expression, to be quoted as `quote` says.
    fn leaf(&mut self, leaf: Leaf<'_>, quote: Option<Quote>) -> Result<Self::Out, Self::Error>;
    fn list(&mut self, items: Vec<Self::Out>) -> Self::Out;
    fn map(&mut self, entries: Vec<(String, Self::Out)>) -> Self::Out;
}

#[derive(Debug, Clone)]
pub struct Retry {
    pub attempts: u32,
    pub backoff: Backoff,
    pub delay: Duration,
    pub max_delay: Option<Duration>,
    pub jitter: bool,
    pub until: Option<Text>,
}

#[derive(Debug, Clone)]
pub enum Needs {
    /// No `needs`: the step above (none for the first step).
    Previous,
    Explicit(Vec<(String, Span)>),
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// The span of the id, where diagnostics about the step point.
    pub span: Span,
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: String,
    pub kind_span: Span,
    pub with: Param,
    pub needs: Needs,
    pub when: Option<Text>,
    pub confirm: Option<Text>,
    pub verify: Vec<Text>,
    pub outputs: Vec<(String, Text)>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub on_failure: OnFailure,
    pub rollback: Option<Body>,
    pub idempotent: bool,
    pub is_finally: bool,
}

impl Step {
    /// Every template and expression of the step, its rollback included.
    pub fn texts(&self) -> Vec<&Text> {
        let mut out = self.with.texts();
        out.extend(self.when.iter());
        out.extend(self.confirm.iter());
        out.extend(self.verify.iter());
        out.extend(self.outputs.iter().map(|(_, t)| t));
        out.extend(self.retry.iter().flat_map(|r| r.until.iter()));
        if let Some(body) = &self.rollback {
            out.extend(body.texts());
        }
        out
    }

    /// Texts of the step itself, without its rollback.
    pub fn own_texts(&self) -> Vec<&Text> {
        let mut out = self.with.texts();
        out.extend(self.when.iter());
        out.extend(self.confirm.iter());
        out.extend(self.verify.iter());
        out.extend(self.outputs.iter().map(|(_, t)| t));
        out.extend(self.retry.iter().flat_map(|r| r.until.iter()));
        out
    }
}

/// A rollback action.
#[derive(Debug, Clone)]
pub struct Body {
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: String,
    pub with: Param,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub verify: Vec<Text>,
}

impl Body {
    pub fn texts(&self) -> Vec<&Text> {
        let mut out = self.with.texts();
        out.extend(self.verify.iter());
        out.extend(self.retry.iter().flat_map(|r| r.until.iter()));
        out
    }
}

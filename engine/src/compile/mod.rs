//! Stage 3, compile: [`checked::Runbook`] → [`Compiled`], the step graph.
//! Nodes are steps, edges are `needs` (explicit, or the step above).
//! Finds cycles (printing the whole chain), orders the steps in waves of
//! parallelism, and checks that every `steps.ID` a step reads belongs to a
//! step that is guaranteed to have finished before it.

use crate::diagnostic::{Diagnostic, Span};
use crate::validate::checked::{self, Needs, Text};
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use std::collections::HashMap;

pub mod codes {
    pub const CYCLE: &str = "runbook::compile::cycle";
    pub const NOT_AN_ANCESTOR: &str = "runbook::compile::not_an_ancestor";
}

/// A compiled runbook: the checked runbook and its step graph.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub runbook: checked::Runbook,
    pub graph: StepGraph,
    /// The runbooks that `runbook` steps run, by step id (filled in when
    /// loading from a file, see [`crate::load_file`]).
    pub children: std::collections::BTreeMap<String, std::sync::Arc<Compiled>>,
    /// The file this runbook was read from and its text, when known.
    pub origin: Option<Origin>,
}

/// Where a compiled runbook came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub path: std::path::PathBuf,
    pub text: std::sync::Arc<[u8]>,
}

/// A dependency of a step and where it was written (`None` for the implicit "step above").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub span: Option<Span>,
}

/// The steps of `steps` as a DAG. Indexes are positions in `runbook.steps`.
#[derive(Debug, Clone)]
pub struct StepGraph {
    graph: DiGraph<usize, ()>,
    /// What each step waits for.
    pub needs: Vec<Vec<Edge>>,
    /// Steps grouped in waves: every step of a wave needs only steps of earlier waves.
    pub waves: Vec<Vec<usize>>,
    pub wave_of: Vec<usize>,
}

impl StepGraph {
    /// Steps in topological order: wave by wave, in file order within a wave.
    pub fn order(&self) -> impl Iterator<Item = usize> + '_ {
        self.waves.iter().flatten().copied()
    }

    /// Steps that wait for `step`.
    pub fn dependents(&self, step: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(step), petgraph::Direction::Outgoing)
            .map(|n| self.graph[n])
    }

    /// Whether `ancestor` is guaranteed to finish before `step` starts.
    pub fn is_ancestor(&self, ancestor: usize, step: usize, seen: &mut [u32], generation: &mut u32) -> bool {
        *generation += 1;
        let mut stack = vec![step];
        while let Some(s) = stack.pop() {
            for edge in &self.needs[s] {
                if edge.from == ancestor {
                    return true;
                }
                if seen[edge.from] != *generation {
                    seen[edge.from] = *generation;
                    stack.push(edge.from);
                }
            }
        }
        false
    }

    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// The petgraph graph, for tools that want to walk it.
    pub fn graph(&self) -> &DiGraph<usize, ()> {
        &self.graph
    }
}

/// Compiles a checked runbook into its step graph.
pub fn compile(runbook: checked::Runbook) -> Result<Compiled, Vec<Diagnostic>> {
    compile_checking(runbook, true)
}

/// Finds the cycles of a runbook that has other errors, so that one pass
/// reports them too. References are not checked: parts in error are missing.
pub fn cycle_diagnostics(runbook: checked::Runbook) -> Vec<Diagnostic> {
    compile_checking(runbook, false).err().unwrap_or_default()
}

fn compile_checking(runbook: checked::Runbook, check_references: bool) -> Result<Compiled, Vec<Diagnostic>> {
    let index: HashMap<&str, usize> = runbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut diagnostics = Vec::new();
    let mut needs: Vec<Vec<Edge>> = Vec::with_capacity(runbook.steps.len());
    for (i, step) in runbook.steps.iter().enumerate() {
        let edges = match &step.needs {
            Needs::Previous if i == 0 => Vec::new(),
            Needs::Previous => vec![Edge {
                from: i - 1,
                span: None,
            }],
            Needs::Explicit(ids) => {
                let mut edges: Vec<Edge> = Vec::with_capacity(ids.len());
                for (id, span) in ids {
                    match index.get(id.as_str()) {
                        Some(&from) if !edges.iter().any(|e| e.from == from) => edges.push(Edge {
                            from,
                            span: Some(*span),
                        }),
                        Some(_) => {}
                        None => diagnostics.push(
                            Diagnostic::error(
                                codes::NOT_AN_ANCESTOR,
                                format!("step `{}` needs `{id}`, which is a `finally` step", step.id),
                            )
                            .with_label(*span, "finally steps run after all steps")
                            .with_help("a step may only need steps listed under `steps`"),
                        ),
                    }
                }
                edges
            }
        };
        needs.push(edges);
    }

    let mut graph = DiGraph::<usize, ()>::with_capacity(needs.len(), needs.len());
    for i in 0..needs.len() {
        graph.add_node(i);
    }
    for (to, edges) in needs.iter().enumerate() {
        for edge in edges {
            graph.add_edge(NodeIndex::new(edge.from), NodeIndex::new(to), ());
        }
    }

    // Kahn's algorithm, wave by wave.
    let mut pending: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut wave_of = vec![usize::MAX; needs.len()];
    let mut waves: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = (0..needs.len()).filter(|&i| pending[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &step in &current {
            wave_of[step] = waves.len();
            for dependent in graph.neighbors_directed(NodeIndex::new(step), petgraph::Direction::Outgoing) {
                let d = graph[dependent];
                pending[d] -= 1;
                if pending[d] == 0 {
                    next.push(d);
                }
            }
        }
        next.sort_unstable();
        waves.push(std::mem::replace(&mut current, next));
    }
    if wave_of.contains(&usize::MAX) {
        diagnostics.extend(cycles(&runbook, &graph, &needs));
        return Err(diagnostics);
    }
    let graph = StepGraph {
        graph,
        needs,
        waves,
        wave_of,
    };
    if check_references {
        diagnostics.extend(check_step_references(&runbook, &graph, &index));
    }
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(diagnostics);
    }
    Ok(Compiled {
        runbook,
        graph,
        children: std::collections::BTreeMap::new(),
        origin: None,
    })
}

/// One diagnostic per cycle, naming every step of it in order.
/// How many steps of a cycle its diagnostic names and underlines.
const MAX_CYCLE_NAMES: usize = 24;

fn cycles(runbook: &checked::Runbook, graph: &DiGraph<usize, ()>, needs: &[Vec<Edge>]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut components = tarjan_scc(graph);
    components.sort_by_key(|c| c.iter().map(|n| graph[*n]).min());
    for component in components {
        let members: Vec<usize> = component.iter().map(|n| graph[*n]).collect();
        let self_loop = members.len() == 1 && needs[members[0]].iter().any(|e| e.from == members[0]);
        if members.len() < 2 && !self_loop {
            continue;
        }
        let path = cycle_path(&members, needs);
        let mut names: Vec<String> = path
            .iter()
            .chain(path.first())
            .map(|&i| format!("`{}`", runbook.steps[i].id))
            .collect();
        // A long cycle is named by its ends; each edge is still one to remove.
        if names.len() > MAX_CYCLE_NAMES {
            let hidden = names.len() - MAX_CYCLE_NAMES;
            names.splice(
                MAX_CYCLE_NAMES - 4..names.len() - 4,
                [format!("… ({hidden} more steps) …")],
            );
        }
        let mut diagnostic = Diagnostic::error(
            codes::CYCLE,
            if self_loop {
                format!("step `{}` needs itself", runbook.steps[members[0]].id)
            } else {
                format!("steps form a cycle: {}", names.join(" → "))
            },
        );
        // Label each edge of the cycle where it is written: step b needs a
        // (the first ones, for a long cycle).
        for (k, &step) in path.iter().enumerate().take(MAX_CYCLE_NAMES) {
            let next = path[(k + 1) % path.len()];
            let edge = needs[next].iter().find(|e| e.from == step);
            let (span, text) = match edge {
                Some(Edge { span: Some(span), .. }) => (
                    *span,
                    format!("`{}` needs `{}`", runbook.steps[next].id, runbook.steps[step].id),
                ),
                _ => (
                    runbook.steps[next].span,
                    format!(
                        "`{}` needs the step above, `{}` (no `needs`)",
                        runbook.steps[next].id, runbook.steps[step].id
                    ),
                ),
            };
            diagnostic = diagnostic.with_label(span, text);
        }
        out.push(
            diagnostic
                .with_help("remove one of these dependencies; a runbook's steps must form a graph without cycles"),
        );
    }
    out
}

/// A cycle through the members of a strongly connected component, in dependency order
/// (each step is needed by the next).
fn cycle_path(members: &[usize], needs: &[Vec<Edge>]) -> Vec<usize> {
    let start = *members.iter().min().unwrap_or(&0);
    if members.len() == 1 {
        return vec![start];
    }
    // Walk backwards along `needs` inside the component until we return to
    // the start (linear: membership and visits are looked up, not searched).
    let mut inside = vec![false; needs.len()];
    for &m in members {
        inside[m] = true;
    }
    let mut visited = vec![false; needs.len()];
    visited[start] = true;
    let mut path = vec![start];
    let mut current = start;
    loop {
        let previous = needs[current]
            .iter()
            .map(|e| e.from)
            .filter(|&f| inside[f])
            .find(|&f| f == start || !visited[f]);
        match previous {
            Some(f) if f == start => break,
            Some(f) => {
                visited[f] = true;
                path.push(f);
                current = f;
            }
            None => break,
        }
    }
    path.reverse();
    path
}

/// Every `steps.ID` read by a step must belong to a step guaranteed to have finished.
fn check_step_references(
    runbook: &checked::Runbook,
    graph: &StepGraph,
    index: &HashMap<&str, usize>,
) -> Vec<Diagnostic> {
    let finally_index: HashMap<&str, usize> = runbook
        .finally
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut out = Vec::new();
    let mut seen = vec![0u32; runbook.steps.len()];
    let mut generation = 0u32;
    for (i, step) in runbook.steps.iter().enumerate() {
        let check =
            |text: &Text, allow_self: bool, out: &mut Vec<Diagnostic>, seen: &mut [u32], generation: &mut u32| {
                for reference in &text.refs {
                    let Some(id) = reference.step_id() else { continue };
                    if let Some(&target) = index.get(id) {
                        if target == i {
                            if allow_self {
                                continue;
                            }
                            out.push(
                                Diagnostic::error(
                                    codes::NOT_AN_ANCESTOR,
                                    format!("step `{id}` reads its own `{}`", reference.path),
                                )
                                .with_label(reference.span, "not known until the step has finished")
                                .with_help(
                                    "inside the step itself, read `result` (in `verify`, `outputs` and `until`)",
                                ),
                            );
                        } else if !graph.is_ancestor(target, i, seen, generation) {
                            let later = graph.is_ancestor(i, target, seen, generation);
                            let help = if later {
                                format!(
                                    "`{id}` runs after `{}`; move the step below `{id}` or read the value later",
                                    step.id
                                )
                            } else {
                                format!("add `{id}` to the `needs` of `{}`", step.id)
                            };
                            out.push(
                                Diagnostic::error(
                                    codes::NOT_AN_ANCESTOR,
                                    format!(
                                        "step `{}` reads `{}`, but `{id}` is not guaranteed to have finished before it",
                                        step.id, reference.path
                                    ),
                                )
                                .with_label(
                                    reference.span,
                                    if later {
                                        "this step runs later"
                                    } else {
                                        "may not have run yet"
                                    },
                                )
                                .with_help(help),
                            );
                        }
                    } else if finally_index.contains_key(id) {
                        out.push(
                            Diagnostic::error(
                                codes::NOT_AN_ANCESTOR,
                                format!(
                                    "step `{}` reads `{}`, but `{id}` is a `finally` step",
                                    step.id, reference.path
                                ),
                            )
                            .with_label(reference.span, "finally steps run after all steps")
                            .with_help("only `finally` steps can read other `finally` steps"),
                        );
                    }
                }
            };
        for text in step.own_texts() {
            check(text, false, &mut out, &mut seen, &mut generation);
        }
        if let Some(body) = &step.rollback {
            for text in body.texts() {
                check(text, true, &mut out, &mut seen, &mut generation);
            }
        }
    }
    for (k, step) in runbook.finally.iter().enumerate() {
        for text in step.texts() {
            for reference in &text.refs {
                let Some(id) = reference.step_id() else { continue };
                if let Some(&j) = finally_index.get(id)
                    && j >= k
                {
                    out.push(
                        Diagnostic::error(
                            codes::NOT_AN_ANCESTOR,
                            format!(
                                "finally step `{}` reads `{}`, but `{id}` runs {}",
                                step.id,
                                reference.path,
                                if j == k { "as this very step" } else { "after it" }
                            ),
                        )
                        .with_label(reference.span, "not finished yet")
                        .with_help("finally steps run in order; a finally step can read the ones above it"),
                    );
                }
            }
        }
    }
    out
}

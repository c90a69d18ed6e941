//! Stage 4, plan: what a run does after the failures `--assume
//! steps.ID.status=failed` asks about, as the engine does it.
//!
//! After a step with `on_failure: continue` fails, the run goes on: the
//! failure counts as finished for ordering, so the steps after it run, and
//! their guards read `steps.ID.status` as `failed`; the run ends failed
//! (exit 1). After a step with any other `on_failure` fails, the run stops
//! there: no step starts after it, steps running beside it are cancelled,
//! the steps that had succeeded are rolled back in reverse order of
//! completion (not with `abort`), and then `finally` runs.

use super::{Guard, PlannedStep};
use crate::compile::Compiled;
use crate::diagnostic::Diagnostic;
use crate::event::RunStatus;
use crate::parse::raw::OnFailure;
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::{BTreeSet, HashMap};

/// What the run does after the assumed failures.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFailure {
    /// Steps assumed failed that the run goes on after (`on_failure: continue`).
    pub continues_after: Vec<String>,
    /// The step assumed failed that the run stops at, when one does not continue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stops_at: Option<PlannedStop>,
    /// How the run ends, as `run.status` reads in `finally`.
    pub run_status: RunStatus,
    pub exit_code: i32,
}

/// The run stopping at a failed step.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStop {
    pub step: String,
    /// `rollback` or `abort`.
    pub on_failure: OnFailure,
    /// The rollbacks that run, latest first (none with `abort`).
    pub rolls_back: Vec<PlannedUndo>,
    /// Steps that never start, being after it.
    pub not_run: Vec<String>,
}

/// A step rolled back after the failure.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedUndo {
    pub step: String,
    /// When it is rolled back only if it ran (its guard is decided at run
    /// time) or finished before the failure (it runs beside the failed step).
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// The failures assumed of `steps` (in the graph's order, as planned), and
/// what the run does after them. Marks the steps that never start.
pub(super) fn plan_failure(
    compiled: &Compiled,
    steps: &mut [PlannedStep],
    assumed: &HashMap<String, Json>,
    warnings: &mut Vec<Diagnostic>,
) -> Option<PlannedFailure> {
    let runbook = &compiled.runbook;
    let graph = &compiled.graph;
    let index_of: HashMap<&str, usize> = runbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let planned: HashMap<usize, usize> = steps
        .iter()
        .enumerate()
        .map(|(k, s)| (index_of[s.id.as_str()], k))
        .collect();
    let mut failed = Vec::new();
    for i in graph.order() {
        let step = &runbook.steps[i];
        if assumed.get(&format!("steps.{}.status", step.id)) != Some(&Json::String("failed".into())) {
            continue;
        }
        if steps[planned[&i]].guard.is_known_false() {
            warnings.push(
                Diagnostic::warning(
                    super::codes::BAD_ASSUMPTION,
                    format!(
                        "`steps.{}.status=failed` is assumed, but its guard is false: it is skipped, so it cannot fail",
                        step.id
                    ),
                )
                .with_label(step.span, "skipped")
                .with_help("assume the values that let its guard run, or drop the assumption"),
            );
            continue;
        }
        failed.push(i);
    }
    if failed.is_empty() {
        return None;
    }
    let stop = failed
        .iter()
        .copied()
        .find(|&i| runbook.steps[i].on_failure != OnFailure::Continue);
    let after = stop
        .map(|s| reach(s, |i| graph.dependents(i).collect()))
        .unwrap_or_default();
    let before = stop
        .map(|s| reach(s, |i| graph.needs[i].iter().map(|e| e.from).collect()))
        .unwrap_or_default();
    if let Some(s) = stop {
        let beside: Vec<String> = failed
            .iter()
            .filter(|&&i| i != s && runbook.steps[i].on_failure != OnFailure::Continue && !after.contains(&i))
            .map(|&i| format!("`{}`", runbook.steps[i].id))
            .collect();
        if !beside.is_empty() {
            warnings.push(Diagnostic::warning(
                super::codes::BAD_ASSUMPTION,
                format!(
                    "`{}` and {} are assumed failed, and none runs after another: the run stops at whichever fails first; this plan shows it stopping at `{}`",
                    runbook.steps[s].id,
                    beside.join(", "),
                    runbook.steps[s].id
                ),
            ));
        }
    }
    let continues_after = failed
        .iter()
        .filter(|&&i| runbook.steps[i].on_failure == OnFailure::Continue && !after.contains(&i))
        .map(|&i| runbook.steps[i].id.clone())
        .collect();
    let stops_at = stop.map(|s| {
        let on_failure = runbook.steps[s].on_failure;
        let undoes = |i: usize| {
            let step = &steps[planned[&i]];
            let undone = step.rollback.is_some() || step.runbook.is_some();
            undone && !failed.contains(&i) && i != s && !after.contains(&i) && !step.guard.is_known_false()
        };
        let id = &runbook.steps[s].id;
        let latest_first: Vec<usize> = graph.order().collect::<Vec<_>>().into_iter().rev().collect();
        let mut rolls_back = Vec::new();
        if on_failure == OnFailure::Rollback {
            for &i in latest_first.iter().filter(|&&i| undoes(i)) {
                let condition = if !before.contains(&i) {
                    Some(format!("it finished before `{id}` failed"))
                } else if matches!(steps[planned[&i]].guard, Guard::AtRunTime { .. }) {
                    Some("it ran".to_string())
                } else {
                    None
                };
                rolls_back.push(PlannedUndo {
                    step: runbook.steps[i].id.clone(),
                    condition,
                });
            }
        }
        let mut not_run = Vec::new();
        for i in graph.order().filter(|i| after.contains(i)) {
            let step = &mut steps[planned[&i]];
            step.not_run = Some(format!(
                "`{id}` fails before it (on failure: {}), so it never starts",
                on_failure.describe()
            ));
            not_run.push(step.id.clone());
        }
        PlannedStop {
            step: id.clone(),
            on_failure,
            rolls_back,
            not_run,
        }
    });
    let run_status = match stops_at.as_ref().map(|s| s.on_failure) {
        Some(OnFailure::Abort) => RunStatus::Aborted,
        Some(_) => RunStatus::Failed,
        None => RunStatus::FailedWithoutRollback,
    };
    Some(PlannedFailure {
        continues_after,
        stops_at,
        run_status,
        exit_code: run_status.exit_code(),
    })
}

/// The steps reached from `start` through `next`, without `start`.
fn reach(start: usize, next: impl Fn(usize) -> Vec<usize>) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack = next(start);
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(next(i));
        }
    }
    seen
}

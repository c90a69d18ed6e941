//! Renderers of a [`Plan`]: text for people, Mermaid and DOT for tools
//! (JSON is the plan's `Serialize`).

use super::{Guard, KnownGuard, Plan, PlannedAction, PlannedFailure, PlannedStep};
use crate::paint::Paint;
use crate::parse::raw::OnFailure;
use anstyle::AnsiColor;
use serde_json::Value as Json;
use std::fmt::Write;

/// The plan as text for a terminal; `color` adds ANSI styles. Control
/// characters in the runbook's text and values are shown escaped.
pub fn render_text(plan: &Plan, color: bool) -> String {
    let text = render_text_raw(plan, color);
    if color {
        crate::printable::lines_keeping_styles(&text).into_owned()
    } else {
        crate::printable::lines(&text).into_owned()
    }
}

fn render_text_raw(plan: &Plan, color: bool) -> String {
    let p = Paint { color };
    let mut out = String::new();
    let _ = writeln!(out, "{} {}", p.bold("plan:"), p.bold(&plan.runbook));
    if let Some(description) = &plan.description {
        let _ = writeln!(out, "  {}", description.trim());
    }
    if !plan.inputs.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("inputs"));
        for input in &plan.inputs {
            // A relative time: the time it stands for, and what was written.
            let source = match &input.relative {
                Some(relative) => format!("({relative}, {})", input.source),
                None => format!("({})", input.source),
            };
            let _ = writeln!(
                out,
                "  {} = {}  {}",
                input.name,
                json_inline(&input.value),
                p.dim(&source)
            );
        }
    }
    if !plan.secrets.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("secrets"));
        for secret in &plan.secrets {
            let state = if secret.available {
                p.fg(AnsiColor::Green, "available")
            } else {
                p.fg(AnsiColor::Yellow, "NOT SET: a run would refuse to start")
            };
            let _ = writeln!(
                out,
                "  {} = ***  {} {}",
                secret.name,
                p.dim(&format!("({})", secret.source)),
                state
            );
        }
    }
    if !plan.vars.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("vars"));
        for var in &plan.vars {
            let _ = writeln!(out, "  {} = {}", var.name, json_inline(&var.value));
        }
    }
    if plan.lock.is_some() || plan.max_parallel.is_some() {
        let _ = writeln!(out);
        if let Some(lock) = &plan.lock {
            let _ = writeln!(out, "{} {lock}", p.bold("lock:"));
        }
        if let Some(max) = plan.max_parallel {
            let _ = writeln!(out, "{} {max}", p.bold("max parallel:"));
        }
    }
    let by_id: std::collections::HashMap<&str, &PlannedStep> = plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    for (w, wave) in plan.waves.iter().enumerate() {
        let parallel = if wave.len() > 1 {
            format!(" ({} steps in parallel)", wave.len())
        } else {
            String::new()
        };
        let _ = writeln!(out, "\n{}", p.bold(&format!("wave {}{parallel}", w + 1)));
        for id in wave {
            if let Some(step) = by_id.get(id.as_str()) {
                step_text(&mut out, step, &p);
                assumed_failure_line(&mut out, plan.failure.as_ref(), id, &p);
            }
        }
    }
    if !plan.finally_steps.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("finally (always, after rollback if any)"));
        for step in &plan.finally_steps {
            step_text(&mut out, step, &p);
        }
    }
    if let Some(failure) = &plan.failure {
        failure_text(&mut out, failure, plan, &p);
    }
    let s = &plan.summary;
    let not_run = if s.not_run > 0 {
        format!(", {} not run", s.not_run)
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "\n{} {} in {}, {}, {} with rollback, {} skipped, {} decided at run time{not_run}, {} finally",
        p.bold("summary:"),
        count(s.steps, "step"),
        count(s.waves, "wave"),
        count(s.confirmations, "confirmation"),
        s.with_rollback,
        s.skipped,
        s.decided_at_run_time,
        s.finally,
    );
    out
}

/// Under a step assumed failed: what the run does next.
fn assumed_failure_line(out: &mut String, failure: Option<&PlannedFailure>, id: &str, p: &Paint) {
    let Some(failure) = failure else { return };
    let next = match &failure.stops_at {
        Some(stop) if stop.step == id => "the run stops here",
        _ if failure.continues_after.iter().any(|c| c == id) => {
            "the run goes on; the steps after it read its status as failed"
        }
        _ => return,
    };
    let _ = writeln!(out, "      {} it fails → {next}", p.fg(AnsiColor::Red, "assumed:"));
}

/// What the run does after the assumed failures, in the order it does it.
fn failure_text(out: &mut String, failure: &PlannedFailure, plan: &Plan, p: &Paint) {
    let _ = writeln!(out, "\n{}", p.bold("after the assumed failure"));
    let names = |ids: &[String]| ids.join(", ");
    if !failure.continues_after.is_empty() {
        let _ = writeln!(
            out,
            "  {} fail{} (on failure: continue): the steps after {} run",
            names(&failure.continues_after),
            if failure.continues_after.len() == 1 { "s" } else { "" },
            if failure.continues_after.len() == 1 {
                "it"
            } else {
                "them"
            },
        );
    }
    if let Some(stop) = &failure.stops_at {
        let rollback = stop.on_failure == OnFailure::Rollback;
        let _ = writeln!(
            out,
            "  {} fails (on failure: {}): no step starts after it, steps running beside it are cancelled{}",
            stop.step,
            stop.on_failure.describe(),
            if rollback { "" } else { ", and nothing is rolled back" }
        );
        if !stop.not_run.is_empty() {
            let _ = writeln!(out, "  {} {}", p.dim("never start:"), names(&stop.not_run));
        }
        if rollback {
            let undone: Vec<String> = stop
                .rolls_back
                .iter()
                .map(|undo| match &undo.condition {
                    Some(condition) => format!("{} (if {condition})", undo.step),
                    None => undo.step.clone(),
                })
                .collect();
            let undone = if undone.is_empty() {
                "nothing: no step before it has a rollback".to_string()
            } else {
                undone.join(", ")
            };
            let _ = writeln!(
                out,
                "  {} {undone}",
                p.fg(AnsiColor::Cyan, "rolled back, latest first:")
            );
        }
    }
    if !plan.finally_steps.is_empty() {
        let ids: Vec<String> = plan.finally_steps.iter().map(|s| s.id.clone()).collect();
        let _ = writeln!(
            out,
            "  {} {} (run.status is {})",
            p.dim("then finally:"),
            names(&ids),
            failure.run_status.as_str()
        );
    }
    let person = if failure.exit_code == crate::exit::NEEDS_A_PERSON {
        ": a person takes over"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "  {} {} (exit {}{person})",
        p.dim("the run ends:"),
        failure.run_status.as_str(),
        failure.exit_code
    );
}

fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

fn step_text(out: &mut String, step: &PlannedStep, p: &Paint) {
    let marker = match &step.guard {
        _ if step.not_run.is_some() => p.dim("✗"),
        Guard::KnownFalse(_) => p.dim("○"),
        Guard::AtRunTime { .. } => p.fg(AnsiColor::Yellow, "◐"),
        _ => p.fg(AnsiColor::Green, "●"),
    };
    let title = match &step.name {
        Some(name) => format!("{} — {name}", p.bold(&step.id)),
        None => p.bold(&step.id),
    };
    let _ = writeln!(out, "  {marker} {title}  {}", p.dim(&format!("[{}]", step.action.kind)));
    let indent = "      ";
    if !step.needs.is_empty() {
        let _ = writeln!(out, "{indent}{} {}", p.dim("after:"), step.needs.join(", "));
    }
    if let Some(why) = &step.not_run {
        let _ = writeln!(out, "{indent}{} {why}", p.fg(AnsiColor::Yellow, "NOT RUN:"));
    }
    match &step.guard {
        Guard::Always => {}
        Guard::KnownTrue(known) | Guard::KnownFalse(known) => {
            let value = matches!(step.guard, Guard::KnownTrue(_));
            let why = guard_reason(known, value);
            let outcome = if value {
                "runs".to_string()
            } else {
                p.fg(AnsiColor::Yellow, "SKIPPED")
            };
            let _ = writeln!(
                out,
                "{indent}{} {} → {outcome} ({why})",
                p.dim("when:"),
                known.expression
            );
        }
        Guard::AtRunTime { expression, depends_on } => {
            let _ = writeln!(
                out,
                "{indent}{} {expression} → decided at run time on {}",
                p.dim("when:"),
                depends_on.join(", ")
            );
        }
    }
    if let Some(confirm) = &step.confirm {
        let _ = writeln!(
            out,
            "{indent}{} {}",
            p.fg(AnsiColor::Magenta, "asks first:"),
            confirm.trim()
        );
    }
    let _ = writeln!(out, "{indent}{} {}", p.dim("does:"), step.action.action);
    if let Some(preview) = &step.action.preview {
        let _ = writeln!(out, "{indent}{} {preview}", p.dim("now:"));
    }
    if let Some(child) = &step.runbook {
        let _ = writeln!(
            out,
            "{indent}{} {} ({} steps in {} waves; its rollbacks join this run's)",
            p.dim("runs:"),
            child.runbook,
            child.summary.steps,
            child.summary.waves
        );
        for inner in &child.steps {
            let _ = writeln!(
                out,
                "{indent}  · {} [{}]: {}",
                inner.id, inner.action.kind, inner.action.action
            );
        }
    }
    params_text(out, &step.action.params, indent, p);
    for verify in &step.verify {
        let _ = writeln!(out, "{indent}{} {verify}", p.dim("verify:"));
    }
    for (name, expression) in &step.outputs {
        let _ = writeln!(out, "{indent}{} {name} = {expression}", p.dim("output:"));
    }
    let mut limits = Vec::new();
    if let Some(timeout) = &step.timeout {
        limits.push(format!("timeout {timeout}"));
    }
    if let Some(retry) = &step.retry
        && retry.attempts > 1
    {
        let mut text = format!("retry {}× {} from {}", retry.attempts, retry.backoff, retry.delay);
        if let Some(max) = &retry.max_delay {
            text.push_str(&format!(" up to {max}"));
        }
        if retry.jitter {
            text.push_str(" with jitter");
        }
        if let Some(until) = &retry.until {
            text.push_str(&format!(" until {until}"));
        }
        limits.push(text);
    }
    if step.wave.is_some() && step.on_failure != OnFailure::Rollback {
        limits.push(format!("on failure: {}", step.on_failure.describe()));
    }
    if step.idempotent {
        limits.push("idempotent".into());
    }
    if !limits.is_empty() {
        let _ = writeln!(out, "{indent}{} {}", p.dim("limits:"), limits.join(" · "));
    }
    if let Some(rollback) = &step.rollback {
        let _ = writeln!(
            out,
            "{indent}{} {}",
            p.fg(AnsiColor::Cyan, "rollback:"),
            action_line(rollback)
        );
    }
}

/// Why a guard is known: the values it read and, when a part decided it
/// before the run, that part and the values it does not wait for.
fn guard_reason(known: &KnownGuard, value: bool) -> String {
    let because = &known.because;
    let Some(part) = &known.decided_by else {
        return because.clone();
    };
    let part_is = format!("`{part}` is {value}");
    let decided = if because.is_empty() {
        part_is
    } else if *because == format!("{part} is {value}") {
        because.clone()
    } else {
        format!("{because}, so {part_is}")
    };
    match known.regardless_of.as_slice() {
        [] => decided,
        [one] => format!("{decided}, whatever {one} is"),
        [many @ .., last] => format!("{decided}, whatever {} and {last} are", many.join(", ")),
    }
}

fn action_line(action: &PlannedAction) -> String {
    match &action.name {
        Some(name) => format!("{name}: {} [{}]", action.action, action.kind),
        None => format!("{} [{}]", action.action, action.kind),
    }
}

fn params_text(out: &mut String, params: &Json, indent: &str, p: &Paint) {
    let Json::Object(map) = params else { return };
    if map.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}{}", p.dim("with:"));
    for (key, value) in map {
        let text = match value {
            Json::String(s) if s.contains('\n') => {
                let lines: Vec<&str> = s.trim_end().lines().collect();
                let mut block = "|".to_string();
                for line in lines {
                    block.push_str(&format!("\n{indent}    {line}"));
                }
                block
            }
            other => json_inline(other),
        };
        let _ = writeln!(out, "{indent}  {key}: {text}");
    }
}

/// A JSON value on one line, strings without quotes when they are plain.
fn json_inline(value: &Json) -> String {
    match value {
        Json::String(s) if !s.is_empty() && !s.contains('\n') && s.trim() == s => s.clone(),
        other => other.to_string(),
    }
}

fn mermaid_label(text: &str) -> String {
    text.replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
}

/// The plan as a Mermaid flowchart.
pub fn render_mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for step in &plan.steps {
        // Each part is escaped, the line break between them is not.
        let label = format!(
            "{}<br/>{}",
            mermaid_label(&step.id),
            mermaid_label(step.name.as_deref().unwrap_or(&step.action.kind))
        );
        let shape = if step.confirm.is_some() {
            format!("{}{{{{\"{label}\"}}}}", step.id)
        } else if step.guard != Guard::Always {
            format!("{}{{\"{label}\"}}", step.id)
        } else {
            format!("{}[\"{label}\"]", step.id)
        };
        let _ = writeln!(out, "  {shape}");
    }
    for step in &plan.steps {
        for need in &step.needs {
            let _ = writeln!(out, "  {need} --> {}", step.id);
        }
        if let Some(rollback) = &step.rollback {
            let _ = writeln!(
                out,
                "  {}_rollback([\"undo: {}\"])",
                step.id,
                mermaid_label(rollback.name.as_deref().unwrap_or(&rollback.kind))
            );
            let _ = writeln!(out, "  {} -. rollback .-> {}_rollback", step.id, step.id);
        }
    }
    if !plan.finally_steps.is_empty() {
        let _ = writeln!(out, "  subgraph finally");
        for step in &plan.finally_steps {
            let _ = writeln!(out, "    {}[\"{}\"]", step.id, mermaid_label(&step.id));
        }
        for pair in plan.finally_steps.windows(2) {
            let _ = writeln!(out, "    {} --> {}", pair[0].id, pair[1].id);
        }
        let _ = writeln!(out, "  end");
    }
    out
}

fn dot_string(text: &str) -> String {
    format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    )
}

/// The plan as a Graphviz DOT graph.
pub fn render_dot(plan: &Plan) -> String {
    let mut out = format!(
        "digraph {} {{\n  rankdir=TB;\n  node [shape=box, fontname=\"sans-serif\"];\n",
        dot_string(&plan.runbook)
    );
    for step in &plan.steps {
        let label = format!("{}\\n{}", step.id, step.name.as_deref().unwrap_or(&step.action.kind));
        let shape = if step.confirm.is_some() {
            ", shape=hexagon"
        } else if step.guard != Guard::Always {
            ", shape=diamond"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} [label={}{shape}];",
            dot_string(&step.id),
            dot_string(&label).replace("\\\\n", "\\n")
        );
    }
    for step in &plan.steps {
        for need in &step.needs {
            let _ = writeln!(out, "  {} -> {};", dot_string(need), dot_string(&step.id));
        }
        if let Some(rollback) = &step.rollback {
            let node = format!("{}_rollback", step.id);
            let _ = writeln!(
                out,
                "  {} [label={}, style=dashed];",
                dot_string(&node),
                dot_string(&format!("undo: {}", rollback.name.as_deref().unwrap_or(&rollback.kind)))
            );
            let _ = writeln!(
                out,
                "  {} -> {} [style=dashed, label=\"rollback\"];",
                dot_string(&step.id),
                dot_string(&node)
            );
        }
    }
    for pair in plan.finally_steps.windows(2) {
        let _ = writeln!(out, "  {} -> {};", dot_string(&pair[0].id), dot_string(&pair[1].id));
    }
    for step in &plan.finally_steps {
        let _ = writeln!(out, "  {} [style=rounded];", dot_string(&step.id));
    }
    // What the shapes mean, apart from the steps (a step id has no `.`,
    // so no step is a legend node).
    out.push_str(concat!(
        "  subgraph cluster_legend {\n",
        "    label=\"legend\"; style=dotted; fontname=\"sans-serif\";\n",
        "    \"legend.step\" [label=\"step\"];\n",
        "    \"legend.guard\" [label=\"runs when its guard allows\", shape=diamond];\n",
        "    \"legend.confirm\" [label=\"asks for confirmation\", shape=hexagon];\n",
        "    \"legend.rollback\" [label=\"rollback\", style=dashed];\n",
        "    \"legend.finally\" [label=\"finally\", style=rounded];\n",
        "    \"legend.step\" -> \"legend.guard\" -> \"legend.confirm\" -> \"legend.rollback\" -> \"legend.finally\" [style=invis];\n",
        "  }\n",
    ));
    out.push_str("}\n");
    out
}

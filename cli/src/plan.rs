//! `runbook plan`: what a run would do with these inputs, without doing it,
//! as text, JSON, Mermaid or Graphviz.

use crate::args::PlanFormat;
use crate::{Terminal, load, print_stdout, read};
use runbook_engine::plan::{PlanRequest, render_dot, render_mermaid, render_text};
use runbook_engine::{Registry, exit};
use std::path::Path;

/// Plans one runbook with the inputs and assumptions given, and prints the plan.
pub fn plan(
    terminal: &Terminal,
    registry: &Registry,
    path: &Path,
    inputs: Vec<(String, String)>,
    assume: Vec<(String, String)>,
    format: PlanFormat,
) -> i32 {
    let Some(bytes) = read(terminal, path) else {
        return exit::INVALID;
    };
    let name = path.display().to_string();
    let registry = &runbook_engine::plugin::registry_for(registry, path, &bytes);
    let Some((source, loaded)) = load(terminal, registry, path, &bytes, "no plan") else {
        return exit::INVALID;
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let env = |name: &str| std::env::var(name).ok();
    let file_exists = |file: &str| base.join(file).is_file();
    let request = PlanRequest {
        inputs,
        assume,
        env: Some(&env),
        file_exists: Some(&file_exists),
    };
    match runbook_engine::plan::plan(&loaded.compiled, registry, &request) {
        Ok((plan, warnings)) => {
            terminal.diagnostics(&source, &warnings);
            let text = match format {
                PlanFormat::Text => render_text(&plan, terminal.stdout_color),
                PlanFormat::Json => format!("{}\n", serde_json::to_string_pretty(&plan).unwrap_or_default()),
                PlanFormat::Mermaid => render_mermaid(&plan),
                PlanFormat::Dot => render_dot(&plan),
            };
            print_stdout(&text)
        }
        Err(diagnostics) => {
            terminal.diagnostics(&source, &diagnostics);
            terminal.error(&format!("{name}: cannot plan with these inputs"));
            exit::INVALID
        }
    }
}

//! `runbook check`: runbooks read through the compile stage, with every
//! diagnostic shown and one line per file that is fine.

use crate::{Terminal, plural, print_stdout, read};
use runbook_engine::{Registry, exit};
use std::path::PathBuf;

/// Checks each file; the exit status is `INVALID` if any one has an error.
pub fn check(terminal: &Terminal, registry: &Registry, files: &[PathBuf]) -> i32 {
    let mut code = exit::SUCCESS;
    for path in files {
        let Some(bytes) = read(terminal, path) else {
            code = exit::INVALID;
            continue;
        };
        let name = path.display().to_string();
        let registry = runbook_engine::plugin::registry_for(registry, path, &bytes);
        let (source, loaded) = runbook_engine::load_path(path, &bytes, &registry);
        match loaded {
            Ok(loaded) => {
                terminal.diagnostics(&source, &loaded.warnings);
                let runbook = &loaded.compiled.runbook;
                let mut line = format!(
                    "ok: {name}: {} in {}",
                    plural(runbook.steps.len(), "step"),
                    plural(loaded.compiled.graph.waves.len(), "wave")
                );
                if !runbook.finally.is_empty() {
                    line.push_str(&format!(", {} finally", runbook.finally.len()));
                }
                if !loaded.warnings.is_empty() {
                    line.push_str(&format!(", {}", plural(loaded.warnings.len(), "warning")));
                }
                if print_stdout(&format!("{line}\n")) != exit::SUCCESS {
                    code = exit::INVALID;
                }
            }
            Err(diagnostics) => {
                terminal.diagnostics(&source, &diagnostics);
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                terminal.error(&format!("{name}: {}; nothing was run", plural(errors, "error")));
                code = exit::INVALID;
            }
        }
    }
    code
}

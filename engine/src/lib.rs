//! The runbook engine: a runbook's text goes through one pipeline.
//!
//! ```text
//!  text ──parse──▶ raw::Runbook ──validate──▶ checked::Runbook ──compile──▶ Compiled ──plan──▶ Plan
//!        (spans)                 (names, kinds,                  (step graph,             (dry run:
//!                                 templates)                      cycles, waves)           what would happen)
//! ```
//!
//! Every stage collects all its diagnostics instead of stopping at the
//! first. Step kinds are registered explicitly in a [`step::Registry`].

pub mod clock;
pub mod compile;
pub mod diagnostic;
pub mod event;
pub mod execute;
pub mod files;
pub mod journal;
pub mod kit;
pub mod paint;
pub mod parse;
pub mod plan;
pub mod plugin;
pub mod printable;
pub mod quote;
pub mod report;
pub mod schema;
pub mod secrets;
pub mod step;
pub mod template;
pub mod testing;
pub mod validate;
pub mod words;

pub use compile::Compiled;
pub use diagnostic::{Diagnostic, SourceFile};
pub use step::Registry;

/// Exit statuses of the `runbook` program, as the format contract defines them.
pub mod exit {
    pub const SUCCESS: i32 = 0;
    pub const FAILED_ROLLED_BACK: i32 = 1;
    pub const INVALID: i32 = 2;
    pub const NEEDS_A_PERSON: i32 = 3;
    pub const CANCELLED: i32 = 130;
}

/// A runbook read as far as the compile stage, with the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub compiled: Compiled,
    pub warnings: Vec<Diagnostic>,
}

/// Parses, validates and compiles a runbook. On failure, every diagnostic
/// found, in the order of the places they point at.
pub fn load(source: &SourceFile, registry: &Registry) -> Result<Loaded, Vec<Diagnostic>> {
    load_unsorted(source, registry).map_err(|mut diagnostics| {
        diagnostics.sort_by_key(|d| d.labels.first().map_or(0, |l| l.span.offset));
        diagnostics
    })
}

fn load_unsorted(source: &SourceFile, registry: &Registry) -> Result<Loaded, Vec<Diagnostic>> {
    let (raw, mut diagnostics) = parse::parse(source);
    let Some(raw) = raw else { return Err(diagnostics) };
    // Validation runs even when parsing found problems, so one pass reports them all.
    let (checked, validation) = validate::validate(source, &raw, registry);
    diagnostics.extend(validation);
    if diagnostics.iter().any(Diagnostic::is_error) {
        // Still report cycles, when every step could be read (else the
        // implicit "step above" edges would be wrong).
        if checked.steps.len() == raw.steps.len() {
            diagnostics.extend(compile::cycle_diagnostics(checked));
        }
        return Err(diagnostics);
    }
    match compile::compile(checked) {
        Ok(compiled) => Ok(Loaded {
            compiled,
            warnings: diagnostics,
        }),
        Err(errors) => {
            diagnostics.extend(errors);
            Err(diagnostics)
        }
    }
}

/// Reads a runbook from bytes (a file's contents) and loads it.
pub fn load_bytes(name: &str, bytes: &[u8], registry: &Registry) -> (SourceFile, Result<Loaded, Vec<Diagnostic>>) {
    match parse::node::decode(name, bytes) {
        Ok(source) => {
            let loaded = load(&source, registry);
            (source, loaded)
        }
        Err(failure) => {
            let (source, diagnostic) = *failure;
            (source, Err(vec![diagnostic]))
        }
    }
}

pub mod codes {
    pub const SUB_RUNBOOK: &str = "runbook::compile::sub_runbook";
    pub const RUNBOOK_CYCLE: &str = "runbook::compile::runbook_cycle";
}

/// Loads a runbook file and, recursively, the runbooks its `runbook` steps
/// run, so that their errors and cycles between files are found before
/// anything runs. `bytes` is the file's content (already read).
pub fn load_path(
    path: &std::path::Path,
    bytes: &[u8],
    registry: &Registry,
) -> (SourceFile, Result<Loaded, Vec<Diagnostic>>) {
    let mut stack = Vec::new();
    load_path_within(path, bytes, registry, &mut stack)
}

fn load_path_within(
    path: &std::path::Path,
    bytes: &[u8],
    registry: &Registry,
    stack: &mut Vec<std::path::PathBuf>,
) -> (SourceFile, Result<Loaded, Vec<Diagnostic>>) {
    use validate::checked::Param;
    let (source, loaded) = load_bytes(&path.display().to_string(), bytes, registry);
    let Ok(mut loaded) = loaded else {
        return (source, loaded);
    };
    loaded.compiled.origin = Some(compile::Origin {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        text: bytes.into(),
    });
    let here = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    stack.push(here);
    let base = path.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let mut errors = Vec::new();
    let steps: Vec<(validate::checked::Step, &str)> = loaded
        .compiled
        .runbook
        .steps
        .iter()
        .chain(&loaded.compiled.runbook.finally)
        .filter_map(|s| Some((s.clone(), registry.get(&s.kind)?.child_runbook_param()?)))
        .collect();
    for (step, param) in steps {
        let file = match step.with.get(param) {
            Some(Param::Value(serde_json::Value::String(file))) => file.clone(),
            Some(_) => {
                errors.push(
                    Diagnostic::error(codes::SUB_RUNBOOK, format!("the `{param}` of step `{}` must be a plain path", step.id))
                        .with_label(step.kind_span, "runs another runbook")
                        .with_help("a runbook that runs another must name it without templates, so it can be checked before the run"),
                );
                continue;
            }
            None => continue,
        };
        let child_path = base.join(&file);
        let child_bytes = match files::read_regular(&child_path) {
            Ok(bytes) => bytes,
            Err(e) => {
                errors.push(
                    Diagnostic::error(
                        codes::SUB_RUNBOOK,
                        format!("step `{}` runs `{file}`, which cannot be read: {e}", step.id),
                    )
                    .with_label(step.kind_span, format!("looked for {}", child_path.display()))
                    .with_help("paths are relative to the folder of the runbook that names them"),
                );
                continue;
            }
        };
        let canonical = std::fs::canonicalize(&child_path).unwrap_or_else(|_| child_path.clone());
        if let Some(at) = stack.iter().position(|p| p == &canonical) {
            let chain: Vec<String> = stack[at..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| {
                    format!(
                        "`{}`",
                        p.file_name()
                            .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
                    )
                })
                .collect();
            errors.push(
                Diagnostic::error(
                    codes::RUNBOOK_CYCLE,
                    format!("runbook files run each other in a cycle: {}", chain.join(" → ")),
                )
                .with_label(step.kind_span, format!("step `{}` runs `{file}`", step.id))
                .with_help("a runbook cannot run itself, directly or through others"),
            );
            continue;
        }
        let (_, child) = load_path_within(&child_path, &child_bytes, registry, stack);
        match child {
            Ok(child) => {
                errors.extend(check_child_inputs(&step, &file, &child.compiled));
                loaded
                    .compiled
                    .children
                    .insert(step.id.clone(), std::sync::Arc::new(child.compiled));
            }
            Err(diagnostics) => {
                let count = diagnostics.iter().filter(|d| d.is_error()).count();
                let first: Vec<String> = diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .take(3)
                    .map(|d| d.message.clone())
                    .collect();
                errors.push(
                    Diagnostic::error(
                        codes::SUB_RUNBOOK,
                        format!(
                            "step `{}` runs `{file}`, which has {count} error(s): {}",
                            step.id,
                            first.join("; ")
                        ),
                    )
                    .with_label(step.kind_span, "runs another runbook")
                    .with_help(format!("run `runbook check {}` for the details", child_path.display())),
                );
            }
        }
    }
    stack.pop();
    if errors.is_empty() {
        (source, Ok(loaded))
    } else {
        (source, Err(errors))
    }
}

/// The inputs a `runbook` step gives must be inputs of the runbook it runs,
/// and every required input of that runbook must be given.
fn check_child_inputs(step: &validate::checked::Step, file: &str, child: &Compiled) -> Vec<Diagnostic> {
    use validate::checked::Param;
    let given: Vec<&str> = match step.with.get("inputs") {
        Some(Param::Map(entries)) => entries.iter().map(|(k, _)| k.as_str()).collect(),
        _ => Vec::new(),
    };
    let declared: Vec<&str> = child.runbook.inputs.iter().map(|i| i.name.as_str()).collect();
    let mut out = Vec::new();
    for name in &given {
        if !declared.contains(name) {
            let help = diagnostic::suggestion(name, declared.iter().copied()).unwrap_or_else(|| {
                format!(
                    "`{file}` takes {}",
                    if declared.is_empty() {
                        "no inputs".to_string()
                    } else {
                        parse::raw::list(&declared)
                    }
                )
            });
            out.push(
                Diagnostic::error(
                    codes::SUB_RUNBOOK,
                    format!("step `{}` gives `{file}` an input `{name}` it does not take", step.id),
                )
                .with_label(step.kind_span, "runs another runbook")
                .with_help(help),
            );
        }
    }
    for input in &child.runbook.inputs {
        if input.required && input.default.is_none() && input.env.is_none() && !given.contains(&input.name.as_str()) {
            out.push(
                Diagnostic::error(
                    codes::SUB_RUNBOOK,
                    format!(
                        "step `{}` runs `{file}` without its required input `{}`",
                        step.id, input.name
                    ),
                )
                .with_label(step.kind_span, "runs another runbook")
                .with_help(format!("add `{}: ...` under `with.inputs`", input.name)),
            );
        }
    }
    out
}

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

pub mod compile;
pub mod diagnostic;
pub mod execute;
pub mod journal;
pub mod parse;
pub mod plan;
pub mod report;
pub mod schema;
pub mod step;
pub mod template;
pub mod validate;

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

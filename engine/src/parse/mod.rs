//! Stage 1, parse: YAML text → [`raw::Runbook`], every value with its span.

pub mod node;
pub mod raw;

use crate::diagnostic::{Diagnostic, SourceFile};

/// Parses a runbook's text. Returns the runbook as far as it could be read,
/// and every problem found on the way.
pub fn parse(source: &SourceFile) -> (Option<raw::Runbook>, Vec<Diagnostic>) {
    let node = match node::parse_yaml(source) {
        Ok(node) => node,
        Err(diagnostic) => return (None, vec![diagnostic]),
    };
    let mut collector = raw::Collector {
        diagnostics: Vec::new(),
    };
    let runbook = raw::Runbook::from_document(&node, &mut collector);
    (runbook, collector.diagnostics)
}

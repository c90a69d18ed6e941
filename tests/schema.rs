//! The format's JSON Schema (`schemas/runbook-v1.schema.json`) is as strict
//! as `check` wherever JSON Schema can say it, and never stricter: every
//! wrong runbook of `fixtures/schema/wrong/` is refused by the real `runbook
//! check` and by the schema (read by the `jsonschema` crate, as editors read
//! it), unless it is marked as something only `check` can see; and every
//! runbook meant to be valid passes both.

#[path = "support/mod.rs"]
mod support;

use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use support::runbook_in;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The checked-in schema (`cli.rs` checks that it is the one the code makes).
fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("schemas/runbook-v1.schema.json")).unwrap();
    let schema: Json = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("the schema compiles")
}

/// The `.yaml` files of `dir`, by name.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Where the schema refuses `text`: the instance path and message of each
/// error, and of the errors of each alternative an `anyOf` or `oneOf`
/// tried; `None` when the YAML does not even read.
fn schema_errors(validator: &jsonschema::Validator, text: &str) -> Option<Vec<(String, String)>> {
    fn with_causes(error: &jsonschema::ValidationError<'_>, out: &mut Vec<(String, String)>) {
        use jsonschema::error::ValidationErrorKind as K;
        out.push((error.instance_path().as_str().to_string(), error.to_string()));
        if let K::AnyOf { context } | K::OneOfNotValid { context } = error.kind() {
            context.iter().flatten().for_each(|cause| with_causes(cause, out));
        }
    }
    let value: Json = serde_saphyr::from_str(text).ok()?;
    let mut errors = Vec::new();
    validator.iter_errors(&value).for_each(|e| with_causes(&e, &mut errors));
    Some(errors)
}

/// What a wrong runbook's first line says of it.
enum Wrong {
    /// `# wrong at POINTER: ...`: the schema refuses it there (`/` is the
    /// whole file) or below.
    At(String),
    /// `# only check: ...`: JSON Schema cannot say it; the schema takes it.
    OnlyCheck,
}

fn what_is_wrong(name: &str, text: &str) -> Wrong {
    let first = text.lines().next().unwrap_or_default();
    if first.starts_with("# only check: ") {
        return Wrong::OnlyCheck;
    }
    let pointer = first
        .strip_prefix("# wrong at ")
        .and_then(|rest| rest.split_once(": "))
        .map(|(pointer, _)| pointer)
        .unwrap_or_else(|| panic!("{name}: the first line says `# wrong at POINTER: what` or `# only check: what`"));
    Wrong::At(if pointer == "/" {
        String::new()
    } else {
        pointer.to_string()
    })
}

#[test]
fn every_wrong_runbook_is_refused_by_check_and_by_the_schema_unless_only_check_can_see_it() {
    let validator = validator();
    let dir = root().join("tests/fixtures/schema/wrong");
    let files = yaml_files(&dir);
    let mut failures = Vec::new();
    let (mut by_both, mut by_check_only) = (0, 0);
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(file).unwrap();
        // One mistake each, so that the schema is seen to refuse that one.
        let check = runbook_in(&dir, &["check", name], &[]);
        if check.code != Some(2) || !check.stderr.contains(&format!("{name}: 1 error;")) {
            failures.push(format!(
                "{name}: `check` does not find exactly one error:\n{}",
                check.transcript()
            ));
        }
        let Some(errors) = schema_errors(&validator, &text) else {
            failures.push(format!("{name}: the YAML does not read, so the schema never sees it"));
            continue;
        };
        match what_is_wrong(name, &text) {
            Wrong::At(pointer) => {
                by_both += 1;
                let under = |path: &str| path == pointer || path.starts_with(&format!("{pointer}/"));
                if !errors.iter().any(|(path, _)| under(path)) {
                    failures.push(format!(
                        "{name}: the schema does not refuse it at `{pointer}`: {errors:#?}"
                    ));
                }
            }
            Wrong::OnlyCheck => {
                by_check_only += 1;
                if !errors.is_empty() {
                    failures.push(format!(
                        "{name}: marked as only `check` can see it, but the schema refuses it (mark it `# wrong at`): {errors:#?}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        files.len() >= 40 && by_both > by_check_only,
        "{by_both} refused by both, {by_check_only} by `check` only"
    );
}

/// The whole runbooks in the book's YAML blocks, by their place.
fn book_runbooks() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for page in ["format.md", "getting-started.md"] {
        let text = std::fs::read_to_string(root().join("book/src").join(page)).unwrap();
        let mut rest = text.as_str();
        // A block opens with ```yaml, perhaps with attributes (`,file=NAME`).
        while let Some(start) = rest.find("```yaml") {
            let block = &rest[start..];
            let block = &block[block.find('\n').map_or(block.len(), |i| i + 1)..];
            let end = block.find("```").expect("a YAML block ends");
            if block[..end].lines().any(|line| line.starts_with("runbook: ")) {
                found.push((format!("book/src/{page}"), block[..end].to_string()));
            }
            rest = &block[end..];
        }
    }
    found
}

#[test]
fn every_runbook_meant_to_be_valid_passes_check_and_the_schema() {
    let validator = validator();
    let mut files: Vec<PathBuf> = [
        "runbooks",
        "runbooks/examples",
        "tests/fixtures/schema/right",
        "tests/fixtures/plan",
    ]
    .iter()
    .flat_map(|dir| yaml_files(&root().join(dir)))
    .collect();
    files.push(root().join("tests/fixtures/check/valid.yaml"));
    files.push(root().join("tests/fixtures/contract_example.yaml"));
    let mut failures = Vec::new();
    let mut judge = |name: &str, text: &str, dir: &Path, file: Option<&str>| {
        match schema_errors(&validator, text) {
            Some(errors) if errors.is_empty() => {}
            errors => failures.push(format!("{name}: the schema refuses it: {errors:#?}")),
        }
        if let Some(file) = file {
            let check = runbook_in(dir, &["check", file], &[]);
            if check.code != Some(0) {
                failures.push(format!("{name}: {}", check.transcript()));
            }
        }
    };
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        judge(
            &name,
            &text,
            file.parent().unwrap(),
            file.file_name().and_then(|n| n.to_str()),
        );
    }
    // Its kind `app.maintenance` is the embedding program's, unknown to
    // `runbook check`: the schema takes it in the plugin form.
    let embedded = root().join("examples/embed/maintenance.yaml");
    judge(
        "examples/embed/maintenance.yaml",
        &std::fs::read_to_string(embedded).unwrap(),
        &root(),
        None,
    );
    let book = book_runbooks();
    assert!(book.len() >= 2, "the book's whole runbooks: {}", book.len());
    let sandbox = tempfile::tempdir().unwrap();
    for (i, (page, text)) in book.iter().enumerate() {
        let file = format!("book_{i}.yaml");
        std::fs::write(sandbox.path().join(&file), text).unwrap();
        judge(&format!("{page}, runbook {}", i + 1), text, sandbox.path(), Some(&file));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

//! The engine's stages import only earlier stages: no two top-level modules
//! import each other, directly or through others. Read from the source, as
//! `crate::module` paths outside test modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the top-level modules it imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let top = |path: &Path| {
        let first = path.strip_prefix(&src).unwrap().components().next().unwrap();
        first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()
    };
    let modules: BTreeSet<String> = files.iter().map(|f| top(f)).filter(|m| m != "lib").collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = top(file);
        if from == "lib" || file.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        // `crate::x` anywhere, and `x` at the start of an item of `use crate::{x, y::z}`.
        let mut named: Vec<String> = text
            .match_indices("crate::")
            .map(|(at, _)| {
                text[at + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .collect();
        for (at, _) in text.match_indices("use crate::{") {
            let rest = &text[at + 12..];
            let group = &rest[..rest.find(';').unwrap_or(rest.len())];
            named.extend(group.split([',', '{', '\n']).map(|item| {
                item.trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            }));
        }
        for to in named {
            if to != from && modules.contains(&to) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let graph = imports();
    assert!(
        graph.contains_key("execute") && graph["execute"].contains("journal"),
        "{graph:#?}"
    );
    // A module is in a cycle when it can reach itself.
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&String, Vec<&String>)> = vec![(start, vec![start])];
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(at).into_iter().flatten() {
                assert!(
                    next != start,
                    "import cycle: {} -> {next}",
                    path.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" -> ")
                );
                if seen.insert(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
}

#[test]
fn the_shared_vocabulary_and_the_event_contract_sit_at_the_bottom() {
    let graph = imports();
    assert_eq!(graph.get("words"), None, "words imports {:?}", graph.get("words"));
    for later in ["execute", "journal", "report", "plan", "kit"] {
        assert!(!graph["event"].contains(later), "event imports {later}");
        assert!(!graph["step"].contains(later), "step imports {later}");
    }
}

//! Building blocks for `describe`: turning parameter values into the short
//! phrases a plan shows. Parameters may hold anything (placeholders such as
//! `<steps.x.outputs.pop>`, masked secrets `***`, or values of the wrong
//! type), so every function here takes what it gets and never fails.

use serde_json::Value as Json;

/// How many characters of a command, message or expression a plan shows.
const MAX_CHARS: usize = 100;

/// A string, number or boolean as text; `None` for null, lists and mappings.
pub fn scalar(value: &Json) -> Option<String> {
    match value {
        Json::String(text) => Some(text.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Null | Json::Array(_) | Json::Object(_) => None,
    }
}

/// The scalar at `params[name]`, if there is one.
pub fn field(params: &Json, name: &str) -> Option<String> {
    params.get(name).and_then(scalar)
}

/// Any value as short text: scalars as they are, the rest as JSON.
pub fn any(value: &Json) -> String {
    scalar(value).unwrap_or_else(|| value.to_string())
}

/// The first line of `text`, at most [`MAX_CHARS`] characters, ending in `…`
/// when anything was left out.
pub fn shorten(text: &str) -> String {
    let trimmed = text.trim();
    let first_line = trimmed.lines().next().unwrap_or_default().trim_end();
    let mut short: String = first_line.chars().take(MAX_CHARS).collect();
    if short.len() < trimmed.len() {
        short.push('…');
    }
    short
}

/// Code, a command or an expression, shortened, in backticks.
pub fn code(text: &str) -> String {
    format!("`{}`", shorten(text))
}

/// Human text, shortened, in quotation marks.
pub fn quoted(text: &str) -> String {
    format!("“{}”", shorten(text))
}

/// `a`, `a and b`, `a, b and c` (or with another final word, such as `or`).
pub fn series(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

/// The keys of the mapping at `params[name]`, in order; empty when it is not
/// a mapping.
pub fn keys(params: &Json, name: &str) -> Vec<String> {
    params
        .get(name)
        .and_then(Json::as_object)
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

/// The scalars of the list at `params[name]`, or the one scalar there.
pub fn scalars(params: &Json, name: &str) -> Vec<String> {
    match params.get(name) {
        Some(Json::Array(items)) => items.iter().map(any).collect(),
        Some(value) => scalar(value).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_keeps_the_first_line_and_marks_cuts() {
        assert_eq!(shorten("echo hi"), "echo hi");
        assert_eq!(shorten("  set -e\n  make\n"), "set -e…");
        let long = "x".repeat(150);
        assert_eq!(shorten(&long), format!("{}…", "x".repeat(100)));
        assert_eq!(shorten(&"é".repeat(100)), "é".repeat(100));
        assert_eq!(shorten(""), "");
    }

    #[test]
    fn series_reads_as_a_sentence() {
        let s = |items: &[&str]| series(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "and");
        assert_eq!(s(&[]), "");
        assert_eq!(s(&["a"]), "a");
        assert_eq!(s(&["a", "b"]), "a and b");
        assert_eq!(s(&["a", "b", "c"]), "a, b and c");
    }
}

//! Building blocks for `describe`: turning parameter values into the short
//! phrases a plan shows.

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

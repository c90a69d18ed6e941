//! The strict minijinja environment shared by every stage, and the analysis
//! of templates and expressions: their syntax errors (with the range inside
//! the string) and the names they read, so undefined names are caught at
//! compile time rather than at 3 a.m.

use crate::diagnostic::Span;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use std::ops::Range;
use std::sync::OnceLock;

/// The shared environment: strict undefined, our filters.
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("quote", shell_quote);
        env.add_filter("shell_quote", shell_quote);
        // Templates of shell commands are named `*.sh`: every value printed
        // into them is quoted, unless marked `| safe` (or already quoted).
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".sh") {
                AutoEscape::Custom("shell".into())
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(|out, state, value| {
            if matches!(state.auto_escape(), AutoEscape::Custom(name) if name == "shell") {
                if value.is_safe() {
                    return write!(out, "{value}").map_err(minijinja::Error::from);
                }
                return out
                    .write_str(&quote_word(&plain_text(value)))
                    .map_err(minijinja::Error::from);
            }
            minijinja::escape_formatter(out, state, value)
        });
        env
    })
}

/// Quotes a value for POSIX `sh`, so that it is one word whatever it holds.
/// The result is marked safe, so that it is not quoted twice in a command.
pub fn shell_quote(value: Value) -> Value {
    Value::from_safe_string(quote_word(&plain_text(&value)))
}

/// A value as text the way a template prints it: strings as they are,
/// `true`/`false`, numbers, and JSON for lists and maps.
fn plain_text(value: &Value) -> String {
    if let Some(text) = value.as_str() {
        return text.to_string();
    }
    if value.is_none() || value.is_undefined() {
        return String::new();
    }
    match value.kind() {
        minijinja::value::ValueKind::Bool => value.is_true().to_string(),
        minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Map => {
            serde_json::to_string(value).unwrap_or_else(|_| value.to_string())
        }
        _ => value.to_string(),
    }
}

pub fn quote_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b))
    {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Whether a string is a template at all (most strings are plain text).
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// The expression of a string that is exactly one `{{ expr }}`, which keeps
/// the expression's native type instead of becoming text.
pub fn single_expression(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") {
        return None;
    }
    Some(inner.trim())
}

/// A syntax error, with its byte range inside the analysed text when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    pub range: Option<Range<usize>>,
}

impl SyntaxError {
    fn from_minijinja(error: &minijinja::Error, text_len: usize) -> Self {
        let message = error.detail().map_or_else(|| error.kind().to_string(), str::to_string);
        let range = error.range().map(|r| r.start.min(text_len)..r.end.min(text_len));
        Self { message, range }
    }
}

/// Names a template reads, as dotted paths (`inputs.domain`, `steps.a.outputs.b`).
pub fn template_references(text: &str) -> Result<Vec<String>, SyntaxError> {
    if !is_template(text) {
        return Ok(Vec::new());
    }
    let template = environment()
        .template_from_str(text)
        .map_err(|e| SyntaxError::from_minijinja(&e, text.len()))?;
    Ok(sorted(template.undeclared_variables(true)))
}

/// Names an expression reads.
pub fn expression_references(text: &str) -> Result<Vec<String>, SyntaxError> {
    if text.trim().is_empty() {
        return Err(SyntaxError {
            message: "the expression is empty".into(),
            range: None,
        });
    }
    let expression = environment()
        .compile_expression(text)
        .map_err(|e| SyntaxError::from_minijinja(&e, text.len()))?;
    Ok(sorted(expression.undeclared_variables(true)))
}

fn sorted(names: std::collections::HashSet<String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    names.sort();
    names
}

/// Why a template or expression failed, in minijinja's words.
pub fn reason(error: &minijinja::Error) -> String {
    error.detail().map_or_else(|| error.kind().to_string(), str::to_string)
}

/// Renders a template with a context.
pub fn render(text: &str, context: &Value) -> Result<String, minijinja::Error> {
    if !is_template(text) {
        return Ok(text.to_string());
    }
    environment().render_str(text, context)
}

/// Renders a shell command: values printed into it are quoted for `sh`.
pub fn render_shell(text: &str, context: &Value) -> Result<String, minijinja::Error> {
    if !is_template(text) {
        return Ok(text.to_string());
    }
    environment().render_named_str("command.sh", text, context)
}

/// Evaluates an expression with a context.
pub fn eval(text: &str, context: &Value) -> Result<Value, minijinja::Error> {
    environment().compile_expression(text)?.eval(context)
}

/// Maps a byte range inside a YAML string's value onto the file. Quoted and
/// plain scalars map exactly; where escapes or folding make that impossible,
/// the whole scalar is the answer.
pub fn map_range(source: &str, node_span: Span, value: &str, range: Range<usize>) -> Span {
    let raw = source
        .get(node_span.offset..node_span.offset + node_span.len)
        .unwrap_or("");
    let len = range.end.saturating_sub(range.start).max(1);
    if raw == value {
        return node_span.sub(range.start, len);
    }
    if raw.len() >= 2 && (raw.starts_with('"') || raw.starts_with('\'')) && &raw[1..raw.len() - 1] == value {
        return node_span.sub(range.start + 1, len);
    }
    // A block scalar or an escaped string: find the text around the range in the raw source.
    if let Some(needle) = value.get(range.clone())
        && !needle.is_empty()
        && raw.matches(needle).count() == 1
        && let Some(at) = raw.find(needle)
    {
        return node_span.sub(at, needle.len());
    }
    node_span
}

/// Where in a string's span a name is mentioned, to underline a reference.
pub fn find_name(source: &str, node_span: Span, value: &str, name: &str) -> Span {
    // Look for the whole dotted path first, then for its last part.
    for needle in [name, name.rsplit('.').next().unwrap_or(name)] {
        if let Some(at) = find_word(value, needle) {
            return map_range(source, node_span, value, at..at + needle.len());
        }
    }
    node_span
}

fn find_word(haystack: &str, needle: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    haystack.match_indices(needle).map(|(i, _)| i).find(|&i| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + needle.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_dotted_paths() {
        let refs = template_references("{{ inputs.api_url }}/x/{{ steps.resolve.outputs.pop | upper }}").unwrap();
        assert_eq!(refs, vec!["inputs.api_url", "steps.resolve.outputs.pop"]);
        let refs = expression_references("not steps.health.outputs.healthy and result.status == 200").unwrap();
        assert_eq!(refs, vec!["result.status", "steps.health.outputs.healthy"]);
        assert!(template_references("plain text").unwrap().is_empty());
        let locals = template_references("{% for x in inputs.hosts %}{{ x }}{% endfor %}").unwrap();
        assert_eq!(locals, vec!["inputs.hosts"]);
    }

    #[test]
    fn syntax_errors_carry_a_range() {
        let error = template_references("url: {{ inputs.api_url }/health").unwrap_err();
        assert!(error.range.is_some(), "{error:?}");
        let error = expression_references("result.status ==").unwrap_err();
        assert!(!error.message.is_empty());
    }

    #[test]
    fn single_expressions_keep_their_type() {
        assert_eq!(single_expression("{{ inputs.count }}"), Some("inputs.count"));
        assert_eq!(single_expression(" {{ a }} and {{ b }} "), None);
        assert_eq!(single_expression("x {{ a }}"), None);
    }

    #[test]
    fn shell_quoting_makes_one_word() {
        assert_eq!(quote_word("plain-file.txt"), "plain-file.txt");
        assert_eq!(quote_word("a b"), "'a b'");
        assert_eq!(quote_word("x'; rm -rf / #"), r"'x'\''; rm -rf / #'");
        assert_eq!(quote_word(""), "''");
    }

    #[test]
    fn shell_commands_quote_what_is_templated_into_them() {
        let ctx = Value::from(std::collections::BTreeMap::from([
            ("file", "x'; rm -rf / #"),
            ("plain", "a.txt"),
        ]));
        assert_eq!(
            render_shell("cat {{ file }} {{ plain }}", &ctx).unwrap(),
            r"cat 'x'\''; rm -rf / #' a.txt"
        );
        assert_eq!(
            render_shell("cat {{ file | quote }}", &ctx).unwrap(),
            r"cat 'x'\''; rm -rf / #'"
        );
        assert_eq!(render_shell("echo {{ plain | safe }}", &ctx).unwrap(), "echo a.txt");
        assert_eq!(render("cat {{ file }}", &ctx).unwrap(), "cat x'; rm -rf / #");
    }

    #[test]
    fn ranges_map_into_quoted_scalars() {
        let source = r#"url: "{{ inputs.x }}/a""#;
        let span = Span::new(5, source.len() - 5);
        let value = "{{ inputs.x }}/a";
        let mapped = map_range(source, span, value, 3..11);
        assert_eq!(&source[mapped.offset..mapped.offset + mapped.len], "inputs.x");
        let named = find_name(source, span, value, "inputs.x");
        assert_eq!(&source[named.offset..named.offset + named.len], "inputs.x");
    }
}

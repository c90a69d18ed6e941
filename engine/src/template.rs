//! The strict minijinja environment shared by every stage, and the analysis
//! of templates and expressions: their syntax errors (with the range inside
//! the string) and the names they read, so undefined names are caught at
//! compile time rather than at 3 a.m.

use crate::diagnostic::Span;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use std::ops::Range;
use std::sync::OnceLock;

pub use crate::quote::{Piece, join, quote_word};

/// The shared environment: strict undefined, our filters.
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // A template is bounded work: three nested loops over a long value
        // end with an error in well under a second instead of never.
        env.set_fuel(Some(FUEL));
        env.add_filter("quote", shell_quote);
        env.add_filter("shell_quote", shell_quote);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_formatter(|out, state, value| {
            let recorded = RECORDING.with(|recording| {
                let mut recording = recording.borrow_mut();
                let values = recording.as_mut()?;
                values.push((plain_text(value), value.is_safe()));
                Some(values.len() - 1)
            });
            let _ = state;
            match recorded {
                Some(index) => write!(out, "{OPEN}{index}{CLOSE}").map_err(minijinja::Error::from),
                // Values print as a runbook's readers expect: `true`, not
                // `True`; nothing for none; lists and maps as JSON.
                None => out.write_str(&plain_text(value)).map_err(minijinja::Error::from),
            }
        });
        env
    })
}

/// How much work one template or expression may do (minijinja's
/// instructions): far more than any runbook needs, and under a second.
pub const FUEL: u64 = 5_000_000;

/// Why a template failed, in words that say what to do when it ran out of fuel.
pub fn failure_words(error: &minijinja::Error) -> String {
    if error.kind() == minijinja::ErrorKind::OutOfFuel {
        return format!(
            "the template did too much work (over {FUEL} steps), as a loop over a large value does; \
             simplify it, or do the work in a `shell` step"
        );
    }
    error.detail().map_or_else(|| error.kind().to_string(), str::to_string)
}

/// A filter or test a template names that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// Where the name is, inside the template's text.
    pub range: Range<usize>,
    /// `filter` or `test`.
    pub kind: &'static str,
    pub name: String,
    /// The closest name that does exist, if one is close.
    pub suggestion: Option<&'static str>,
}

/// The filters and tests a template (or, with `expression`, an
/// expression) names that the environment does not have: found at `check`
/// rather than halfway through a run.
pub fn unknown_names(text: &str, expression: bool) -> Vec<UnknownName> {
    use minijinja::machinery::{Token, tokenize};
    if !expression && !is_template(text) {
        return Vec::new();
    }
    let tokens: Vec<(Token<'_>, minijinja::machinery::Span)> = tokenize(text, expression, Default::default())
        .map_while(Result::ok)
        .collect();
    let mut unknown = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let found = match &tokens[i].0 {
            Token::Pipe => Some(("filter", i + 1)),
            Token::Ident("is") => {
                let next = if matches!(tokens.get(i + 1), Some((Token::Ident("not"), _))) {
                    i + 2
                } else {
                    i + 1
                };
                Some(("test", next))
            }
            _ => None,
        };
        if let Some((kind, at)) = found
            && let Some((Token::Ident(name), span)) = tokens.get(at)
            && !known(kind, name)
        {
            let candidates = if kind == "filter" { FILTERS } else { TESTS };
            unknown.push(UnknownName {
                range: span.start_offset as usize..span.end_offset as usize,
                kind,
                name: name.to_string(),
                suggestion: crate::diagnostic::did_you_mean(
                    name,
                    candidates.iter().copied().filter(|c| known(kind, c)),
                ),
            });
        }
        i += 1;
    }
    unknown
}

/// The names of minijinja's built-in filters and ours, for suggestions (each
/// is checked to exist before it is suggested).
const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "chain",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "format",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "quote",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "shell_quote",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "tojson",
    "trim",
    "unique",
    "upper",
    "urlencode",
    "zip",
];
const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "greaterthan",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lessthan",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// Whether the environment has a filter (or test) of this name: asked of
/// the environment itself, so the answer follows minijinja's version.
fn known(kind: &str, name: &str) -> bool {
    static SEEN: std::sync::Mutex<Option<std::collections::HashMap<(bool, String), bool>>> =
        std::sync::Mutex::new(None);
    let filter = kind == "filter";
    let key = (filter, name.to_string());
    if let Some(answer) = SEEN
        .lock()
        .ok()
        .and_then(|s| s.as_ref().and_then(|m| m.get(&key).copied()))
    {
        return answer;
    }
    let probe = if filter {
        format!("{{{{ 1 | {name} }}}}")
    } else {
        format!("{{{{ 1 is {name} }}}}")
    };
    let unknown_kind = if filter {
        minijinja::ErrorKind::UnknownFilter
    } else {
        minijinja::ErrorKind::UnknownTest
    };
    let answer = !matches!(environment().render_str(&probe, ()), Err(e) if e.kind() == unknown_kind);
    if let Ok(mut seen) = SEEN.lock() {
        seen.get_or_insert_with(Default::default).insert(key, answer);
    }
    answer
}

thread_local! {
    /// While a template renders into [`Piece`]s: the values printed so far.
    static RECORDING: std::cell::RefCell<Option<Vec<(String, bool)>>> = const { std::cell::RefCell::new(None) };
}

/// Marks where the value printed N-th stands in the text while rendering
/// into pieces: `OPEN N CLOSE`. Unicode noncharacters, which a runbook's
/// text has no business holding (a template that does is refused).
const OPEN: char = '\u{FDD0}';
const CLOSE: char = '\u{FDD1}';

/// Renders a template into its pieces: what the template wrote, and each
/// value printed into it.
pub fn render_pieces(text: &str, context: &Value) -> Result<Vec<Piece>, minijinja::Error> {
    if !is_template(text) {
        return Ok(vec![Piece::Literal(text.to_string())]);
    }
    if text.contains([OPEN, CLOSE]) {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "the template holds the Unicode noncharacter U+FDD0 or U+FDD1",
        ));
    }
    let previous = RECORDING.with(|recording| recording.borrow_mut().replace(Vec::new()));
    let rendered = environment().render_str(text, context);
    let values = RECORDING.with(|recording| std::mem::replace(&mut *recording.borrow_mut(), previous));
    let rendered = rendered?;
    let values = values.unwrap_or_default();
    let pieces = split_pieces(&rendered, &values);
    // A value printed into captured text (a `{% set %}` block, a macro) that
    // a filter then changed is no longer where its mark says: such a
    // template's values cannot be placed, and nothing is guessed.
    if join(&pieces) != environment().render_str(text, context)? {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "a value printed into captured text (a `{% set %}` block or a macro's output) was changed \
             by a filter afterwards, so it cannot be told where it lands; print the value with its own `{{ … }}`",
        ));
    }
    Ok(pieces)
}

/// Cuts a text with value marks into pieces. A value may hold marks itself
/// (the output of a `{% set %}` block or a macro, printed again): those
/// are put back as text, since the value as a whole is what was printed.
fn split_pieces(rendered: &str, values: &[(String, bool)]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = rendered;
    while let Some(open) = rest.find(OPEN) {
        let after = &rest[open + OPEN.len_utf8()..];
        let Some(close) = after.find(CLOSE) else { break };
        let Some((text, safe)) = after[..close].parse::<usize>().ok().and_then(|i| values.get(i)) else {
            break;
        };
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_string()));
        }
        pieces.push(Piece::Value {
            text: resolve_marks(text, values),
            safe: *safe,
        });
        rest = &after[close + CLOSE.len_utf8()..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_string()));
    }
    // Marks in literal text come from captured output printed by a filter
    // that changed it; put back the values they stand for.
    for piece in &mut pieces {
        if let Piece::Literal(text) = piece
            && text.contains(OPEN)
        {
            *text = resolve_marks(text, values);
        }
    }
    pieces
}

fn resolve_marks(text: &str, values: &[(String, bool)]) -> String {
    if !text.contains(OPEN) {
        return text.to_string();
    }
    join(&split_pieces(text, values))
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

/// What [`is_template`] looks for, as a JSON Schema pattern.
pub const TEMPLATE_PATTERN: &str = r"\{[{%#]";

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

/// Why a template or expression failed, in minijinja's words (ours when it
/// ran out of fuel).
pub fn reason(error: &minijinja::Error) -> String {
    if error.kind() == minijinja::ErrorKind::OutOfFuel {
        return failure_words(error);
    }
    error.detail().map_or_else(|| error.kind().to_string(), str::to_string)
}

/// Renders a template with a context.
pub fn render(text: &str, context: &Value) -> Result<String, minijinja::Error> {
    if !is_template(text) {
        return Ok(text.to_string());
    }
    environment().render_str(text, context)
}

/// Where a template's text goes, which decides how printed values are
/// written into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Plain text: values as they are.
    Text,
    /// A shell command: each value quoted for `sh` where it lands (see
    /// [`crate::quote::shell`]), so an input cannot inject commands.
    Shell,
    /// A URL: each value encoded for the part of the URL it lands in (see
    /// [`crate::quote::url`]).
    Url,
}

/// Puts rendered pieces together for their place.
pub fn assemble(pieces: &[Piece], place: Place) -> Result<String, minijinja::Error> {
    match place {
        Place::Text => Ok(join(pieces)),
        Place::Shell => crate::quote::shell_command(pieces).map_err(quoting_error),
        Place::Url => crate::quote::url(pieces).map_err(quoting_error),
    }
}

/// Renders a template for its place.
pub fn render_for(text: &str, context: &Value, place: Place) -> Result<String, minijinja::Error> {
    match place {
        Place::Text => render(text, context),
        _ if !is_template(text) => Ok(text.to_string()),
        _ => assemble(&render_pieces(text, context)?, place),
    }
}

/// Renders a shell command: values printed into it are quoted for `sh`,
/// each for the place it lands in (see [`crate::quote::shell`]).
pub fn render_shell(text: &str, context: &Value) -> Result<String, minijinja::Error> {
    render_for(text, context, Place::Shell)
}

/// Renders a URL: values printed into it are encoded for the part of the
/// URL they land in (see [`crate::quote::url`]).
pub fn render_url(text: &str, context: &Value) -> Result<String, minijinja::Error> {
    render_for(text, context, Place::Url)
}

/// A value that cannot be placed, as a template error saying what to do.
pub fn quoting_error(reason: String) -> minijinja::Error {
    minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, reason)
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
    fn pieces_tell_written_text_from_printed_values() {
        let ctx = Value::from(std::collections::BTreeMap::from([("x", "a b"), ("y", "c")]));
        let value = |text: &str, safe| Piece::Value {
            text: text.into(),
            safe,
        };
        let lit = |text: &str| Piece::Literal(text.into());
        assert_eq!(
            render_pieces("echo {{ x }}-{{ y | safe }}!", &ctx).unwrap(),
            [lit("echo "), value("a b", false), lit("-"), value("c", true), lit("!")]
        );
        assert_eq!(
            render_pieces("{% for c in y ~ x %}[{{ c }}]{% endfor %}", &ctx)
                .unwrap()
                .len(),
            9,
            "[ c ][ a ][   ][ b ]: four values, five pieces of text"
        );
        // A captured block printed again is one value, its inner marks resolved.
        assert_eq!(
            render_pieces("{% set z %}<{{ x }}>{% endset %}{{ z }}", &ctx).unwrap(),
            [value("<a b>", false)]
        );
        assert_eq!(
            render_pieces("{% macro m(v) %}({{ v }}){% endmacro %}{{ m(y) }}", &ctx).unwrap(),
            [value("(c)", false)]
        );
        let changed = render_pieces("{% macro m(v) %}({{ v }}){% endmacro %}{{ m(y) | upper }}", &ctx);
        assert!(changed.unwrap_err().to_string().contains("changed by a filter"));
        assert_eq!(join(&render_pieces("plain", &ctx).unwrap()), "plain");
        assert!(render_pieces("{{ x }}\u{FDD0}", &ctx).is_err());
    }

    #[test]
    fn values_print_as_runbook_readers_expect() {
        let ctx = Value::from(minijinja::value::Serde(
            serde_json::json!({"b": false, "n": null, "l": ["a", 1]}),
        ));
        assert_eq!(render("{{ b }}|{{ n }}|{{ l }}", &ctx).unwrap(), r#"false||["a",1]"#);
    }

    #[test]
    fn unknown_filters_and_tests_are_found_with_a_suggestion() {
        let found = unknown_names(
            "{{ run.id | uppper }} {% if x is strng %}{{ y | upper }}{% endif %}",
            false,
        );
        let names: Vec<_> = found.iter().map(|u| (u.kind, u.name.as_str(), u.suggestion)).collect();
        assert_eq!(
            names,
            [("filter", "uppper", Some("upper")), ("test", "strng", Some("string"))]
        );
        assert_eq!(&"{{ run.id | uppper }}"[found[0].range.clone()], "uppper");
        let found = unknown_names("result.status is not numbr and x | lenght > 0", true);
        let names: Vec<_> = found.iter().map(|u| (u.name.as_str(), u.suggestion)).collect();
        assert_eq!(names, [("numbr", Some("number")), ("lenght", Some("length"))]);
        assert!(unknown_names("{{ 'a | b' }} {{ x | quote }} {{ x is defined }}", false).is_empty());
    }

    #[test]
    fn every_suggested_name_exists_or_is_left_out() {
        // The lists only feed suggestions; what exists is asked of minijinja.
        assert!(known("filter", "upper") && known("filter", "quote") && known("test", "defined"));
        assert!(!known("filter", "uppper") && !known("test", "strng"));
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let ctx = Value::from(std::collections::BTreeMap::from([("s", "x".repeat(3000))]));
        let started = std::time::Instant::now();
        let error = render(
            "{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}",
            &ctx,
        )
        .unwrap_err();
        assert!(failure_words(&error).contains("too much work"), "{error}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
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

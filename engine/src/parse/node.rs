//! A YAML document as a tree of nodes that each remember their byte span.
//!
//! This is the one place that talks to the YAML deserializer. Everything
//! after it works on [`Node`]s, so every later diagnostic can point at the
//! exact place in the file.

use crate::diagnostic::{Diagnostic, SourceFile, Span};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A YAML value with the span it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// What kind of YAML value this is, for messages such as "expected a list, found a string".
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value at a JSON pointer such as `/probe/with/url`, if there is one.
    pub fn pointer(&self, pointer: &str) -> Option<&Node> {
        let mut node = self;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            node = match &node.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(&token))
                    .map(|(_, v)| v)?,
                Value::Seq(items) => items.get(token.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The key node of the entry at a JSON pointer, for labels on a key rather than a value.
    pub fn key_span(&self, pointer: &str) -> Option<Span> {
        let (parent, last) = pointer.rsplit_once('/')?;
        let parent = self.pointer(parent)?;
        match &parent.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(last))
                .map(|(k, _)| k.span),
            _ => None,
        }
    }

    /// The node as JSON, for checking a kind's parameters against its schema.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(entries.iter().map(|(k, v)| (k.key_text(), v.to_json())).collect()),
        }
    }

    /// A mapping key as text (YAML allows non-string keys; we name them by their value).
    pub fn key_text(&self) -> String {
        match &self.value {
            Value::Str(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Seq(_) | Value::Map(_) => "<complex key>".into(),
        }
    }
}

/// Largest runbook file we read, a guard against reading something that is not a runbook.
pub const MAX_FILE_BYTES: usize = 64 * 1024 * 1024;

pub const CODE_YAML: &str = "runbook::parse::yaml";
pub const CODE_ENCODING: &str = "runbook::parse::encoding";
pub const CODE_TOO_LARGE: &str = "runbook::parse::too_large";

/// Reads a file's bytes as a source, refusing text that is not UTF-8.
pub fn decode(name: &str, bytes: &[u8]) -> Result<SourceFile, Box<(SourceFile, Diagnostic)>> {
    if bytes.len() > MAX_FILE_BYTES {
        let source = SourceFile::new(name, "");
        let diagnostic = Diagnostic::error(
            CODE_TOO_LARGE,
            format!(
                "the file is {} bytes; runbooks are limited to {} bytes",
                bytes.len(),
                MAX_FILE_BYTES
            ),
        )
        .with_help("is this the right file? a runbook is a YAML document of steps");
        return Err(Box::new((source, diagnostic)));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(SourceFile::new(name, text)),
        Err(e) => {
            let at = e.valid_up_to();
            let source = SourceFile::new(name, String::from_utf8_lossy(bytes).into_owned());
            let (line, column) = source.line_col(at);
            let diagnostic = Diagnostic::error(
                CODE_ENCODING,
                format!("the file is not valid UTF-8 (byte {at}, line {line}, column {column})"),
            )
            .with_label(Span::new(at, 1), "this byte is not UTF-8")
            .with_help("save the runbook as UTF-8 text");
            Err(Box::new((source, diagnostic)))
        }
    }
}

/// Parses YAML text into a node tree.
pub fn parse_yaml(source: &SourceFile) -> Result<Node, Diagnostic> {
    let mut options = serde_saphyr::Options::default();
    // YAML 1.2 booleans: a step or output named `y`, `n`, `on` or `no` stays a name.
    options.strict_booleans = true;
    if let Some(budget) = options.budget.as_mut() {
        budget.max_nodes = budget.max_nodes.max(5_000_000);
        budget.max_events = budget.max_events.max(20_000_000);
    }
    serde_saphyr::from_str_with_options::<Node>(&source.text, options).map_err(|e| yaml_error(source, &e))
}

fn yaml_error(source: &SourceFile, error: &serde_saphyr::Error) -> Diagnostic {
    let text = error.without_snippet().to_string();
    let message = clean_yaml_message(&text);
    let mut diagnostic = Diagnostic::error(CODE_YAML, format!("invalid YAML: {message}"));
    if let Some(location) = error.location().filter(|l| l.line() > 0) {
        let offset = location
            .span()
            .byte_offset()
            .map(|o| o as usize)
            .filter(|&o| o <= source.text.len())
            .unwrap_or_else(|| byte_offset(&source.text, location.line() as usize, location.column() as usize));
        // Keep the label inside the text (an error at the very end points at the last byte).
        let offset = offset.min(source.text.len().saturating_sub(1));
        let len = usize::from(offset < source.text.len());
        diagnostic = diagnostic.with_label(Span::new(offset, len), message.clone());
    }
    let help = if message.contains("tab") {
        "indent with spaces; YAML does not allow tabs for indentation"
    } else if message.contains("duplicate") {
        "each key may appear once in a mapping; remove or rename one of them"
    } else {
        "check the indentation and the brackets and quotes around this place"
    };
    diagnostic.with_help(help)
}

/// Removes the location prefix and the deserializer's advice meant for programmers.
fn clean_yaml_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    let mut message = first.strip_prefix("error: ").unwrap_or(first);
    if let Some(rest) = message.strip_prefix("line ")
        && let Some(idx) = rest.find(": ")
        && rest[..idx].contains("column")
    {
        message = &rest[idx + 2..];
    }
    let message = match message.find(", set DuplicateKeyPolicy") {
        Some(idx) => &message[..idx],
        None => message,
    };
    let message = match message.rfind(" at line ") {
        Some(idx) if message[idx..].contains("column") => &message[..idx],
        _ => message,
    };
    message.trim().to_string()
}

/// Byte offset of a 1-based line and character column.
fn byte_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        text.match_indices('\n')
            .nth(line - 2)
            .map_or(text.len(), |(i, _)| i + 1)
    };
    let rest = &text[line_start..];
    line_start
        + rest
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(rest.len(), |(i, _)| i)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<Value>::deserialize(deserializer)?;
        let span = spanned.referenced.span();
        Ok(Node {
            span: Span::new(
                span.byte_offset().unwrap_or(0) as usize,
                span.byte_len().unwrap_or(0) as usize,
            ),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(node) = seq.next_element::<Node>()? {
            items.push(node);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let value = map.next_value::<Node>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Node, Diagnostic> {
        parse_yaml(&SourceFile::new("t.yaml", text))
    }

    #[test]
    fn spans_point_at_scalars() {
        let text = "a: 1\nb:\n  - \"x{{ y }}\"\n  - plain\n";
        let node = parse(text).unwrap();
        let item = node.pointer("/b/0").unwrap();
        assert_eq!(
            &text[item.span.offset..item.span.offset + item.span.len],
            "\"x{{ y }}\""
        );
        assert_eq!(item.as_str(), Some("x{{ y }}"));
        let key = node.key_span("/b").unwrap();
        assert_eq!(&text[key.offset..key.offset + key.len], "b");
    }

    #[test]
    fn yaml_errors_have_a_place_and_a_plain_message() {
        let error = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(error.message.starts_with("invalid YAML: "), "{}", error.message);
        assert!(!error.message.contains("line "), "{}", error.message);
        assert_eq!(error.labels.len(), 1);
        let duplicate = parse("a: 1\na: 2\n").unwrap_err();
        assert!(
            !duplicate.message.contains("DuplicateKeyPolicy"),
            "{}",
            duplicate.message
        );
        assert_eq!(duplicate.labels[0].span.offset, 5);
    }

    #[test]
    fn only_true_and_false_are_booleans() {
        let node = parse("y: yes\nn: off\nt: true\n").unwrap();
        assert_eq!(node.pointer("/y").and_then(Node::as_str), Some("yes"));
        assert_eq!(node.pointer("/n").and_then(Node::as_str), Some("off"));
        assert_eq!(node.pointer("/t").map(|n| &n.value), Some(&Value::Bool(true)));
    }

    #[test]
    fn non_utf8_is_refused_with_the_offset() {
        let (_, diagnostic) = *decode("f", b"runbook: 1\nname: \xff\n").unwrap_err();
        assert_eq!(diagnostic.labels[0].span.offset, 17);
    }

    #[test]
    fn byte_offsets_follow_characters() {
        assert_eq!(byte_offset("ab\ncé x", 2, 3), 6);
        assert_eq!(byte_offset("ab", 5, 1), 2);
    }
}

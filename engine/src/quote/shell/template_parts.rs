//! A template's text cut into what it writes and the `{{ … }}` it prints,
//! for `check`, which judges where values would land before any renders.

use std::ops::Range;

/// A part of a template's text, for the check before anything renders.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TemplatePart<'a> {
    /// Text the template writes (around its tags, trimmed where `-` says).
    Text(&'a str),
    /// A `{{ … }}`; `safe` when its last filter is `safe` or `quote`.
    Print { range: Range<usize>, safe: bool },
}

/// Cuts a template into its text and its `{{ … }}`; `{% … %}` and
/// `{# … #}` write nothing, and the text of `{% raw %}` is text.
pub(super) fn template_parts(template: &str) -> Vec<TemplatePart<'_>> {
    let mut parts = Vec::new();
    let mut text_start = 0;
    let mut trim_next = false;
    let mut at = 0;
    while let Some(found) = template[at..].find('{') {
        let open = at + found;
        let close = match template.as_bytes().get(open + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                at = open + 1;
                continue;
            }
        };
        let Some(end) = find_close(template, open + 2, close) else {
            break;
        };
        let inner = &template[open + 2..end];
        let mut before = &template[text_start..open];
        if trim_next {
            before = before.trim_start();
        }
        if inner.starts_with('-') {
            before = before.trim_end();
        }
        parts.push(TemplatePart::Text(before));
        trim_next = inner.ends_with('-');
        at = end + 2;
        text_start = at;
        match close {
            "}}" => parts.push(TemplatePart::Print {
                range: open..end + 2,
                safe: vouched_for(inner),
            }),
            "%}" if inner.trim_matches(|c: char| c == '-' || c.is_whitespace()) == "raw" => {
                let Some(raw_end) = template[at..].find("endraw") else {
                    break;
                };
                let Some(tag) = template[..at + raw_end].rfind("{%") else {
                    break;
                };
                parts.push(TemplatePart::Text(&template[at..tag]));
                let Some(tag_end) = find_close(template, tag + 2, "%}") else {
                    break;
                };
                at = tag_end + 2;
                text_start = at;
            }
            _ => {}
        }
    }
    let mut rest = &template[text_start.min(template.len())..];
    if trim_next {
        rest = rest.trim_start();
    }
    parts.push(TemplatePart::Text(rest));
    parts
}

/// Where a tag's `close` is, past string literals in it.
fn find_close(template: &str, from: usize, close: &str) -> Option<usize> {
    let mut quote = None;
    let mut chars = template[from..].char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some(_) if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if close != "#}" && (c == '\'' || c == '"') => quote = Some(c),
            None if template[from + i..].starts_with(close) => return Some(from + i),
            None => {}
        }
    }
    None
}

/// Whether a `{{ … }}` ends with a filter by which the author vouches for
/// the text (`safe`) or has quoted it already (`quote`, `shell_quote`).
fn vouched_for(inner: &str) -> bool {
    let expression = inner.trim_matches(|c: char| c == '-' || c.is_whitespace());
    let Some((_, last)) = expression.rsplit_once('|') else {
        return false;
    };
    let filter = last.trim();
    let name = filter.split(['(', ' ']).next().unwrap_or(filter);
    matches!(name, "safe" | "quote" | "shell_quote")
}

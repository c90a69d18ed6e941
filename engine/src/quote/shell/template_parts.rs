//! A template's text cut into what it writes and the `{{ … }}` it prints,
//! for `check`, which judges where values would land before any renders.

use std::ops::Range;

/// A part of a template's text, for the check before anything renders.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TemplatePart<'a> {
    /// Text the template writes (around its tags, trimmed where `-` says).
    Text(&'a str),
    /// A `{{ … }}`, and what its last filter says of its text.
    Print { range: Range<usize>, filter: Filter },
}

/// What a `{{ … }}`'s last filter says of the text it prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Filter {
    /// Nothing: the value is quoted for its place.
    None,
    /// `safe`: the author vouches for the text, shell code and all.
    Safe,
    /// `quote` or `shell_quote`: quoted already, as a word of shell code.
    Quote,
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
                filter: last_filter(inner),
            }),
            "%}" if tag_is(inner, "raw") => {
                let Some((tag, tag_end)) = endraw(template, at) else {
                    break;
                };
                parts.push(TemplatePart::Text(&template[at..tag]));
                at = tag_end;
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

/// Whether a `{% … %}`'s inside is `name`, with or without `-`.
fn tag_is(inner: &str, name: &str) -> bool {
    inner.trim_matches(|c: char| c == '-' || c.is_whitespace()) == name
}

/// Where the `{% endraw %}` after `from` starts and ends.
fn endraw(template: &str, from: usize) -> Option<(usize, usize)> {
    let mut search = from;
    loop {
        let tag = search + template[search..].find("{%")?;
        let end = find_close(template, tag + 2, "%}")?;
        if tag_is(&template[tag + 2..end], "endraw") {
            return Some((tag, end + 2));
        }
        search = tag + 2;
    }
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

/// What the last filter of a `{{ … }}` says of the text it prints.
fn last_filter(inner: &str) -> Filter {
    let expression = inner.trim_matches(|c: char| c == '-' || c.is_whitespace());
    let Some((_, last)) = expression.rsplit_once('|') else {
        return Filter::None;
    };
    let filter = last.trim();
    match filter.split(['(', ' ']).next().unwrap_or(filter) {
        "safe" => Filter::Safe,
        "quote" | "shell_quote" => Filter::Quote,
        _ => Filter::None,
    }
}

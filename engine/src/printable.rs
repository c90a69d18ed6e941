//! Text from outside (a step's output, a log message, a runbook's own
//! text) shown on a terminal: control characters and terminal escape
//! sequences are shown escaped, never interpreted, so that nothing a step
//! prints can clear the screen, rewrite a line the operator reads, retitle
//! the window, or reorder text with bidirectional overrides.

use std::borrow::Cow;

/// Whether a character must not reach a terminal as it is.
fn is_hazard(c: char, keep_newlines: bool) -> bool {
    match c {
        '\t' => false,
        '\n' => !keep_newlines,
        // C0 controls, DEL, C1 controls.
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        // Bidirectional embeddings, overrides and isolates; line and
        // paragraph separators.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

/// One line of text made safe to show: every control character written as
/// an escape (`\x1b`, `\r`, `\u{202e}`).
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Several lines made safe to show: like [`line`], but newlines stay.
pub fn lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_hazard(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_hazard(c, keep_newlines) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\0'..='\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// Several lines made safe to show, but for colour and weight changes
/// (`ESC [ digits ; m`), which are kept: for text this program styled itself.
pub fn lines_keeping_styles(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_hazard(c, true)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = text;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&lines(&rest[..at]));
        let after = &rest[at + 1..];
        let style_len = after
            .strip_prefix('[')
            .and_then(|body| {
                body.find(|c: char| !c.is_ascii_digit() && c != ';')
                    .map(|end| (body, end))
            })
            .filter(|(body, end)| body[*end..].starts_with('m'))
            .map(|(_, end)| end + 2);
        match style_len {
            // SGR without 8 (concealed text), which would hide what follows.
            Some(len) if !after[1..len - 1].split(';').any(|p| p == "8") => {
                out.push('\x1b');
                out.push_str(&after[..len]);
                rest = &after[len..];
            }
            _ => {
                out.push_str("\\x1b");
                rest = after;
            }
        }
    }
    out.push_str(&lines(rest));
    Cow::Owned(out)
}

/// The text with each control character replaced by a visible character
/// of the same length in bytes, so that byte offsets into it (a
/// diagnostic's spans) still hold: `?` for one byte, `¿` for two, `�` for
/// three.
pub fn same_length(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_hazard(c, true)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if !is_hazard(c, true) {
                    return c;
                }
                match c.len_utf8() {
                    1 => '?',
                    2 => '¿',
                    _ => '\u{fffd}',
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_shown_not_interpreted() {
        assert_eq!(line("plain\ttext é"), "plain\ttext é");
        assert_eq!(line("\x1b[2J\x1b]0;pwned\x07done\r"), r"\x1b[2J\x1b]0;pwned\x07done\r");
        assert_eq!(line("a\u{9b}31mb\u{202e}c"), r"a\u{9b}31mb\u{202e}c");
        assert_eq!(line("two\nlines"), r"two\nlines");
        assert_eq!(lines("two\nlines\x1b"), "two\nlines\\x1b");
    }

    #[test]
    fn styles_may_stay_but_nothing_else() {
        assert_eq!(
            lines_keeping_styles("\x1b[1mbold\x1b[0m \x1b[2J\x1b[8mhidden\x1b]0;t\x07"),
            "\x1b[1mbold\x1b[0m \\x1b[2J\\x1b[8mhidden\\x1b]0;t\\x07"
        );
    }

    #[test]
    fn same_length_keeps_every_offset() {
        let text = "a\x1bb\u{9b}c\u{202e}d\ne";
        let shown = same_length(text);
        assert_eq!(shown.len(), text.len());
        assert_eq!(shown, "a?b¿c\u{fffd}d\ne");
    }
}

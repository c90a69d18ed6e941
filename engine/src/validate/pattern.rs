//! The `pattern` of a `string` input: a regular expression (the syntax of
//! the `regex` crate) that the whole value must match, as HTML's `pattern`
//! attribute does, so `[a-z]+` means "only lowercase letters" without the
//! author having to remember `^` and `$`. Matching takes time linear in the
//! value, whatever the pattern, so no value can make a check hang.

use regex::Regex;
use std::ops::Range;

/// A pattern that compiled.
#[derive(Debug, Clone)]
pub struct InputPattern {
    text: String,
    whole: Regex,
}

/// Why a pattern does not compile, and where in it (byte offsets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub message: String,
    pub range: Option<Range<usize>>,
}

impl InputPattern {
    pub fn new(text: &str) -> Result<Self, PatternError> {
        // Parsed on its own first, for the place of a mistake in the text
        // as written; then anchored as a whole (printed back from its parse,
        // so flags and comments in it cannot swallow the anchors).
        let hir = regex_syntax::Parser::new().parse(text).map_err(|e| {
            let (message, span) = match &e {
                regex_syntax::Error::Parse(e) => (e.kind().to_string(), Some(*e.span())),
                regex_syntax::Error::Translate(e) => (e.kind().to_string(), Some(*e.span())),
                other => (other.to_string(), None),
            };
            PatternError {
                message,
                range: span.map(|s| s.start.offset..s.end.offset),
            }
        })?;
        let whole = Regex::new(&format!(r"\A(?:{hir})\z")).map_err(|e| PatternError {
            message: match e {
                regex::Error::CompiledTooBig(limit) => {
                    format!("it is too big: compiled, it would take more than {} KiB", limit >> 10)
                }
                other => other.to_string(),
            },
            range: None,
        })?;
        Ok(Self {
            text: text.to_string(),
            whole,
        })
    }

    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the whole value matches.
    pub fn matches(&self, value: &str) -> bool {
        self.whole.is_match(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_value_must_match() {
        let tenant = InputPattern::new("[a-z][a-z0-9-]*").unwrap();
        assert!(tenant.matches("acme-2"));
        assert!(!tenant.matches("Acme"));
        assert!(!tenant.matches("acme corp"), "a match inside the value is not enough");
        assert!(!tenant.matches("acme\n"));
        let either = InputPattern::new("a|ab").unwrap();
        assert!(either.matches("ab"), "alternatives are anchored as a whole");
        let anchored = InputPattern::new("^v[0-9]+$").unwrap();
        assert!(anchored.matches("v12"));
        assert!(!anchored.matches("v12x"));
    }

    #[test]
    fn flags_and_comments_stay_inside_the_pattern() {
        let insensitive = InputPattern::new("(?i)prod|staging").unwrap();
        assert!(insensitive.matches("PROD"));
        assert!(!insensitive.matches("PRODx"));
        let verbose = InputPattern::new("(?x) [a-z]+  # a name").unwrap();
        assert!(verbose.matches("name"));
        assert!(!verbose.matches("name!"));
        let lines = InputPattern::new("(?m)^a$").unwrap();
        assert!(
            !lines.matches("a\na"),
            "`(?m)` does not let one line stand for the value"
        );
    }

    #[test]
    fn a_mistake_says_where_it_is() {
        let error = InputPattern::new("[a-z]+(").unwrap_err();
        assert_eq!(error.range, Some(6..7), "{error:?}");
        assert!(error.message.contains("unclosed group"), "{error:?}");
        let error = InputPattern::new(r"a{2,1}").unwrap_err();
        assert!(error.range.is_some(), "{error:?}");
        let error = InputPattern::new(r"\p{NoSuchClass}").unwrap_err();
        assert!(error.range.is_some(), "{error:?}");
        let error = InputPattern::new(r"(?:\w{100}){100}").unwrap_err();
        assert!(error.message.contains("too big"), "{error:?}");
    }
}

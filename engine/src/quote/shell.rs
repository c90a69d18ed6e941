//! Values in a POSIX `sh` command, quoted for where they stand.
//!
//! The author's text is lexed as `sh` reads it, far enough to know what a
//! value printed at each point would be part of: a word of shell code (also
//! inside `$(…)`), a `'…'` or `"…"` string, a here-document's body, a
//! comment. Each context has its own quoting, which keeps the lexer in the
//! same context after the value, whatever the value holds. Where quoting
//! cannot do that (inside backticks, `${…}`, `$'…'` or `$((…))`, right after a
//! `\` or a `$`, as a here-document's delimiter) the value is refused, and so
//! is every value after text that shells read differently (a `case` inside
//! `$(…)`): an error at 3 a.m. is better than a guess.

mod lexer;
mod template_parts;

use crate::quote::Piece;
use lexer::Lexer;
use std::ops::Range;
use template_parts::{Filter, TemplatePart, template_parts};

/// Renders a command from its pieces, each unsafe value quoted for the place
/// it lands in; `safe` values go in as they are and are read as shell text.
/// `Err` says why a value cannot be placed and how to write it instead.
pub fn shell_command(pieces: &[Piece]) -> Result<String, String> {
    let mut lexer = Lexer::default();
    let mut command = String::new();
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Piece::Literal(text) | Piece::Value { text, safe: true } => {
                lexer.literal(text)?;
                command.push_str(text);
            }
            Piece::Value { text, safe: false } => {
                let next = match pieces.get(i + 1) {
                    Some(Piece::Literal(text) | Piece::Value { text, safe: true }) => text.chars().next(),
                    _ => None,
                };
                command.push_str(&lexer.value(text, next)?);
            }
        }
    }
    lexer.finish()?;
    Ok(command)
}

/// A `{{ … }}` of a shell command's template that stands where no value
/// can be quoted, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellProblem {
    /// The `{{ … }}`, as a byte range of the template.
    pub range: Range<usize>,
    pub message: String,
    /// Where it stands, for the underline.
    pub label: String,
    pub help: String,
}

/// The places in a shell command's template where a printed value would be
/// refused whatever it holds: inside backticks, `${…}`, `$'…'`, `$((…))`,
/// right after `\` or `$`, as a here-document's delimiter, or after text
/// that shells read differently; and a `| quote` (a word of shell code)
/// anywhere but in shell code. Values marked `| safe` are the author's
/// business and are not judged.
pub fn shell_template_problems(template: &str) -> Vec<ShellProblem> {
    let mut lexer = Lexer::default();
    let mut problems = Vec::new();
    for part in template_parts(template) {
        let (range, filter) = match part {
            // Errors of the text itself depend on the values before it, which a check cannot know.
            TemplatePart::Text(text) => {
                let _ = lexer.literal(text);
                continue;
            }
            TemplatePart::Print {
                filter: Filter::Safe, ..
            } => continue,
            TemplatePart::Print { range, filter } => (range, filter),
        };
        let place = lexer.place();
        let problem = match place {
            Place::Refused(refusal) => ShellProblem {
                range,
                message: refusal.message(),
                label: refusal.label().to_string(),
                help: refusal.help().to_string(),
            },
            Place::Word => {
                let _ = lexer.insert(place, "x", None);
                continue;
            }
            _ if filter == Filter::Quote => ShellProblem {
                range,
                message: format!(
                    "`| quote` makes a word of shell code, but this value stands {}",
                    place.words()
                ),
                label: place.words().to_string(),
                help: "drop `| quote`: a bare `{{ x }}` is quoted for the place it stands in".into(),
            },
            _ => {
                let _ = lexer.insert(place, "x", None);
                continue;
            }
        };
        problems.push(problem);
    }
    problems
}

/// Where a value lands in a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Shell code outside quotes, also inside `$(…)`: one word.
    Word,
    /// Inside `'…'`.
    Single,
    /// Inside `"…"`.
    Double,
    /// A here-document's body whose delimiter is unquoted (`<<EOF`).
    HereDoc,
    /// A here-document's body whose delimiter is quoted (`<<'EOF'`).
    QuotedHereDoc,
    /// A `#` comment.
    Comment,
    Refused(Refusal),
}

impl Place {
    /// Where a value stands, in words.
    fn words(self) -> &'static str {
        match self {
            Place::Word => "in shell code",
            Place::Single => "inside '…'",
            Place::Double => "inside \"…\"",
            Place::HereDoc | Place::QuotedHereDoc => "in a here-document",
            Place::Comment => "in a comment",
            Place::Refused(refusal) => refusal.label(),
        }
    }
}

/// Why no value can go where one stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Backticks,
    Parameter,
    DollarQuote,
    Arithmetic,
    AfterBackslash,
    AfterDollar,
    Delimiter,
    /// Shells read the text before it differently, or this lexer cannot
    /// follow it: what the text is, in words.
    Unclear(&'static str),
}

const ENV_HELP: &str = "bare `{{ x }}` is quoted for you; or pass it in `env:` and write \"$X\"";

impl Refusal {
    fn message(self) -> String {
        match self {
            Refusal::Backticks => "a value inside backticks cannot be quoted".into(),
            Refusal::Parameter => "a value inside `${…}` cannot be quoted".into(),
            Refusal::DollarQuote => "a value inside `$'…'` cannot be quoted".into(),
            Refusal::Arithmetic => "a value inside `$((…))` could run commands".into(),
            Refusal::AfterBackslash => "a value right after `\\` would lose its quoting".into(),
            Refusal::AfterDollar => "a value right after `$` would name a variable to expand".into(),
            Refusal::Delimiter => "a value cannot be a here-document's delimiter".into(),
            Refusal::Unclear(what) => format!("cannot tell where a value lands after {what}"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Refusal::Backticks => "inside backticks",
            Refusal::Parameter => "inside `${…}`",
            Refusal::DollarQuote => "inside `$'…'`",
            Refusal::Arithmetic => "inside `$((…))`",
            Refusal::AfterBackslash => "right after `\\`",
            Refusal::AfterDollar => "right after `$`",
            Refusal::Delimiter => "the delimiter",
            Refusal::Unclear(_) => "cannot be quoted here",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Refusal::Backticks => {
                "write `$(…)` instead of backticks (a bare `{{ x }}` in it is quoted for you); or pass it in `env:` and write \"$X\""
            }
            Refusal::Arithmetic => {
                "do the arithmetic in the template (`{{ inputs.n | int + 1 }}`, quoted for you); or pass it in `env:` and write \"$X\""
            }
            Refusal::AfterBackslash => {
                "remove the `\\` or put a space before the value; bare `{{ x }}` is quoted for you"
            }
            Refusal::Delimiter => "write the delimiter itself in the template, such as `<<'EOF'`",
            _ => ENV_HELP,
        }
    }

    fn explain(self) -> String {
        format!("{}: {}", self.message(), self.help())
    }
}

#[cfg(test)]
mod tests;

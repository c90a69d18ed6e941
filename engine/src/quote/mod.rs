//! Quoting a rendered value for the place it lands in: a word of a `sh`
//! command, a part of a URL. Templates render into [`Piece`]s (the text the
//! author wrote, and each value printed into it); the author's text is read
//! the way its consumer will read it (a shell, a URL parser), so that each
//! value is quoted or encoded for where it stands, whatever the author wrote
//! around it. Where no quoting can keep a value in its place, it is refused
//! with the reason and how to write the template instead.
//!

pub mod shell;
pub mod url;

pub use shell::{ShellProblem, shell_command, shell_template_problems};
pub use url::url;

/// One part of a rendered template: text the template wrote, or a value a
/// `{{ … }}` printed into it. Knowing which is which is what lets a value be
/// quoted for the place it lands in (a shell word, a URL's path) and a
/// secret's derived value be masked, whatever the author wrote around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text as the template wrote it (after its own control flow).
    Literal(String),
    /// A value printed by `{{ … }}`, as text (lists and maps as JSON).
    /// `safe` when marked `| safe` or quoted by a filter such as `quote`:
    /// the author vouches for it, and it goes in as it is.
    Value { text: String, safe: bool },
}

impl Piece {
    pub fn text(&self) -> &str {
        match self {
            Piece::Literal(text) | Piece::Value { text, .. } => text,
        }
    }
}

/// The pieces put back together, as a plain render would have written them.
pub fn join(pieces: &[Piece]) -> String {
    pieces.iter().map(Piece::text).collect()
}

/// Quotes a value as one `sh` word: as it is when it holds only characters
/// no shell reads specially, else in single quotes.
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

/// How a parameter's values are quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quote {
    /// A shell command: [`shell_command`].
    Shell,
    /// A URL: [`url()`].
    Url,
}

/// Which parameters of a step kind are shell commands and which are URLs
/// (its `shell_params` and `url_params`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quoting {
    shell: &'static [&'static str],
    url: &'static [&'static str],
}

impl Quoting {
    /// Shell commands at `shell`, URLs at `url` (JSON pointers into `with`).
    pub fn new(shell: &'static [&'static str], url: &'static [&'static str]) -> Self {
        Self { shell, url }
    }

    /// How the parameter at `pointer` (a JSON pointer into `with`) is quoted.
    pub fn at(&self, pointer: &str) -> Option<Quote> {
        if self.shell.contains(&pointer) {
            Some(Quote::Shell)
        } else if self.url.contains(&pointer) {
            Some(Quote::Url)
        } else {
            None
        }
    }
}

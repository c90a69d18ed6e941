//! The lexer: reads the author's text of a shell command as `sh` does, far
//! enough to know where a value printed at each point lands, and quotes it
//! for that place.

use super::{Place, Refusal};
use crate::quote::quote_word;
use std::collections::VecDeque;

/// What the text before a value is, as far as it matters for quoting.
#[derive(Debug)]
enum Frame {
    /// Shell code: the command line, or the inside of `$(…)`.
    Code(Code),
    Single,
    Double,
    Backticks,
    /// `${…}`; `in_double` when it stands inside `"…"`.
    Parameter {
        in_double: bool,
    },
    /// `$'…'`.
    DollarQuote,
    /// `$((…))`, with the parentheses open inside it.
    Arithmetic {
        depth: u32,
    },
    Comment,
    /// The word after `<<`.
    Delimiter(Delimiter),
    /// A here-document's body.
    HereDoc {
        quoted: bool,
    },
}

#[derive(Debug, Default)]
struct Code {
    /// Inside `$(…)`, which the `)` that balances it closes.
    substitution: bool,
    /// Parentheses open inside it.
    depth: u32,
    /// The word being read, as written (quotes included), so that `#` is
    /// known to start a comment and `case` to be a keyword.
    word: String,
    /// Whether the last character was a `(`.
    after_paren: bool,
}

#[derive(Debug, Default)]
struct Delimiter {
    strip_tabs: bool,
    text: String,
    quoted: bool,
    started: bool,
    single: bool,
    double: bool,
}

/// A here-document whose body starts at the end of the line.
#[derive(Debug, Clone)]
struct HereDoc {
    delimiter: String,
    strip_tabs: bool,
    quoted: bool,
    /// Inside `$(…)`, where bash also ends the body at a line that starts
    /// with the delimiter and a `)`.
    in_substitution: bool,
}

impl HereDoc {
    fn line<'a>(&self, line: &'a str) -> &'a str {
        if self.strip_tabs {
            line.trim_start_matches('\t')
        } else {
            line
        }
    }

    /// Whether the body ends at this line.
    fn ends_at(&self, line: &str) -> bool {
        self.line(line) == self.delimiter
    }

    /// Whether some shell might end the body at this line.
    fn may_end_at(&self, line: &str) -> bool {
        self.ends_at(line) || (self.in_substitution && self.line(line).starts_with(&self.delimiter))
    }
}

/// A here-document's body being read, line by line as the shell reads it.
#[derive(Debug)]
struct Body {
    doc: HereDoc,
    /// The frames below the body, which it leaves as they were.
    base: usize,
    line: String,
    /// Whether the line holds text of a value.
    line_has_value: bool,
    /// Whether the line's last character is a value's.
    last_from_value: bool,
}

/// A character whose meaning the next one decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    Backslash,
    Dollar,
    DollarParen,
    Less,
    LessLess,
    ArithmeticClose,
}

#[derive(Debug)]
pub(super) struct Lexer {
    frames: Vec<Frame>,
    pending: Pending,
    heredocs: VecDeque<HereDoc>,
    body: Option<Body>,
    /// Set once the text is past what can be followed for sure.
    unclear: Option<&'static str>,
    /// Whether the text ends with `$NAME`, which a value's first letters would extend.
    after_name: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self {
            frames: vec![Frame::Code(Code::default())],
            pending: Pending::None,
            heredocs: VecDeque::new(),
            body: None,
            unclear: None,
            after_name: false,
        }
    }
}

fn delimiter_line_error(doc: &HereDoc) -> String {
    let line = if doc.in_substitution {
        "a line starting with"
    } else {
        "the line"
    };
    format!(
        "a value makes {line} `{}`, which would end the here-document early: pass the value in `env:` and write \"$X\" in the here-document",
        doc.delimiter
    )
}

impl Lexer {
    /// Reads text the author wrote (or a `safe` value).
    pub(super) fn literal(&mut self, text: &str) -> Result<(), String> {
        for c in text.chars() {
            if self.body.is_some() && self.body_char(c, false)? {
                continue;
            }
            self.lex(c);
        }
        Ok(())
    }

    /// Quotes a value for where it lands, and reads past it. `next` is the
    /// character the author wrote right after it, if any.
    pub(super) fn value(&mut self, text: &str, next: Option<char>) -> Result<String, String> {
        if text.contains('\0') {
            return Err("a value holds a NUL byte, which no command can carry".into());
        }
        match self.place() {
            Place::Refused(refusal) => Err(refusal.explain()),
            place => self.insert(place, text, next),
        }
    }

    /// The end of the command.
    pub(super) fn finish(&self) -> Result<(), String> {
        match &self.body {
            Some(body) if body.line_has_value && body.doc.may_end_at(&body.line) => {
                Err(delimiter_line_error(&body.doc))
            }
            _ => Ok(()),
        }
    }

    /// Where a value printed now would land.
    pub(super) fn place(&mut self) -> Place {
        if let Some(what) = self.unclear {
            return Place::Refused(Refusal::Unclear(what));
        }
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None | Pending::Less => {}
            Pending::Backslash => return Place::Refused(Refusal::AfterBackslash),
            Pending::Dollar => return Place::Refused(Refusal::AfterDollar),
            Pending::DollarParen => self.frames.push(Frame::Code(Code {
                substitution: true,
                ..Code::default()
            })),
            Pending::LessLess => {
                self.frames.push(Frame::Delimiter(Delimiter::default()));
                return Place::Refused(Refusal::Delimiter);
            }
            Pending::ArithmeticClose => return Place::Refused(Refusal::Arithmetic),
        }
        for frame in self.frames.iter().rev() {
            match frame {
                Frame::Backticks => return Place::Refused(Refusal::Backticks),
                Frame::Parameter { .. } => return Place::Refused(Refusal::Parameter),
                Frame::DollarQuote => return Place::Refused(Refusal::DollarQuote),
                Frame::Arithmetic { .. } => return Place::Refused(Refusal::Arithmetic),
                _ => {}
            }
        }
        match self.frames.last() {
            Some(Frame::Single) => Place::Single,
            Some(Frame::Double) => Place::Double,
            Some(Frame::Comment) => Place::Comment,
            Some(Frame::Delimiter(_)) => Place::Refused(Refusal::Delimiter),
            Some(Frame::HereDoc { quoted: false }) => Place::HereDoc,
            Some(Frame::HereDoc { quoted: true }) => Place::QuotedHereDoc,
            _ => Place::Word,
        }
    }

    /// Quotes a value for `place` and reads past it.
    pub(super) fn insert(&mut self, place: Place, text: &str, next: Option<char>) -> Result<String, String> {
        let after_name = std::mem::take(&mut self.after_name);
        let extends_name = |quoted: &str| after_name && quoted.starts_with(is_name_char);
        let quoted = match place {
            Place::Word => {
                let word = quote_word(text);
                let word_start = matches!(self.frames.last(), Some(Frame::Code(code)) if code.word.is_empty());
                // Bare, it could be read as more than a word: the end of
                // `$NAME`, an assignment's name, a reserved word.
                let special =
                    word_start && (word.contains('=') || next == Some('=') || RESERVED.contains(&word.as_str()));
                if extends_name(&word) || special {
                    format!("'{}'", text.replace('\'', r"'\''"))
                } else {
                    word
                }
            }
            Place::Single => text.replace('\'', r"'\''"),
            Place::Double => {
                let escaped = escape(text, &['$', '`', '"', '\\']);
                // `"$x""value"`: the string stops the name.
                if extends_name(&escaped) {
                    format!("\"\"{escaped}")
                } else {
                    escaped
                }
            }
            Place::HereDoc => {
                let escaped = escape(text, &['$', '`', '\\']);
                if extends_name(&escaped) {
                    return Err(
                        "a value right after `$NAME` in a here-document would extend the variable's name: \
                                write `${NAME}`"
                            .into(),
                    );
                }
                escaped
            }
            Place::QuotedHereDoc => text.to_string(),
            Place::Comment => text.replace('\n', " "),
            Place::Refused(refusal) => return Err(refusal.explain()),
        };
        if self.body.is_some() {
            for c in quoted.chars() {
                self.body_char(c, true)?;
            }
        }
        if let (Place::Word, Some(Frame::Code(code))) = (place, self.frames.last_mut()) {
            code.word.push_str(&quoted);
        }
        Ok(quoted)
    }

    /// Follows a here-document's body through a character, of the author's
    /// text or of a value (`from_value`); true when it ended the body.
    fn body_char(&mut self, c: char, from_value: bool) -> Result<bool, String> {
        let nested = self.body.as_ref().is_some_and(|body| self.frames.len() > body.base + 1);
        let Some(body) = &mut self.body else { return Ok(false) };
        if c != '\n' {
            body.line.push(c);
            body.line_has_value |= from_value;
            body.last_from_value = from_value;
            return Ok(false);
        }
        let backslashes = body.line.chars().rev().take_while(|&c| c == '\\').count();
        if !body.doc.quoted && backslashes % 2 == 1 {
            // A `\` at a line's end joins the next line to it, in bash even
            // inside a string in `$(…)`, in dash not: a value must not decide.
            if from_value || body.last_from_value {
                return Err(Refusal::Unclear("a line that a value ends with `\\` in a here-document").explain());
            }
            if nested {
                self.unclear = Some("a `\\` at the end of a line inside `$(…)` in a here-document");
            }
            body.line.pop();
            return Ok(false);
        }
        if !body.doc.ends_at(&body.line) {
            if body.doc.may_end_at(&body.line) {
                if from_value || body.line_has_value {
                    return Err(delimiter_line_error(&body.doc));
                }
                self.unclear = Some("a line in a here-document inside `$(…)` that starts with its delimiter");
            }
            body.line.clear();
            body.line_has_value = false;
            body.last_from_value = false;
            return Ok(false);
        }
        if from_value || body.line_has_value {
            return Err(delimiter_line_error(&body.doc));
        }
        if nested {
            // bash ends the body here; dash reads on to the end of the `$(…)`.
            self.unclear = Some("a here-document that ends inside `$(…)`");
        }
        let base = body.base;
        self.frames.truncate(base);
        self.body = None;
        if let Some(next) = self.heredocs.pop_front() {
            self.start_body(next);
        }
        Ok(true)
    }

    fn start_body(&mut self, doc: HereDoc) {
        let base = self.frames.len();
        self.frames.push(Frame::HereDoc { quoted: doc.quoted });
        self.body = Some(Body {
            doc,
            base,
            line: String::new(),
            line_has_value: false,
            last_from_value: false,
        });
    }

    fn push_code(&mut self) {
        self.frames.push(Frame::Code(Code {
            substitution: true,
            ..Code::default()
        }));
    }

    fn in_double(&self) -> bool {
        matches!(
            self.frames.last(),
            Some(Frame::Double | Frame::Parameter { in_double: true })
        )
    }

    /// Reads one character of the author's text.
    fn lex(&mut self, c: char) {
        let after_name = std::mem::take(&mut self.after_name);
        if after_name && is_name_char(c) {
            self.after_name = true;
        }
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => {}
            Pending::Backslash => {
                match self.frames.last_mut() {
                    Some(Frame::Code(code)) if c != '\n' => {
                        code.word.push('\\');
                        code.word.push(c);
                    }
                    Some(Frame::Delimiter(delimiter)) => {
                        delimiter.text.push(c);
                        delimiter.quoted = true;
                        delimiter.started = true;
                    }
                    // bash reads `\'` in `$'…'` as a quote, dash as the end.
                    Some(Frame::DollarQuote) if c == '\'' => self.unclear = Some("`\\'` inside `$'…'`"),
                    _ => {}
                }
                return;
            }
            Pending::Dollar => match c {
                '(' => {
                    self.pending = Pending::DollarParen;
                    return;
                }
                '{' => {
                    let in_double = self.in_double();
                    self.frames.push(Frame::Parameter { in_double });
                    return;
                }
                '\'' if matches!(self.frames.last(), Some(Frame::Code(_))) => {
                    self.frames.push(Frame::DollarQuote);
                    return;
                }
                _ => self.after_name = c.is_ascii_alphabetic() || c == '_',
            },
            Pending::DollarParen => {
                if c == '(' {
                    self.frames.push(Frame::Arithmetic { depth: 0 });
                    return;
                }
                self.push_code();
            }
            Pending::Less => {
                if c == '<' {
                    self.pending = Pending::LessLess;
                    return;
                }
            }
            Pending::LessLess => match c {
                '-' => {
                    self.frames.push(Frame::Delimiter(Delimiter {
                        strip_tabs: true,
                        ..Delimiter::default()
                    }));
                    return;
                }
                // `<<<`: a here-string, an ordinary word follows.
                '<' => return,
                _ => self.frames.push(Frame::Delimiter(Delimiter::default())),
            },
            Pending::ArithmeticClose => {
                if c == ')' {
                    self.frames.pop();
                } else {
                    self.unclear = Some("`$((` closed by a single `)`");
                }
                return;
            }
        }
        let Some(frame) = self.frames.last_mut() else { return };
        match frame {
            Frame::Code(_) => self.lex_code(c),
            Frame::Single => {
                if c == '\'' {
                    self.frames.pop();
                }
            }
            Frame::Double => match c {
                '"' => {
                    self.frames.pop();
                }
                '\\' => self.pending = Pending::Backslash,
                '$' => self.pending = Pending::Dollar,
                '`' => self.frames.push(Frame::Backticks),
                _ => {}
            },
            Frame::Backticks => match c {
                '\\' => self.pending = Pending::Backslash,
                '`' => {
                    self.frames.pop();
                }
                _ => {}
            },
            Frame::Parameter { in_double } => {
                let in_double = *in_double;
                match c {
                    '}' => {
                        self.frames.pop();
                    }
                    '\\' => self.pending = Pending::Backslash,
                    '$' => self.pending = Pending::Dollar,
                    '`' => self.frames.push(Frame::Backticks),
                    '\'' | '"' if in_double => self.unclear = Some("quotes inside `${…}` inside \"…\""),
                    '\'' => self.frames.push(Frame::Single),
                    '"' => self.frames.push(Frame::Double),
                    '{' => self.unclear = Some("a `{` inside `${…}`"),
                    _ => {}
                }
            }
            Frame::DollarQuote => match c {
                '\\' => self.pending = Pending::Backslash,
                '\'' => {
                    self.frames.pop();
                }
                _ => {}
            },
            Frame::Arithmetic { depth } => match c {
                '(' => *depth += 1,
                ')' if *depth > 0 => *depth -= 1,
                ')' => self.pending = Pending::ArithmeticClose,
                '\\' => self.pending = Pending::Backslash,
                '$' => self.pending = Pending::Dollar,
                '`' => self.frames.push(Frame::Backticks),
                _ => {}
            },
            Frame::Comment => {
                if c == '\n' {
                    self.frames.pop();
                    self.lex(c);
                }
            }
            Frame::Delimiter(_) => self.lex_delimiter(c),
            Frame::HereDoc { quoted: true } => {}
            Frame::HereDoc { quoted: false } => match c {
                '\\' => self.pending = Pending::Backslash,
                '$' => self.pending = Pending::Dollar,
                '`' => self.frames.push(Frame::Backticks),
                _ => {}
            },
        }
    }

    fn lex_code(&mut self, c: char) {
        let Some(Frame::Code(code)) = self.frames.last_mut() else {
            return;
        };
        if std::mem::replace(&mut code.after_paren, c == '(') && c == '(' {
            // bash reads `((` as arithmetic, where `<<` is a shift; sh as two subshells.
            self.unclear = Some("`((`");
        }
        let operator = matches!(c, ';' | '&' | '|' | '<' | '>' | '(' | ')');
        if matches!(c, ' ' | '\t' | '\n') || operator {
            let word = std::mem::take(&mut code.word);
            if code.substitution && word == "case" {
                // Its patterns end with a `)` that does not close the `$(`.
                self.unclear = Some("a `case` inside `$(…)`");
            }
        }
        match c {
            '\n' => {
                if let Some(doc) = self.heredocs.pop_front() {
                    self.start_body(doc);
                }
            }
            '(' => code.depth += 1,
            ')' if code.depth > 0 => code.depth -= 1,
            ')' if code.substitution => {
                self.frames.pop();
            }
            '<' => self.pending = Pending::Less,
            '\'' => {
                code.word.push(c);
                self.frames.push(Frame::Single);
            }
            '"' => {
                code.word.push(c);
                self.frames.push(Frame::Double);
            }
            '`' => {
                code.word.push(c);
                self.frames.push(Frame::Backticks);
            }
            '\\' => self.pending = Pending::Backslash,
            '$' => {
                code.word.push(c);
                self.pending = Pending::Dollar;
            }
            '#' if code.word.is_empty() => self.frames.push(Frame::Comment),
            _ if operator || matches!(c, ' ' | '\t') => {}
            _ => code.word.push(c),
        }
    }

    fn lex_delimiter(&mut self, c: char) {
        let Some(Frame::Delimiter(delimiter)) = self.frames.last_mut() else {
            return;
        };
        if delimiter.single {
            match c {
                '\'' => delimiter.single = false,
                _ => delimiter.text.push(c),
            }
            return;
        }
        if delimiter.double {
            match c {
                '"' => delimiter.double = false,
                '\\' => self.pending = Pending::Backslash,
                _ => delimiter.text.push(c),
            }
            return;
        }
        match c {
            ' ' | '\t' if !delimiter.started => {}
            '\'' | '"' => {
                delimiter.single = c == '\'';
                delimiter.double = c == '"';
                delimiter.quoted = true;
                delimiter.started = true;
            }
            '\\' => self.pending = Pending::Backslash,
            ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                let Some(Frame::Delimiter(delimiter)) = self.frames.pop() else {
                    return;
                };
                if self.body.is_some() {
                    self.unclear = Some("a here-document inside a here-document");
                }
                let in_substitution = self
                    .frames
                    .iter()
                    .any(|frame| matches!(frame, Frame::Code(Code { substitution: true, .. })));
                self.heredocs.push_back(HereDoc {
                    delimiter: delimiter.text,
                    strip_tabs: delimiter.strip_tabs,
                    quoted: delimiter.quoted,
                    in_substitution,
                });
                self.lex(c);
            }
            _ => {
                delimiter.text.push(c);
                delimiter.started = true;
            }
        }
    }
}

/// Words that are shell syntax when they start a command.
const RESERVED: &[&str] = &[
    "case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in", "select", "then", "time",
    "until", "while", "coproc",
];

/// Whether a character continues a variable's name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A backslash before each of `special`.
fn escape(text: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

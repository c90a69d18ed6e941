//! Stage 4, plan: a step's guard decided as far as it can be before the run.
//!
//! A `when` expression is split on its `or`, `and`, `not` and parentheses.
//! Each remaining part is evaluated when every name it reads is known, and
//! the parts combine in three-valued (Kleene) logic: `false and <unknown>`
//! is false, `true or <unknown>` is true, and anything else that holds an
//! unknown part waits for the run. A comparison on an unknown value stays
//! unknown. The plan shows the result; a run that cannot ask (no terminal,
//! no `--yes`) uses it to leave out the steps that can never ask.
//!
//! The split is made on minijinja's tokens rather than on its syntax tree:
//! the tree's span of a comparison starts one token early, and each part
//! must be evaluated, and shown, as the text its author wrote.

use super::{Planner, runtime_only, short_value};
use crate::template;
use crate::validate::checked::Text;
use minijinja::Value;
use minijinja::machinery::{Token, tokenize};
use serde::Serialize;
use std::ops::Range;

/// Whether a step will run, as far as the plan can tell.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Guard {
    /// No `when`: the step runs once its needs have finished.
    Always,
    KnownTrue(KnownGuard),
    KnownFalse(KnownGuard),
    /// Decided when the run gets there, on these values.
    AtRunTime {
        expression: String,
        depends_on: Vec<String>,
    },
}

/// A guard whose value is known before the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KnownGuard {
    pub expression: String,
    /// The known values it read, as `NAME is VALUE`.
    pub because: String,
    /// The part that decided it, when the guard also reads values known
    /// only at run time (`false and <unknown>`, `true or <unknown>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The values known only at run time that cannot change it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub regardless_of: Vec<String>,
}

impl Guard {
    pub fn is_known_false(&self) -> bool {
        matches!(self, Guard::KnownFalse(_))
    }
}

/// What can be told of a guard before the run.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The guard's value is known now.
    Known {
        value: bool,
        /// The part that decided it, when other parts are not known yet.
        decided_by: Option<String>,
        /// The known values the deciding part reads, as `NAME is VALUE`.
        because: Vec<String>,
        /// Names not known yet, whose values cannot change the outcome.
        regardless_of: Vec<String>,
    },
    /// Decided when the run gets there, on these names (or on why the
    /// guard cannot be evaluated now).
    Unknown { waits_on: Vec<String> },
}

/// Decides `expression` with the values in `context`, reading a name only
/// when `known(name)` says its value there is the real one.
pub fn decide(expression: &str, context: &Value, known: &dyn Fn(&str) -> bool) -> Decision {
    let whole = 0..expression.len();
    let judge = Judge {
        source: expression,
        context,
        known,
    };
    // A part that does not stand as an expression of its own means the
    // split went wrong: the guard is then judged whole, as minijinja reads it.
    let truth = skeleton(expression)
        .and_then(|node| judge.node(&node))
        .or_else(|| judge.node(&Node::Part(whole.clone())))
        .unwrap_or_else(|| Truth::Unknown {
            waits_on: vec!["(cannot evaluate now: the expression does not parse)".into()],
        });
    match truth {
        Truth::Known { value, by, complete } => {
            let part = &expression[by.start..by.end];
            let (read, _) = judge.names(part).unwrap_or_default();
            let because = read
                .iter()
                .map(|path| {
                    let value = template::eval(path, context).map_or_else(|_| "?".to_string(), |v| short_value(&v));
                    format!("{path} is {value}")
                })
                .collect();
            let regardless_of = if complete {
                Vec::new()
            } else {
                let (_, unknown_anywhere) = judge.names(expression).unwrap_or_default();
                unknown_anywhere
            };
            Decision::Known {
                value,
                decided_by: (!complete).then(|| part.trim().to_string()),
                because,
                regardless_of,
            }
        }
        Truth::Unknown { waits_on } => Decision::Unknown { waits_on },
        Truth::Broken { reason } => Decision::Unknown {
            waits_on: vec![Truth::broken_words(&reason)],
        },
    }
}

impl Planner<'_> {
    /// The plan's view of a guard: what is assumed or known now is known,
    /// step results and the run's identity wait for the run.
    pub(super) fn guard(&self, when: &Text) -> Guard {
        let known = |path: &str| !runtime_only(path, self.assumed);
        let expression = when.text.clone();
        match decide(&when.text, self.ctx, &known) {
            Decision::Known {
                value,
                decided_by,
                because,
                regardless_of,
            } => {
                let known = KnownGuard {
                    expression,
                    because: because.join(", "),
                    decided_by,
                    regardless_of,
                };
                if value {
                    Guard::KnownTrue(known)
                } else {
                    Guard::KnownFalse(known)
                }
            }
            Decision::Unknown { waits_on } => Guard::AtRunTime {
                expression,
                depends_on: waits_on,
            },
        }
    }
}

/// The logic of a guard over its parts, each a byte range of the text.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// Evaluated as it is: a comparison, a name, a filter, a call...
    Part(Range<usize>),
    Not(Box<Node>, Range<usize>),
    And(Box<Node>, Box<Node>, Range<usize>),
    Or(Box<Node>, Box<Node>, Range<usize>),
}

/// A token as far as the split cares.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mark {
    Open {
        paren: bool,
    },
    Close,
    And,
    Or,
    Not,
    /// `if` or `else`: a conditional expression binds looser than `or`.
    Conditional,
    Comma,
    Other,
}

/// A token's mark and its place in the text.
type Marked = (Mark, Range<usize>);

/// Splits an expression into its logic; `None` when it does not tokenize.
fn skeleton(text: &str) -> Option<Node> {
    let mut marks: Vec<Marked> = Vec::new();
    let mut after_dot = false;
    for token in tokenize(text, true, Default::default()) {
        let (token, span) = token.ok()?;
        let keyword = |mark| if after_dot { Mark::Other } else { mark };
        let mark = match token {
            Token::ParenOpen => Mark::Open { paren: true },
            Token::BracketOpen | Token::BraceOpen => Mark::Open { paren: false },
            Token::ParenClose | Token::BracketClose | Token::BraceClose => Mark::Close,
            Token::Comma => Mark::Comma,
            Token::Ident("and") => keyword(Mark::And),
            Token::Ident("or") => keyword(Mark::Or),
            Token::Ident("not") => keyword(Mark::Not),
            Token::Ident("if" | "else") => keyword(Mark::Conditional),
            _ => Mark::Other,
        };
        after_dot = matches!(token, Token::Dot);
        marks.push((mark, span.start_offset as usize..span.end_offset as usize));
    }
    either(&marks)
}

fn range(marks: &[Marked]) -> Range<usize> {
    marks[0].1.start..marks[marks.len() - 1].1.end
}

/// Splits `marks` at the `separator`s outside any brackets.
fn split(marks: &[Marked], separator: Mark) -> Option<Vec<&[Marked]>> {
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, (mark, _)) in marks.iter().enumerate() {
        match mark {
            Mark::Open { .. } => depth += 1,
            Mark::Close => depth = depth.checked_sub(1)?,
            m if *m == separator && depth == 0 => {
                pieces.push(&marks[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&marks[start..]);
    pieces.iter().all(|p| !p.is_empty()).then_some(pieces)
}

/// `a or b or ...`, the loosest logic (a conditional is looser: kept whole).
fn either(marks: &[Marked]) -> Option<Node> {
    if marks.is_empty() {
        return None;
    }
    let conditional = split(marks, Mark::Conditional)?.len() > 1;
    if conditional {
        return Some(Node::Part(range(marks)));
    }
    fold(split(marks, Mark::Or)?, both, Node::Or)
}

/// `a and b and ...`.
fn both(marks: &[Marked]) -> Option<Node> {
    fold(split(marks, Mark::And)?, negation, Node::And)
}

fn fold(
    pieces: Vec<&[Marked]>,
    each: fn(&[Marked]) -> Option<Node>,
    join: fn(Box<Node>, Box<Node>, Range<usize>) -> Node,
) -> Option<Node> {
    let start = pieces[0][0].1.start;
    let mut pieces = pieces.into_iter();
    let mut node = each(pieces.next()?)?;
    for piece in pieces {
        let end = piece[piece.len() - 1].1.end;
        node = join(Box::new(node), Box::new(each(piece)?), start..end);
    }
    Some(node)
}

/// `not a`; a `not` inside a part (`a not in b`, `a is not none`) stays there.
fn negation(marks: &[Marked]) -> Option<Node> {
    match marks {
        [(Mark::Not, _), rest @ ..] if !rest.is_empty() => Some(Node::Not(Box::new(negation(rest)?), range(marks))),
        _ => group(marks),
    }
}

/// `( ... )` around the whole of `marks` is looked into; anything else is a part.
fn group(marks: &[Marked]) -> Option<Node> {
    if let [(Mark::Open { paren: true }, _), inner @ .., (Mark::Close, _)] = marks
        && !inner.is_empty()
        && closes_last(marks)
        && split(inner, Mark::Comma)?.len() == 1
    {
        return either(inner);
    }
    Some(Node::Part(range(marks)))
}

/// Whether the bracket that opens `marks` is closed by its last token.
fn closes_last(marks: &[Marked]) -> bool {
    let mut depth = 0usize;
    for (i, (mark, _)) in marks.iter().enumerate() {
        match mark {
            Mark::Open { .. } => depth += 1,
            Mark::Close => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i == marks.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// A guard's value, as far as it is known.
#[derive(Debug, Clone, PartialEq)]
enum Truth {
    /// `by` is the smallest part whose value is the outcome; `complete`
    /// when nothing under this node was unknown.
    Known {
        value: bool,
        by: Range<usize>,
        complete: bool,
    },
    Unknown {
        waits_on: Vec<String>,
    },
    /// Everything it reads is known, and evaluating it fails: at run time
    /// too, unless the guard is decided before this part is reached.
    Broken {
        reason: String,
    },
}

impl Truth {
    fn broken_words(reason: &str) -> String {
        format!("(cannot evaluate now: {reason})")
    }
}

struct Judge<'a> {
    source: &'a str,
    context: &'a Value,
    known: &'a dyn Fn(&str) -> bool,
}

impl Judge<'_> {
    /// The names a part reads, known and not known; `None` when it is not an expression.
    fn names(&self, part: &str) -> Option<(Vec<String>, Vec<String>)> {
        let names = template::expression_references(part).ok()?;
        Some(names.into_iter().partition(|name| (self.known)(name)))
    }

    /// `None` when a part is not an expression of its own.
    fn node(&self, node: &Node) -> Option<Truth> {
        Some(match node {
            Node::Part(range) => {
                let text = &self.source[range.clone()];
                let (_, unknown) = self.names(text)?;
                if !unknown.is_empty() {
                    return Some(Truth::Unknown { waits_on: unknown });
                }
                match template::eval(text, self.context) {
                    Ok(value) => Truth::Known {
                        value: value.is_true(),
                        by: range.clone(),
                        complete: true,
                    },
                    Err(e) => Truth::Broken {
                        reason: template::reason(&e),
                    },
                }
            }
            Node::Not(inner, range) => match self.node(inner)? {
                Truth::Known { value, complete, .. } => Truth::Known {
                    value: !value,
                    by: range.clone(),
                    complete,
                },
                other => other,
            },
            Node::And(left, right, range) => combine(self.node(left)?, self.node(right)?, range, false),
            Node::Or(left, right, range) => combine(self.node(left)?, self.node(right)?, range, true),
        })
    }
}

/// `and` (whose `decisive` value is false) or `or` (true) in Kleene logic.
/// A part in error is reached at run time unless its left decides first.
fn combine(left: Truth, right: Truth, range: &Range<usize>, decisive: bool) -> Truth {
    use Truth::{Broken, Known, Unknown};
    match (left, right) {
        (Known { value, by, complete }, Broken { .. }) if value == decisive => Known { value, by, complete },
        (broken @ Broken { .. }, _) | (Known { .. }, broken @ Broken { .. }) => broken,
        (Unknown { mut waits_on }, Broken { reason }) => {
            waits_on.push(Truth::broken_words(&reason));
            Unknown { waits_on }
        }
        (
            Known {
                value: a,
                complete: true,
                ..
            },
            Known {
                value: b,
                complete: true,
                ..
            },
        ) => Known {
            value: if decisive { a || b } else { a && b },
            by: range.clone(),
            complete: true,
        },
        (Known { value, by, .. }, _) | (_, Known { value, by, .. }) if value == decisive => Known {
            value,
            by,
            complete: false,
        },
        // Neither side decides: each is the other's identity.
        (Known { .. }, Known { .. }) => Known {
            value: !decisive,
            by: range.clone(),
            complete: false,
        },
        (Known { .. }, unknown @ Unknown { .. }) | (unknown @ Unknown { .. }, Known { .. }) => unknown,
        (Unknown { waits_on: mut a }, Unknown { waits_on: b }) => {
            for name in b {
                if !a.contains(&name) {
                    a.push(name);
                }
            }
            Unknown { waits_on: a }
        }
    }
}

#[cfg(test)]
mod tests;

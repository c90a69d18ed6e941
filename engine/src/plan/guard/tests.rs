use super::*;
use minijinja::machinery::ast::{BinOpKind, Expr, UnaryOpKind};
use minijinja::machinery::parse_expr;
use std::collections::BTreeMap;

/// As in a plan: what steps and the run give waits for the run; the rest is known.
fn context() -> Value {
    let inputs = serde_json::json!({
        "on": true,
        "off": false,
        "n": 3,
        "env": "staging",
        "list": [1, 2],
    });
    Value::from(BTreeMap::from([("inputs", super::super::to_value(&inputs))]))
}

fn known(name: &str) -> bool {
    !name.starts_with("steps") && !name.starts_with("run.")
}

/// A decision in a line: `true`, `false` when nothing was unknown;
/// `false by PART` when a part decided; `waits on A, B` otherwise.
fn outcome(expression: &str) -> String {
    match decide(expression, &context(), &known) {
        Decision::Known {
            value,
            decided_by: None,
            regardless_of,
            ..
        } => {
            assert!(regardless_of.is_empty(), "{expression}");
            value.to_string()
        }
        Decision::Known {
            value,
            decided_by: Some(part),
            regardless_of,
            ..
        } => {
            assert!(
                !regardless_of.is_empty(),
                "{expression}: decided by a part, but nothing was unknown"
            );
            format!("{value} by {part}")
        }
        Decision::Unknown { waits_on } => format!("waits on {}", waits_on.join(", ")),
    }
}

/// (expression, what the plan can tell of it before the run).
const TABLE: &[(&str, &str)] = &[
    // Known on both sides: decided, as minijinja would.
    ("inputs.n > 1 and not inputs.off", "true"),
    ("inputs.off or inputs.n < 2", "false"),
    ("false", "false"),
    // `false and <unknown>` and `true or <unknown>`, on either side.
    ("inputs.off and steps.a.outputs.ok", "false by inputs.off"),
    ("steps.a.outputs.ok and inputs.off", "false by inputs.off"),
    ("inputs.on or steps.a.outputs.ok", "true by inputs.on"),
    ("steps.a.outputs.ok or inputs.on", "true by inputs.on"),
    ("false and steps.a.outputs.ok", "false by false"),
    ("true or steps.a.outputs.ok", "true by true"),
    // The other way round, the known part is the identity: it waits.
    ("inputs.on and steps.a.outputs.ok", "waits on steps.a.outputs.ok"),
    ("inputs.off or steps.a.outputs.ok", "waits on steps.a.outputs.ok"),
    ("not steps.a.outputs.ok", "waits on steps.a.outputs.ok"),
    (
        "not not inputs.on and steps.a.outputs.ok",
        "waits on steps.a.outputs.ok",
    ),
    // `not` and parentheses.
    ("not inputs.on and steps.a.outputs.ok", "false by not inputs.on"),
    (
        "not (inputs.off and steps.a.outputs.ok)",
        "true by not (inputs.off and steps.a.outputs.ok)",
    ),
    (
        "(inputs.off or inputs.n < 2) and steps.a.outputs.ok",
        "false by inputs.off or inputs.n < 2",
    ),
    (
        "inputs.on and (true or steps.a.outputs.ok)",
        "true by inputs.on and (true or steps.a.outputs.ok)",
    ),
    ("((inputs.off)) and steps.a.outputs.ok", "false by inputs.off"),
    // Precedence: `and` binds tighter than `or`.
    ("inputs.off and steps.a.outputs.ok or inputs.on", "true by inputs.on"),
    (
        "inputs.off and steps.a.outputs.ok or steps.b.outputs.ok",
        "waits on steps.b.outputs.ok",
    ),
    (
        "inputs.on or steps.a.outputs.ok and steps.b.outputs.ok",
        "true by inputs.on",
    ),
    // Comparisons on unknown values stay unknown; on known ones they decide.
    (
        "inputs.env == 'production' and steps.a.status == 'failed'",
        "false by inputs.env == 'production'",
    ),
    ("steps.a.status == 'failed' or inputs.n > 2", "true by inputs.n > 2"),
    (
        "steps.a.status == 'failed' or steps.b.status == 'failed'",
        "waits on steps.a.status, steps.b.status",
    ),
    ("steps.a.outputs.n > 3", "waits on steps.a.outputs.n"),
    (
        "steps.a.outputs.n > inputs.n and inputs.on",
        "waits on steps.a.outputs.n",
    ),
    // A `not` inside a part stays in it.
    (
        "inputs.env not in ['staging'] and steps.a.outputs.ok",
        "false by inputs.env not in ['staging']",
    ),
    (
        "inputs.env is not none or steps.a.outputs.ok",
        "true by inputs.env is not none",
    ),
    (
        "inputs.env is not none and not steps.a.outputs.ok",
        "waits on steps.a.outputs.ok",
    ),
    // Words inside strings, brackets and calls are not logic.
    (
        "'x and y' == inputs.env or steps.a.outputs.ok",
        "waits on steps.a.outputs.ok",
    ),
    (
        "inputs.list | length > 5 and steps.a.outputs.ok",
        "false by inputs.list | length > 5",
    ),
    (
        "range(3) | length == 3 or steps.a.outputs.ok",
        "true by range(3) | length == 3",
    ),
    (
        "[inputs.off and steps.a.outputs.ok] | first",
        "waits on steps.a.outputs.ok",
    ),
    (
        "(inputs.off, steps.a.outputs.ok) | first",
        "waits on steps.a.outputs.ok",
    ),
    (
        "{'k': inputs.off or steps.a.outputs.ok}.k",
        "waits on steps.a.outputs.ok",
    ),
    // A conditional binds looser than `or`: judged whole.
    (
        "steps.a.outputs.ok if inputs.on else false",
        "waits on steps.a.outputs.ok",
    ),
    (
        "(steps.a.outputs.ok if inputs.on else false) and inputs.off",
        "false by inputs.off",
    ),
    // A part that cannot be evaluated now waits, saying why.
    (
        "inputs.nothing > 1 or steps.a.outputs.ok",
        "waits on (cannot evaluate now: `inputs.nothing` is undefined)",
    ),
    // At run time the left is evaluated first: its error is the guard's,
    // unless it is decided before the part in error is reached.
    (
        "inputs.nothing > 1 and inputs.off",
        "waits on (cannot evaluate now: `inputs.nothing` is undefined)",
    ),
    ("inputs.off and inputs.nothing > 1", "false"),
    (
        "steps.a.outputs.ok and inputs.nothing > 1",
        "waits on steps.a.outputs.ok, (cannot evaluate now: `inputs.nothing` is undefined)",
    ),
    (
        "steps.a.outputs.ok or inputs.on or inputs.nothing > 1",
        "true by inputs.on",
    ),
    // Names that are all of `steps` are never known.
    ("steps | length > 0 and inputs.off", "false by inputs.off"),
];

#[test]
fn guards_are_decided_as_far_as_they_can_be() {
    let mismatches: Vec<String> = TABLE
        .iter()
        .filter_map(|(expression, expected)| {
            let got = outcome(expression);
            (got != *expected).then(|| format!("{expression}\n  expected: {expected}\n  got:      {got}"))
        })
        .collect();
    assert!(mismatches.is_empty(), "\n{}", mismatches.join("\n"));
}

#[test]
fn a_guard_with_nothing_unknown_decides_as_minijinja_does() {
    for (expression, _) in TABLE {
        let (_, unknown) = Judge {
            source: expression,
            context: &context(),
            known: &known,
        }
        .names(expression)
        .unwrap();
        if !unknown.is_empty() {
            continue;
        }
        match (
            decide(expression, &context(), &known),
            template::eval(expression, &context()),
        ) {
            (Decision::Known { value, .. }, Ok(v)) => assert_eq!(value, v.is_true(), "{expression}"),
            (Decision::Unknown { .. }, Err(_)) => {}
            (decision, evaluated) => panic!("{expression}: {decision:?} but minijinja says {evaluated:?}"),
        }
    }
}

/// The logic minijinja's parser sees: `and`, `or`, `not` over parts.
fn parsed_shape(expr: &Expr<'_>) -> String {
    match expr {
        Expr::BinOp(op) if matches!(op.op, BinOpKind::ScAnd) => {
            format!("and({}, {})", parsed_shape(&op.left), parsed_shape(&op.right))
        }
        Expr::BinOp(op) if matches!(op.op, BinOpKind::ScOr) => {
            format!("or({}, {})", parsed_shape(&op.left), parsed_shape(&op.right))
        }
        // `a not in b` and `a is not none` are a `not` around the whole
        // (of the same span) in the tree, and one part in the text.
        Expr::UnaryOp(op) if matches!(op.op, UnaryOpKind::Not) && op.expr.span() != op.span() => {
            format!("not({})", parsed_shape(&op.expr))
        }
        _ => "_".into(),
    }
}

fn split_shape(node: &Node) -> String {
    match node {
        Node::Part(_) => "_".into(),
        Node::Not(inner, _) => format!("not({})", split_shape(inner)),
        Node::And(l, r, _) => format!("and({}, {})", split_shape(l), split_shape(r)),
        Node::Or(l, r, _) => format!("or({}, {})", split_shape(l), split_shape(r)),
    }
}

#[test]
fn the_split_reads_the_logic_as_minijinja_parses_it() {
    let more = [
        "a or b or c and d",
        "not a or not b and not (c or d)",
        "a and (b or c) and not d",
        "x.and or y",
        "f(a and b) or c",
        "a if b else c or d",
        "not (a, b) | first",
        "a not in b or c is not none",
        "- a and b",
    ];
    for expression in TABLE.iter().map(|(e, _)| *e).chain(more) {
        let parsed = parsed_shape(&parse_expr(expression).unwrap());
        let split = split_shape(&skeleton(expression).unwrap());
        assert_eq!(split, parsed, "{expression}");
    }
}

#[test]
fn each_part_is_the_text_as_written() {
    let text = "not ( inputs.off and steps.a.outputs.ok ) or inputs.env == 'x and y'";
    let parts: Vec<&str> = {
        fn collect<'t>(node: &Node, text: &'t str, out: &mut Vec<&'t str>) {
            match node {
                Node::Part(r) => out.push(&text[r.clone()]),
                Node::Not(inner, _) => collect(inner, text, out),
                Node::And(l, r, _) | Node::Or(l, r, _) => {
                    collect(l, text, out);
                    collect(r, text, out);
                }
            }
        }
        let mut out = Vec::new();
        collect(&skeleton(text).unwrap(), text, &mut out);
        out
    };
    assert_eq!(parts, ["inputs.off", "steps.a.outputs.ok", "inputs.env == 'x and y'"]);
}

#[test]
fn a_decision_says_what_it_read_and_what_it_did_not_need() {
    let decision = decide(
        "inputs.env == 'production' and steps.a.status == 'failed' and steps.b.outputs.ok",
        &context(),
        &known,
    );
    assert_eq!(
        decision,
        Decision::Known {
            value: false,
            decided_by: Some("inputs.env == 'production'".into()),
            because: vec!["inputs.env is \"staging\"".into()],
            regardless_of: vec!["steps.a.status".into(), "steps.b.outputs.ok".into()],
        }
    );
}

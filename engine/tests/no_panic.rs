//! Whatever a runbook file holds, the pipeline answers with a plan or with
//! diagnostics; it never panics. Three kinds of input: arbitrary bytes,
//! random but well-formed runbooks (unknown ids, cycles, unknown kinds,
//! broken templates), and random edits of a real runbook.
//!
//! Every input goes through load, plan, every plan renderer and the
//! diagnostic renderer, and every label of every diagnostic must lie inside
//! the source text.
//!
//! The random inputs are the same on every run. To look further:
//! `PROPTEST_CASES=5000 PROPTEST_RNG_SEED=$RANDOM cargo test -p runbook-engine --test no_panic`.
//! A failure found that way belongs below as a plain `#[test]`.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::RngSeed;
use runbook_engine::diagnostic::{self, RenderOptions};
use runbook_engine::plan::{self, PlanRequest};
use runbook_engine::{Diagnostic, Loaded, Registry, SourceFile};
use serde_json::{Value as Json, json};
use std::fmt::Write;
use std::sync::LazyLock;

/// The built-in kinds, registered once: their schemas compile on first use.
static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut registry = Registry::new();
    stdlib_steps::register(&mut registry);
    registry
});

/// `cases` inputs from a fixed seed, unless `PROPTEST_CASES` or
/// `PROPTEST_RNG_SEED` say otherwise. Failures are shrunk and reported, not saved.
fn config(cases: u32) -> ProptestConfig {
    let from_env = ProptestConfig::default();
    let set = |name: &str| std::env::var_os(name).is_some();
    ProptestConfig {
        cases: if set("PROPTEST_CASES") { from_env.cases } else { cases },
        rng_seed: if set("PROPTEST_RNG_SEED") {
            from_env.rng_seed
        } else {
            RngSeed::Fixed(0x5eed_2026)
        },
        failure_persistence: None,
        ..from_env
    }
}

/// What the planner is told besides the runbook.
#[derive(Debug, Clone, Default)]
struct Request {
    inputs: Vec<(String, String)>,
    assume: Vec<(String, String)>,
}

/// Checks that every label of `diagnostics` lies within the source, and draws them.
fn render_diagnostics(source: &SourceFile, diagnostics: &[Diagnostic]) -> Result<(), TestCaseError> {
    for d in diagnostics {
        for label in &d.labels {
            let end = label.span.offset.checked_add(label.span.len);
            prop_assert!(
                end.is_some_and(|end| end <= source.text.len()),
                "label {:?} of `{}` ({}) ends past the source ({} bytes)",
                label.span,
                d.code,
                d.message,
                source.text.len()
            );
        }
    }
    let narrow = RenderOptions {
        color: true,
        unicode: false,
        width: 24,
    };
    for options in [RenderOptions::default(), narrow] {
        let text = diagnostic::render(source, diagnostics, options);
        prop_assert!(diagnostics.is_empty() || !text.is_empty());
    }
    for d in diagnostics {
        let _ = source.line_col(d.labels.first().map_or(0, |l| l.span.offset));
    }
    Ok(())
}

/// Plans a loaded runbook and draws the plan in every format.
fn plan_and_render(
    source: &SourceFile,
    loaded: &Loaded,
    registry: &Registry,
    request: &Request,
) -> Result<(), TestCaseError> {
    render_diagnostics(source, &loaded.warnings)?;
    let env = |name: &str| name.ends_with("TOKEN").then(|| format!("value of {name}"));
    let file_exists = |path: &str| path.ends_with(".key");
    let requests = [
        PlanRequest::default(),
        PlanRequest {
            inputs: request.inputs.clone(),
            assume: request.assume.clone(),
            env: Some(&env),
            file_exists: Some(&file_exists),
        },
    ];
    for request in &requests {
        match plan::plan(&loaded.compiled, registry, request) {
            Ok((plan, warnings)) => {
                render_diagnostics(source, &warnings)?;
                let _ = plan::render_text(&plan, false);
                let _ = plan::render_text(&plan, true);
                let _ = plan::render_mermaid(&plan);
                let _ = plan::render_dot(&plan);
                let json = serde_json::to_string(&plan);
                prop_assert!(json.is_ok(), "the plan does not serialize: {:?}", json.err());
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty(), "a failed plan must say why");
                render_diagnostics(source, &errors)?;
            }
        }
    }
    Ok(())
}

/// The whole pipeline on one file's bytes.
fn run_bytes(bytes: &[u8], request: &Request) -> Result<(), TestCaseError> {
    let (source, loaded) = runbook_engine::load_bytes("fuzz.yaml", bytes, &REGISTRY);
    match loaded {
        Ok(loaded) => plan_and_render(&source, &loaded, &REGISTRY, request),
        Err(diagnostics) => {
            prop_assert!(!diagnostics.is_empty(), "a runbook that does not load must say why");
            render_diagnostics(&source, &diagnostics)
        }
    }
}

fn run_text(text: &str, request: &Request) -> Result<(), TestCaseError> {
    run_bytes(text.as_bytes(), request)
}

// ---------------------------------------------------------------------------
// (a) Arbitrary bytes.

/// Characters and words YAML gives meaning to.
const YAML_CHARS: &[char] = &[
    'a', 'b', 'i', 'n', 's', 'e', '1', ':', ':', '-', ' ', ' ', ' ', '\n', '\n', '[', ']', '{', '}', ',', '"', '\'',
    '#', '&', '*', '!', '|', '>', '%', '@', '`', '?', '~', '.', '\t', '\r', '\\', 'é', '\u{feff}', '\u{85}', '\0',
];
const YAML_WORDS: &[&str] = &[
    "runbook: 1\n",
    "name: x\n",
    "steps:\n",
    "  - id: a\n",
    "    uses: log\n",
    "    with: { message: hi }\n",
    "    needs: [a]\n",
    "inputs:\n",
    "  a: { type: string, default: x }\n",
    "secrets:\n",
    "finally:\n",
    "{{ inputs.a }}",
    "&anchor ",
    "*anchor",
    "<<: *anchor\n",
    "!!binary ",
    "!tag ",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "? ",
    ": ",
    "- ",
    "\n  ",
    "\n    ",
    "when: ",
    "outputs: ",
    "\"\\u0000\"",
    "\"\\xff\"",
    "|\n",
    ">-\n",
    "0x1F",
    "1e400",
    "-9223372036854775809",
    ".nan",
    "~",
];

fn yaml_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        3 => proptest::sample::select(YAML_CHARS).prop_map(String::from),
        2 => proptest::sample::select(YAML_WORDS).prop_map(String::from),
    ];
    proptest::collection::vec(part, 0..300).prop_map(|parts| parts.concat())
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..4096),
        4 => yaml_text().prop_map(String::into_bytes),
        // Almost text: one byte that breaks the encoding.
        1 => (yaml_text(), any::<Index>(), any::<u8>()).prop_map(|(text, at, byte)| {
            let mut bytes = text.into_bytes();
            bytes.insert(at.index(bytes.len() + 1), byte);
            bytes
        }),
        // UTF-16 with a byte order mark.
        1 => yaml_text().prop_map(|text| {
            let mut bytes = vec![0xff, 0xfe];
            bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            bytes
        }),
        // A real beginning, then noise.
        2 => yaml_text().prop_map(|tail| format!("runbook: 1\nname: fuzz\nsteps:\n  - id: a\n    uses: log\n    with: {tail}").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in bytes()) {
        run_bytes(&bytes, &Request::default())?;
    }
}

// ---------------------------------------------------------------------------
// (b) Random runbooks with a valid shape.
//
// Each runbook has a level of chaos: at 0 it writes only what the format
// allows, so most such runbooks load and plan and the later stages are
// exercised too; at 1 and 2 more and more of its parts are wrong (unknown ids
// and kinds, cycles, broken templates, wrong types).

const KINDS: &[&str] = &[
    "shell", "http", "wait", "assert", "sleep", "confirm", "log", "deploy", "Shell", "",
];
const BAD_IDS: &[&str] = &["Bad-Id", "1st", "", "with space", "ü", "a.b", "steps", "x_", "s0"];

/// A step, chosen when the ids are known.
#[derive(Debug, Clone)]
enum Target {
    /// One that is guaranteed to have finished (for reading its outputs).
    Ancestor(Index),
    /// One above this step (for `needs`).
    Earlier(Index),
    /// Any step, this one and later ones included.
    Any(Index),
    Unknown,
}

/// Part of a template or expression.
#[derive(Debug, Clone)]
enum Piece {
    Fixed(&'static str),
    Output(Target),
    Status(Target),
    Literal(String),
}

const GOOD_TEMPLATES: &[&str] = &[
    "{{ inputs.a }}",
    "{{ inputs.num + 1 }}",
    "{{ secrets.tok }}",
    "{{ vars.v }}",
    "{{ run.status }}",
    "{{ inputs.a | upper }}",
    "{% if inputs.flag %}on{% endif %}",
    "{% for x in [1, 2] %}{{ x }}{% endfor %}",
    "{{ inputs.a ~ '-' ~ inputs.e }}",
    "{{ inputs.d }}",
];

const BAD_TEMPLATES: &[&str] = &[
    "{{ inputs.missing }}",
    "{{ result.status }}",
    "{{ inputs.a | no_such_filter }}",
    "{{ x",
    "{{ }}",
    "{% if %}",
    "}}",
    "{{ 1 / 0 }}",
    "{{ inputs.num / 0 }}",
    "{{ [1, 2][5] }}",
    "{{ inputs.a[1:] }}",
    "{{ steps }}",
    "{{ steps.x.outputs }}",
    "{{ inputs }}",
    "{{ 'é' ~ inputs.a }}",
    "{{ range(3) | list }}",
    "{{ secrets }}",
    "{{ vars.nope }}",
];

const GOOD_EXPRESSIONS: &[&str] = &[
    "inputs.flag",
    "not inputs.flag",
    "inputs.num > 2 and inputs.flag",
    "inputs.e == 'red'",
    "true",
    "inputs.a | length > 3",
];

const BAD_EXPRESSIONS: &[&str] = &[
    "inputs.num >",
    "((",
    "inputs.unknown",
    "{{ inputs.flag }}",
    "1 / 0",
    "",
    "result.status ==",
    "steps.nowhere.status",
    "secrets.tok == 'x'",
];

/// Expressions over a step's `result` (`verify`, `outputs`, `until`).
const RESULT_EXPRESSIONS: &[&str] = &[
    "result.exit_code == 0",
    "result.status == 200",
    "result.stdout | trim",
    "result.json.id is defined",
    "result",
    "inputs.flag",
];

fn target(chaos: u32) -> BoxedStrategy<Target> {
    if chaos == 0 {
        any::<Index>().prop_map(Target::Ancestor).boxed()
    } else {
        prop_oneof![
            6 => any::<Index>().prop_map(Target::Ancestor),
            3 => any::<Index>().prop_map(Target::Any),
            1 => Just(Target::Unknown),
        ]
        .boxed()
    }
}

/// One piece of a template (`expression: false`) or an expression.
fn piece(
    chaos: u32,
    expression: bool,
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> BoxedStrategy<Piece> {
    let literal = if chaos == 0 {
        "[a-z0-9._/-][a-z0-9 ._/-]{0,11}"
    } else {
        "[ -~é😀\u{301}\u{85}\u{2028}\r\t\n]{0,12}"
    };
    let good = prop_oneof![
        4 => proptest::sample::select(good).prop_map(Piece::Fixed),
        3 => target(chaos).prop_map(Piece::Output),
        1 => target(chaos).prop_map(Piece::Status),
        // In an expression, a literal is an undefined name.
        (if expression && chaos == 0 { 0 } else { 2 }) => literal.prop_map(Piece::Literal),
    ];
    if chaos == 0 {
        good.boxed()
    } else {
        prop_oneof![10 - 3 * chaos => good, 3 * chaos => proptest::sample::select(bad).prop_map(Piece::Fixed)].boxed()
    }
}

fn template(chaos: u32) -> BoxedStrategy<Vec<Piece>> {
    proptest::collection::vec(piece(chaos, false, GOOD_TEMPLATES, BAD_TEMPLATES), 1..4).boxed()
}

fn expression(chaos: u32) -> BoxedStrategy<Vec<Piece>> {
    proptest::collection::vec(piece(chaos, true, GOOD_EXPRESSIONS, BAD_EXPRESSIONS), 1..3).boxed()
}

fn result_expression(chaos: u32) -> BoxedStrategy<Vec<Piece>> {
    let good = proptest::sample::select(RESULT_EXPRESSIONS).prop_map(|e| vec![Piece::Fixed(e)]);
    if chaos == 0 {
        good.boxed()
    } else {
        prop_oneof![3 => good, 1 => expression(chaos)].boxed()
    }
}

/// A value in `with`.
#[derive(Debug, Clone)]
enum Param {
    Text(Vec<Piece>),
    Expression(Vec<Piece>),
    Expressions(Vec<Vec<Piece>>),
    Raw(Json),
    Map(Vec<(&'static str, Vec<Piece>)>),
    List(Vec<Vec<Piece>>),
    Probe(&'static str, Vec<(&'static str, Param)>),
}

type With = Vec<(&'static str, Param)>;

/// Parameters that suit the kind.
fn good_with(kind: &'static str, chaos: u32) -> BoxedStrategy<With> {
    let raw = |values: &'static [&'static str]| proptest::sample::select(values).prop_map(|v| Param::Raw(json!(v)));
    match kind {
        "shell" => (template(chaos), proptest::option::of(template(chaos)))
            .prop_map(|(run, env)| {
                let mut with = vec![("run", Param::Text(run))];
                if let Some(env) = env {
                    with.push(("env", Param::Map(vec![("NAME", env)])));
                }
                with
            })
            .boxed(),
        "http" => (
            raw(&["GET", "POST", "DELETE"]),
            template(chaos),
            proptest::option::of(template(chaos)),
        )
            .prop_map(|(method, mut path, header)| {
                path.insert(0, Piece::Fixed("http://localhost/"));
                let mut with = vec![("method", method), ("url", Param::Text(path))];
                if let Some(header) = header {
                    with.push(("headers", Param::Map(vec![("authorization", header)])));
                }
                with
            })
            .boxed(),
        "wait" => (template(chaos), proptest::sample::select(RESULT_EXPRESSIONS))
            .prop_map(|(mut url, until)| {
                url.insert(0, Piece::Fixed("http://localhost/"));
                vec![
                    ("probe", Param::Probe("http", vec![("url", Param::Text(url))])),
                    ("until", Param::Raw(json!(until))),
                    ("interval", Param::Raw(json!("1s"))),
                    ("timeout", Param::Raw(json!("10s"))),
                ]
            })
            .boxed(),
        "assert" => (proptest::collection::vec(expression(chaos), 1..3), template(chaos))
            .prop_map(|(that, message)| vec![("that", Param::Expressions(that)), ("message", Param::Text(message))])
            .boxed(),
        "sleep" => raw(&["1s", "250ms", "{{ inputs.d }}"])
            .prop_map(|d| vec![("duration", d)])
            .boxed(),
        "confirm" => template(chaos).prop_map(|m| vec![("message", Param::Text(m))]).boxed(),
        _ => (template(chaos), raw(&["info", "warn", "error"]))
            .prop_map(|(message, level)| vec![("message", Param::Text(message)), ("level", level)])
            .boxed(),
    }
}

const PARAM_KEYS: &[&str] = &[
    "run",
    "argv",
    "env",
    "cwd",
    "ok_codes",
    "method",
    "url",
    "headers",
    "query",
    "json",
    "body",
    "expect_status",
    "timeout",
    "probe",
    "until",
    "interval",
    "that",
    "message",
    "duration",
    "level",
    "nonsense",
];

fn random_param(chaos: u32) -> BoxedStrategy<Param> {
    let key = proptest::sample::select(PARAM_KEYS);
    prop_oneof![
        4 => template(chaos).prop_map(Param::Text),
        1 => expression(chaos).prop_map(Param::Expression),
        1 => prop_oneof![
            (-5i64..700).prop_map(|n| json!(n)),
            any::<bool>().prop_map(|b| json!(b)),
            Just(json!(null)),
            Just(json!(1.5e300)),
            Just(json!([200, "x", null])),
        ]
        .prop_map(Param::Raw),
        1 => proptest::collection::vec(template(chaos), 0..3).prop_map(Param::List),
        1 => proptest::collection::vec((key.clone(), template(chaos)), 0..3).prop_map(Param::Map),
        1 => (proptest::sample::select(KINDS), proptest::collection::vec((key, template(chaos).prop_map(Param::Text)), 0..3))
            .prop_map(|(kind, with)| Param::Probe(kind, with)),
    ]
    .boxed()
}

fn random_with(chaos: u32) -> BoxedStrategy<With> {
    proptest::collection::vec((proptest::sample::select(PARAM_KEYS), random_param(chaos)), 0..4).boxed()
}

#[derive(Debug, Clone)]
enum Needs {
    Previous,
    Nothing,
    Some(Vec<Target>),
    /// Not a list.
    Garbage,
}

#[derive(Debug, Clone)]
struct GenStep {
    /// `None`: a valid id made from the position.
    bad_id: Option<&'static str>,
    kind: &'static str,
    needs: Needs,
    with: Option<With>,
    when: Option<Vec<Piece>>,
    confirm: Option<Vec<Piece>>,
    verify: Vec<Vec<Piece>>,
    outputs: Vec<(&'static str, Vec<Piece>)>,
    rollback: Option<(&'static str, With)>,
    extra: Option<&'static str>,
    /// How `when` and `confirm` are written.
    style: Style,
}

/// The ways YAML writes a string.
#[derive(Debug, Clone, Copy)]
enum Style {
    Double,
    Single,
    Plain,
    Literal,
    Folded,
}

/// `text` as a YAML scalar in `style`, for a key indented by four spaces.
fn scalar(text: &str, style: Style) -> String {
    let plain_is_safe = !text.is_empty()
        && !text.starts_with(|c: char| "-?:,[]{}#&*!|>'\"%@` ".contains(c))
        && !text.contains(": ")
        && !text.contains(" #")
        && !text.ends_with([' ', ':'])
        && !text.contains(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{feff}');
    let block = |indicator: &str| {
        let mut out = indicator.to_string();
        for line in text.split('\n') {
            out.push_str("\n      ");
            out.push_str(line);
        }
        out
    };
    match style {
        Style::Double => Json::String(text.to_string()).to_string(),
        Style::Single => format!("'{}'", text.replace('\'', "''")),
        Style::Plain if plain_is_safe => text.to_string(),
        Style::Plain => Json::String(text.to_string()).to_string(),
        Style::Literal => block("|-"),
        Style::Folded => block(">-"),
    }
}

const GOOD_EXTRA_KEYS: &[&str] = &[
    "timeout: 5s",
    "retry: { attempts: 3, backoff: exponential, delay: 1s, max_delay: 2s, jitter: true }",
    "retry: { attempts: 2, until: 'result.status == 200' }",
    "on_failure: continue",
    "idempotent: true",
    "description: Does a thing",
    "name: \"{{ inputs.a }}\"",
];

const BAD_EXTRA_KEYS: &[&str] = &[
    "timeout: forever",
    "timeout: 0s",
    "retry: { attempts: 0 }",
    "retry: { attempts: 99999999999 }",
    "retry: { attempts: 2, delay: 1s, max_delay: 18446744073709551615s }",
    "on_failure: explode",
    "idempotent: maybe",
    "unknown_key: 1",
    "when: true",
    "when: [1]",
];

fn gen_step(chaos: u32, finally: bool) -> BoxedStrategy<GenStep> {
    let kind = if chaos == 0 {
        proptest::sample::select(&KINDS[..7]).boxed()
    } else {
        prop_oneof![8 => proptest::sample::select(&KINDS[..7]), 1 => proptest::sample::select(KINDS)].boxed()
    };
    kind.prop_flat_map(move |kind| {
        let bad_id = if chaos == 0 {
            Just(None).boxed()
        } else {
            prop_oneof![9 => Just(None), 1 => proptest::sample::select(BAD_IDS).prop_map(Some)].boxed()
        };
        let earlier = proptest::collection::vec(any::<Index>().prop_map(Target::Earlier), 1..4).prop_map(Needs::Some);
        let needs = match (chaos, finally) {
            (0, true) => Just(Needs::Previous).boxed(),
            (0, false) => prop_oneof![6 => Just(Needs::Previous), 1 => Just(Needs::Nothing), 3 => earlier].boxed(),
            _ => prop_oneof![
                6 => Just(Needs::Previous),
                1 => Just(Needs::Nothing),
                2 => earlier,
                2 => proptest::collection::vec(target(chaos), 1..4).prop_map(Needs::Some),
                1 => Just(Needs::Garbage),
            ]
            .boxed(),
        };
        let with = if chaos == 0 {
            good_with(kind, 0).prop_map(Some).boxed()
        } else {
            prop_oneof![6 => good_with(kind, chaos).prop_map(Some), 2 => random_with(chaos).prop_map(Some), 1 => Just(None)]
                .boxed()
        };
        let outputs = if chaos == 0 {
            (result_expression(0), proptest::option::of(result_expression(0)))
                .prop_map(|(o, p)| std::iter::once(("o", o)).chain(p.map(|p| ("p", p))).collect())
                .boxed()
        } else {
            let name = proptest::sample::select(&["o", "o", "p", "Bad", "y", "n"][..]);
            proptest::collection::vec((name, result_expression(chaos)), 0..3).boxed()
        };
        let rollback = if chaos == 0 && finally {
            Just(None).boxed()
        } else if chaos == 0 {
            proptest::option::weighted(0.2, template(0).prop_map(|run| ("shell", vec![("run", Param::Text(run))]))).boxed()
        } else {
            proptest::option::weighted(0.2, (proptest::sample::select(KINDS), random_with(chaos))).boxed()
        };
        let extra = if chaos == 0 {
            proptest::sample::select(GOOD_EXTRA_KEYS).boxed()
        } else {
            prop_oneof![proptest::sample::select(GOOD_EXTRA_KEYS), proptest::sample::select(BAD_EXTRA_KEYS)].boxed()
        };
        (
            bad_id,
            needs,
            with,
            proptest::option::weighted(0.3, expression(chaos)),
            proptest::option::weighted(0.1, template(chaos)),
            proptest::collection::vec(result_expression(chaos), 0..3),
            outputs,
            rollback,
            proptest::option::weighted(0.3, extra),
            proptest::sample::select(&[Style::Double, Style::Single, Style::Plain, Style::Literal, Style::Folded][..]),
        )
            .prop_map(move |(bad_id, needs, with, when, confirm, verify, outputs, rollback, extra, style)| GenStep {
                bad_id,
                kind,
                needs,
                with,
                when,
                confirm,
                verify,
                outputs,
                rollback,
                extra,
                style,
            })
    })
    .boxed()
}

/// Top-level sections every chaos-free runbook has: the names templates read.
const GOOD_HEADER: &str = r#"inputs:
  a: { type: string, default: hello }
  num: { type: integer, default: 2 }
  flag: { type: boolean, default: false }
  e: { type: enum, values: [red, green], default: red }
  u: { type: url, env: FUZZ_URL, default: "http://localhost:8080" }
  d: { type: duration, default: 5s }
secrets:
  tok: { env: FUZZ_TOKEN }
  key: { file: /etc/fuzz.key }
vars:
  v: "{{ inputs.a }}-{{ inputs.num }}""#;

const GOOD_SECTIONS: &[&str] = &[
    "description: A random runbook",
    "defaults:\n  timeout: 30s\n  retry: { attempts: 2, delay: 1s }\n  on_failure: rollback",
    "max_parallel: 2",
    "lock: \"fuzz-{{ inputs.a }}\"",
];

const BAD_SECTIONS: &[&str] = &[
    "inputs:\n  a: { type: integer, default: hello }\n  Bad: { type: colour }\n  r: { type: enum, values: [] }",
    "secrets:\n  tok: { env: FUZZ_TOKEN, file: both.key }\n  none: {}",
    "vars:\n  v: \"{{ steps.s0.outputs.o }}\"\n  w: \"{{ vars.w }}\"",
    "max_parallel: 0",
    "max_parallel: -1",
    "lock: \"{{ x\"",
    "runbook: 2",
    "defaults: { timeout: 1y }",
];

/// `--input` and `--assume` given to the planner: `input NAME=VALUE` or
/// `assume FIELD=VALUE` of a step.
const GOOD_REQUESTS: &[&str] = &[
    "input a=x",
    "input num=5",
    "input flag=true",
    "input e=green",
    "input d=2m",
    "assume outputs.o=1",
    "assume outputs.o=[1, 2]",
    "assume status=skipped",
];

const BAD_REQUESTS: &[&str] = &[
    "input num=many",
    "input flag=maybe",
    "input e=blue",
    "input zzz=1",
    "input u=not a url",
    "input d=3 days",
    "assume outputs.nope=1",
    "assume status=weird",
    "assume garbage=1",
];

#[derive(Debug, Clone)]
struct GenRunbook {
    chaos: u32,
    steps: Vec<GenStep>,
    finally: Vec<GenStep>,
    sections: Vec<&'static str>,
    request: Vec<(&'static str, Target)>,
}

fn gen_runbook() -> impl Strategy<Value = GenRunbook> {
    prop_oneof![2 => Just(0u32), 1 => Just(1u32), 1 => Just(2u32)].prop_flat_map(|chaos| {
        let sections = if chaos == 0 {
            proptest::sample::subsequence(GOOD_SECTIONS, 0..=GOOD_SECTIONS.len()).boxed()
        } else {
            (
                proptest::sample::subsequence(GOOD_SECTIONS, 0..=GOOD_SECTIONS.len()),
                proptest::sample::subsequence(BAD_SECTIONS, 0..=chaos as usize),
            )
                .prop_map(|(good, bad)| good.into_iter().chain(bad).collect())
                .boxed()
        };
        // Wrong inputs and assumptions even for a good runbook, so the planner's errors are reached.
        let request = prop_oneof![
            3 => proptest::sample::select(GOOD_REQUESTS),
            1 => proptest::sample::select(BAD_REQUESTS),
        ];
        (
            Just(chaos),
            proptest::collection::vec(gen_step(chaos, false), 1..=30),
            proptest::collection::vec(gen_step(chaos, true), 0..3),
            sections,
            proptest::collection::vec((request, target(chaos)), 0..4),
        )
            .prop_map(|(chaos, steps, finally, sections, request)| GenRunbook {
                chaos,
                steps,
                finally,
                sections,
                request,
            })
    })
}

/// Writes YAML for a generated runbook.
struct Writer<'a> {
    ids: &'a [String],
    /// For each step (then each finally step), the steps guaranteed to have finished before it.
    ancestors: &'a [Vec<usize>],
    /// The step being written.
    current: usize,
    out: String,
}

impl Writer<'_> {
    /// The id a target names, if there is such a step.
    fn id(&self, target: &Target) -> Option<&str> {
        let pick = |candidates: &[usize], index: &Index| {
            (!candidates.is_empty()).then(|| self.ids[candidates[index.index(candidates.len())]].as_str())
        };
        match target {
            Target::Ancestor(index) => pick(&self.ancestors[self.current], index),
            Target::Earlier(index) => pick(&(0..self.current).collect::<Vec<_>>(), index),
            Target::Any(index) => Some(&self.ids[index.index(self.ids.len())]),
            Target::Unknown => Some("nowhere"),
        }
    }

    fn text(&self, pieces: &[Piece]) -> String {
        let mut text = String::new();
        for piece in pieces {
            match piece {
                Piece::Fixed(s) => text.push_str(s),
                Piece::Output(t) => match self.id(t) {
                    Some(id) => text.push_str(&format!("{{{{ steps.{id}.outputs.o }}}}")),
                    None => text.push_str("{{ inputs.a }}"),
                },
                Piece::Status(t) => match self.id(t) {
                    Some(id) => text.push_str(&format!("{{{{ steps.{id}.status }}}}")),
                    None => text.push_str("{{ run.status }}"),
                },
                Piece::Literal(s) => text.push_str(s),
            }
        }
        text
    }

    fn expression(&self, pieces: &[Piece]) -> String {
        let parts: Vec<String> = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Fixed(s) => s.to_string(),
                Piece::Output(t) => self
                    .id(t)
                    .map_or_else(|| "inputs.flag".to_string(), |id| format!("steps.{id}.outputs.o")),
                Piece::Status(t) => self
                    .id(t)
                    .map_or_else(|| "true".to_string(), |id| format!("steps.{id}.status == 'ok'")),
                Piece::Literal(s) => s.clone(),
            })
            .collect();
        parts.join(" and ")
    }

    fn param(&self, param: &Param) -> Json {
        match param {
            Param::Text(p) => Json::String(self.text(p)),
            Param::Expression(p) => Json::String(self.expression(p)),
            Param::Expressions(items) => Json::Array(items.iter().map(|p| Json::String(self.expression(p))).collect()),
            Param::Raw(value) => value.clone(),
            Param::List(items) => Json::Array(items.iter().map(|p| Json::String(self.text(p))).collect()),
            Param::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(k, p)| (k.to_string(), Json::String(self.text(p))))
                    .collect(),
            ),
            Param::Probe(kind, with) => json!({ "uses": kind, "with": self.with(with) }),
        }
    }

    fn with(&self, entries: &[(&str, Param)]) -> Json {
        Json::Object(entries.iter().map(|(k, p)| (k.to_string(), self.param(p))).collect())
    }

    /// Writes a step; its lines are JSON (which is YAML) so any text is quoted right.
    fn step(&mut self, index: usize, step: &GenStep) {
        self.current = index;
        let mut lines = vec![format!("id: {}", Json::String(self.ids[index].clone()))];
        if !step.kind.is_empty() {
            lines.push(format!("uses: {}", step.kind));
        }
        match &step.needs {
            Needs::Previous => {}
            Needs::Nothing => lines.push("needs: []".to_string()),
            Needs::Some(targets) => {
                let mut ids: Vec<&str> = targets.iter().filter_map(|t| self.id(t)).collect();
                ids.dedup();
                lines.push(format!("needs: {}", json!(ids)));
            }
            Needs::Garbage => lines.push("needs: { a: 1 }".to_string()),
        }
        if let Some(with) = &step.with {
            lines.push(format!("with: {}", self.with(with)));
        }
        if let Some(when) = &step.when {
            lines.push(format!("when: {}", scalar(&self.expression(when), step.style)));
        }
        if let Some(confirm) = &step.confirm {
            lines.push(format!("confirm: {}", scalar(&self.text(confirm), step.style)));
        }
        if !step.verify.is_empty() {
            let verify: Vec<String> = step.verify.iter().map(|v| self.expression(v)).collect();
            lines.push(format!("verify: {}", json!(verify)));
        }
        if !step.outputs.is_empty() {
            let outputs: Vec<String> = step
                .outputs
                .iter()
                .map(|(k, v)| format!("{k}: {}", Json::String(self.expression(v))))
                .collect();
            lines.push(format!("outputs: {{ {} }}", outputs.join(", ")));
        }
        if let Some((kind, with)) = &step.rollback {
            lines.push(format!(
                "rollback: {}",
                json!({ "uses": kind, "with": self.with(with) })
            ));
        }
        if let Some(extra) = step.extra {
            lines.push(extra.to_string());
        }
        for (k, line) in lines.iter().enumerate() {
            let _ = writeln!(self.out, "  {} {line}", if k == 0 { "-" } else { " " });
        }
    }
}

impl GenRunbook {
    fn ids(&self) -> Vec<String> {
        let name =
            |prefix: &str, k: usize, step: &GenStep| step.bad_id.map_or_else(|| format!("{prefix}{k}"), str::to_string);
        let steps = self.steps.iter().enumerate().map(|(k, s)| name("s", k, s));
        let finally = self.finally.iter().enumerate().map(|(k, s)| name("f", k, s));
        steps.chain(finally).collect()
    }

    /// What each step may read: for a step, what its `needs` lead back to;
    /// for a finally step, every step and the finally steps above it.
    fn ancestors(&self, ids: &[String]) -> Vec<Vec<usize>> {
        let mut ancestors: Vec<Vec<usize>> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let needs: Vec<usize> = match &step.needs {
                Needs::Previous => i.checked_sub(1).into_iter().collect(),
                Needs::Nothing | Needs::Garbage => Vec::new(),
                Needs::Some(targets) => targets
                    .iter()
                    .filter_map(|t| match t {
                        Target::Earlier(index) if i > 0 => Some(index.index(i)),
                        _ => None,
                    })
                    .collect(),
            };
            let mut set = std::collections::BTreeSet::new();
            for j in needs {
                set.insert(j);
                set.extend(ancestors[j].iter().copied());
            }
            // An id used twice or an invalid one cannot be read reliably.
            set.retain(|&j| ids.iter().filter(|id| **id == ids[j]).count() == 1);
            ancestors.push(set.into_iter().collect());
        }
        for k in 0..self.finally.len() {
            ancestors.push((0..self.steps.len() + k).collect());
        }
        ancestors
    }

    fn text(&self) -> String {
        let ids = self.ids();
        let ancestors = self.ancestors(&ids);
        let mut writer = Writer {
            ids: &ids,
            ancestors: &ancestors,
            current: 0,
            out: "runbook: 1\nname: fuzz\n".to_string(),
        };
        if self.chaos < 2 {
            writer.out.push_str(GOOD_HEADER);
            writer.out.push('\n');
        }
        for section in &self.sections {
            writer.out.push_str(section);
            writer.out.push('\n');
        }
        writer.out.push_str("steps:\n");
        for (k, step) in self.steps.iter().enumerate() {
            writer.step(k, step);
        }
        if !self.finally.is_empty() {
            writer.out.push_str("finally:\n");
            for (k, step) in self.finally.iter().enumerate() {
                writer.step(self.steps.len() + k, step);
            }
        }
        writer.out
    }

    fn request(&self) -> Request {
        let ids = self.ids();
        let ancestors: Vec<Vec<usize>> = vec![(0..ids.len()).collect(); ids.len()];
        let writer = Writer {
            ids: &ids,
            ancestors: &ancestors,
            current: 0,
            out: String::new(),
        };
        let mut request = Request::default();
        for (what, target) in &self.request {
            let (verb, rest) = what.split_once(' ').unwrap_or_default();
            let (name, value) = rest.split_once('=').unwrap_or_default();
            match (verb, writer.id(target)) {
                ("input", _) => request.inputs.push((name.to_string(), value.to_string())),
                (_, _) if name == "garbage" => request.assume.push((name.to_string(), value.to_string())),
                (_, Some(id)) => request.assume.push((format!("steps.{id}.{name}"), value.to_string())),
                (_, None) => {}
            }
        }
        request
    }
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn random_runbooks_never_panic(runbook in gen_runbook()) {
        run_text(&runbook.text(), &runbook.request())?;
    }
}

// ---------------------------------------------------------------------------
// (c) Random edits of a real runbook.

const GOOD: &str = r#"runbook: 1
name: dns-failover
description: >
  Fail the API over to a healthy point of presence.

inputs:
  domain:
    type: string
    default: api.example.com
  api_url:
    type: url
    env: RUNBOOK_API_URL
    default: http://127.0.0.1:8080
  mode:
    type: enum
    values: [fast, careful]
    default: careful
  force:
    type: boolean
    default: false

secrets:
  api_key:
    env: RUNBOOK_API_KEY

vars:
  health_url: "{{ inputs.api_url }}/health"

defaults:
  timeout: 30s
  retry: { attempts: 3, backoff: exponential, delay: 1s, max_delay: 10s, jitter: true }

max_parallel: 2
lock: "dns-failover-{{ inputs.domain }}"

steps:
  - id: check_toggle
    needs: []
    uses: shell
    with:
      run: "grep -qx APP_FAILOVER=1 /etc/adapters.env"
      ok_codes: [0, 1]
    outputs:
      enabled: result.exit_code == 0

  - id: health_before
    needs: []
    when: not inputs.force
    uses: http
    with:
      method: GET
      url: "{{ vars.health_url }}"
      headers: { x-api-key: "{{ secrets.api_key }}" }
      expect_status: [200, 503]
    outputs:
      healthy: result.status == 200

  - id: enable_failover
    needs: [check_toggle, health_before]
    when: >-
      not steps.check_toggle.outputs.enabled
      and (inputs.force or not steps.health_before.outputs.healthy)
    confirm: "Switch {{ inputs.domain }} to failover mode?"
    uses: shell
    with:
      run: "echo APP_FAILOVER=1 >> /etc/adapters.env"
    retry: { attempts: 1 }
    verify:
      - result.exit_code == 0
    rollback:
      uses: shell
      with:
        run: "sed -i '/^APP_FAILOVER=1$/d' /etc/adapters.env"

  - id: resolve_pop
    uses: http
    with:
      method: POST
      url: "{{ inputs.api_url }}/resolve"
      json: { domain: "{{ inputs.domain }}" }
    verify: result.json.pop is string
    outputs:
      pop: result.json.pop

  - id: wait_pop_healthy
    uses: wait
    with:
      probe:
        uses: http
        with:
          url: "{{ steps.resolve_pop.outputs.pop }}/health"
      until: result.status == 200
      interval: 2s
      timeout: 60s
    timeout: 90s

  - id: check
    uses: assert
    with:
      that: steps.resolve_pop.outputs.pop | length > 0
      message: no point of presence

  - id: settle
    uses: sleep
    with:
      duration: 5s
    on_failure: continue

finally:
  - id: report
    uses: log
    with:
      message: "failover of {{ inputs.domain }}: {{ run.status }}"
      level: info
"#;

#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Duplicate(Index, Index),
    Swap(Index, Index),
    Insert(Index, char),
    Remove(Index),
    Indent(Index, bool),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let chars = prop_oneof![
        proptest::sample::select(
            &[
                ' ', '\t', '\n', ':', '-', '#', '{', '}', '[', ']', '"', '\'', '|', '>', '&', '*', '%', '!', 'x', 'é',
                '\u{200b}', '\0'
            ][..]
        ),
        any::<char>(),
    ];
    prop_oneof![
        3 => any::<Index>().prop_map(Edit::Delete),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Duplicate(a, b)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        4 => (any::<Index>(), chars).prop_map(|(at, c)| Edit::Insert(at, c)),
        2 => any::<Index>().prop_map(Edit::Remove),
        2 => (any::<Index>(), any::<bool>()).prop_map(|(at, deeper)| Edit::Indent(at, deeper)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// Applies an edit to a text; lines keep their `\n`.
fn apply(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let n = lines.len();
    match edit {
        Edit::Delete(at) => {
            lines.remove(at.index(n));
        }
        Edit::Duplicate(from, to) => {
            let line = lines[from.index(n)].clone();
            lines.insert(to.index(n + 1), line);
        }
        Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
        Edit::Insert(at, c) => {
            let mut text = text.to_string();
            text.insert(boundaries[at.index(boundaries.len())], *c);
            return text;
        }
        Edit::Remove(at) => {
            let mut text = text.to_string();
            if boundaries.len() > 1 {
                let start = boundaries[at.index(boundaries.len() - 1)];
                text.remove(start);
            }
            return text;
        }
        Edit::Indent(at, deeper) => {
            let line = &mut lines[at.index(n)];
            if *deeper {
                line.insert_str(0, "  ");
            } else if let Some(rest) = line.strip_prefix("  ") {
                *line = rest.to_string();
            }
        }
        Edit::Truncate(at) => return text[..boundaries[at.index(boundaries.len())]].to_string(),
    }
    lines.concat()
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn edits_of_a_real_runbook_never_panic(edits in proptest::collection::vec(edit(), 1..6)) {
        let text = edits.iter().fold(GOOD.to_string(), |text, edit| apply(&text, edit));
        let request = Request {
            inputs: vec![("domain".to_string(), "example.org".to_string())],
            assume: vec![("steps.resolve_pop.outputs.pop".to_string(), "http://pop".to_string())],
        };
        run_text(&text, &request)?;
    }
}

/// The unedited runbook loads and plans, so the edits start from a valid file.
#[test]
fn the_real_runbook_is_valid() {
    let registry = &*REGISTRY;
    let source = SourceFile::new("good.yaml", GOOD);
    let loaded = runbook_engine::load(&source, registry)
        .unwrap_or_else(|d| panic!("{}", diagnostic::render(&source, &d, RenderOptions::default())));
    assert!(
        loaded.warnings.is_empty(),
        "{}",
        diagnostic::render(&source, &loaded.warnings, RenderOptions::default())
    );
    let env = |name: &str| (name == "RUNBOOK_API_KEY").then(|| "key".to_string());
    let request = PlanRequest {
        env: Some(&env),
        ..PlanRequest::default()
    };
    let (plan, warnings) = plan::plan(&loaded.compiled, registry, &request)
        .unwrap_or_else(|d| panic!("{}", diagnostic::render(&source, &d, RenderOptions::default())));
    assert!(
        warnings.is_empty(),
        "{}",
        diagnostic::render(&source, &warnings, RenderOptions::default())
    );
    assert_eq!(plan.steps.len(), 7);
}

// ---------------------------------------------------------------------------
// Reproducers of what the properties found.

/// Found by `arbitrary_bytes_never_panic`: YAML takes a bare `\r` for a line
/// break, and the label of a YAML error after one lands past the end of the text.
#[test]
fn yaml_error_after_a_bare_carriage_return_stays_inside_the_text() {
    for text in ["x: a\ra", "a: b\r\rc"] {
        let (source, loaded) = runbook_engine::load_bytes("cr.yaml", text.as_bytes(), &REGISTRY);
        let diagnostics = loaded.expect_err("this is not valid YAML");
        for d in &diagnostics {
            for label in &d.labels {
                assert!(
                    label.span.offset + label.span.len <= source.text.len(),
                    "{text:?}: label {:?} of `{}` ({}) ends past the text ({} bytes)",
                    label.span,
                    d.code,
                    d.message,
                    source.text.len()
                );
            }
        }
    }
}

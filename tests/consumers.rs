//! Machine output read by the tools people feed it to: JUnit reports
//! against the Jenkins/Ant JUnit schema (`xmllint --schema`), `plan
//! --format json` by a JSON parser that refuses a repeated key (Python's),
//! `plan --format dot` by graphviz, and the Markdown report by cmark-gfm,
//! GFM's reference implementation, which must show every piece of text as
//! it was written.
//!
//! CI installs these tools (`.ci/run`), so a missing one fails the test;
//! `RUNBOOK_TESTS_SKIP_EXTERNAL=1` skips the tests whose tool is missing.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{Sandbox, runbook_in};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Whether `program` can be run: true if it can; false (the test returns)
/// if it cannot and RUNBOOK_TESTS_SKIP_EXTERNAL=1; else the test fails.
fn have(program: &str, package: &str) -> bool {
    match Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => true,
        Err(e) if std::env::var("RUNBOOK_TESTS_SKIP_EXTERNAL").as_deref() == Ok("1") => {
            eprintln!("skipped: `{program}` cannot be run ({e}) and RUNBOOK_TESTS_SKIP_EXTERNAL=1");
            false
        }
        Err(e) => panic!(
            "`{program}` cannot be run ({e}): install it (Debian: `apt-get install {package}`, as .ci/run does), \
             or set RUNBOOK_TESTS_SKIP_EXTERNAL=1 to skip the tests that need it"
        ),
    }
}

/// What a tool did with `input` on its standard input.
struct Tool {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn pipe(program: &str, args: &[&str], input: &str) -> Tool {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} does not start: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    Tool {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Every example runbook: the files in runbooks/ and its subfolders.
fn example_runbooks() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&root().join("runbooks"), &mut found);
    found.sort();
    assert!(found.len() >= 8, "the example runbooks are found: {found:?}");
    found
}

/// `runbook plan FILE --format FORMAT`, from the runbook's folder.
fn plan(file: &Path, format: &str) -> String {
    let name = file.file_name().unwrap().to_str().unwrap();
    let outcome = runbook_in(file.parent().unwrap(), &["plan", name, "--format", format], &[]);
    assert_eq!(outcome.code, Some(0), "{}: {}", file.display(), outcome.transcript());
    outcome.stdout
}

/// Python's json module, with a hook that refuses an object whose keys repeat.
const STRICT_JSON: &str = r#"
import json, sys
def refuse_repeats(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            sys.exit("repeated key: %r" % key)
        seen.add(key)
    return dict(pairs)
json.load(sys.stdin, object_pairs_hook=refuse_repeats)
"#;

#[test]
fn json_plans_are_read_by_a_parser_that_refuses_repeated_keys() {
    if !have("python3", "python3") {
        return;
    }
    // The parser does refuse them.
    let repeated = pipe(
        "python3",
        &["-c", STRICT_JSON],
        r#"{"steps": [{"name": "a", "name": "b"}]}"#,
    );
    assert!(
        !repeated.ok && repeated.stderr.contains("repeated key: 'name'"),
        "{}",
        repeated.stderr
    );
    for file in example_runbooks() {
        let read = pipe("python3", &["-c", STRICT_JSON], &plan(&file, "json"));
        assert!(read.ok, "{}: {}", file.display(), read.stderr);
    }
}

#[test]
fn dot_plans_are_drawn_by_graphviz() {
    if !have("dot", "graphviz") {
        return;
    }
    let broken = pipe("dot", &["-Tsvg"], "digraph { a -> }");
    assert!(!broken.ok, "graphviz refuses a broken graph");
    for file in example_runbooks() {
        let drawn = pipe("dot", &["-Tsvg"], &plan(&file, "dot"));
        assert!(drawn.ok, "{}: {}", file.display(), drawn.stderr);
        // Graphviz only warns about what it does not understand, such as an unknown attribute.
        assert!(drawn.stderr.is_empty(), "{}: {}", file.display(), drawn.stderr);
        assert!(drawn.stdout.contains("<svg"), "{}: {}", file.display(), drawn.stdout);
    }
}

/// Text that Markdown, XML and HTML each read as markup of their own.
const TRICKY: &str = r"pipe | back\slash \| <tag> &amp; ]]> 'q' *x* _y_ `z` [l](u) ~s~ $m$ https://x.example/?a=1&b=_2_ www.example.com #";

/// A run with a step of each outcome, and tricky text in the runbook's
/// name, a step's name, an input and what failing commands print.
fn tricky_run() -> (Sandbox, String) {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: "consumers <&> | drill #"
inputs:
  note: { default: " x | y \\| `z` " }
steps:
  - id: tricky
    name: " a | b \\| c *d* _e_ `f` <b>g</b> &amp; [h](i)\ntwo lines "
    uses: shell
    with: { run: "cat message.txt >&2; exit 3" }
    on_failure: continue
  - id: skipped_one
    needs: []
    when: false
    uses: log
    with: { message: skipped }
  - id: undone
    needs: []
    uses: shell
    with: { run: "echo done" }
    outputs: { said: "result.stdout" }
    rollback: { uses: shell, with: { run: "cat message.txt >&2; exit 4" } }
  - id: fails
    needs: [undone]
    uses: shell
    with: { run: "exit 1" }
finally:
  - id: always
    uses: log
    with: { message: done }
"#,
    );
    std::fs::write(sandbox.file("message.txt"), format!("{TRICKY}\n")).unwrap();
    let run = sandbox.run(&["--yes"]);
    assert_eq!(run.code, Some(3), "the rollback failed: {}", run.transcript());
    let id = sandbox.run_ids().pop().unwrap();
    (sandbox, id)
}

fn report(sandbox: &Sandbox, id: &str, format: &str) -> String {
    let file = format!("report.{format}");
    let outcome = sandbox.runbook(&["show", id, "--report", &file, "--report-format", format], &[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    sandbox.read(&file)
}

#[test]
fn junit_reports_validate_against_the_jenkins_junit_schema() {
    if !have("xmllint", "libxml2-utils") {
        return;
    }
    let schema = root().join("tests/fixtures/junit/junit-10.xsd");
    let schema = schema.to_str().unwrap();
    let validate = |xml: &str| pipe("xmllint", &["--noout", "--schema", schema, "-"], xml);

    let succeeded = Sandbox::new(
        "runbook: 1\nname: fine\nsteps:\n  - id: a\n    uses: log\n    with: { message: hi }\n  - id: b\n    when: false\n    uses: log\n    with: { message: never }\n",
    );
    assert_eq!(succeeded.run(&["--yes"]).code, Some(0));
    let succeeded_id = succeeded.run_ids().pop().unwrap();

    // Killed after its third event: a run that never finished.
    let unfinished = Sandbox::new(
        "runbook: 1\nname: cut-short\nsteps:\n  - id: a\n    uses: log\n    with: { message: one }\n  - id: b\n    uses: log\n    with: { message: two }\n",
    );
    let crashed = unfinished.runbook(
        &["run", "runbook.yaml", "--yes"],
        &[("RUNBOOK_TEST_CRASH_AFTER_EVENTS", "3")],
    );
    assert_ne!(crashed.code, Some(0), "{}", crashed.transcript());
    let unfinished_id = unfinished.run_ids().pop().unwrap();

    let (tricky, tricky_id) = tricky_run();
    for (what, sandbox, id) in [
        ("a run that succeeded", &succeeded, &succeeded_id),
        ("a run that did not finish", &unfinished, &unfinished_id),
        ("a run with each outcome", &tricky, &tricky_id),
    ] {
        let xml = report(sandbox, id, "junit");
        let checked = validate(&xml);
        assert!(checked.ok, "{what}: {}\n{xml}", checked.stderr);
        // The schema is read: what it does not allow is refused.
        let wrong = xml.replacen("<testsuites ", "<testsuites skipped=\"0\" ", 1);
        let refused = validate(&wrong);
        assert!(
            !refused.ok && refused.stderr.contains("skipped"),
            "{what}: {}",
            refused.stderr
        );
    }
}

/// The text of an HTML fragment as a browser shows it: tags dropped, line
/// breaks kept, entities read (cmark-gfm writes only these four).
fn html_text(html: &str) -> String {
    let html = html.replace("<br />", "\n").replace("<br>", "\n");
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The pieces of `html` between `open` and `close`, each as text.
fn elements(html: &str, open: &str, close: &str) -> Vec<String> {
    html.split(open)
        .skip(1)
        .map(|piece| html_text(piece.split(close).next().unwrap()))
        .collect()
}

#[test]
fn markdown_reports_show_every_text_as_written_in_cmark_gfm() {
    if !have("cmark-gfm", "cmark-gfm") {
        return;
    }
    let (sandbox, id) = tricky_run();
    let markdown = report(&sandbox, &id, "md");
    // As GitHub renders: GFM's extensions, and raw HTML let through but
    // for the tags GFM filters (a cell's line break is a `<br>`).
    let gfm = [
        "--unsafe",
        "--extension",
        "table",
        "--extension",
        "strikethrough",
        "--extension",
        "autolink",
        "--extension",
        "tagfilter",
    ];
    let rendered = pipe("cmark-gfm", &gfm, &markdown);
    assert!(rendered.ok, "{}", rendered.stderr);
    let html = rendered.stdout;
    // What the report says, from the JSON report, which holds the text as it was.
    let facts: serde_json::Value = serde_json::from_str(&report(&sandbox, &id, "json")).unwrap();
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();

    assert_eq!(
        elements(&html, "<h1>", "</h1>"),
        [format!("Run {id}: {}", text(&facts["runbook"]))]
    );
    assert_eq!(
        elements(&html, "<p><strong>Reason:</strong> ", "</p>"),
        [text(&facts["reason"])]
    );
    let rows: Vec<Vec<String>> = html
        .split("<tr>")
        .skip(1)
        .map(|row| elements(row.split("</tr>").next().unwrap(), "<td>", "</td>"))
        .filter(|cells| !cells.is_empty())
        .collect();
    let row = |first: &str| {
        rows.iter()
            .find(|cells| cells[0] == first)
            .unwrap_or_else(|| panic!("no row starts with {first:?} in {rows:#?}\n{markdown}"))
    };
    assert_eq!(
        row("Runbook")[1].split(" (sha256").next(),
        text(&facts["runbook_path"]).as_str().into()
    );
    assert_eq!(row("note")[1], serde_json::to_string(&facts["inputs"]["note"]).unwrap());
    let steps = facts["steps"].as_array().unwrap();
    for step in steps {
        let mut title = text(&step["id"]);
        if let Some(name) = step["name"].as_str() {
            title = format!("{title} — {name}");
        }
        if step["is_finally"] == true {
            title.push_str(" (finally)");
        }
        let cells = row(&title);
        let errors: Vec<String> = [
            step["error"].as_str().map(str::to_string),
            step["rollback_error"].as_str().map(|e| format!("rollback: {e}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(cells.len(), 6, "{cells:?}");
        assert_eq!(cells[5], errors.join("\n"), "the error cell of {title:?}");
    }
    let tricky = &steps[0];
    assert!(tricky["error"].as_str().unwrap().contains(TRICKY), "{tricky}");
    assert!(tricky["name"].as_str().unwrap().starts_with(' '), "{tricky}");
    assert_eq!(
        elements(&html, "<li>", "</li>"),
        [format!("undone: {}", text(&steps[2]["rollback_error"]))]
    );
}

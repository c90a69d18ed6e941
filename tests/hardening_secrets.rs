//! Regression tests for the secret leaks an adversarial review found
//! (issue 8, items 1 to 5 and 7). Each run's every output, file, journal
//! and report is searched for the secret and for its derived and encoded
//! forms.

#[path = "support/mod.rs"]
mod support;

use base64::Engine as _;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use support::{Outcome, Sandbox};

/// Every file under `dir` (journals, reports, histories), as text, but
/// those named in `except` (where a step put the secret on purpose).
fn files(dir: &Path, except: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if except.contains(&name.as_str()) {
            continue;
        }
        if path.is_dir() {
            out.extend(files(&path, except));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

/// Asserts that no form of the secret shows in any of the outcomes or in
/// any file of the sandbox.
fn assert_nowhere(sandbox: &Sandbox, outcomes: &[&Outcome], forms: &[String], except: &[&str]) {
    let mut places: Vec<(String, String)> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| (format!("outcome {i}"), o.transcript()))
        .collect();
    places.extend(files(sandbox.path(), except));
    for form in forms {
        for (place, text) in &places {
            assert!(
                !text.contains(form.as_str()),
                "`{form}` shows in {place}:\n{}",
                excerpt(text, form)
            );
        }
    }
}

fn excerpt(text: &str, form: &str) -> String {
    let at = text.find(form).unwrap_or(0);
    let start = text[..at].char_indices().rev().nth(200).map_or(0, |(i, _)| i);
    text[start..].chars().take(500).collect()
}

/// The run ids in the sandbox's state directory, children included.
fn runs(sandbox: &Sandbox) -> Vec<String> {
    sandbox.run_ids()
}

#[test]
fn a_long_action_is_masked_before_it_is_cut() {
    let secret = "hunter2secretXq";
    let padding = "x".repeat(85);
    let sandbox = Sandbox::new(&format!(
        r#"
runbook: 1
name: long-action
secrets:
  token: {{ env: TEST_TOKEN }}
steps:
  - id: call
    uses: shell
    with:
      run: "echo {padding} {{{{ secrets.token }}}} > /dev/null"
"#
    ));
    let run = sandbox.runbook(
        &[
            "run",
            "runbook.yaml",
            "--report",
            "report.json",
            "--report-format",
            "json",
        ],
        &[("TEST_TOKEN", secret)],
    );
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let id = runs(&sandbox).pop().unwrap();
    let show = sandbox.runbook(&["show", &id], &[]);
    // Not even the start of it, which a cut after it would leave.
    assert_nowhere(&sandbox, &[&run, &show], &["hunter2s".to_string()], &[]);
    assert!(run.stderr.contains("***"), "{}", run.transcript());
}

const CHILD: &str = r#"
runbook: 1
name: child
inputs:
  token: { description: "handed down by the parent" }
  same: { description: "an input equal to a secret" }
steps:
  - id: use
    uses: shell
    with: { run: "echo child got {{ inputs.token }} and {{ inputs.same }}" }
    outputs: { echoed: result.stdout }
"#;

const PARENT: &str = r#"
runbook: 1
name: parent
inputs:
  plain: { description: "given on the command line, equal to the secret" }
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: sub
    uses: runbook
    with:
      file: child.yaml
      inputs: { token: "{{ secrets.token }}", same: "{{ inputs.plain }}" }
    outputs: { echoed: result.outputs.use.echoed }
  - id: after
    uses: shell
    with: { run: "echo parent saw {{ steps.sub.outputs.echoed }}" }
"#;

#[test]
fn a_secret_passed_to_a_child_runbook_stays_masked_in_the_child_run() {
    let secret = "hunter2childSecret";
    let sandbox = Sandbox::new(PARENT);
    std::fs::write(sandbox.file("child.yaml"), CHILD).unwrap();
    let env = [("TEST_TOKEN", secret)];
    let run = sandbox.runbook(&["run", "runbook.yaml", "-i", &format!("plain={secret}")], &env);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let ids = runs(&sandbox);
    assert_eq!(ids.len(), 2, "a parent and a child run: {ids:?}");
    let child = ids.iter().find(|id| id.ends_with(".sub")).unwrap();
    let show_child = sandbox.runbook(&["show", child], &[]);
    let show_json = sandbox.runbook(&["show", child, "--format", "json"], &[]);
    assert_eq!(show_child.code, Some(0), "{}", show_child.transcript());
    assert_nowhere(&sandbox, &[&run, &show_child, &show_json], &[secret.to_string()], &[]);
    // The child's journal says which inputs it keeps masked.
    let journal = std::fs::read_to_string(sandbox.state().join("runs").join(child).join("journal.jsonl")).unwrap();
    assert!(journal.contains(r#""masked_inputs":["token","same"]"#), "{journal}");
}

#[test]
fn an_input_that_holds_a_secret_must_be_given_again_to_resume() {
    let secret = "hunter2resumeSecret";
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: masked-input
inputs:
  key: { description: "equal to the secret" }
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: one
    uses: shell
    with: { run: "echo one-{{ inputs.key }} >> $SANDBOX/effects" }
  - id: two
    uses: shell
    with: { run: "echo two-{{ inputs.key }} >> $SANDBOX/effects" }
"#,
    );
    // Killed once step `one` is journaled as done.
    let baseline = Sandbox::new(&std::fs::read_to_string(sandbox.file("runbook.yaml")).unwrap());
    let ran = baseline.runbook(&["run", "runbook.yaml", "-i", "key=x"], &[("TEST_TOKEN", secret)]);
    assert_eq!(ran.code, Some(0), "{}", ran.transcript());
    let journal = std::fs::read_to_string(
        baseline
            .state()
            .join("runs")
            .join(&runs(&baseline)[0])
            .join("journal.jsonl"),
    )
    .unwrap();
    let one_done = journal
        .lines()
        .position(|l| l.contains(r#""event":"step_succeeded","step":"one""#))
        .unwrap()
        .to_string();
    let env = [
        ("TEST_TOKEN", secret),
        ("RUNBOOK_TEST_CRASH_AFTER_EVENTS", one_done.as_str()),
    ];
    let crashed = sandbox.runbook(&["run", "runbook.yaml", "-i", &format!("key={secret}")], &env);
    assert_eq!(crashed.code, None, "{}", crashed.transcript());
    let id = runs(&sandbox).pop().unwrap();
    let env = [("TEST_TOKEN", secret)];
    let refused = sandbox.runbook(&["resume", &id, "--yes"], &env);
    assert_eq!(refused.code, Some(2), "{}", refused.transcript());
    assert!(
        refused.stderr.contains("the journal keeps `key` masked") && refused.stderr.contains("--input key=..."),
        "{}",
        refused.transcript()
    );
    let resumed = sandbox.runbook(&["resume", &id, "--yes", "-i", &format!("key={secret}")], &env);
    assert_eq!(resumed.code, Some(0), "{}", resumed.transcript());
    assert_eq!(sandbox.read("effects"), format!("one-{secret}\ntwo-{secret}\n"));
    assert_nowhere(
        &sandbox,
        &[&crashed, &refused, &resumed],
        &[secret.to_string()],
        &["effects"],
    );
}

#[test]
fn values_derived_from_a_secret_are_masked() {
    let secret = "hunter2secretX";
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: derived
secrets:
  token: { env: TEST_TOKEN }
vars:
  bearer: "Bearer {{ secrets.token | upper }}"
steps:
  - id: show
    uses: shell
    with:
      run: |
        echo {{ secrets.token | upper }}
        echo {{ secrets.token | lower }}-{{ secrets.token | title }}
        echo {{ secrets.token | reverse }}
        echo {{ secrets.token[2:12] }}
        echo {{ secrets.token | list }}
        echo {{ secrets.token | list | join(".") }}
        echo {{ secrets.token | replace("secret", "S") }}
        echo {{ secrets.token | split("2") | join("+") }}
        echo {% for c in secrets.token %}{{ c }}-{% endfor %}
        echo {{ vars.bearer | lower }}
    outputs:
      shouted: result.stdout
      derived: "secrets.token | reverse"
  - id: say
    uses: log
    with:
      message: "{{ secrets.token | upper }} and {% for c in secrets.token %}{{ c }} {% endfor %}"
"#,
    );
    let env = [("TEST_TOKEN", secret)];
    let run = sandbox.runbook(
        &[
            "run",
            "runbook.yaml",
            "--report",
            "report.md",
            "--history",
            "history.jsonl",
        ],
        &env,
    );
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let json = sandbox.runbook(&["run", "runbook.yaml", "--output", "json"], &env);
    assert_eq!(json.code, Some(0), "{}", json.transcript());
    let id = runs(&sandbox).pop().unwrap();
    let show = sandbox.runbook(&["show", &id], &[]);
    let reversed: String = secret.chars().rev().collect();
    let spaced = |sep: &str| secret.chars().map(|c| c.to_string()).collect::<Vec<_>>().join(sep);
    let forms = [
        secret.to_string(),
        secret.to_uppercase(),
        secret.to_lowercase(),
        "Hunter2secretx".to_string(),
        reversed,
        secret[2..12].to_string(),
        spaced("."),
        spaced("-"),
        spaced(" "),
        format!("{:?}", secret.chars().map(|c| c.to_string()).collect::<Vec<_>>()).replace(' ', ""),
        "hunter2Sx".to_string(),
        "hunter+secretX".to_string(),
        "bearer hunter2secretx".to_string(),
    ];
    assert_nowhere(&sandbox, &[&run, &json, &show], &forms, &[]);
}

/// An HTTP server on 127.0.0.1 that answers every request with its request
/// line, headers and body, as text.
fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buffer) {
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let body = String::from_utf8_lossy(&request).into_owned();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    url
}

#[test]
fn encoded_forms_of_a_secret_are_masked() {
    let secret = r#"hunter2 "Secret"/X&y=z"#;
    let url = echo_server();
    let sandbox = Sandbox::new(&format!(
        r#"
runbook: 1
name: encoded
secrets:
  token: {{ env: TEST_TOKEN }}
steps:
  - id: query
    uses: http
    with:
      url: "{url}/q"
      query: {{ key: "{{{{ secrets.token }}}}" }}
    outputs: {{ echoed: result.body }}
  - id: body
    uses: http
    with:
      method: POST
      url: "{url}/b"
      json: {{ key: "{{{{ secrets.token }}}}" }}
    outputs: {{ echoed: result.body }}
  - id: base64
    uses: shell
    with: {{ run: 'printf %s "$T" | base64; printf "user:%s" "$T" | base64' , env: {{ T: "{{{{ secrets.token }}}}" }} }}
    outputs: {{ echoed: result.stdout }}
"#
    ));
    let env = [("TEST_TOKEN", secret)];
    let run = sandbox.runbook(
        &[
            "run",
            "runbook.yaml",
            "--report",
            "report.json",
            "--report-format",
            "json",
        ],
        &env,
    );
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let id = runs(&sandbox).pop().unwrap();
    let show = sandbox.runbook(&["show", &id, "--format", "json"], &[]);
    let journal = std::fs::read_to_string(sandbox.state().join("runs").join(&id).join("journal.jsonl")).unwrap();
    assert!(journal.contains("***"), "{journal}");
    let query: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let forms = [
        secret.to_string(),
        query,
        json[1..json.len() - 1].to_string(),
        b64.encode(secret),
        // The middle of `user:<secret>` in base64, which does not depend on the `user:` before it.
        b64.encode(format!("user:{secret}"))[8..24].to_string(),
    ];
    assert_nowhere(&sandbox, &[&run, &show], &forms, &[]);
}

#[test]
fn each_line_of_a_multi_line_secret_is_masked_in_streamed_output() {
    let key = "-----BEGIN TEST KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4ZBXoCOZ7hIqXQmPrTkHqUj6\n-----END TEST KEY-----\n";
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: pem
secrets:
  key: { file: key.pem }
steps:
  - id: leak
    uses: shell
    with: { run: "cat $SANDBOX/key.pem; cat $SANDBOX/key.pem >&2" }
"#,
    );
    std::fs::write(sandbox.file("key.pem"), key).unwrap();
    let run = sandbox.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    let json = sandbox.run(&["--output", "json"]);
    let forms: Vec<String> = key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_string)
        .collect();
    assert_nowhere(&sandbox, &[&run, &json], &forms, &["key.pem"]);
}

#[test]
fn a_secret_cut_by_a_64_kib_read_boundary_is_masked() {
    let secret = "hunter2boundaryX";
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: boundary
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: long_line
    uses: shell
    with:
      run: python3 -c 'import os, sys; sys.stdout.write("a" * (65536 - 7) + os.environ["T"] + "b" * 100 + "\n")'
      env: { T: "{{ secrets.token }}" }
"#,
    );
    let env = [("TEST_TOKEN", secret)];
    for args in [
        vec!["run", "runbook.yaml"],
        vec!["run", "runbook.yaml", "--output", "json"],
    ] {
        let run = sandbox.runbook(&args, &env);
        assert_eq!(run.code, Some(0), "{}", run.transcript());
        // Neither half shows.
        let forms = [secret[..7].to_string(), secret[7..].to_string()];
        assert_nowhere(&sandbox, &[&run], &forms, &[]);
        assert!(
            run.stdout.contains("***") || run.stderr.contains("***"),
            "{}",
            run.transcript()
        );
    }
}

#[test]
fn a_secret_shorter_than_four_characters_is_refused() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: short
secrets:
  pin: { env: TEST_PIN }
steps:
  - id: touch
    uses: shell
    with: { run: "touch $SANDBOX/ran" }
"#,
    );
    let run = sandbox.runbook(&["run", "runbook.yaml"], &[("TEST_PIN", "123")]);
    assert_eq!(run.code, Some(2), "{}", run.transcript());
    assert!(
        run.stderr.contains("secret `pin` is 3 characters long") && run.stderr.contains("garbling"),
        "{}",
        run.transcript()
    );
    assert!(!sandbox.file("ran").exists(), "nothing runs");
}

#[test]
fn control_characters_from_steps_and_runbooks_are_shown_escaped() {
    let sandbox = Sandbox::new(
        "
runbook: 1
name: escapes
steps:
  - id: paint
    uses: shell
    with: { run: \"printf '\\\\033[2J\\\\033]0;pwned\\\\007cleared\\\\r\\\\n'; printf '\\\\033[31mred\\\\n' >&2\" }
  - id: say
    uses: log
    with: { message: \"bell\\u0007 and \\u001b[8mhidden\" }
",
    );
    let run = sandbox.run(&[]);
    assert_eq!(run.code, Some(0), "{}", run.transcript());
    assert!(
        !run.stderr.contains('\x1b') && !run.stderr.contains('\x07'),
        "{:?}",
        run.stderr
    );
    assert!(run.stderr.contains(r"\x1b[2J\x1b]0;pwned\x07cleared"), "{}", run.stderr);
    assert!(run.stderr.contains(r"\x1b[8mhidden"), "{}", run.stderr);
    let id = runs(&sandbox).pop().unwrap();
    let show = sandbox.runbook(&["show", &id], &[]);
    assert!(!show.stdout.contains('\x1b'), "{:?}", show.stdout);
    // A runbook's own text, in a diagnostic.
    let bad = Sandbox::new("runbook: 1\nname: \"x\"\nsteps:\n  - id: a\n    uses: shel\x1b[2J\n");
    let check = bad.runbook(&["check", "runbook.yaml"], &[]);
    assert_eq!(check.code, Some(2), "{}", check.transcript());
    assert!(!check.stderr.contains('\x1b'), "{:?}", check.stderr);
}

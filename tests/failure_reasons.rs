//! Why a step failed, typed once in the engine, reaches every place a
//! person reads it: the terminal summary, `show`, and the three report
//! formats (issue 9: a command's exit code and the end of its stderr, an
//! HTTP status and the start of its body, a failed gate's expression and
//! the values it saw).

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use support::Sandbox;

/// A server on 127.0.0.1 that answers every request `503` with a body.
fn failing_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let body = "{\"error\": \"the ledger service is down\"}";
            let reply = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    url
}

#[test]
fn the_reason_a_step_failed_shows_in_the_summary_show_and_every_report() {
    let url = failing_server();
    let sandbox = Sandbox::new(&format!(
        r#"
runbook: 1
name: reasons
steps:
  - id: command
    needs: []
    uses: shell
    with: {{ run: "echo working; echo 'disk quota exceeded on /var/lib/ledger' >&2; exit 3" }}
    on_failure: continue
  - id: service
    needs: []
    uses: http
    with: {{ url: "{url}/health" }}
    on_failure: continue
  - id: gate
    needs: []
    uses: shell
    with: {{ run: "exit 0" }}
    verify: ["result.exit_code == 7"]
    on_failure: continue
"#
    ));
    let run = sandbox.run(&["--report", "report.md"]);
    assert_eq!(run.code, Some(1), "{}", run.transcript());
    let id = sandbox.run_ids().pop().unwrap();
    let show = sandbox.runbook(&["show", &id], &[]);
    let json = sandbox.runbook(
        &["show", &id, "--report", "report.json", "--report-format", "json"],
        &[],
    );
    assert_eq!(json.code, Some(0), "{}", json.transcript());
    let junit = sandbox.runbook(
        &["show", &id, "--report", "report.xml", "--report-format", "junit"],
        &[],
    );
    assert_eq!(junit.code, Some(0), "{}", junit.transcript());
    let places = [
        ("the terminal summary", run.stderr.clone()),
        ("show", show.stdout.clone()),
        ("the Markdown report", sandbox.read("report.md")),
        ("the JSON report", sandbox.read("report.json")),
        ("the JUnit report", sandbox.read("report.xml")),
    ];
    for (place, text) in &places {
        for (what, needle) in [
            ("exit code", "exit code 3"),
            ("end of stderr", "disk quota exceeded on /var/lib/ledger"),
            ("HTTP status", "HTTP 503"),
            ("body excerpt", "the ledger service is down"),
            ("gate expression", "result.exit_code == 7"),
            ("value the gate saw", "result.exit_code = 0"),
        ] {
            assert!(text.contains(needle), "{what} missing from {place}:\n{text}");
        }
    }
    // The JSON report carries the typed reason as well as the words.
    let report: serde_json::Value = serde_json::from_str(&sandbox.read("report.json")).unwrap();
    let failed = report["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"]["event"] == "step_failed" && e["event"]["step"] == "command")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(failed["event"]["failure"]["reason"], "kind_failed", "{failed:#}");
    assert_eq!(failed["event"]["failure"]["partial"]["exit_code"], 3, "{failed:#}");
}

/// Against the stand-in service, with a secret in what the steps print and
/// in what the service answers: a command's stderr, an HTTP status and
/// body, a time limit, a gate, a cancellation and a failed rollback each
/// say why in every place, and the secret shows in none of them.
#[test]
fn every_reason_shows_everywhere_with_secrets_masked() {
    let secret = "s3cr3t-T0ken-8842";
    let service = testkit::StandIn::start();
    service.set(|state| {
        state.failures.insert("/health".into(), 503);
    });
    let sandbox = Sandbox::new(&format!(
        r#"
runbook: 1
name: reasons-masked
max_parallel: 8
secrets:
  token: {{ env: TEST_TOKEN }}
steps:
  - id: command
    needs: []
    uses: shell
    with: {{ run: "echo 'token {{{{ secrets.token }}}} refused' >&2; exit 5" }}
    on_failure: continue
  - id: health
    needs: []
    uses: http
    with: {{ url: "{url}/health" }}
    on_failure: continue
  - id: echo
    needs: []
    uses: http
    with:
      url: "{url}/chaos/faults"
      method: POST
      headers: {{ x-admin-secret: test-admin-secret }}
      json: {{ target: "{{{{ secrets.token }}}}", kind: error }}
    on_failure: continue
  - id: slow
    needs: []
    uses: shell
    with: {{ run: "echo started; sleep 5" }}
    timeout: 300ms
    on_failure: continue
  - id: gate
    needs: []
    uses: shell
    with: {{ run: "echo {{{{ secrets.token }}}}" }}
    verify: ["result.stdout == 'x'"]
    on_failure: continue
  - id: undo
    needs: []
    uses: shell
    with: {{ run: "true" }}
    rollback: {{ uses: shell, with: {{ run: "echo 'cannot undo {{{{ secrets.token }}}}' >&2; exit 4" }} }}
  - id: waiting
    needs: []
    uses: shell
    with: {{ run: "sleep 5" }}
  - id: stopper
    needs: []
    uses: shell
    with: {{ run: "sleep 2; exit 1" }}
"#,
        url = service.url()
    ));
    let env = [("TEST_TOKEN", secret)];
    let run = sandbox.runbook(&["run", "runbook.yaml", "--report", "report.md"], &env);
    assert_eq!(run.code, Some(3), "a rollback failed: {}", run.transcript());
    let id = sandbox.run_ids().pop().unwrap();
    let show = sandbox.runbook(&["show", &id], &[]);
    assert_eq!(show.code, Some(0), "{}", show.transcript());
    for (format, file) in [("json", "report.json"), ("junit", "report.xml")] {
        let shown = sandbox.runbook(&["show", &id, "--report", file, "--report-format", format], &[]);
        assert_eq!(shown.code, Some(0), "{}", shown.transcript());
    }
    let places = [
        (
            "the terminal summary",
            run.stderr[run.stderr.find("summary of run").unwrap()..].to_string(),
        ),
        ("show", show.stdout.clone()),
        ("the Markdown report", sandbox.read("report.md")),
        ("the JSON report", sandbox.read("report.json")),
        ("the JUnit report", sandbox.read("report.xml")),
    ];
    for (place, text) in &places {
        for (what, needle) in [
            ("exit code", "exit code 5"),
            ("end of stderr, masked", "token *** refused"),
            ("HTTP status", "HTTP 503"),
            ("body excerpt", "injected failure"),
            ("a second HTTP status", "HTTP 400"),
            ("a body excerpt, masked", "not `***`"),
            ("time limit", "timed out after 300ms"),
            ("what the timed out attempt printed", "last stdout: started"),
            ("gate expression", "result.stdout =="),
            ("value the gate saw, masked", "result.stdout = "),
            ("why the rollback failed", "exit code 4; last stderr: cannot undo ***"),
        ] {
            assert!(text.contains(needle), "{what} missing from {place}:\n{text}");
        }
        // Who cancelled the step: in the summary's words, or in the
        // words of the failure that stopped the run.
        assert!(
            text.contains("cancelled (another step failed)") || text.contains("cancelled: step `stopper` failed"),
            "why `waiting` was cancelled is missing from {place}:\n{text}"
        );
        assert!(!text.contains(secret), "the secret shows in {place}:\n{text}");
    }
    let journal = sandbox.state().join("runs").join(&id).join("journal.jsonl");
    assert!(!std::fs::read_to_string(journal).unwrap().contains(secret));
}

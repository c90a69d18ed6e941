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

//! The example step plugins in `runbooks/plugins/` and the runbook that uses
//! them, `runbooks/feature-flag-failover.yaml` (issue 10).
//!
//! First the plugins on their own, as the book's "How to test a plugin"
//! shows: `describe` by hand, and requests piped into `run` against the
//! stand-in service (`testkit`) on 127.0.0.1. Then the real `runbook` binary
//! runs the example runbook: a run that succeeds, one that rolls back and
//! so undoes the flag through the plugin, one killed midway and rolled back
//! later from its journal, and `plan`. Every test asserts on what really
//! happened: the flag as the service's own HTTP API reports it, the change
//! log, the requests the service received.

#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Outcome, calls};
use testkit::{Health, StandIn};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn plugin(name: &str) -> PathBuf {
    root().join("runbooks/plugins").join(name)
}

const API_KEY: &str = "test-api-key";

// --- the service's own view -------------------------------------------------

/// `GET path` on the stand-in over a plain socket, so that what a test
/// asserts about a flag comes from the service's HTTP API, not from the
/// plugin under test: the status and the body as JSON.
fn http_get(service: &StandIn, path: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(service.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{PROBE}: 1\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The flag's value as the service reports it.
fn flag(service: &StandIn, name: &str) -> bool {
    let (status, body) = http_get(service, &format!("/flags/{name}"));
    assert_eq!(status, 200, "{body}");
    body["value"].as_bool().expect("a boolean flag")
}

/// The header that marks the test's own requests, which [`flag_calls`] leaves out.
const PROBE: &str = "x-test-probe";

/// `(method, path)` of the requests to `/flags/...` the service received
/// from others than the test itself, in order.
fn flag_calls(service: &StandIn) -> Vec<(String, String)> {
    service
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/flags/") && r.header(PROBE).is_none())
        .map(|r| (r.method, r.path))
        .collect()
}

/// The `PUT`s to `/flags/checkout_v2`, in order.
fn puts(service: &StandIn) -> Vec<testkit::Recorded> {
    service
        .requests_to("/flags/checkout_v2")
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect()
}

// --- the plugins on their own -----------------------------------------------

/// `PLUGIN describe`, parsed.
fn describe(name: &str) -> Value {
    let output = Command::new(plugin(name))
        .arg("describe")
        .output()
        .expect("the plugin starts");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("describe answers one JSON object")
}

/// What `run` answered: its messages, the final one last.
struct Answer {
    messages: Vec<Value>,
    stderr: String,
}

impl Answer {
    fn last(&self) -> &Value {
        self.messages.last().unwrap()
    }

    fn result(&self) -> &Value {
        assert_eq!(self.last()["type"], "ok", "{:#?}", self.messages);
        &self.last()["result"]
    }

    fn logs(&self) -> Vec<&str> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "log")
            .filter_map(|m| m["message"].as_str())
            .collect()
    }
}

/// Pipes one request into `PLUGIN run` in `dir` and checks the answer keeps
/// the protocol: every line a message of a known type with its fields, and
/// exactly one final message, the last line.
fn run_plugin(name: &str, dir: &Path, request: &Value) -> Answer {
    run_plugin_text(name, dir, &request.to_string())
}

fn run_plugin_text(name: &str, dir: &Path, request: &str) -> Answer {
    let mut child = Command::new(plugin(name))
        .arg("run")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the plugin starts");
    child.stdin.take().unwrap().write_all(request.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 on stdout");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let messages: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")))
        .collect();
    let finals = messages
        .iter()
        .filter(|m| m["type"] == "ok" || m["type"] == "error")
        .count();
    assert_eq!(finals, 1, "exactly one final message: {stdout}{stderr}");
    for message in &messages {
        match message["type"].as_str() {
            Some("log") => {
                assert!(["info", "warn", "error"].contains(&message["level"].as_str().unwrap_or_default()));
                assert!(message["message"].is_string(), "{message}");
            }
            Some("progress") => assert!(message["message"].is_string(), "{message}"),
            Some("ok") => assert!(message["result"].is_object(), "{message}"),
            Some("error") => {
                assert!(message["message"].is_string(), "{message}");
                assert!(message.get("retryable").is_none_or(Value::is_boolean), "{message}");
            }
            _ => panic!("not a protocol message: {message}"),
        }
    }
    let last = messages.last().unwrap();
    assert!(
        last["type"] == "ok" || last["type"] == "error",
        "the final message ends the answer: {stdout}"
    );
    Answer { messages, stderr }
}

/// A `run` request as the engine writes it; an undo has a key of its own.
fn request(kind: &str, params: Value, undo: Option<Value>) -> Value {
    let key = match undo {
        Some(_) => "20261203T061500Z-3f2a:switch_flag:undo",
        None => "20261203T061500Z-3f2a:switch_flag",
    };
    json!({
        "protocol": 1,
        "kind": kind,
        "params": params,
        "run_id": "20261203T061500Z-3f2a",
        "step_id": "switch_flag",
        "attempt": 1,
        "idempotency_key": key,
        "undo": undo.is_some(),
        "result": undo.unwrap_or(Value::Null),
    })
}

#[test]
fn the_plugins_describe_their_kinds_in_protocol_1() {
    for (name, kinds) in [("flags.py", vec!["get", "set"]), ("notes.sh", vec!["append"])] {
        let answer = describe(name);
        assert_eq!(answer["protocol"], 1, "{name}");
        let described: Vec<&str> = answer["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect();
        assert_eq!(described, kinds, "{name}");
        for kind in answer["kinds"].as_array().unwrap() {
            assert!(kind["summary"].as_str().is_some_and(|s| !s.is_empty()), "{kind}");
            assert!(kind["describe"].as_str().unwrap().contains("{{ params."), "{kind}");
            jsonschema::validator_for(&kind["params"]).expect("the parameters' schema compiles");
        }
    }
    let flags = describe("flags.py");
    assert_eq!(flags["kinds"][0]["read_only"], true, "flags.get only reads");
    assert_eq!(flags["kinds"][1]["undo"], true, "flags.set can undo");
    let set = jsonschema::validator_for(&flags["kinds"][1]["params"]).unwrap();
    assert!(set.is_valid(&json!({"api_url": "http://x", "flag": "f", "value": true, "api_key": "k"})));
    assert!(!set.is_valid(&json!({"api_url": "http://x", "flag": "f", "value": true, "colour": "red"})));
    assert_eq!(describe("notes.sh")["kinds"][0]["undo"], true);
}

#[test]
fn the_flags_plugin_sets_a_flag_and_its_undo_puts_back_the_value_it_had() {
    let service = StandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let params = json!({"api_url": service.url(), "flag": "checkout_v2", "value": false, "api_key": API_KEY});

    let read = run_plugin("flags.py", dir.path(), &request("get", params.clone(), None));
    assert_eq!(
        read.result(),
        &json!({"flag": "checkout_v2", "value": true, "status": 200})
    );

    let set = run_plugin("flags.py", dir.path(), &request("set", params.clone(), None));
    let result = set.result().clone();
    assert_eq!(
        result,
        json!({"flag": "checkout_v2", "previous": true, "value": false, "status": 200})
    );
    assert!(set.messages.iter().any(|m| m["type"] == "progress"));
    assert_eq!(set.logs(), ["flag checkout_v2 was true, now false"]);
    assert!(!flag(&service, "checkout_v2"));

    // A retried attempt (its first answer lost) reports the same `previous`.
    let retried = run_plugin("flags.py", dir.path(), &request("set", params.clone(), None));
    assert_eq!(retried.result(), &result);
    let writes = service.state().flag_writes;
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(
        writes[0].idempotency_key.as_deref(),
        Some("20261203T061500Z-3f2a:switch_flag")
    );

    let undo = run_plugin("flags.py", dir.path(), &request("set", params, Some(result)));
    assert_eq!(undo.result()["value"], true);
    assert!(flag(&service, "checkout_v2"), "back to the value it had");
    let puts = service.requests_to("/flags/checkout_v2");
    assert!(
        puts.iter()
            .filter(|r| r.method == "PUT")
            .all(|r| r.header("x-api-key") == Some(API_KEY))
    );
    assert!(!read.stderr.contains(API_KEY) && !set.stderr.contains(API_KEY));
}

#[test]
fn the_flags_plugin_says_a_refusal_cannot_be_retried_and_a_server_error_can() {
    let service = StandIn::start();
    let dir = tempfile::tempdir().unwrap();
    let set = |params: Value| run_plugin("flags.py", dir.path(), &request("set", params, None));
    let params =
        |flag: &str, key: &str| json!({"api_url": service.url(), "flag": flag, "value": false, "api_key": key});

    let refused = set(params("checkout_v2", "wrong-key"));
    assert_eq!(refused.last()["type"], "error");
    assert_eq!(refused.last()["retryable"], false, "{:?}", refused.last());
    assert_eq!(refused.last()["result"], json!({"flag": "checkout_v2", "status": 401}));
    assert!(refused.last()["message"].as_str().unwrap().contains("401"));
    let unknown = set(params("chekout_v2", API_KEY));
    assert_eq!(
        (&unknown.last()["retryable"], &unknown.last()["result"]["status"]),
        (&json!(false), &json!(404))
    );
    assert!(service.state().flags["checkout_v2"], "nothing changed");

    service.set(|state| {
        state.failures.insert("/flags/checkout_v2".into(), 503);
    });
    let unavailable = set(params("checkout_v2", API_KEY));
    assert_eq!(unavailable.last()["retryable"], true);
    assert_eq!(unavailable.last()["result"]["status"], 503);

    let gone = service.url().to_owned();
    drop(service);
    let unreachable = set(json!({"api_url": gone, "flag": "checkout_v2", "value": false}));
    assert_eq!(unreachable.last()["retryable"], true);
    assert!(
        unreachable.last()["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot reach")
    );

    let not_a_request = run_plugin("flags.py", dir.path(), &json!({"protocol": 2, "kind": "get"}));
    assert_eq!(not_a_request.last()["retryable"], false);
}

#[test]
fn the_notes_plugin_appends_once_reads_any_json_string_and_undoes_only_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("changes.log");
    std::fs::write(&log, "2026-01-01T00:00:00Z an earlier entry [other-run/note]").unwrap();
    // Every escape JSON has, a line break, and text beyond ASCII: read back
    // exactly, on one line.
    let message = "checkout_v2: true -> false \"quoted\" \\ back\\slash\ttab\nnext line, ünïcode 🚀 [x] {\"y\": 1}";
    let params = json!({"file": "changes.log", "message": message});
    let append = |params: &Value, key: &str| {
        let mut request = request("append", params.clone(), None);
        request["idempotency_key"] = json!(key);
        run_plugin("notes.sh", dir.path(), &request)
    };

    let first = append(&params, "run-1/note");
    assert_eq!(
        first.result(),
        &json!({"file": "changes.log", "key": "run-1/note", "appended": true}),
        "{}",
        first.stderr
    );
    let one_line = "checkout_v2: true -> false \"quoted\" \\ back\\slash tab next line, ünïcode 🚀 [x] {\"y\": 1}";
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "the earlier entry's line was ended first: {text:?}");
    assert!(lines[1].ends_with(&format!(" {one_line} [run-1/note]")), "{text:?}");

    // Pretty-printed, with every non-ASCII character escaped (`\u00fc`, and
    // the rocket as a surrogate pair): the same entry, so not appended again.
    let mut same = request("append", params.clone(), None);
    same["idempotency_key"] = json!("run-1/note");
    let escaped: String = serde_json::to_string_pretty(&same)
        .unwrap()
        .chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                c.encode_utf16(&mut [0; 2])
                    .iter()
                    .map(|u| format!("\\u{u:04x}"))
                    .collect()
            }
        })
        .collect();
    assert!(escaped.contains("\\ud83d\\ude80") && escaped.contains('\n'));
    let escaped = run_plugin_text("notes.sh", dir.path(), &escaped);
    assert_eq!(escaped.result()["appended"], false, "{:?}", escaped.messages);

    let retried = append(&params, "run-1/note");
    assert_eq!(retried.result()["appended"], false, "a retry does not append it twice");
    append(
        &json!({"file": "changes.log", "message": "search_beta: false -> true"}),
        "run-2/note",
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 3);

    let mut undo = request("append", params, Some(first.result().clone()));
    undo["idempotency_key"] = json!("run-1/note:undo");
    let undone = run_plugin("notes.sh", dir.path(), &undo);
    assert_eq!(undone.result()["removed"], 1);
    let left = std::fs::read_to_string(&log).unwrap();
    assert_eq!(left.lines().count(), 2, "{left}");
    assert!(left.starts_with("2026-01-01T00:00:00Z an earlier entry [other-run/note]\n"));
    assert!(
        left.lines()
            .nth(1)
            .unwrap()
            .ends_with(" search_beta: false -> true [run-2/note]")
    );
    let again = run_plugin("notes.sh", dir.path(), &undo);
    assert_eq!(again.result()["removed"], 0, "undoing twice removes nothing more");
}

#[test]
fn the_notes_plugin_fails_clearly_on_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let error = |request: Value| {
        let answer = run_plugin("notes.sh", dir.path(), &request);
        assert_eq!(answer.last()["type"], "error", "{:?}", answer.messages);
        assert_eq!(answer.last()["retryable"], false);
        answer.last()["message"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        error(request(
            "append",
            json!({"file": "no/such/dir/log", "message": "m"}),
            None
        )),
        "cannot append to no/such/dir/log: Directory nonexistent"
    );
    assert_eq!(
        error(request("append", json!({"file": 7, "message": "m"}), None)),
        "`file` must be a string that is not empty"
    );
    assert_eq!(
        error(request("prepend", json!({"file": "log", "message": "m"}), None)),
        "no kind `prepend`"
    );
    let mut newer = request("append", json!({"file": "log", "message": "m"}), None);
    newer["protocol"] = json!(2);
    assert_eq!(error(newer), "this plugin speaks protocol 1, not 2");
    assert!(!dir.path().join("log").exists(), "nothing was written");
}

// --- the example runbook, run by the real binary --------------------------

const RUNBOOK: &str = "feature-flag-failover.yaml";

/// A temporary folder and a stand-in service, for one run of the example.
struct Failover {
    dir: tempfile::TempDir,
    service: StandIn,
}

impl Failover {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            service: StandIn::start(),
        }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn change_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("changes.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `runbook ARGS` in the temporary folder, the runbook's inputs pointing
    /// at the stand-in and the change log in the folder.
    fn command(&self, args: &[&str], inputs: &[(&str, &str)]) -> Command {
        let mut command = support::command(self.dir.path(), args);
        command
            .env("RUNBOOK_API_KEY", API_KEY)
            .env("RUNBOOK_CACHE_DIR", self.path(".cache"))
            .env_remove("RUNBOOK_API_URL")
            .env_remove("RUNBOOK_FLAGS_URL");
        if args.first() == Some(&"run") {
            let log = self.path("changes.log");
            let mut all = vec![
                ("flags_url", self.service.url().to_owned()),
                ("api_url", self.service.url().to_owned()),
                ("change_log", log.to_str().unwrap().to_owned()),
                ("poll_interval", "50ms".to_owned()),
                ("wait_timeout", "400ms".to_owned()),
            ];
            for (name, value) in inputs {
                all.retain(|(n, _)| n != name);
                all.push((name, (*value).to_owned()));
            }
            for (name, value) in all {
                command.args(["--input", &format!("{name}={value}")]);
            }
        }
        command
    }

    /// `runbook run runbooks/feature-flag-failover.yaml --yes`, with its
    /// JSON report.
    fn run(&self, inputs: &[(&str, &str)]) -> (Outcome, Value) {
        let runbook = root().join("runbooks").join(RUNBOOK);
        let state = self.path(".runbook");
        let args = [
            "run",
            runbook.to_str().unwrap(),
            "--yes",
            "--state-dir",
            state.to_str().unwrap(),
            "--report",
            "report.json",
            "--report-format",
            "json",
        ];
        let output = self.command(&args, inputs).output().expect("the runbook binary runs");
        let outcome = outcome(&output);
        let report = std::fs::read_to_string(self.path("report.json"))
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        (outcome, report)
    }

    fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.path(".runbook/runs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

fn outcome(output: &std::process::Output) -> Outcome {
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn status<'a>(report: &'a Value, id: &str) -> &'a str {
    report["steps"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["id"] == id))
        .and_then(|s| s["status"].as_str())
        .unwrap_or_else(|| panic!("no step `{id}` in the report: {report:#}"))
}

#[test]
fn feature_flag_failover_switches_the_flag_notes_it_and_checks_health() {
    let failover = Failover::new();
    let (outcome, report) = failover.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());

    assert!(!flag(&failover.service, "checkout_v2"), "switched off");
    assert_eq!(
        flag_calls(&failover.service),
        calls(&[("GET", "/flags/checkout_v2"), ("PUT", "/flags/checkout_v2")])
    );
    let put = &puts(&failover.service)[0];
    assert_eq!(put.json, Some(json!({"value": false})));
    assert_eq!(put.header("x-api-key"), Some(API_KEY));
    let run_id = failover.run_ids().pop().unwrap();
    let key = put.header("idempotency-key").expect("the step's idempotency key");
    assert!(key.starts_with(&run_id) && key.contains("switch_flag"), "{key}");

    let log = failover.change_log();
    assert_eq!(log.len(), 1, "{log:?}");
    // `TIME MESSAGE [KEY]`, the step's idempotency key.
    let entry = format!(" checkout_v2: true -> false (failover, run {run_id}) [{run_id}");
    assert!(log[0].contains(&entry) && log[0].ends_with(']'), "{log:?}");
    for step in ["read_flag", "record_change", "switch_flag", "wait_healthy", "report"] {
        assert_eq!(status(&report, step), "succeeded", "{step}: {report:#}");
    }
    // What the plugins logged is the step's log; the key they were given never shows.
    assert!(
        outcome.stderr.contains("flag checkout_v2 was true, now false"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.transcript().contains(API_KEY));
    assert!(
        !std::fs::read_to_string(failover.path("report.json"))
            .unwrap()
            .contains(API_KEY)
    );
}

#[test]
fn feature_flag_failover_that_stays_unhealthy_sets_the_flag_back_through_the_plugin() {
    let failover = Failover::new();
    failover.service.set(|state| state.health = Health::Down);
    let (outcome, report) = failover.run(&[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());

    assert!(
        flag(&failover.service, "checkout_v2"),
        "the flag has its old value again"
    );
    assert_eq!(
        flag_calls(&failover.service),
        calls(&[
            ("GET", "/flags/checkout_v2"),
            ("PUT", "/flags/checkout_v2"),
            ("PUT", "/flags/checkout_v2"),
        ])
    );
    let (switch, undo) = (&puts(&failover.service)[0], &puts(&failover.service)[1]);
    assert_eq!(undo.json, Some(json!({"value": true})));
    // The undo is a change of its own, under a key of its own.
    assert_ne!(undo.header("idempotency-key"), switch.header("idempotency-key"));
    assert_eq!(failover.service.state().flag_writes.len(), 2);

    // The change log keeps the change and says it was undone: the step's own
    // rollback, a plugin step too, instead of the kind's undo.
    let log = failover.change_log();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[0].contains(" checkout_v2: true -> false (failover, "), "{log:?}");
    assert!(
        log[1].contains(" checkout_v2: back to true, the failover was rolled back "),
        "{log:?}"
    );
    assert_eq!(status(&report, "wait_healthy"), "failed", "{report:#}");
    for step in ["record_change", "switch_flag"] {
        assert_eq!(status(&report, step), "rolled_back", "{step}: {report:#}");
    }
    assert_eq!(report["status"], "failed", "{report:#}");
    assert!(!outcome.transcript().contains(API_KEY));
}

#[test]
fn feature_flag_failover_with_a_refused_key_changes_nothing_and_says_why() {
    let failover = Failover::new();
    failover.service.set(|state| state.api_key = "another-key".into());
    let (outcome, report) = failover.run(&[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert_eq!(status(&report, "switch_flag"), "failed", "{report:#}");
    assert!(
        outcome.stderr.contains("answered 401: missing or wrong `x-api-key`"),
        "{}",
        outcome.stderr
    );
    assert!(
        puts(&failover.service)
            .iter()
            .all(|r| r.header("x-api-key") == Some(API_KEY))
    );
    assert!(flag(&failover.service, "checkout_v2"));
    assert_eq!(failover.change_log().len(), 2, "noted, then noted as undone");
    assert!(!outcome.transcript().contains(API_KEY));
}

#[test]
fn a_refusal_the_plugin_says_cannot_be_retried_is_tried_once() {
    let failover = Failover::new();
    failover.service.set(|state| state.api_key = "another-key".into());
    let (outcome, _) = failover.run(&[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    // `switch_flag` may make three attempts, but the plugin said a retry
    // cannot help: one PUT.
    assert_eq!(
        flag_calls(&failover.service),
        calls(&[("GET", "/flags/checkout_v2"), ("PUT", "/flags/checkout_v2")]),
        "{}",
        outcome.transcript()
    );
}

#[test]
fn feature_flag_failover_of_a_flag_already_off_changes_nothing() {
    let failover = Failover::new();
    failover.service.set(|state| {
        state.flags.insert("checkout_v2".into(), false);
    });
    let (outcome, report) = failover.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert_eq!(flag_calls(&failover.service), calls(&[("GET", "/flags/checkout_v2")]));
    assert_eq!(status(&report, "switch_flag"), "skipped");
    assert!(failover.change_log().is_empty());
}

#[test]
fn feature_flag_failover_killed_midway_is_undone_later_from_its_journal() {
    let failover = Failover::new();
    failover.service.set(|state| state.health = Health::Down);
    let runbook = root().join("runbooks").join(RUNBOOK);
    let state = failover.path(".runbook");
    let args = [
        "run",
        runbook.to_str().unwrap(),
        "--yes",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    let mut child = failover
        .command(&args, &[("wait_timeout", "1m")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Waiting for health means the flag's change was journaled with its undo.
    let started = Instant::now();
    while failover.service.requests_to("/health").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never got to the health check"
        );
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!flag(&failover.service, "checkout_v2"), "still switched when it died");

    let run_id = failover.run_ids().pop().expect("the run has a journal");
    let rollback = failover
        .command(
            &["rollback", &run_id, "--yes", "--state-dir", state.to_str().unwrap()],
            &[],
        )
        .output()
        .unwrap();
    let rollback = outcome(&rollback);
    assert_eq!(rollback.code, Some(0), "{}", rollback.transcript());
    assert!(flag(&failover.service, "checkout_v2"), "set back by the plugin's undo");
    assert_eq!(failover.change_log().len(), 2, "{:?}", failover.change_log());

    // Rolling back again does nothing more.
    let again = outcome(
        &failover
            .command(
                &["rollback", &run_id, "--yes", "--state-dir", state.to_str().unwrap()],
                &[],
            )
            .output()
            .unwrap(),
    );
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert_eq!(puts(&failover.service).len(), 2);
}

#[test]
fn plan_shows_what_each_plugin_step_would_do() {
    let failover = Failover::new();
    let plan = outcome(
        &failover
            .command(&["plan", root().join("runbooks").join(RUNBOOK).to_str().unwrap()], &[])
            .output()
            .unwrap(),
    );
    assert_eq!(plan.code, Some(0), "{}", plan.transcript());
    for described in [
        "read flag checkout_v2 at http://127.0.0.1:8080",
        "append to ./flag-changes.log: checkout_v2: ",
        "set flag checkout_v2 to false at http://127.0.0.1:8080",
    ] {
        assert!(plan.stdout.contains(described), "`{described}` in:\n{}", plan.stdout);
    }
    assert!(failover.service.requests().is_empty(), "a plan calls nothing");
}

#[test]
fn a_notes_step_without_a_rollback_of_its_own_is_undone_by_the_plugin() {
    // The plugin found in the `plugins/` folder beside the runbook, undeclared.
    let sandbox = support::Sandbox::new(
        r#"
runbook: 1
name: notes-undo
steps:
  - id: note
    uses: notes.append
    with: { file: changes.log, message: "deploying {{ run.id }}" }
  - id: deploy
    uses: shell
    with: { run: "exit 4" }
"#,
    );
    std::fs::create_dir(sandbox.file("plugins")).unwrap();
    std::fs::copy(plugin("notes.sh"), sandbox.file("plugins/notes.sh")).unwrap();
    let cache = sandbox.file(".cache");
    let outcome = sandbox.runbook(
        &["run", "runbook.yaml"],
        &[("RUNBOOK_CACHE_DIR", cache.to_str().unwrap())],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert!(sandbox.file("changes.log").exists(), "the note was appended");
    assert_eq!(sandbox.read("changes.log"), "", "and removed by the undo");
}

#[test]
fn the_readmes_commands_work_from_the_repository_root() {
    let cache = tempfile::tempdir().unwrap();
    let cache = cache.path().to_str().unwrap();
    for command in [
        vec!["check", "runbooks/feature-flag-failover.yaml"],
        vec!["plan", "runbooks/feature-flag-failover.yaml"],
        vec!["plugins", "runbooks/feature-flag-failover.yaml"],
    ] {
        let outcome = support::runbook_in(&root(), &command, &[("RUNBOOK_CACHE_DIR", cache)]);
        assert_eq!(outcome.code, Some(0), "{command:?}: {}", outcome.transcript());
    }
}

#[test]
fn the_book_shows_the_files_it_describes() {
    for page in ["book/src/plugins.md", "book/src/runbooks/feature-flag-failover.md"] {
        let page = root().join(page);
        let text = std::fs::read_to_string(&page).unwrap();
        let included: Vec<&str> = text
            .split("{{#include ")
            .skip(1)
            .filter_map(|rest| rest.split_once("}}").map(|(path, _)| path))
            .collect();
        assert!(!included.is_empty(), "{}", page.display());
        for path in included {
            let file = page.parent().unwrap().join(path);
            assert!(file.is_file(), "{} includes {path}, which is not there", page.display());
        }
    }
}

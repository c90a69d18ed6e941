//! End-to-end tests of `runbook run`: the real binary, real processes, a
//! real HTTP server on 127.0.0.1, signals, and a pseudo-terminal for prompts.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::Sandbox;

#[test]
fn a_sequence_runs_in_order_and_outputs_flow_to_later_steps() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: sequence
steps:
  - id: first
    uses: shell
    with: { run: "echo one >> $SANDBOX/order; echo snap-42" }
    outputs: { snapshot: result.stdout }
  - id: second
    uses: shell
    with: { run: "echo two-{{ steps.first.outputs.snapshot }} >> $SANDBOX/order" }
  - id: third
    uses: shell
    with: { argv: [sh, -c, "echo three >> \"$SANDBOX/order\""] }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert_eq!(sandbox.read("order"), "one\ntwo-snap-42\nthree\n");
    assert!(outcome.stderr.contains("run succeeded"), "{}", outcome.stderr);
}

#[test]
fn parallel_branches_really_overlap() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: parallel
max_parallel: 2
steps:
  - id: left
    needs: []
    uses: shell
    with: { run: "date +%s.%N > $SANDBOX/left.start; sleep 0.6; date +%s.%N > $SANDBOX/left.end" }
  - id: right
    needs: []
    uses: shell
    with: { run: "date +%s.%N > $SANDBOX/right.start; sleep 0.6; date +%s.%N > $SANDBOX/right.end" }
  - id: join
    needs: [left, right]
    uses: shell
    with: { run: "date +%s.%N > $SANDBOX/join.start" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let time = |name: &str| sandbox.read(name).trim().parse::<f64>().unwrap();
    let (left, right) = (
        (time("left.start"), time("left.end")),
        (time("right.start"), time("right.end")),
    );
    assert!(
        left.0 < right.1 && right.0 < left.1,
        "the branches overlap in time: {left:?} {right:?}"
    );
    assert!(
        time("join.start") >= left.1.max(right.1),
        "the join waits for both branches"
    );
}

#[test]
fn a_false_guard_skips_the_step_and_it_counts_as_finished() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: guard
inputs:
  healthy: { type: boolean, default: true }
steps:
  - id: failover
    when: not inputs.healthy
    uses: shell
    with: { run: "touch $SANDBOX/failover" }
  - id: after
    uses: shell
    with: { run: "touch $SANDBOX/after" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.file("failover").exists());
    assert!(sandbox.file("after").exists());
    assert!(
        outcome
            .stderr
            .contains("○ failover skipped: `not inputs.healthy` is false (inputs.healthy = true)"),
        "{}",
        outcome.stderr
    );
    let outcome = sandbox.run(&["--input", "healthy=false"]);
    assert_eq!(outcome.code, Some(0));
    assert!(sandbox.file("failover").exists());
}

#[test]
fn a_failed_gate_rolls_back_in_reverse_order_of_completion() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: rollback
max_parallel: 4
steps:
  - id: slow
    needs: []
    uses: shell
    with: { run: "sleep 0.4; echo slow" }
    rollback: { uses: shell, with: { run: "echo undo-slow >> $SANDBOX/rollbacks" } }
  - id: fast
    needs: []
    uses: shell
    with: { run: "echo fast" }
    rollback: { uses: shell, with: { run: "echo undo-fast >> $SANDBOX/rollbacks" } }
  - id: no_undo
    needs: [slow, fast]
    uses: shell
    with: { run: "echo nothing to undo" }
  - id: health
    uses: shell
    with: { run: "echo '{\"status\": \"degraded\", \"blocks\": 0}'" }
    verify:
      - result.json.status == "ok"
    rollback: { uses: shell, with: { run: "echo undo-health >> $SANDBOX/rollbacks" } }
  - id: never
    uses: shell
    with: { run: "touch $SANDBOX/never" }
finally:
  - id: record
    uses: shell
    with: { run: "echo finally-{{ run.status }} >> $SANDBOX/rollbacks" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert_eq!(
        sandbox.read("rollbacks"),
        "undo-slow\nundo-fast\nfinally-failed\n",
        "{}",
        outcome.transcript()
    );
    assert!(!sandbox.file("never").exists());
    assert!(
        outcome.stderr.contains(
            r#"verification failed: `result.json.status == "ok"` is false (result.json.status = "degraded")"#
        ),
        "{}",
        outcome.stderr
    );
}

#[test]
fn retry_succeeds_on_the_third_attempt() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: retry
steps:
  - id: flaky
    uses: shell
    with: { run: "n=$(cat $SANDBOX/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $SANDBOX/count; test $n -ge 3" }
    retry: { attempts: 5, backoff: exponential, delay: 50ms, max_delay: 200ms }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert_eq!(sandbox.read("count").trim(), "3");
    assert_eq!(outcome.stderr.matches("↻ flaky").count(), 2, "{}", outcome.stderr);
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("");
        state != "Z"
    })
}

#[test]
fn a_timeout_kills_the_child_and_its_grandchildren() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: timeout
steps:
  - id: stuck
    uses: shell
    with: { run: "sleep 100 & echo $! >> $SANDBOX/pids; sh -c 'sleep 100' & echo $! >> $SANDBOX/pids; echo $$ >> $SANDBOX/pids; wait" }
    timeout: 1s
    rollback: { uses: shell, with: { run: "touch $SANDBOX/rolled_back" } }
"#,
    );
    let started = Instant::now();
    let outcome = sandbox.run(&["--grace", "1s"]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?}",
        started.elapsed()
    );
    assert!(outcome.stderr.contains("timed out after 1s"), "{}", outcome.stderr);
    let pids: Vec<u32> = sandbox
        .read("pids")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3);
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!alive(pid), "process {pid} outlived the step");
    }
}

#[test]
fn on_failure_continue_goes_on_and_finally_always_runs() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: continue
steps:
  - id: optional
    uses: shell
    with: { run: "exit 7" }
    on_failure: continue
  - id: depends_on_optional
    uses: shell
    with: { run: "echo {{ steps.optional.status }} > $SANDBOX/after" }
  - id: independent
    needs: []
    uses: shell
    with: { run: "touch $SANDBOX/independent" }
finally:
  - id: always
    uses: shell
    with: { run: "echo {{ run.status }} {{ steps.optional.status }} > $SANDBOX/finally" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(
        outcome.code,
        Some(1),
        "a failed step is reported even when the run goes on: {}",
        outcome.transcript()
    );
    assert!(sandbox.file("independent").exists());
    assert_eq!(
        sandbox.read("after").trim(),
        "failed",
        "the steps after a failed `continue` step run, and read its status"
    );
    assert_eq!(sandbox.read("finally").trim(), "failed_without_rollback failed");
    // The failure stays visible in the summary.
    assert!(
        outcome.stderr.contains("✗ optional") && outcome.stderr.contains("failed, not rolled back"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn values_templated_into_commands_cannot_inject() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: hostile
inputs:
  name: { default: "x" }
steps:
  - id: greet
    uses: shell
    with: { run: "echo hello {{ inputs.name }} > $SANDBOX/greeting" }
"#,
    );
    let hostile = "world; touch $SANDBOX/pwned; echo `touch $SANDBOX/pwned2` $(touch $SANDBOX/pwned3) 'quote";
    let outcome = sandbox.run(&["--input", &format!("name={hostile}")]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    for name in ["pwned", "pwned2", "pwned3"] {
        assert!(!sandbox.file(name).exists(), "the input injected a command");
    }
    assert_eq!(sandbox.read("greeting"), format!("hello {hostile}\n"));
}

const CONFIRMING: &str = r#"
runbook: 1
name: confirming
steps:
  - id: prepare
    uses: shell
    with: { run: "touch $SANDBOX/prepared" }
    rollback: { uses: shell, with: { run: "touch $SANDBOX/unprepared" } }
  - id: destroy
    confirm: "Really destroy the old state?"
    uses: shell
    with: { run: "touch $SANDBOX/destroyed" }
"#;

#[test]
fn without_a_terminal_a_run_that_needs_confirmation_refuses_to_start() {
    let sandbox = Sandbox::new(CONFIRMING);
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(!sandbox.file("prepared").exists(), "no step ran");
    assert!(
        outcome.stderr.contains("needs confirmation before step `destroy`"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("--yes"), "{}", outcome.stderr);
    let step_mode = sandbox.run(&["--step"]);
    assert_eq!(step_mode.code, Some(2), "{}", step_mode.transcript());
    assert!(
        step_mode.stderr.contains("`prepare`, `destroy`"),
        "{}",
        step_mode.stderr
    );
}

/// Confirmations behind guards: one that the inputs already rule out, one
/// that waits for a step's output.
const GUARDED_CONFIRMATIONS: &str = r#"
runbook: 1
name: guarded
inputs:
  production: { type: boolean, default: false }
steps:
  - id: check
    uses: shell
    with: { run: "echo ok" }
    outputs: { ok: "result.stdout | trim == 'ok'" }
  - id: failover
    when: "inputs.production and steps.check.outputs.ok"
    confirm: "Fail production over?"
    uses: shell
    with: { run: "touch $SANDBOX/failed_over" }
  - id: page
    when: "(inputs.production or not steps.check.outputs.ok) and inputs.production"
    confirm: "Page the on-call?"
    uses: shell
    with: { run: "touch $SANDBOX/paged" }
  - id: repair
    when: "inputs.production or not steps.check.outputs.ok"
    confirm: "Repair by hand?"
    uses: shell
    with: { run: "touch $SANDBOX/repaired" }
"#;

#[test]
fn without_a_terminal_a_confirmation_the_inputs_rule_out_is_not_named() {
    let sandbox = Sandbox::new(GUARDED_CONFIRMATIONS);
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    // `false and <unknown>` is false: `failover` and `page` can never ask.
    assert!(
        outcome.stderr.contains("needs confirmation before step `repair`, and"),
        "{}",
        outcome.stderr
    );
    let only_decided = GUARDED_CONFIRMATIONS.replace("inputs.production or not", "inputs.production and not");
    let sandbox = Sandbox::new(&only_decided);
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    for never in ["failed_over", "paged", "repaired"] {
        assert!(!sandbox.file(never).exists(), "{never}: {}", outcome.transcript());
    }
}

#[test]
fn yes_answers_every_confirmation() {
    let sandbox = Sandbox::new(CONFIRMING);
    let outcome = sandbox.run(&["--yes"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(sandbox.file("destroyed").exists());
}

#[test]
fn missing_secrets_and_inputs_stop_the_run_before_it_starts() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: secrets
inputs:
  target: { type: url }
secrets:
  token: { env: RUN_TEST_TOKEN_NOT_SET }
steps:
  - id: first
    uses: shell
    with: { run: "touch $SANDBOX/ran" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(
        outcome.stderr.contains("missing required input `target`"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("secret `token` is not set"),
        "{}",
        outcome.stderr
    );
    assert!(!sandbox.file("ran").exists());
}

#[test]
fn json_output_is_one_event_per_line() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: json
steps:
  - id: only
    uses: log
    with: { message: hello }
"#,
    );
    let outcome = sandbox.run(&["--output", "json"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let events: Vec<serde_json::Value> = outcome
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["run_started", "step_started", "log", "step_succeeded", "run_finished"]
    );
    assert_eq!(events[4]["status"], "succeeded");
}

#[test]
fn sigint_during_a_run_rolls_back_and_exits_130() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: interrupted
steps:
  - id: done_first
    uses: shell
    with: { run: "echo done" }
    rollback: { uses: shell, with: { run: "touch $SANDBOX/rolled_back" } }
  - id: long
    uses: shell
    with: { run: "echo $$ > $SANDBOX/long.pid; touch $SANDBOX/long.started; sleep 100" }
  - id: never
    uses: shell
    with: { run: "touch $SANDBOX/never" }
"#,
    );
    let mut child = sandbox
        .run_command(&["--grace", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !sandbox.file("long.started").exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the long step never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(sandbox.file("rolled_back").exists(), "{stderr}");
    assert!(!sandbox.file("never").exists());
    let pid: u32 = sandbox.read("long.pid").trim().parse().unwrap();
    assert!(!alive(pid), "the interrupted step's process is gone");
    assert!(stderr.contains("interrupted: SIGINT"), "{stderr}");
}

/// A small HTTP/1.1 server on 127.0.0.1 that answers by path.
fn serve(requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                headers.push(line.trim().to_string());
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body).unwrap();
            let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
            seen.push(format!("{} {}", request_line.trim(), String::from_utf8_lossy(&body)));
            let (status, body) = match path.as_str() {
                "/health" => ("200 OK", r#"{"ok": true, "version": "1.2"}"#),
                "/broken" => ("500 Internal Server Error", r#"{"error": "boom"}"#),
                "/slow" => {
                    std::thread::sleep(Duration::from_millis(1500));
                    ("200 OK", "{}")
                }
                _ => ("404 Not Found", "{}"),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nx-served-by: test\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        seen
    });
    (url, handle)
}

#[test]
fn http_steps_talk_to_a_real_server() {
    let (url, server) = serve(2);
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: http
inputs:
  api: { type: url }
steps:
  - id: health
    uses: http
    with: { url: "{{ inputs.api }}/health", headers: { x-api-key: k1 } }
    verify:
      - result.status == 200
      - result.json.ok
      - result.headers["x-served-by"] == "test"
    outputs: { version: result.json.version }
  - id: record
    uses: http
    with:
      method: POST
      url: "{{ inputs.api }}/health"
      json: { version: "{{ steps.health.outputs.version }}" }
"#,
    );
    let outcome = sandbox.run(&["--input", &format!("api={url}")]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let seen = server.join().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].starts_with("POST /health") && seen[1].contains(r#""version":"1.2""#),
        "{seen:?}"
    );
}

#[test]
fn http_failures_are_clear() {
    let (url, server) = serve(2);
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: http-failures
inputs:
  api: { type: url }
  dead: { type: url }
steps:
  - id: broken
    needs: []
    uses: http
    with: { url: "{{ inputs.api }}/broken" }
    on_failure: continue
  - id: slow
    needs: []
    uses: http
    with: { url: "{{ inputs.api }}/slow", timeout: 300ms }
    on_failure: continue
  - id: refused
    needs: []
    uses: http
    with: { url: "{{ inputs.dead }}/health" }
    on_failure: continue
"#,
    );
    let outcome = sandbox.run(&["--input", &format!("api={url}"), "--input", &format!("dead={dead}")]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert!(outcome.stderr.contains("500"), "{}", outcome.stderr);
    assert!(
        outcome.stderr.to_lowercase().contains("timed out"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("connection refused") || outcome.stderr.contains("cannot connect"),
        "{}",
        outcome.stderr
    );
    drop(server);
}

#[test]
fn retry_until_repeats_a_successful_step_until_its_result_is_right() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: until
steps:
  - id: poll
    uses: shell
    with: { run: "n=$(cat $SANDBOX/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > $SANDBOX/count; echo $n" }
    retry: { attempts: 5, backoff: fixed, delay: 20ms, until: "result.stdout == '3'" }
    outputs: { seen: result.stdout }
  - id: after
    uses: shell
    with: { run: "echo {{ steps.poll.outputs.seen }} > $SANDBOX/seen" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert_eq!(sandbox.read("seen").trim(), "3");
    assert!(
        outcome
            .stderr
            .contains("`result.stdout == '3'` is not true yet (result.stdout = \"1\")"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_failing_rollback_is_loud_and_the_others_still_run() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: rollback-fails
steps:
  - id: first
    uses: shell
    with: { run: "true" }
    rollback: { uses: shell, with: { run: "echo undo-first >> $SANDBOX/undo" } }
  - id: second
    uses: shell
    with: { run: "true" }
    rollback: { uses: shell, with: { run: "echo cannot undo >&2; exit 4" } }
  - id: third
    uses: shell
    with: { run: "exit 1" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(3), "a person is needed: {}", outcome.transcript());
    assert_eq!(sandbox.read("undo"), "undo-first\n", "the other rollback still ran");
    assert!(
        outcome.stderr.contains("rollback of second FAILED"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("ROLLBACK FAILED: a person must look at this"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_confirmation_on_a_step_the_inputs_skip_does_not_stop_an_unattended_run() {
    let sandbox = Sandbox::new(
        r#"
runbook: 1
name: branches
inputs:
  action: { type: enum, values: [snapshot, restore], default: snapshot }
steps:
  - id: snapshot
    when: inputs.action == 'snapshot'
    uses: shell
    with: { run: "touch $SANDBOX/snapshot" }
  - id: restore
    when: inputs.action == 'restore'
    confirm: "Restore?"
    uses: shell
    with: { run: "touch $SANDBOX/restore" }
"#,
    );
    let outcome = sandbox.run(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(sandbox.file("snapshot").exists());
    let refused = sandbox.run(&["--input", "action=restore"]);
    assert_eq!(refused.code, Some(2), "{}", refused.transcript());
    assert!(!sandbox.file("restore").exists());
}

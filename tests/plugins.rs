//! End-to-end tests of step plugins (issue 10): kinds in an executable that
//! speaks the plugin protocol, here small POSIX `sh` scripts written into
//! each test's folder and run by the real binary.
//!
//! A plugin that misbehaves at run time fails its step with a message that
//! names it, and the run rolls back as for any failure; what can be seen
//! before running is a `check` error on the `uses:` line; undo goes through
//! the protocol, at failure and later from the journal; secrets a plugin
//! echoes are masked everywhere; plugins are found declared, in `plugins/`
//! or on `PATH`, and their `describe` is cached.
//!
//! Every test has its own describe cache (`RUNBOOK_CACHE_DIR` in its
//! folder), and every process a test starts has the folder in its
//! environment: what is left when the test ends is killed.

#[path = "support/mod.rs"]
mod support;

use serde_json::{Value as Json, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Outcome, Sandbox, processes, running, wait_at_most};

/// The describe answer of the plugins that do not say otherwise: one kind,
/// `act`, that takes an optional string `value`.
const ACT: &str = r#"{"protocol":1,"kinds":[{"name":"act","summary":"Act on a value.","params":{"type":"object","properties":{"value":{"type":"string","description":"What to act on."}},"additionalProperties":false}}]}"#;

/// A plugin with the kind `set` that can undo, which records every request
/// it gets (`runs`, `undos`) and answers `run` with what it set and the
/// value before.
const FLAGS: &str = r#"{"protocol":1,"kinds":[{"name":"set","summary":"Set a feature flag.","params":{"type":"object","properties":{"flag":{"type":"string"},"value":{"type":"string"}},"required":["flag","value"],"additionalProperties":false},"undo":true,"describe":"set flag {{ params.flag }} to {{ params.value }}"}]}"#;

const FLAGS_RUN: &str = r#"
req=$(cat)
case "$req" in
  *'"undo":true'*)
    printf '%s\n' "$req" >> "$SANDBOX/undos"
    echo '{"type":"log","level":"info","message":"flag put back"}'
    echo '{"type":"ok","result":{}}' ;;
  *)
    printf '%s\n' "$req" >> "$SANDBOX/runs"
    echo '{"type":"ok","result":{"flag":"checkout","previous":"on"}}' ;;
esac
"#;

/// The script of a plugin: `describe` prints `describe`, `run` runs `run`.
fn script(describe: &str, run: &str) -> String {
    format!(
        "#!/bin/sh\nif [ \"$1\" = describe ]; then\n  cat <<'DESCRIBE'\n{describe}\nDESCRIBE\n  exit 0\nfi\n[ \"$1\" = run ] || exit 64\n{run}\n"
    )
}

/// A sandbox with its own describe cache, whose processes are killed when
/// it is dropped.
struct PluginSandbox {
    sandbox: Sandbox,
}

impl PluginSandbox {
    fn new(runbook: &str) -> Self {
        Self {
            sandbox: Sandbox::new(runbook),
        }
    }

    /// Writes an executable file at `path`, relative to the runbook.
    fn executable(&self, path: &str, text: &str) {
        let path = self.sandbox.file(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Writes the plugin `plugins/NAME.sh`: `ACT`'s kind, with `run`.
    fn plugin(&self, name: &str, run: &str) {
        self.executable(&format!("plugins/{name}.sh"), &script(ACT, run));
    }

    fn cache(&self) -> String {
        self.sandbox.file(".cache").display().to_string()
    }

    /// `runbook ARGS` in the sandbox, with its own cache and `env`.
    fn runbook_with(&self, args: &[&str], env: &[(&str, &str)]) -> Outcome {
        let cache = self.cache();
        let mut all = vec![("RUNBOOK_CACHE_DIR", cache.as_str())];
        all.extend_from_slice(env);
        self.sandbox.runbook(args, &all)
    }

    fn runbook(&self, args: &[&str]) -> Outcome {
        self.runbook_with(args, &[])
    }

    /// `runbook run runbook.yaml --output json ARGS`, and its events.
    fn run_json(&self, args: &[&str]) -> (Outcome, Vec<Json>) {
        let mut all = vec!["run", "runbook.yaml", "--output", "json", "--grace", "1s"];
        all.extend_from_slice(args);
        let outcome = self.runbook(&all);
        let events = outcome
            .stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\n{}", outcome.transcript())))
            .collect();
        (outcome, events)
    }

    /// `runbook run runbook.yaml ARGS`, started, not waited for.
    fn spawn_run(&self, args: &[&str]) -> Child {
        self.sandbox
            .run_command(args)
            .env("RUNBOOK_CACHE_DIR", self.cache())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn read(&self, name: &str) -> String {
        self.sandbox.read(name)
    }

    fn exists(&self, name: &str) -> bool {
        self.sandbox.file(name).exists()
    }

    fn last_run(&self) -> String {
        self.sandbox.run_ids().pop().expect("the run has a journal")
    }

    /// The requests a plugin recorded in `name`, one JSON object a line.
    fn requests(&self, name: &str) -> Vec<Json> {
        self.read(name)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    fn wait_for_file(&self, name: &str) {
        let started = Instant::now();
        while !self.exists(name) {
            assert!(started.elapsed() < Duration::from_secs(10), "{name} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The running processes with the sandbox in their environment.
    fn processes(&self) -> Vec<u32> {
        let mut entry = b"SANDBOX=".to_vec();
        entry.extend_from_slice(self.sandbox.path().as_os_str().as_encoded_bytes());
        processes()
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|environ| environ.split(|b| *b == 0).any(|item| item == entry))
            })
            .collect()
    }
}

impl Drop for PluginSandbox {
    fn drop(&mut self) {
        for pid in self.processes() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// The events named `name` for step `step`.
fn events_of<'a>(events: &'a [Json], name: &str, step: &str) -> Vec<&'a Json> {
    events
        .iter()
        .filter(|e| e["event"] == name && e["step"] == step)
        .collect()
}

// ---------------------------------------------------------------------------
// Misbehaving at run time: a step failure naming the plugin, and rollback.

/// A step that succeeds and rolls back by writing `rolled_back`, then the
/// step `call` that uses the plugin `bad`, with `extra` keys.
fn misbehaving_runbook(extra: &str) -> String {
    format!(
        r#"
runbook: 1
name: misbehaving
steps:
  - id: prepare
    uses: shell
    with: {{ run: 'touch "$SANDBOX/prepared"' }}
    rollback: {{ uses: shell, with: {{ run: 'touch "$SANDBOX/rolled_back"' }} }}
  - id: call
    uses: bad.act
    with: {{ value: x }}
{extra}"#
    )
}

/// Runs `misbehaving_runbook(extra)` with the plugin `bad` running `run`,
/// checks that the step `call` failed, the plugin was stopped (none of
/// them sleeps past 30 s), the run rolled back and failed, and `show`
/// tells the failure; returns the sandbox and the failure's message.
fn misbehaves(run: &str, extra: &str) -> (PluginSandbox, String) {
    let sandbox = PluginSandbox::new(&misbehaving_runbook(extra));
    sandbox.plugin("bad", &format!("echo $$ >> \"$SANDBOX/plugin.pids\"\n{run}"));
    let started = Instant::now();
    let (outcome, events) = sandbox.run_json(&[]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the plugin was not stopped at once: {:?}\n{}",
        started.elapsed(),
        outcome.transcript()
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    let pids = sandbox.read("plugin.pids");
    assert!(!pids.is_empty(), "the plugin never ran: {}", outcome.transcript());
    for pid in pids.lines() {
        let pid: u32 = pid.parse().unwrap();
        assert!(!running(pid), "the plugin {pid} outlived its step");
    }
    assert!(sandbox.exists("prepared"), "{}", outcome.transcript());
    assert!(
        sandbox.exists("rolled_back"),
        "the earlier step was not rolled back: {}",
        outcome.transcript()
    );
    assert_eq!(
        events_of(&events, "rollback_succeeded", "prepare").len(),
        1,
        "{}",
        outcome.stdout
    );
    let failed = events_of(&events, "step_failed", "call");
    assert_eq!(failed.len(), 1, "{}", outcome.stdout);
    let error = failed[0]["error"].as_str().unwrap().to_string();
    let finished = events.last().unwrap();
    assert_eq!(finished["event"], "run_finished", "{}", outcome.stdout);
    assert_eq!(finished["status"], "failed", "{}", outcome.stdout);
    assert_eq!(
        finished["summary"]["rolled_back"],
        json!(["prepare"]),
        "{}",
        outcome.stdout
    );
    let shown = sandbox.runbook(&["show", &sandbox.last_run()]);
    assert_eq!(shown.code, Some(0), "{}", shown.transcript());
    let first_line = error.lines().next().unwrap();
    assert!(
        shown.stdout.contains(first_line),
        "`show` does not tell `{first_line}`: {}",
        shown.transcript()
    );
    (sandbox, error)
}

#[test]
fn a_plugin_that_crashes_fails_its_step_with_the_end_of_its_stderr() {
    let (_sandbox, error) = misbehaves(
        "cat > /dev/null\necho 'connecting to the flag service' >&2\necho 'panic: the flag service is on fire' >&2\nexit 3",
        "",
    );
    assert_eq!(
        error,
        "plugin `bad` (plugins/bad.sh) exited with code 3 without a final message (`ok` or `error`); its stderr ends: panic: the flag service is on fire"
    );
}

#[test]
fn a_plugin_that_prints_garbage_is_stopped() {
    let (_sandbox, error) = misbehaves("cat > /dev/null\necho 'hello, engine'\nsleep 30", "");
    assert_eq!(
        error,
        "plugin `bad` (plugins/bad.sh) printed a line that is not a protocol message (expected value at line 1 column 1): `hello, engine`"
    );
}

#[test]
fn a_plugin_that_prints_a_line_longer_than_a_mebibyte_is_stopped_at_once() {
    let (_sandbox, error) = misbehaves(
        "cat > /dev/null\nhead -c 1100000 /dev/zero | tr '\\0' x\nsleep 30\necho",
        "",
    );
    assert_eq!(error, "plugin `bad` (plugins/bad.sh) printed a line longer than 1 MiB");
}

#[test]
fn a_plugin_that_prints_nothing_and_exits_0_fails_its_step() {
    let (_sandbox, error) = misbehaves("cat > /dev/null\nexit 0", "");
    assert_eq!(
        error,
        "plugin `bad` (plugins/bad.sh) exited without a final message (`ok` or `error`)"
    );
}

#[test]
fn a_plugin_that_logs_and_exits_0_without_a_final_message_fails_its_step() {
    let (_sandbox, error) = misbehaves(
        "cat > /dev/null\necho '{\"type\":\"log\",\"level\":\"info\",\"message\":\"setting the flag\"}'\nexit 0",
        "",
    );
    assert_eq!(
        error,
        "plugin `bad` (plugins/bad.sh) exited without a final message (`ok` or `error`)"
    );
}

#[test]
fn a_plugin_that_sends_two_final_messages_fails_its_step() {
    let (_sandbox, error) = misbehaves(
        "cat > /dev/null\necho '{\"type\":\"ok\",\"result\":{\"n\":1}}'\necho '{\"type\":\"error\",\"message\":\"no\"}'\nsleep 30",
        "",
    );
    assert_eq!(error, "plugin `bad` (plugins/bad.sh) sent a second final message");
}

#[test]
fn a_plugin_that_lingers_after_its_final_message_is_stopped_and_its_step_stands() {
    let sandbox = PluginSandbox::new(&misbehaving_runbook(""));
    sandbox.plugin(
        "bad",
        "cat > /dev/null\necho $$ > \"$SANDBOX/plugin.pid\"\necho '{\"type\":\"ok\",\"result\":{\"done\":true}}'\nsleep 30",
    );
    let started = Instant::now();
    let (outcome, events) = sandbox.run_json(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    assert_eq!(
        events_of(&events, "step_succeeded", "call").len(),
        1,
        "{}",
        outcome.stdout
    );
    let pid: u32 = sandbox.read("plugin.pid").trim().parse().unwrap();
    assert!(!running(pid), "the plugin {pid} outlived its step");
}

#[test]
fn a_plugin_that_hangs_is_stopped_with_everything_it_started() {
    // Two loops with the marker among their arguments: one in the plugin's
    // group, one that left its session.
    let (sandbox, error) = misbehaves(
        r#"cat > /dev/null
L='while :; do sleep 1; done'
sh -c "$L" "$SANDBOX/linger" & echo $! >> "$SANDBOX/pids"
setsid sh -c "$L" "$SANDBOX/linger" & echo $! >> "$SANDBOX/pids"
echo $$ >> "$SANDBOX/pids"
echo '{"type":"progress","message":"waiting for every region"}'
echo 'waiting for the lock on /var/lib/flags' >&2
sleep 300"#,
        "    timeout: 1s\n",
    );
    // The executor's words for any kind that runs past its timeout; the
    // failure's detail names the plugin it stopped.
    assert_eq!(error, "timed out after 1s");
    // What it said on stderr tells why, as for a `shell` step.
    let shown = sandbox.runbook(&["show", &sandbox.last_run()]);
    assert!(
        shown.stdout.contains(
            "timed out after 1s — plugin `bad` (plugins/bad.sh) was stopped; last stderr: waiting for the lock on /var/lib/flags"
        ),
        "{}",
        shown.transcript()
    );
    let marker = sandbox.sandbox.file("linger");
    let marker = marker.as_os_str().as_encoded_bytes();
    let pids: Vec<u32> = sandbox
        .read("pids")
        .lines()
        .map(|line| line.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "the plugin did not start its children");
    let started = Instant::now();
    loop {
        let left: Vec<u32> = processes()
            .filter(|&pid| {
                pids.contains(&pid)
                    || std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == marker))
            })
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{left:?} outlived the step that timed out"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The plugin `bad` goes away while the run runs, after `check` passed:
/// its step fails to start it, and the run rolls back.
fn plugin_gone_during_the_run(how: &str) -> String {
    let sandbox = PluginSandbox::new(&misbehaving_runbook("").replace(
        "touch \"$SANDBOX/prepared\"",
        &format!("touch \"$SANDBOX/prepared\"; {how} \"$SANDBOX/plugins/bad.sh\""),
    ));
    sandbox.plugin(
        "bad",
        "echo ran > \"$SANDBOX/ran\"\necho '{\"type\":\"ok\",\"result\":{}}'",
    );
    let check = sandbox.runbook(&["check", "runbook.yaml"]);
    assert_eq!(check.code, Some(0), "{}", check.transcript());
    let (outcome, events) = sandbox.run_json(&[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert!(sandbox.exists("rolled_back"), "{}", outcome.transcript());
    assert!(!sandbox.exists("ran"));
    let failed = events_of(&events, "step_failed", "call");
    assert_eq!(failed.len(), 1, "{}", outcome.stdout);
    failed[0]["error"].as_str().unwrap().to_string()
}

#[test]
fn a_plugin_deleted_after_check_fails_its_step_at_start() {
    assert_eq!(
        plugin_gone_during_the_run("rm"),
        "plugin `bad` (plugins/bad.sh) cannot be started: no such file or directory"
    );
}

#[test]
fn a_plugin_made_not_executable_after_check_fails_its_step_at_start() {
    assert_eq!(
        plugin_gone_during_the_run("chmod a-x"),
        "plugin `bad` (plugins/bad.sh) cannot be started: permission denied"
    );
}

#[test]
fn a_plugin_gone_before_the_run_stops_it_before_anything_runs() {
    let sandbox = PluginSandbox::new(&misbehaving_runbook(""));
    sandbox.plugin("bad", "echo '{\"type\":\"ok\",\"result\":{}}'");
    assert_eq!(sandbox.runbook(&["check", "runbook.yaml"]).code, Some(0));
    std::fs::remove_file(sandbox.sandbox.file("plugins/bad.sh")).unwrap();
    let outcome = sandbox.runbook(&["run", "runbook.yaml"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(
        outcome.stderr.contains("no plugin `bad` is found"),
        "{}",
        outcome.transcript()
    );
    assert!(!sandbox.exists("prepared"), "nothing runs");
}

/// Counts its runs in `runs` and records its requests in `requests`.
const COUNTED: &str = r#"req=$(cat)
echo run >> "$SANDBOX/runs"
printf '%s\n' "$req" >> "$SANDBOX/requests"
"#;

#[test]
fn an_error_that_says_a_retry_cannot_help_is_not_retried() {
    let (sandbox, error) = misbehaves(
        &format!(
            "{COUNTED}echo '{{\"type\":\"error\",\"message\":\"flag `checkout` does not exist\",\"retryable\":false}}'"
        ),
        "    retry: { attempts: 3, delay: 10ms }\n",
    );
    assert_eq!(error, "flag `checkout` does not exist");
    assert_eq!(sandbox.read("runs"), "run\n", "the plugin ran once");
}

#[test]
fn a_retryable_error_is_retried_with_the_same_idempotency_key() {
    let sandbox = PluginSandbox::new(&misbehaving_runbook(
        "    retry: { attempts: 3, delay: 10ms }\n    outputs: { attempt: result.attempt }\n",
    ));
    sandbox.plugin(
        "bad",
        &format!(
            r#"{COUNTED}case "$req" in
  *'"attempt":3'*) echo '{{"type":"ok","result":{{"attempt":3}}}}' ;;
  *) echo '{{"type":"error","message":"the flag service is busy","result":{{"busy":true}}}}' ;;
esac"#
        ),
    );
    let (outcome, events) = sandbox.run_json(&[]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert!(!sandbox.exists("rolled_back"));
    let retrying = events_of(&events, "step_retrying", "call");
    assert_eq!(retrying.len(), 2, "{}", outcome.stdout);
    assert_eq!(retrying[0]["error"], "the flag service is busy");
    let succeeded = events_of(&events, "step_succeeded", "call");
    assert_eq!(succeeded[0]["outputs"], json!({"attempt": 3}), "{}", outcome.stdout);
    let requests = sandbox.requests("requests");
    let attempts: Vec<&Json> = requests.iter().map(|r| &r["attempt"]).collect();
    assert_eq!(attempts, [1, 2, 3]);
    let run = sandbox.last_run();
    for request in &requests {
        assert_eq!(request["idempotency_key"], requests[0]["idempotency_key"]);
        assert_eq!(request["run_id"], run.as_str());
        assert_eq!(request["step_id"], "call");
        assert_eq!(request["kind"], "act");
        assert_eq!(request["params"], json!({"value": "x"}));
        assert_eq!(request["undo"], false);
    }
}

// ---------------------------------------------------------------------------
// What can be seen before running: `check` errors on the `uses:` line.

const CHECKED: &str = r#"runbook: 1
name: checked
steps:
  - id: notify
    uses: log
    with: { message: starting }
  - id: call
    uses: bad.act
    with: { value: x }
"#;

/// `check` of `runbook` (with `prepare` done to its sandbox) fails, says so
/// on stderr only, naming the plugin on the `uses:` line; the transcript.
fn check_fails(runbook: &str, prepare: impl FnOnce(&PluginSandbox)) -> String {
    let sandbox = PluginSandbox::new(runbook);
    prepare(&sandbox);
    let outcome = sandbox.runbook(&["check", "runbook.yaml"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(outcome.stdout.is_empty(), "{}", outcome.transcript());
    assert!(outcome.stderr.contains("plugin `bad`"), "{}", outcome.transcript());
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.ends_with("│     uses: bad.act") || l.ends_with("│     uses: bad.akt"));
    assert!(
        at.is_some_and(|at| lines[at + 1].contains("·           ──")),
        "not underlined on the `uses:` line: {}",
        outcome.transcript()
    );
    outcome.transcript()
}

#[test]
fn check_refuses_a_missing_plugin() {
    insta::assert_snapshot!("check_missing", check_fails(CHECKED, |_| {}));
}

#[test]
fn check_refuses_a_declared_plugin_that_is_missing() {
    let runbook = CHECKED.replace("steps:", "plugins:\n  bad: tools/bad.sh\nsteps:");
    let transcript = check_fails(&runbook, |_| {});
    assert!(
        transcript.contains("plugin `bad` (tools/bad.sh) is missing"),
        "{transcript}"
    );
}

#[test]
fn check_refuses_a_plugin_that_is_not_executable() {
    insta::assert_snapshot!(
        "check_not_executable",
        check_fails(CHECKED, |sandbox| {
            sandbox.plugin("bad", "");
            let path = sandbox.sandbox.file("plugins/bad.sh");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        })
    );
}

#[test]
fn check_refuses_a_plugin_whose_describe_fails() {
    insta::assert_snapshot!(
        "check_describe_fails",
        check_fails(CHECKED, |sandbox| {
            sandbox.executable(
                "plugins/bad.sh",
                "#!/bin/sh\necho 'loading config' >&2\necho 'error: ~/.flags.toml: no such file' >&2\nexit 1\n",
            );
        })
    );
}

#[test]
fn check_refuses_a_plugin_whose_describe_hangs_and_stops_it() {
    let sandbox = PluginSandbox::new(CHECKED);
    let marker = format!("runbook-describe-hang-{:08x}", std::process::id());
    sandbox.executable(
        "plugins/bad.sh",
        &format!("#!/bin/sh\nsh -c 'sleep 60' {marker} &\nsleep 60\n"),
    );
    let started = std::time::Instant::now();
    let outcome = sandbox.runbook_with(
        &["check", "runbook.yaml"],
        &[("RUNBOOK_PLUGIN_DESCRIBE_TIMEOUT", "500ms")],
    );
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(
        outcome
            .stderr
            .contains("plugin `bad` (plugins/bad.sh) did not answer `describe` within 500ms and was stopped"),
        "{}",
        outcome.transcript()
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let left: Vec<u32> = processes()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        })
        .collect();
    assert!(left.is_empty(), "describe left {left:?} running");
}

#[test]
fn check_refuses_a_plugin_whose_describe_is_garbage() {
    insta::assert_snapshot!(
        "check_describe_garbage",
        check_fails(CHECKED, |sandbox| {
            sandbox.executable("plugins/bad.sh", "#!/bin/sh\necho 'usage: bad [--verbose]'\n");
        })
    );
}

#[test]
fn check_refuses_a_plugin_that_speaks_protocol_version_2() {
    insta::assert_snapshot!(
        "check_protocol_2",
        check_fails(CHECKED, |sandbox| {
            sandbox.executable(
                "plugins/bad.sh",
                &script(&ACT.replace(r#""protocol":1"#, r#""protocol":2"#), ""),
            );
        })
    );
}

#[test]
fn check_refuses_a_kind_the_plugin_does_not_have_and_suggests_one() {
    insta::assert_snapshot!(
        "check_unknown_kind",
        check_fails(&CHECKED.replace("bad.act", "bad.akt"), |sandbox| {
            sandbox.plugin("bad", "");
        })
    );
}

#[test]
fn check_validates_a_plugin_kinds_parameters_against_its_schema() {
    let sandbox = PluginSandbox::new(&CHECKED.replace("{ value: x }", "{ value: 3, valeu: x }"));
    sandbox.plugin("bad", "");
    let outcome = sandbox.runbook(&["check", "runbook.yaml"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    insta::assert_snapshot!("check_bad_parameters", outcome.transcript());
}

#[test]
fn a_run_refuses_what_check_refuses_before_anything_runs() {
    let sandbox = PluginSandbox::new(&misbehaving_runbook(""));
    sandbox.executable(
        "plugins/bad.sh",
        &script(&ACT.replace(r#""protocol":1"#, r#""protocol":2"#), ""),
    );
    let outcome = sandbox.runbook(&["run", "runbook.yaml"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    assert!(
        outcome.stderr.contains("speaks protocol version 2"),
        "{}",
        outcome.transcript()
    );
    assert!(!sandbox.exists("prepared"), "nothing runs");
}

// ---------------------------------------------------------------------------
// Undo through the protocol.

const UNDOABLE: &str = r#"
runbook: 1
name: undoable
steps:
  - id: flip
    uses: flags.set
    with: { flag: checkout, value: "off" }
  - id: flip_own
    uses: flags.set
    with: { flag: search, value: "off" }
    rollback: { uses: shell, with: { run: 'touch "$SANDBOX/own_rollback"' } }
  - id: later
    uses: shell
    with: { run: 'touch "$SANDBOX/holding"; if [ -e "$SANDBOX/hold" ]; then sleep 300; fi; exit 1' }
"#;

fn undoable() -> PluginSandbox {
    let sandbox = PluginSandbox::new(UNDOABLE);
    sandbox.executable("plugins/flags.sh", &script(FLAGS, FLAGS_RUN));
    sandbox
}

/// The one undo request recorded: of the step `flip`, with its parameters
/// and result, in run `run`.
fn assert_undid_flip(sandbox: &PluginSandbox, run: &str) {
    let undos = sandbox.requests("undos");
    assert_eq!(undos.len(), 1, "only `flip` is undone through the plugin: {undos:?}");
    let undo = &undos[0];
    assert_eq!(undo["protocol"], 1);
    assert_eq!(undo["kind"], "set");
    assert_eq!(undo["undo"], true);
    assert_eq!(undo["step_id"], "flip");
    assert_eq!(undo["run_id"], run);
    assert_eq!(undo["params"], json!({"flag": "checkout", "value": "off"}));
    assert_eq!(undo["result"], json!({"flag": "checkout", "previous": "on"}));
    let runs = sandbox.requests("runs");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["undo"], false);
    assert_eq!(runs[0]["result"], Json::Null);
    // The undo is an action of its own, with a key of its own.
    assert_eq!(undo["idempotency_key"], format!("{run}:flip:undo"));
    assert_eq!(runs[0]["idempotency_key"], format!("{run}:flip"));
    assert!(sandbox.exists("own_rollback"), "the step's own rollback ran");
}

#[test]
fn a_failed_run_undoes_a_plugin_step_through_the_plugin() {
    let sandbox = undoable();
    let plan = sandbox.runbook(&["plan", "runbook.yaml"]);
    assert!(
        plan.stdout.contains("set flag checkout to off") && plan.stdout.contains("undo it through plugin `flags`"),
        "{}",
        plan.transcript()
    );
    let (outcome, events) = sandbox.run_json(&[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    assert_undid_flip(&sandbox, &sandbox.last_run());
    assert_eq!(
        events_of(&events, "rollback_succeeded", "flip").len(),
        1,
        "{}",
        outcome.stdout
    );
    let logged = events_of(&events, "log", "flip");
    assert!(
        logged.iter().any(|e| e["message"] == "flag put back"),
        "the undo's log is the step's: {}",
        outcome.stdout
    );
}

#[test]
fn a_run_killed_midway_is_undone_through_the_plugin_by_a_later_rollback() {
    let sandbox = undoable();
    std::fs::write(sandbox.sandbox.file("hold"), "").unwrap();
    let mut runbook = sandbox.spawn_run(&[]);
    sandbox.wait_for_file("holding");
    runbook.kill().unwrap();
    assert_eq!(wait_at_most(&mut runbook, Duration::from_secs(5)), None);
    assert_eq!(sandbox.read("undos"), "", "nothing was undone yet");
    let run = sandbox.last_run();
    let rollback = sandbox.runbook(&["rollback", &run, "--yes", "--grace", "1s"]);
    assert_eq!(rollback.code, Some(0), "{}", rollback.transcript());
    assert_undid_flip(&sandbox, &run);
    let again = sandbox.runbook(&["rollback", &run, "--yes"]);
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert_eq!(sandbox.requests("undos").len(), 1, "undone once");
}

// ---------------------------------------------------------------------------
// Secrets.

const SECRET: &str = "hunter2-Zq9xK";

/// The secret the plugin makes and marks secret in its result.
const MADE: &str = "session-Pw4vL7";

const SECRETIVE: &str = r#"
runbook: 1
name: secretive
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: login
    uses: echo.act
    with: { value: "{{ secrets.token }}" }
    outputs: { session: result.session }
  - id: use_session
    uses: shell
    with: { run: 'echo "the session is {{ steps.login.outputs.session }}"' }
  - id: echo_session
    uses: echo.act
    with: { value: "{{ steps.login.outputs.session }}" }
  - id: refuse
    uses: echo.act
    with: { value: "fail {{ secrets.token }}" }
    on_failure: continue
"#;

/// Echoes the `value` it was given everywhere it can, and makes a session
/// (`MADE`, built at run time so that this file does not hold it) that it
/// marks secret; with a value that starts with `fail`, it fails saying it.
const ECHO: &str = r#"req=$(cat)
v=$(printf '%s' "$req" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p')
printf '%s\n' "$v" >> "$SANDBOX/received"
echo "{\"type\":\"log\",\"level\":\"warn\",\"message\":\"got $v\"}"
echo "{\"type\":\"progress\",\"message\":\"using $v\",\"done\":1,\"total\":2}"
echo "stderr says $v" >&2
s="session-Pw4""vL7"
case "$v" in
  fail*) echo "{\"type\":\"error\",\"message\":\"refused $v\",\"retryable\":false,\"result\":{\"tried\":\"$v\"}}" ;;
  *) echo "{\"type\":\"ok\",\"result\":{\"echo\":\"$v\",\"session\":\"$s\"},\"secrets\":[\"$s\"]}" ;;
esac
"#;

/// Every file under `dir`, as text.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

#[test]
fn secrets_a_plugin_echoes_or_makes_are_masked_everywhere() {
    let sandbox = PluginSandbox::new(SECRETIVE);
    sandbox.plugin("echo", ECHO);
    let env = [("TEST_TOKEN", SECRET)];
    let text = sandbox.runbook_with(&["run", "runbook.yaml", "-v"], &env);
    let json = sandbox.runbook_with(&["run", "runbook.yaml", "--output", "json"], &env);
    for outcome in [&text, &json] {
        // `refuse` failed, and the run went on without rolling back.
        assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    }
    // The plugin was given the real values, which makes the rest mean something.
    let received = sandbox.read("received");
    let once = format!("{SECRET}\n{MADE}\nfail {SECRET}\n");
    assert_eq!(received, once.repeat(2));
    let mut places = vec![
        ("the run".to_string(), text.transcript()),
        ("the run's JSON events".to_string(), json.transcript()),
    ];
    for run in sandbox.sandbox.run_ids() {
        places.push((format!("show {run}"), sandbox.runbook(&["show", &run]).transcript()));
        places.push((
            format!("show {run} as JSON"),
            sandbox.runbook(&["show", &run, "--format", "json"]).transcript(),
        ));
    }
    places.extend(files(&sandbox.sandbox.state()));
    for (place, shown) in &places {
        for secret in [SECRET, MADE] {
            assert!(!shown.contains(secret), "`{secret}` shows in {place}:\n{shown}");
        }
    }
    // What was masked is still there, masked.
    let events: Vec<Json> = json.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let said = |step: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["step"] == step && (e["event"] == "log" || e["event"] == "step_output"))
            .map(|e| {
                e["message"]
                    .as_str()
                    .or(e["line"].as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    for step in ["login", "echo_session"] {
        let said = said(step);
        for line in ["got ***", "using *** (1/2)", "stderr says ***"] {
            assert!(said.iter().any(|s| s == line), "{step} did not say `{line}`: {said:?}");
        }
    }
    assert!(
        said("use_session").iter().any(|s| s == "the session is ***"),
        "{}",
        json.stdout
    );
    let refused = events_of(&events, "step_failed", "refuse");
    assert_eq!(refused[0]["error"], "refused fail ***", "{}", json.stdout);
}

// ---------------------------------------------------------------------------
// Discovery, `runbook plugins`, `runbook schema`, the describe cache.

const EVERYWHERE: &str = r#"
runbook: 1
name: everywhere
plugins:
  declared: tools/declared.sh
steps:
  - id: a
    uses: declared.act
  - id: b
    uses: folder.act
  - id: c
    uses: onpath.act
  - id: d
    uses: both.act
"#;

/// Answers `ok`, saying which file it is in `said`.
fn saying(who: &str) -> String {
    script(
        ACT,
        &format!("cat > /dev/null\necho {who} >> \"$SANDBOX/said\"\necho '{{\"type\":\"ok\",\"result\":{{}}}}'"),
    )
}

/// Plugins declared, in the folder and on `PATH` (`both` in the folder and
/// on `PATH`); the `PATH` to run with.
fn everywhere() -> (PluginSandbox, String) {
    let sandbox = PluginSandbox::new(EVERYWHERE);
    sandbox.executable("tools/declared.sh", &saying("declared"));
    sandbox.executable("plugins/folder.sh", &saying("folder"));
    sandbox.executable("bin/runbook-plugin-onpath", &saying("onpath"));
    sandbox.executable("plugins/both", &saying("both-in-folder"));
    sandbox.executable("bin/runbook-plugin-both", &saying("both-on-path"));
    // One on PATH that is not executable is passed over.
    sandbox.executable("bin0/runbook-plugin-onpath", &saying("not executable"));
    let passed_over = sandbox.sandbox.file("bin0/runbook-plugin-onpath");
    std::fs::set_permissions(passed_over, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = format!(
        "{}:{}:{}",
        sandbox.sandbox.file("bin0").display(),
        sandbox.sandbox.file("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (sandbox, path)
}

#[test]
fn plugins_are_found_declared_in_the_folder_and_on_path() {
    let (sandbox, path) = everywhere();
    let outcome = sandbox.runbook_with(&["run", "runbook.yaml"], &[("PATH", &path)]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert_eq!(sandbox.read("said"), "declared\nfolder\nonpath\nboth-in-folder\n");
    // Without the folder on PATH, `onpath` is not found.
    let without = sandbox.runbook(&["check", "runbook.yaml"]);
    assert_eq!(without.code, Some(2), "{}", without.transcript());
    assert!(
        without.stderr.contains("no plugin `onpath` is found"),
        "{}",
        without.transcript()
    );
}

#[test]
fn runbook_plugins_lists_what_was_found_and_from_where() {
    let (sandbox, path) = everywhere();
    let outcome = sandbox.runbook_with(&["plugins", "runbook.yaml"], &[("PATH", &path)]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let bin = sandbox.sandbox.file("bin").display().to_string();
    insta::assert_snapshot!("plugins_listing", outcome.transcript().replace(&bin, "[BIN]"));
}

#[test]
fn runbook_plugins_says_why_a_plugin_cannot_be_used() {
    let sandbox = PluginSandbox::new(CHECKED);
    sandbox.executable("plugins/bad.sh", "#!/bin/sh\nexit 1\n");
    sandbox.executable("plugins/flags.sh", &script(FLAGS, FLAGS_RUN));
    let outcome = sandbox.runbook(&["plugins", "runbook.yaml"]);
    assert_eq!(outcome.code, Some(2), "{}", outcome.transcript());
    insta::assert_snapshot!("plugins_listing_unusable", outcome.transcript());
}

#[test]
fn runbook_schema_includes_a_runbooks_plugin_kinds() {
    let sandbox = PluginSandbox::new(UNDOABLE);
    sandbox.executable("plugins/flags.sh", &script(FLAGS, FLAGS_RUN));
    let outcome = sandbox.runbook(&["schema", "runbook.yaml"]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    let schema: Json = serde_json::from_str(&outcome.stdout).unwrap();
    let kinds = &schema["$defs"]["KindParams"];
    let branch = kinds["allOf"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["if"]["properties"]["uses"]["const"] == "flags.set")
        .unwrap_or_else(|| panic!("no branch for `flags.set`: {kinds}"));
    assert_eq!(
        branch["then"]["properties"]["with"],
        json!({ "$ref": "#/$defs/Params_flags.set" })
    );
    let described: Json = serde_json::from_str(FLAGS).unwrap();
    assert_eq!(schema["$defs"]["Params_flags.set"], described["kinds"][0]["params"]);
    let names = schema["$defs"]["StepKind"]["anyOf"][0]["enum"].as_array().unwrap();
    assert!(names.contains(&json!("flags.set")), "{names:?}");
    // Without a runbook, no plugin kinds.
    let plain = sandbox.runbook(&["schema"]);
    assert!(!plain.stdout.contains("flags.set"));
}

#[test]
fn describe_is_asked_once_until_the_plugin_changes() {
    let sandbox = PluginSandbox::new(CHECKED);
    let counting = |extra: &str| {
        script(ACT, "").replacen(
            "#!/bin/sh\n",
            &format!("#!/bin/sh\n[ \"$1\" = describe ] && echo asked >> \"$SANDBOX/described\"\n{extra}"),
            1,
        )
    };
    sandbox.executable("plugins/bad.sh", &counting(""));
    let asked = || sandbox.read("described").lines().count();
    for _ in 0..2 {
        let outcome = sandbox.runbook(&["check", "runbook.yaml"]);
        assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    }
    assert_eq!(sandbox.runbook(&["plan", "runbook.yaml"]).code, Some(0));
    assert_eq!(asked(), 1, "`check` and `plan` asked again");
    std::fs::write(sandbox.sandbox.file("plugins/bad.sh"), counting("# changed\n")).unwrap();
    assert_eq!(sandbox.runbook(&["check", "runbook.yaml"]).code, Some(0));
    assert_eq!(asked(), 2, "the changed plugin was not asked again");
    assert_eq!(sandbox.runbook(&["check", "runbook.yaml"]).code, Some(0));
    assert_eq!(asked(), 2);
    // Another cache has not seen it.
    let other = sandbox.sandbox.file("other-cache").display().to_string();
    let outcome = sandbox.runbook_with(&["check", "runbook.yaml"], &[("RUNBOOK_CACHE_DIR", &other)]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.transcript());
    assert_eq!(asked(), 3);
}

#[test]
fn a_secret_cut_by_the_shortened_line_of_a_misbehaving_plugin_does_not_leak_its_start() {
    let sandbox = PluginSandbox::new(
        r#"
runbook: 1
name: cut
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: garbage
    uses: bad.act
    with: { value: "{{ secrets.token }}" }
    on_failure: continue
  - id: crash
    needs: []
    uses: bad.act
    with: { value: "crash {{ secrets.token }}" }
    on_failure: continue
"#,
    );
    // The secret starts 8 characters before where each message is cut:
    // the line shown at 120 characters, the end of stderr at 200.
    sandbox.plugin(
        "bad",
        r#"req=$(cat)
v=$(printf '%s' "$req" | sed -n 's/.*"value":"\([^"]*\)".*/\1/p')
case "$v" in
  crash*) printf '%0192d%s\n' 0 "${v#crash }" >&2; exit 3 ;;
  *) printf '%0112d%s\n' 0 "$v" ;;
esac"#,
    );
    let (outcome, events) = {
        let cache = sandbox.cache();
        let outcome = sandbox.sandbox.runbook(
            &["run", "runbook.yaml", "--output", "json"],
            &[("RUNBOOK_CACHE_DIR", &cache), ("TEST_TOKEN", SECRET)],
        );
        let events: Vec<Json> = outcome
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (outcome, events)
    };
    assert_eq!(outcome.code, Some(1), "{}", outcome.transcript());
    for (step, ends) in [("garbage", "0***`"), ("crash", "0***")] {
        let failed = events_of(&events, "step_failed", step);
        assert_eq!(failed.len(), 1, "{}", outcome.stdout);
        let error = failed[0]["error"].as_str().unwrap();
        assert!(error.starts_with("plugin `bad`") && error.ends_with(ends), "{error}");
    }
    let show = sandbox.runbook(&["show", &sandbox.last_run()]);
    let mut places = vec![
        ("the run".to_string(), outcome.transcript()),
        ("show".to_string(), show.transcript()),
    ];
    places.extend(files(&sandbox.sandbox.state()));
    let start = &SECRET[..8];
    for (place, shown) in &places {
        assert!(!shown.contains(start), "`{start}` shows in {place}:\n{shown}");
    }
}

/// The undo a kind gives is journaled with its parameters masked; an undo
/// run later from the journal (after the run's process died) is rebuilt
/// from the step's parameters rendered again, so the plugin gets the real
/// secret (an API token, typically), as the undo at failure does.
#[test]
fn an_undo_from_the_journal_is_given_the_steps_real_secret() {
    let sandbox = PluginSandbox::new(
        r#"
runbook: 1
name: undoable
secrets:
  token: { env: TEST_TOKEN }
steps:
  - id: flip
    uses: flags.set
    with: { flag: checkout, value: "{{ secrets.token }}" }
  - id: later
    uses: shell
    with: { run: 'touch "$SANDBOX/holding"; if [ -e "$SANDBOX/hold" ]; then sleep 300; fi; exit 1' }
"#,
    );
    sandbox.executable("plugins/flags.sh", &script(FLAGS, FLAGS_RUN));
    let env = [("TEST_TOKEN", SECRET)];
    let failed = sandbox.runbook_with(&["run", "runbook.yaml"], &env);
    assert_eq!(failed.code, Some(1), "{}", failed.transcript());
    assert_eq!(sandbox.requests("undos")[0]["params"]["value"], SECRET, "at failure");

    std::fs::remove_file(sandbox.sandbox.file("undos")).unwrap();
    std::fs::remove_file(sandbox.sandbox.file("holding")).unwrap();
    std::fs::write(sandbox.sandbox.file("hold"), "").unwrap();
    let mut runbook = sandbox
        .sandbox
        .run_command(&[])
        .env("RUNBOOK_CACHE_DIR", sandbox.cache())
        .env("TEST_TOKEN", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    sandbox.wait_for_file("holding");
    runbook.kill().unwrap();
    assert_eq!(wait_at_most(&mut runbook, Duration::from_secs(5)), None);
    let rollback = sandbox.runbook_with(&["rollback", &sandbox.last_run(), "--yes"], &env);
    assert_eq!(rollback.code, Some(0), "{}", rollback.transcript());
    assert_eq!(
        sandbox.requests("undos")[0]["params"]["value"],
        SECRET,
        "from the journal"
    );
}

//! The `shell` kind: runs a command, either a command line through
//! `sh -c` or a program with its arguments directly.
//!
//! Commands run under `tokio::process` rather than `duct`, which the
//! project's dependency list names for child processes: duct waits by
//! blocking a thread and reads a child's output as one captured value (or
//! one merged reader), so it cannot give stdout and stderr as two separate
//! live line streams while the step also waits on a cancellation token.
//! With tokio the step stays an ordinary future that can be cancelled, timed
//! out or dropped at any point.
//!
//! Nothing a step starts outlives it, wherever it goes: the supervisor in
//! [`runbook_engine::kit::process`] finds the command's process group, every
//! process carrying the attempt's token (`RUNBOOK_STEP_TOKEN`, in the
//! environment, which survives `setsid` and a daemon's double fork) and
//! their descendants, and stops them all with SIGTERM, then `kill_grace` to
//! finish, then SIGKILL: on timeout, on cancellation, when the command
//! leaves something running in the background, and when the step's future
//! is dropped. The command gets SIGKILL if `runbook` dies, and the group
//! and token are journaled right after it starts, so that a resumed run
//! stops whatever else survived ([`StepKind::recover`]) before it runs the
//! step again.

use indexmap::IndexMap;
use nix::sys::signal::Signal;
use runbook_engine::kit::{Kind, Templated, Traits};
use runbook_engine::step::{OutputStream, ParamProblem, StepContext, StepError};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::words::code;
use runbook_engine::kit::process::output::{Capture, Reader, pump};
use runbook_engine::kit::process::{ProcessToken, StepProcesses, Stopped};

/// Runs a command and fails when it exits with a code not in `ok_codes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shell;

/// Parameters of a `shell` step: a command given as `run` (a command line
/// for `sh -c`) or as `argv` (a program and its arguments, no shell), never
/// both.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellParams {
    /// A command line, run with `sh -c`. Give either `run` or `argv`.
    #[serde(default)]
    #[schemars(with = "String", length(min = 1))]
    pub run: Option<String>,

    /// A program and its arguments, run directly without a shell, so nothing
    /// in them is expanded. Give either `run` or `argv`.
    #[serde(default)]
    #[schemars(with = "Templated<Vec<String>>", length(min = 1))]
    pub argv: Option<Templated<Vec<String>>>,

    /// Environment variables set for the command, name to value; numbers and booleans are written as text.
    #[serde(default, deserialize_with = "env_values")]
    #[schemars(with = "IndexMap<String, String>")]
    pub env: IndexMap<String, String>,

    /// The directory the command runs in; by default the current directory.
    #[serde(default)]
    #[schemars(with = "String")]
    pub cwd: Option<String>,

    /// Text written to the command's standard input.
    #[serde(default)]
    #[schemars(with = "String")]
    pub stdin: Option<String>,

    /// The exit codes that count as success.
    #[serde(default = "default_ok_codes")]
    #[schemars(with = "Templated<Vec<Templated<u8>>>", length(min = 1))]
    pub ok_codes: Templated<Vec<Templated<u8>>>,
}

fn default_ok_codes() -> Templated<Vec<Templated<u8>>> {
    Templated::Value(vec![Templated::Value(0)])
}

/// Reads `env` values, accepting numbers and booleans as their text.
fn env_values<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<IndexMap<String, String>, D::Error> {
    let raw = IndexMap::<String, Json>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(name, value)| match value {
            Json::String(text) => Ok((name, text)),
            Json::Number(n) => Ok((name, n.to_string())),
            Json::Bool(b) => Ok((name, b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "the environment variable `{name}` must be text, a number or a boolean, not {}",
                runbook_engine::step::json_kind(&other)
            ))),
        })
        .collect()
}

impl Kind for Shell {
    type Params = ShellParams;
    const NAME: &'static str = "shell";
    const SUMMARY: &'static str = "Run a command, through `sh -c` or directly.";
    /// Values templated into `run` are quoted for `sh`, so inputs cannot inject commands.
    const TRAITS: Traits = Traits {
        shell_params: &["/run"],
        ..Traits::NONE
    };

    fn params_rules(&self) -> Vec<Json> {
        vec![
            runbook_engine::kit::exactly_one_of(&["run", "argv"]),
            runbook_engine::kit::param_rule("env", json!({ "propertyNames": { "pattern": "^[^=\\x00]+$" } })),
        ]
    }

    fn validate(&self, params: &ShellParams) -> Vec<ParamProblem> {
        let mut problems = Vec::new();
        match (&params.run, &params.argv) {
            (Some(_), Some(_)) => problems.push(
                ParamProblem::new("/argv", "`run` and `argv` are both given")
                    .with_help("keep `run` to use a shell, or `argv` to run the program directly"),
            ),
            (None, None) => problems.push(
                ParamProblem::new("", "missing parameter `run` or `argv`")
                    .with_help("add `run:` with a command line, or `argv:` with a program and its arguments"),
            ),
            (None, Some(Templated::Value(argv))) if argv.is_empty() => problems.push(
                ParamProblem::new("/argv", "`argv` is empty: it needs at least the program")
                    .with_help("write the program first, then its arguments, such as `argv: [pg_dump, --verbose]`"),
            ),
            _ => {}
        }
        for name in params.env.keys() {
            if name.is_empty() || name.contains(['=', '\0']) {
                problems.push(
                    ParamProblem::new(
                        crate::pointer("/env", name),
                        format!("`{name}` is not a valid environment variable name"),
                    )
                    .with_help("a name cannot be empty or contain `=`"),
                );
            }
        }
        problems
    }

    fn describe(&self, params: &ShellParams) -> String {
        let mut text = match (&params.run, &params.argv) {
            (Some(run), _) => format!("run {} with sh", code(script_opening(run))),
            (None, Some(Templated::Value(argv))) => format!("execute {} (no shell)", code(&command_line(argv))),
            (None, Some(Templated::Later(argv))) => format!("execute {} (no shell)", code(argv)),
            (None, None) => "run a command (none given)".to_string(),
        };
        if let Some(cwd) = &params.cwd {
            text.push_str(&format!(" in {cwd}"));
        }
        if !params.env.is_empty() {
            let names: Vec<&str> = params.env.keys().map(String::as_str).collect();
            text.push_str(&format!(", env: {}", names.join(", ")));
        }
        if params.stdin.is_some() {
            text.push_str(", with input on stdin");
        }
        let ok_codes: Vec<String> = match &params.ok_codes {
            Templated::Value(codes) => codes.iter().map(ToString::to_string).collect(),
            Templated::Later(text) => vec![text.clone()],
        };
        if ok_codes != ["0"] {
            let noun = if ok_codes.len() == 1 { "code" } else { "codes" };
            text.push_str(&format!(", accepting exit {noun} {}", ok_codes.join(", ")));
        }
        text
    }

    /// Result: `{"exit_code": 0, "signal": null, "stdout": "...", "stderr":
    /// "...", "json": <stdout read as JSON, or null>}`. `signal` names the
    /// signal that killed the command (`"SIGKILL"`), and then `exit_code` is
    /// null. Output has one trailing newline removed; of a very long output
    /// only the last MiB of each stream is kept.
    async fn run(&self, params: ShellParams, cx: StepContext) -> Result<Json, StepError> {
        execute(params, cx).await
    }

    /// Stops what the attempt left running when `runbook` died (its command
    /// itself got SIGKILL then): its group, if the leader's start time
    /// still matches, and every process carrying its token.
    async fn recover(&self, checkpoint: &Json) -> Result<Option<String>, String> {
        runbook_engine::kit::process::recover(checkpoint).await
    }
}

async fn execute(params: ShellParams, cx: StepContext) -> Result<Json, StepError> {
    if cx.cancel.is_cancelled() {
        return Err(crate::cancelled());
    }
    let ok_codes: Vec<u8> = params
        .ok_codes
        .get()?
        .iter()
        .map(|c| c.get().copied())
        .collect::<Result<_, _>>()?;
    let argv = params.argv.as_ref().map(Templated::get).transpose()?;
    let (mut command, program) = match (&params.run, argv.map(Vec::as_slice)) {
        (Some(run), None) => {
            let mut command = Command::new("sh");
            command.arg("-c").arg(run);
            (command, "sh")
        }
        (None, Some([program, args @ ..])) => {
            let mut command = Command::new(program);
            command.args(args);
            (command, program.as_str())
        }
        (Some(_), Some(_)) => return Err(StepError::new("`run` and `argv` are both given")),
        (None, Some([])) => return Err(StepError::new("`argv` is empty: it needs at least the program")),
        (None, None) => return Err(StepError::new("missing parameter `run` or `argv`")),
    };
    command
        .envs(&params.env)
        .stdin(if params.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &params.cwd {
        command.current_dir(cwd);
    }

    let token = ProcessToken::for_attempt(&cx);
    // From here on, dropping this future kills everything the command starts.
    let (mut child, mut processes) =
        StepProcesses::spawn(&mut command, &token).map_err(|e| start_error(program, params.cwd.as_deref(), &e))?;
    if let Err(error) = cx.host.checkpoint(&cx.step_id, processes.checkpoint().to_json()) {
        processes.kill_now();
        let _ = child.wait().await;
        return Err(StepError::new(format!(
            "`{program}` was killed as soon as it started: {error}"
        )));
    }

    let processes_ended = CancellationToken::new();
    let pump = |reader: Option<_>, stream| {
        reader.map(|reader| {
            AbortOnDropHandle::new(tokio::spawn(pump(
                reader,
                stream,
                Arc::clone(&cx.host),
                cx.step_id.clone(),
                processes_ended.clone(),
            )))
        })
    };
    let stdout = pump(child.stdout.take().map(boxed), OutputStream::Stdout);
    let stderr = pump(child.stderr.take().map(boxed), OutputStream::Stderr);
    let _feed = match (child.stdin.take(), params.stdin) {
        (Some(mut pipe), Some(text)) => Some(AbortOnDropHandle::new(tokio::spawn(async move {
            // A command that exits without reading its input is no error.
            let _ = pipe.write_all(text.as_bytes()).await;
        }))),
        _ => None,
    };

    let cancelled = tokio::select! {
        _ = child.wait() => false,
        () = cx.cancel.cancelled() => true,
    };
    let stopped = processes.stop(&mut child, cx.kill_grace).await;
    if !cancelled && stopped != Stopped::AlreadyGone {
        cx.host.log(
            &cx.step_id,
            "warn",
            &format!(
                "the command left processes running in the background; they were {}",
                stopped.words()
            ),
        );
    }
    let status = child
        .wait()
        .await
        .map_err(|e| StepError::new(format!("cannot learn how `{program}` ended: {e}")))?;
    processes_ended.cancel();
    let stdout = match stdout {
        Some(task) => task.await.unwrap_or_default(),
        None => Capture::default(),
    };
    let stderr = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => Capture::default(),
    };

    let signal = status.signal().map(signal_name);
    let complete = stdout.dropped == 0;
    let stdout = stdout.into_text();
    let parsed = if complete {
        serde_json::from_str(&stdout).unwrap_or(Json::Null)
    } else {
        Json::Null
    };
    let result = json!({
        "exit_code": status.code(),
        "signal": signal,
        "stdout": stdout,
        "stderr": stderr.into_text(),
        "json": parsed,
    });
    if cancelled {
        let how = match stopped {
            Stopped::AlreadyGone => "the command had already ended".to_string(),
            Stopped::Terminated => "the command stopped on SIGTERM".to_string(),
            Stopped::Killed => format!(
                "the command was killed with SIGKILL, still running {} after SIGTERM",
                crate::HumanDuration(cx.kill_grace)
            ),
        };
        return Err(StepError::new(format!("cancelled ({how})")).with_result(result));
    }
    match outcome(&status, &ok_codes) {
        Ok(()) => Ok(result),
        Err(message) => Err(StepError::new(message).with_result(result)),
    }
}

/// Whether the command ended as it should, or else how it ended, in words.
fn outcome(status: &ExitStatus, ok_codes: &[u8]) -> Result<(), String> {
    match (status.code(), status.signal()) {
        (Some(code), _) if u8::try_from(code).is_ok_and(|code| ok_codes.contains(&code)) => Ok(()),
        (Some(code), _) => {
            let expected: Vec<String> = ok_codes.iter().map(u8::to_string).collect();
            Err(format!(
                "exited with code {code} (expected {})",
                crate::words::series(&expected, "or")
            ))
        }
        (None, Some(signal)) => Err(format!("killed by {}", signal_name(signal))),
        (None, None) => Err(format!("ended in an unknown way ({status})")),
    }
}

/// `SIGKILL` for 9; the number for a signal nix does not know.
fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_string())
}

/// Why a command could not start, in words: a missing program, a missing
/// working directory (which the system reports as the same error).
fn start_error(program: &str, cwd: Option<&str>, error: &std::io::Error) -> StepError {
    if let Some(cwd) = cwd
        && !std::path::Path::new(cwd).is_dir()
    {
        return StepError::new(format!("cannot run in `{cwd}`: no such directory"));
    }
    StepError::new(format!(
        "cannot start `{program}`: {}",
        crate::os_error_words(&error.to_string())
    ))
}

fn boxed(reader: impl AsyncRead + Send + Unpin + 'static) -> Reader {
    Box::new(reader)
}

/// Where a command line starts saying what it does: scripts often open with
/// `set -eu`, a shebang or comments, which would make every plan line read
/// `set -eu…`. `code` then keeps the first line of what is left.
fn script_opening(run: &str) -> &str {
    let boilerplate = |line: &str| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line.starts_with("set -") || line.starts_with("set +")
    };
    let mut rest = run;
    while let Some((line, tail)) = rest.split_once('\n') {
        if !boilerplate(line) {
            return rest;
        }
        rest = tail;
    }
    if boilerplate(rest) { run } else { rest }
}

/// `argv` as one line a person can read; arguments holding spaces or quotes
/// are quoted so that their boundaries stay visible.
fn command_line(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|arg| {
            let arg = arg.clone();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '\\')) {
                format!("'{}'", arg.replace('\'', r"'\''"))
            } else {
                arg
            }
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{FakeHost, assert_rejected, assert_valid, describe_all, run};
    use runbook_engine::kit::process::table::{self as process_table, ProcessInfo};
    use serde_json::json;
    use std::time::{Duration, Instant};

    #[test]
    fn good_params_pass() {
        assert_valid::<ShellParams>("shell", json!({"run": "systemctl restart ledger"}));
        assert_valid::<ShellParams>(
            "shell",
            json!({"argv": ["pg_dump", "--format", "c"], "env": {"PGHOST": "db"}, "cwd": "/srv", "stdin": "x", "ok_codes": [0, 3]}),
        );
        assert_valid::<ShellParams>(
            "shell",
            json!({"run": "{{ inputs.cmd }}", "env": {"A": "{{ secrets.a }}"}}),
        );
    }

    #[test]
    fn params_read_at_run_time() {
        let params: ShellParams = serde_json::from_value(json!({"run": "true"})).unwrap();
        assert_eq!(params.ok_codes, Templated::Value(vec![Templated::Value(0)]));
        assert_eq!(params.argv, None);
        assert!(serde_json::from_value::<ShellParams>(json!({"run": "true", "shel": 1})).is_err());
    }

    #[test]
    fn bad_params_are_rejected() {
        assert_rejected(
            "shell",
            json!({"run": "a", "argv": ["b"]}),
            "/argv",
            "`run` and `argv` are both given",
        );
        assert_rejected("shell", json!({"cwd": "/srv"}), "", "missing parameter `run` or `argv`");
        assert_rejected(
            "shell",
            json!({"run": "a", "ok_codes": [0, 300]}),
            "/ok_codes/1",
            "above the maximum 255",
        );
        assert_rejected(
            "shell",
            json!({"run": "a", "ok_codes": []}),
            "/ok_codes",
            "needs at least 1 item",
        );
        assert_rejected(
            "shell",
            json!({"argv": "ls -l"}),
            "/argv",
            "`argv` must be a list, found a string",
        );
        assert_rejected(
            "shell",
            json!({"run": "a", "env": {"A=B": "c"}}),
            "/env/A=B",
            "not a valid environment variable name",
        );
        assert_rejected(
            "shell",
            json!({"run": "a", "cwd": null}),
            "/cwd",
            "`cwd` must be a string, found null",
        );
        assert_rejected(
            "shell",
            json!({"command": "a"}),
            "/command",
            "unknown parameter `command`",
        );
    }

    #[test]
    fn describe() {
        insta::assert_snapshot!(describe_all(
            "shell",
            &[
                json!({"run": "systemctl restart ledger"}),
                json!({"argv": ["pg_dump", "--format", "c"]}),
                json!({"argv": ["echo", "hello world", "", "it's"]}),
                json!({"run": "./deploy.sh", "cwd": "/srv/x", "env": {"TOKEN": "***", "A": "1"}, "stdin": "y", "ok_codes": [0, 3]}),
                json!({"run": "set -e\nmake\nmake install"}),
                json!({"run": "#!/bin/sh\n# Save the export.\nset -eu\nset -o pipefail\n\nmkdir -p \"$DIR\"\ncat > \"$DIR/x\"\n"}),
                json!({"run": "set -eu\nmake\n"}),
                json!({"run": "set -eu\n"}),
                json!({"run": format!("echo {}", "x".repeat(200))}),
                json!({"run": "kill <steps.start.outputs.pid>", "ok_codes": [1]}),
                json!({"argv": "<inputs.argv>"}),
                json!({"cwd": "/tmp"}),
            ],
        ));
    }

    /// Whether process `pid` is running (a zombie only waits to be reaped).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !matches!(stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]), Some("Z" | "X")))
    }

    /// Waits up to two seconds for every process in `pids` to end.
    async fn all_end(pids: &[i32]) -> bool {
        for _ in 0..200 {
            if !pids.iter().any(|&pid| running(pid)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// A script that starts two background sleeps, prints their pids and its
    /// own (the group's id), then waits: a child and grandchildren.
    const FAMILY: &str = "sleep 100 & echo $!; sleep 100 & echo $!; echo $$; wait";

    fn pids(lines: &[String]) -> Vec<i32> {
        lines.iter().map(|line| line.parse().expect("a pid")).collect()
    }

    /// Whether a process that is not a zombie belongs to process group `pgid`.
    fn has_running_member(pgid: i32) -> bool {
        process_table::scan().iter().any(|p| p.pgid == pgid && !p.zombie)
    }

    use crate::tests::{Cleanup, with_marker};

    /// A command that starts, with `marker` as their `$0`, one loop that
    /// leaves the session with `setsid`, and one that does so from a
    /// double fork as a daemon does; prints their pids (one per line) and
    /// `ready`, then waits.
    fn escapes(marker: &str) -> (String, Cleanup) {
        let marker = format!("{marker}-{:08x}", fastrand::u32(..));
        let run = format!(
            "L='while :; do sleep 1; done'\n\
             setsid sh -c \"$L\" {marker} & echo $!\n\
             (setsid sh -c \"$L\" {marker} & echo $!) \n\
             echo ready; sleep 100"
        );
        (run, Cleanup(marker))
    }

    /// Waits up to two seconds for nothing with `marker` to run.
    async fn none_left(marker: &str) -> bool {
        for _ in 0..200 {
            if with_marker(marker).is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn captures_the_exit_code_and_both_streams() {
        let host = Arc::new(FakeHost::new());
        let error = run("shell", &host, json!({"run": "echo out; echo err >&2; exit 3"}))
            .await
            .unwrap_err();
        assert_eq!(error.message, "exited with code 3 (expected 0)");
        assert_eq!(
            error.result,
            Some(json!({"exit_code": 3, "signal": null, "stdout": "out", "stderr": "err", "json": null}))
        );

        let result = run("shell", &host, json!({"run": "echo out; exit 3", "ok_codes": [0, 3]})).await;
        assert_eq!(result.unwrap()["exit_code"], 3);
        let error = run("shell", &host, json!({"run": "exit 1", "ok_codes": [0, 3]}))
            .await
            .unwrap_err();
        assert_eq!(error.message, "exited with code 1 (expected 0 or 3)");
    }

    #[tokio::test]
    async fn reads_json_output() {
        let host = Arc::new(FakeHost::new());
        let result = run(
            "shell",
            &host,
            json!({"run": r#"printf '{"pop": "fra", "n": [1, 2]}\n'"#}),
        )
        .await
        .unwrap();
        assert_eq!(result["json"], json!({"pop": "fra", "n": [1, 2]}));
        assert_eq!(result["stdout"], r#"{"pop": "fra", "n": [1, 2]}"#);
        // Only one trailing newline goes.
        let result = run("shell", &host, json!({"run": "printf 'a\\n\\n'"})).await.unwrap();
        assert_eq!(result["stdout"], "a\n");
        assert_eq!(result["json"], Json::Null);
    }

    #[tokio::test]
    async fn names_the_signal_that_killed_the_command() {
        let host = Arc::new(FakeHost::new());
        let error = run("shell", &host, json!({"run": "kill -KILL $$"})).await.unwrap_err();
        assert_eq!(error.message, "killed by SIGKILL");
        let result = error.result.unwrap();
        assert_eq!(
            (&result["exit_code"], &result["signal"]),
            (&Json::Null, &json!("SIGKILL"))
        );
    }

    #[tokio::test]
    async fn sets_env_and_cwd() {
        let host = Arc::new(FakeHost::new());
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let result = run(
            "shell",
            &host,
            json!({
                "run": r#"echo "$GREETING"; pwd; test -n "$PATH" && echo inherited"#,
                "env": {"GREETING": "hello world"},
                "cwd": dir,
            }),
        )
        .await
        .unwrap();
        assert_eq!(result["stdout"], format!("hello world\n{}\ninherited", dir.display()));

        let error = run("shell", &host, json!({"run": "true", "cwd": "/no/such/dir"}))
            .await
            .unwrap_err();
        assert_eq!(error.message, "cannot run in `/no/such/dir`: no such directory");
    }

    #[tokio::test]
    async fn runs_argv_without_a_shell() {
        let host = Arc::new(FakeHost::new());
        let result = run(
            "shell",
            &host,
            json!({"argv": ["printf", "[%s]", "a b; echo injected", "$HOME", "it's"]}),
        )
        .await
        .unwrap();
        assert_eq!(result["stdout"], "[a b; echo injected][$HOME][it's]");
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let host = Arc::new(FakeHost::new());
        let error = run("shell", &host, json!({"argv": ["no-such-program-here", "x"]}))
            .await
            .unwrap_err();
        assert_eq!(
            error.message,
            "cannot start `no-such-program-here`: no such file or directory"
        );
    }

    #[tokio::test]
    async fn writes_stdin_and_closes_it() {
        let host = Arc::new(FakeHost::new());
        let result = run("shell", &host, json!({"run": "tr a-z A-Z", "stdin": "hello\nworld\n"})).await;
        assert_eq!(result.unwrap()["stdout"], "HELLO\nWORLD");
        // Without `stdin`, a command reading it gets end of file at once.
        let result = run("shell", &host, json!({"run": "cat; echo done"})).await;
        assert_eq!(result.unwrap()["stdout"], "done");
        // A command that does not read its input is no error.
        let big = "x".repeat(1 << 20);
        let result = run("shell", &host, json!({"run": "exit 0", "stdin": big})).await;
        assert_eq!(result.unwrap()["exit_code"], 0);
    }

    #[tokio::test]
    async fn streams_output_line_by_line_as_it_comes() {
        let host = Arc::new(FakeHost::new());
        let cx = host.step_context(json!({"run": "echo one; echo two >&2; sleep 0.5; printf 'three\\r\\nfour'"}));
        let mut run = runbook_engine::step::StepKind::run(&Shell, cx);
        tokio::select! {
            _ = &mut run => panic!("the command ended before its first line was seen"),
            lines = host.stdout_lines(1) => assert_eq!(lines, ["one"]),
        }
        let result = run.await.unwrap();
        assert_eq!(host.lines(OutputStream::Stdout), ["one", "three", "four"]);
        assert_eq!(host.lines(OutputStream::Stderr), ["two"]);
        assert_eq!(result["stdout"], "one\nthree\r\nfour");
        assert_eq!(result["stderr"], "two");
    }

    #[tokio::test]
    async fn cancellation_stops_the_command_and_its_children() {
        let host = Arc::new(FakeHost::new());
        let cx = host.step_context(json!({"run": FAMILY}));
        let (cancel, grace) = (cx.cancel.clone(), cx.kill_grace);
        let mut run = runbook_engine::step::StepKind::run(&Shell, cx);
        let family = tokio::select! {
            _ = &mut run => panic!("the command ended by itself"),
            lines = host.stdout_lines(3) => pids(&lines),
        };
        assert!(family.iter().all(|&pid| running(pid)), "{family:?}");
        cancel.cancel();
        let cancelled_at = Instant::now();
        let error = run.await.unwrap_err();
        assert!(
            cancelled_at.elapsed() < grace + Duration::from_secs(1),
            "{:?}",
            cancelled_at.elapsed()
        );
        assert_eq!(error.message, "cancelled (the command stopped on SIGTERM)");
        assert_eq!(error.result.unwrap()["signal"], "SIGTERM");
        assert!(!family.iter().any(|&pid| running(pid)), "{family:?}");
        assert!(!has_running_member(family[2]), "the group {} lives on", family[2]);
    }

    #[tokio::test]
    async fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
        let host = Arc::new(FakeHost::new());
        let mut cx = host.step_context(json!({"run": format!("trap '' TERM; {FAMILY}")}));
        cx.kill_grace = Duration::from_millis(300);
        let cancel = cx.cancel.clone();
        let mut run = runbook_engine::step::StepKind::run(&Shell, cx);
        let family = tokio::select! {
            _ = &mut run => panic!("the command ended by itself"),
            lines = host.stdout_lines(3) => pids(&lines),
        };
        cancel.cancel();
        let cancelled_at = Instant::now();
        let error = run.await.unwrap_err();
        let took = cancelled_at.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1300),
            "{took:?}"
        );
        assert_eq!(
            error.message,
            "cancelled (the command was killed with SIGKILL, still running 300ms after SIGTERM)"
        );
        assert!(!family.iter().any(|&pid| running(pid)), "{family:?}");
    }

    #[tokio::test]
    async fn dropping_the_step_kills_the_command_and_its_children() {
        let host = Arc::new(FakeHost::new());
        // A `StepFuture` is a `Pin<Box<_>>`: dropping it drops the step.
        let mut run = runbook_engine::step::StepKind::run(&Shell, host.step_context(json!({"run": FAMILY})));
        let family = tokio::select! {
            _ = &mut run => panic!("the command ended by itself"),
            lines = host.stdout_lines(3) => pids(&lines),
        };
        assert!(family.iter().all(|&pid| running(pid)), "{family:?}");
        drop(run);
        assert!(all_end(&family).await, "{family:?} live on");
        assert!(!has_running_member(family[2]), "the group {} lives on", family[2]);
    }

    #[tokio::test]
    async fn what_a_command_leaves_running_is_stopped() {
        let host = Arc::new(FakeHost::new());
        let result = run("shell", &host, json!({"run": "sleep 100 & echo $!"}))
            .await
            .unwrap();
        let pid: i32 = result["stdout"].as_str().unwrap().parse().unwrap();
        assert!(!running(pid), "{pid} lives on");
        assert_eq!(
            host.logs(),
            [(
                "warn".to_string(),
                "the command left processes running in the background; they were stopped with SIGTERM".to_string()
            )]
        );
    }

    #[tokio::test]
    async fn cancellation_stops_processes_that_left_the_session() {
        let host = Arc::new(FakeHost::new());
        let (command, cleanup) = escapes("cancel");
        let cx = host.step_context(json!({ "run": command }));
        let cancel = cx.cancel.clone();
        let mut run = runbook_engine::step::StepKind::run(&Shell, cx);
        let escaped = tokio::select! {
            _ = &mut run => panic!("the command ended by itself"),
            lines = host.stdout_lines(3) => pids(&lines[..2]),
        };
        // (Counting processes by marker would also count a loop's fork
        // that has not yet become `sleep`.)
        // `echo $!` may run before the child has called `setsid`: wait for it.
        for &pid in &escaped {
            let mut own_session = false;
            for _ in 0..200 {
                let info = ProcessInfo::read(pid).unwrap();
                own_session = !info.zombie && info.pgid == pid;
                if own_session {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert!(own_session, "{pid} runs in a session of its own");
        }
        cancel.cancel();
        let error = run.await.unwrap_err();
        assert_eq!(error.message, "cancelled (the command stopped on SIGTERM)");
        assert!(none_left(&cleanup.0).await, "{:?} live on", with_marker(&cleanup.0));
    }

    #[tokio::test]
    async fn dropping_the_step_kills_processes_that_left_the_session() {
        let host = Arc::new(FakeHost::new());
        let (command, cleanup) = escapes("drop");
        let mut run = runbook_engine::step::StepKind::run(&Shell, host.step_context(json!({ "run": command })));
        let escaped = tokio::select! {
            _ = &mut run => panic!("the command ended by itself"),
            lines = host.stdout_lines(3) => pids(&lines[..2]),
        };
        assert!(escaped.iter().all(|&pid| running(pid)), "{escaped:?}");
        drop(run);
        assert!(none_left(&cleanup.0).await, "{:?} live on", with_marker(&cleanup.0));
    }

    #[tokio::test]
    async fn what_a_command_leaves_in_another_session_is_stopped_and_reaped() {
        let host = Arc::new(FakeHost::new());
        let (command, cleanup) = escapes("left");
        let command = command.replace("echo ready; sleep 100", "exit 0");
        let result = run("shell", &host, json!({ "run": command })).await.unwrap();
        let escaped = pids(
            &result["stdout"]
                .as_str()
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>(),
        );
        assert!(with_marker(&cleanup.0).is_empty());
        assert_eq!(
            host.logs(),
            [(
                "warn".to_string(),
                "the command left processes running in the background; they were stopped with SIGTERM".to_string()
            )]
        );
        // They were re-parented to this process (a subreaper) and reaped
        // here: not even zombies remain.
        for _ in 0..100 {
            if escaped.iter().all(|pid| ProcessInfo::read(*pid).is_none()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{escaped:?} were not reaped");
    }

    #[tokio::test]
    async fn the_group_its_start_and_the_token_are_journaled_at_the_start() {
        let host = Arc::new(FakeHost::new());
        let result = run("shell", &host, json!({"run": "echo $$; echo \"$RUNBOOK_STEP_TOKEN\""}))
            .await
            .unwrap();
        let stdout = result["stdout"].as_str().unwrap();
        let (pid, token) = stdout.split_once('\n').unwrap();
        let checkpoints = host.checkpoints();
        assert_eq!(checkpoints.len(), 1, "{checkpoints:?}");
        let (step, state) = &checkpoints[0];
        assert_eq!(step, "step");
        assert_eq!(state["pgid"].to_string(), pid);
        assert_eq!(state["token"], token);
        assert!(token.starts_with("run-1/step/1/"), "{token}");
        assert!(state["start_time"].as_u64().is_some_and(|t| t > 0), "{state}");
        assert_eq!(state["boot_id"].as_str(), process_table::boot_id().as_deref());
    }

    #[tokio::test]
    async fn a_command_whose_processes_cannot_be_journaled_is_killed_at_once() {
        let host = Arc::new(FakeHost::new().with_checkpoint_answer(Err(
            "the journal cannot be written (no space left on device); nothing more was done".into(),
        )));
        let marker = format!("unjournaled-{:08x}", fastrand::u32(..));
        let cleanup = Cleanup(marker.clone());
        let started = Instant::now();
        let error = run(
            "shell",
            &host,
            json!({ "run": format!("sh -c 'sleep 1; while :; do sleep 1; done' {marker} & sleep 100") }),
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.message,
            "`sh` was killed as soon as it started: the journal cannot be written (no space left on device); nothing more was done"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(none_left(&cleanup.0).await);
    }

    #[tokio::test]
    async fn recover_stops_what_a_dead_run_left_and_only_that() {
        let marker = format!("survivor-{:08x}", fastrand::u32(..));
        let cleanup = Cleanup(marker.clone());
        // What a killed `runbook` leaves: the command's background process,
        // carrying the attempt's token, re-parented away from us.
        let token = format!("run-1/step/1/{marker}");
        let mut survivor = std::process::Command::new("setsid")
            .args(["sh", "-c", "while :; do sleep 1; done", &marker])
            .env("RUNBOOK_STEP_TOKEN", &token)
            .spawn()
            .unwrap();
        let pid = i32::try_from(survivor.id()).unwrap();
        for _ in 0..100 {
            if !with_marker(&marker).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let checkpoint = json!({"pgid": 999_999, "start_time": 1, "token": token});
        let words = Shell.recover(&checkpoint).await.unwrap().unwrap();
        assert!(
            words.starts_with("stopped ") && words.contains(&pid.to_string()),
            "{words}"
        );
        survivor.wait().unwrap();
        assert!(with_marker(&cleanup.0).is_empty());
        assert_eq!(Shell.recover(&checkpoint).await, Ok(None));
    }
}
